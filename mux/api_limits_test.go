package mux_test

// Black-box tests of limits and configuration: Config validation and the
// defaults a nil Config advertises, headers over the peer's MaxHeaderBytes, a
// thousand streams opened and ended in every way leaving nothing behind, and
// 5,000 concurrent streams on the default Config.

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

// Config.

func TestAPIConfig(t *testing.T) {
	starts := []struct {
		name  string
		start func(net.Conn, httpstream.NewStreamHandler, *mux.Config) (*mux.Session, error)
	}{{"Client", mux.Client}, {"Server", mux.Server}}

	invalid := []struct {
		name string
		cfg  mux.Config
	}{
		{"a negative MaxConcurrentStreams is an error", mux.Config{MaxConcurrentStreams: -1}},
		{"a MaxFrameSize of 10, under the protocol's 1 KiB, is an error", mux.Config{MaxFrameSize: 10}},
		{"a MaxFrameSize past the 24-bit length is an error", mux.Config{MaxFrameSize: 1 << 24}},
		{"a negative AcceptBacklog is an error", mux.Config{AcceptBacklog: -1}},
		{"a negative MaxHeaderBytes is an error", mux.Config{MaxHeaderBytes: -1}},
		{"an InitialStreamWindow past 2^31-1 is an error", mux.Config{InitialStreamWindow: 1 << 31}},
	}
	for _, tt := range invalid {
		for _, st := range starts {
			t.Run(st.name+": "+tt.name, func(t *testing.T) {
				checkGoroutineLeaks(t)
				c1, c2 := net.Pipe()
				defer c1.Close()
				defer c2.Close()
				cfg := tt.cfg
				s, err := st.start(c1, nil, &cfg)
				if err == nil {
					s.Close()
					t.Fatalf("%s(%+v) succeeded, want an error", st.name, tt.cfg)
				}
				if s != nil {
					t.Errorf("%s returned a session with its error %v", st.name, err)
				}
			})
		}
	}

	defaults := mux.DefaultConfig()
	valid := []struct {
		name string
		cfg  *mux.Config
	}{
		{"a nil Config works", nil},
		{"a zero Config works", &mux.Config{}},
		{"DefaultConfig() works", &defaults},
		{"negative durations turn the timers off and work", &mux.Config{
			KeepAliveInterval: -1, KeepAliveTimeout: -1, IdleTimeout: -1, StreamOpenTimeout: -1,
		}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			cli, _, st, peer := sessionsWithStream(t, pipeConns(t), pairOptions{clientConfig: tt.cfg, serverConfig: tt.cfg})
			exchange(t, st, peer, payload(7, 100<<10), payload(8, 100<<10))
			ping(t, cli, "the client's")
		})
	}

	t.Run("a nil Config advertises the default stream window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, st, _ := sessionsWithStream(t, pipeConns(t), pairOptions{})
			st.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := st.Write(make([]byte, 4*mux.DefaultInitialStreamWindow))
			wantDeadlineError(t, err, "a Write to a peer that reads nothing")
			// More than the protocol's default (what a peer that sent no
			// window setting would grant), at most the package's default.
			if n <= frame.DefaultInitialStreamWindow || n > mux.DefaultInitialStreamWindow {
				t.Errorf("the peer with a nil Config took %d bytes before reading, want more than %d and at most DefaultInitialStreamWindow (%d)",
					n, frame.DefaultInitialStreamWindow, mux.DefaultInitialStreamWindow)
			}
		})
	})
}

// A header block the peer would not accept is not sent (SPEC 5: SHOULD).

func TestAPIOpeningWithHeadersOverThePeersLimitFailsAndTheSessionLivesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := startSessions(t, pipeConns(t), pairOptions{
			serverHandler: httpstream.NoOpNewStreamHandler,
			serverConfig:  &mux.Config{MaxHeaderBytes: 1024},
		})
		synctest.Wait() // the server's SETTINGS have arrived
		_, err := cli.OpenStream(testContext(t), http.Header{"Big": {strings.Repeat("x", 4096)}})
		if err == nil {
			t.Fatal("opening a stream with 4 KiB of headers to a peer that takes 1 KiB succeeded")
		}
		wantOpen(t, cli, "the client")
		wantOpen(t, srv, "the server")
		openStream(t, cli, http.Header{"Small": {"ok"}})
	})
}

// Streams that open and end in every way, many times, leave nothing behind
// (SPEC 10.5).

func TestAPIManyStreamsOpenedAndEndedInEveryWayLeaveNothingBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		accepted := make(chan *mux.Stream, 8)
		cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: acceptInto(accepted)})
		ends := []func(local, peer *mux.Stream){
			func(local, _ *mux.Stream) { local.Reset() },
			func(_, peer *mux.Stream) { peer.Reset() },
			func(local, _ *mux.Stream) { cli.RemoveStreams(local); local.Reset() },
			func(local, peer *mux.Stream) { exchange(t, local, peer, []byte("q"), []byte("a")) },
			func(local, peer *mux.Stream) { local.Close(); peer.Reset() },
		}
		for i := range 1000 {
			local, peer := openPair(t, cli, accepted)
			ends[i%len(ends)](local, peer)
		}
		synctest.Wait()
		wantNumStreams(t, cli, srv, 0)
		ping(t, cli, "the client's")
	})
}

// Limits fit real workloads: with the default Config one session carries
// 5,000 concurrent streams (a kubectl port-forward uses two per forwarded
// connection), each of which still works, both ways.
func TestAPIFiveThousandConcurrentStreamsWithTheDefaultConfig(t *testing.T) {
	checkGoroutineLeaks(t)
	const n = 5000
	accepted := make(chan *mux.Stream, n)
	cli, srv := startSessions(t, tcpConns(t), pairOptions{serverHandler: acceptInto(accepted)})
	local := make([]*mux.Stream, n)
	peer := make([]*mux.Stream, n)
	for i := range n {
		local[i] = openStream(t, cli, nil)
		peer[i] = recv(t, accepted, "the server's handler")
	}
	wantNumStreams(t, cli, srv, n)
	// Every stream still carries data both ways, in any order.
	for _, i := range []int{0, n / 2, n - 1} {
		exchange(t, local[i], peer[i], []byte("question"), []byte("answer"))
	}
	for i := range n {
		local[i].Reset()
	}
	ping(t, cli, "the client's") // the server has read every RESET before the PING
	wantNumStreams(t, cli, srv, 0)
}
