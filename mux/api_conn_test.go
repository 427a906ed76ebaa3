package mux_test

// Black-box tests of the session and its streams as connections: Session and
// Stream implement httpstream's interfaces and net.Conn, report the
// connection's addresses, Ping returns a round-trip time, keepalive closes a
// session whose peer never answers and keeps one whose peer does, and the idle
// timeout closes a session without stream activity.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

var (
	_ httpstream.Connection = (*mux.Session)(nil)
	_ httpstream.Stream     = (*mux.Stream)(nil)
	_ net.Conn              = (*mux.Stream)(nil)
)

// Ping.

func TestAPIPingReturnsAPositiveRoundTripTime(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			cli, srv := startSessions(t, tr.dial(t), pairOptions{})
			for range 3 {
				pingRTT(t, cli, "the client's")
				pingRTT(t, srv, "the server's")
			}
			var wg sync.WaitGroup
			rtts := make(chan error, 16)
			for i := range 16 {
				s := cli
				if i%2 == 1 {
					s = srv
				}
				wg.Go(func() {
					rtt, err := s.Ping(context.Background())
					if err == nil && rtt <= 0 {
						err = fmt.Errorf("round-trip time %v, want > 0", rtt)
					}
					rtts <- err
				})
			}
			recv(t, async(func() bool { wg.Wait(); return true }), "concurrent Pings")
			close(rtts)
			for err := range rtts {
				if err != nil {
					t.Errorf("concurrent Ping: %v", err)
				}
			}
		})
	}
}

// Idle timeout, in fake time.

func TestAPIIdleTimeoutClosesASessionWithoutStreamActivity(t *testing.T) {
	const idle = 10 * time.Second
	type scenario func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream)
	tests := []struct {
		name string
		opts pairOptions
		run  scenario
	}{
		{"it closes both sides after the idle period", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - time.Second)
			wantOpen(t, cli, "the client, before the idle period ended")
			time.Sleep(2 * time.Second)
			wantClosed(t, cli, "the client, after the idle period")
			wantClosed(t, srv, "its peer")
			_, err := cli.Ping(context.Background())
			wantErrIs(t, err, mux.ErrSessionClosed, "Ping after the idle timeout")
		}},
		{"keepalive pings from either side do not keep it alive", pairOptions{
			clientConfig: &mux.Config{KeepAliveInterval: time.Second},
			serverConfig: &mux.Config{KeepAliveInterval: time.Second},
		}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - time.Second)
			wantOpen(t, cli, "the client, before the idle period ended")
			time.Sleep(2 * time.Second)
			wantClosed(t, cli, "the client, pinged every second but idle")
		}},
		{"data sent keeps it alive", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			st, peer := openPair(t, cli, toServer)
			cli.SetIdleTimeout(idle)
			trickle(t, st, peer, 3*idle)
			wantOpen(t, cli, "the client, sending a byte a second")
			time.Sleep(idle + time.Second)
			wantClosed(t, cli, "the client, idle after the data stopped")
		}},
		{"data received keeps it alive", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			st, peer := openPair(t, cli, toServer)
			cli.SetIdleTimeout(idle)
			trickle(t, peer, st, 3*idle)
			wantOpen(t, cli, "the client, receiving a byte a second")
			time.Sleep(idle + time.Second)
			wantClosed(t, cli, "the client, idle after the data stopped")
		}},
		{"opens, half-closes and resets are activity", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			step := idle - 2*time.Second
			time.Sleep(step)
			st, peer := openPair(t, cli, toServer)
			time.Sleep(step)
			wantOpen(t, cli, "the client, an open ago")
			peer.Close()
			time.Sleep(step)
			wantOpen(t, cli, "the client, a half-close ago")
			st.Reset()
			time.Sleep(step)
			wantOpen(t, cli, "the client, a reset ago")
			time.Sleep(3 * time.Second)
			wantClosed(t, cli, "the client, idle since the reset")
		}},
		{"an open stream without traffic does not keep it alive", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			st, _ := openPair(t, cli, toServer)
			cli.SetIdleTimeout(idle)
			time.Sleep(idle + time.Second)
			wantClosed(t, cli, "the client with a silent stream")
			_, err := st.Read(make([]byte, 1))
			wantErrIs(t, err, mux.ErrSessionClosed, "Read on a stream of a session closed for idleness")
		}},
		{"SetIdleTimeout(0) turns it off", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			cli.SetIdleTimeout(0)
			time.Sleep(10 * idle)
			wantOpen(t, cli, "the client with the idle timeout off")
		}},
		{"calling SetIdleTimeout again restarts the period", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - 2*time.Second)
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - 2*time.Second)
			wantOpen(t, cli, "the client, its idle timeout set again")
			time.Sleep(3 * time.Second)
			wantClosed(t, cli, "the client, idle since the second SetIdleTimeout")
		}},
		{"Config.IdleTimeout works like SetIdleTimeout", pairOptions{serverConfig: &mux.Config{IdleTimeout: idle}}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			time.Sleep(idle - time.Second)
			wantOpen(t, srv, "the server, before its IdleTimeout")
			time.Sleep(2 * time.Second)
			wantClosed(t, srv, "the server, after its IdleTimeout")
			wantClosed(t, cli, "its peer")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				toServer := make(chan *mux.Stream, 2)
				tt.opts.serverHandler = acceptInto(toServer)
				cli, srv := startSessions(t, pipeConns(t), tt.opts)
				tt.run(t, cli, srv, toServer)
			})
		})
	}
}

// trickle sends one byte a second from w to r for d.
func trickle(t *testing.T, w, r *mux.Stream, d time.Duration) {
	t.Helper()
	for range int(d / time.Second) {
		time.Sleep(time.Second)
		if _, err := w.Write([]byte{1}); err != nil {
			t.Fatalf("trickle Write at %v: %v", time.Now().Format(time.TimeOnly), err)
		}
		readFull(t, r, 1)
	}
}

// Keepalive, in fake time.

func TestAPIKeepAliveClosesASessionWhosePeerNeverAnswers(t *testing.T) {
	const interval, timeout = time.Second, 3 * time.Second
	for _, side := range []struct {
		name  string
		start func(net.Conn, httpstream.NewStreamHandler, *mux.Config) (*mux.Session, error)
	}{{"client", mux.Client}, {"server", mux.Server}} {
		t.Run(side.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				local, remote := net.Pipe()
				silentPeer(t, remote, false) // reads everything, never writes
				s, err := side.start(local, nil, &mux.Config{KeepAliveInterval: interval, KeepAliveTimeout: timeout})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { closeSession(t, s, side.name) })
				pinged := async(func() error { _, err := s.Ping(context.Background()); return err })
				// No ping can have gone unanswered for the timeout yet.
				time.Sleep(timeout - 100*time.Millisecond)
				wantOpen(t, s, "the session, before any ping could time out")
				// The first keepalive went out after at most one interval.
				time.Sleep(interval + 200*time.Millisecond)
				wantClosed(t, s, "the session whose peer never answered its pings")
				wantErrIs(t, recv(t, pinged, "the Ping"), mux.ErrSessionClosed, "a Ping blocked when the keepalive timed out")
			})
		})
	}
	t.Run("a negative KeepAliveTimeout never closes it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			local, remote := net.Pipe()
			silentPeer(t, remote, false)
			s, err := mux.Client(local, nil, &mux.Config{KeepAliveInterval: interval, KeepAliveTimeout: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeSession(t, s, "client") })
			time.Sleep(time.Hour)
			wantOpen(t, s, "the session without a keepalive timeout")
		})
	})
}

func TestAPIKeepAliveKeepsASessionWhosePeerAnswersOpen(t *testing.T) {
	pinging := &mux.Config{KeepAliveInterval: time.Second, KeepAliveTimeout: 3 * time.Second}
	silent := &mux.Config{KeepAliveInterval: -1} // still answers the peer's pings
	for _, tt := range []struct {
		name string
		opts pairOptions
	}{
		{"the client pings a server that never pings", pairOptions{clientConfig: pinging, serverConfig: silent}},
		{"the server pings a client that never pings", pairOptions{clientConfig: silent, serverConfig: pinging}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cli, srv := startSessions(t, pipeConns(t), tt.opts)
				time.Sleep(time.Minute)
				wantOpen(t, cli, "the client")
				wantOpen(t, srv, "the server")
				ping(t, cli, "the client's")
			})
		})
	}
}

// Streams and sessions report the connection's addresses, as net.Conn does.

func TestAPIStreamsReportTheConnectionsAddresses(t *testing.T) {
	checkGoroutineLeaks(t)
	conns := tcpConns(t)
	cli, srv, st, peer := sessionsWithStream(t, conns, pairOptions{})
	for _, c := range []struct {
		name        string
		local, want net.Addr
	}{
		{"client session LocalAddr", cli.LocalAddr(), conns.client.LocalAddr()},
		{"client session RemoteAddr", cli.RemoteAddr(), conns.client.RemoteAddr()},
		{"client stream LocalAddr", st.LocalAddr(), conns.client.LocalAddr()},
		{"client stream RemoteAddr", st.RemoteAddr(), conns.client.RemoteAddr()},
		{"server session LocalAddr", srv.LocalAddr(), conns.server.LocalAddr()},
		{"server stream RemoteAddr", peer.RemoteAddr(), conns.server.RemoteAddr()},
	} {
		if c.local == nil || c.local.String() != c.want.String() {
			t.Errorf("%s = %v, want %v", c.name, c.local, c.want)
		}
	}
}
