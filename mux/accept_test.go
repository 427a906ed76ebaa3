package mux

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

// acceptSessions starts a client and a server session in Accept mode over
// net.Pipe, inside the caller's synctest bubble.
func acceptSessions(t *testing.T, serverCfg Config) (cli, srv *Session) {
	t.Helper()
	a, b := netPipe()
	serverCfg.AcceptStreams = true
	srv, err := Server(b, nil, &serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err = Client(a, nil, &Config{KeepAliveInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv
}

func TestAcceptReturnsStreamsInOpenOrderAndOnlyThenAcceptsThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := acceptSessions(t, Config{KeepAliveInterval: -1})
		opened := make(chan error, 3)
		for i := range 3 {
			go func() {
				st, err := cli.OpenStream(context.Background(), http.Header{"N": {strconv.Itoa(i)}})
				if err == nil {
					st.Write([]byte{byte(i)})
					st.Close()
				}
				opened <- err
			}()
			synctest.Wait() // opened in this order
		}
		select {
		case err := <-opened:
			t.Fatalf("OpenStream returned (%v) before anyone called Accept", err)
		default:
		}
		for i := range 3 {
			st, err := srv.Accept(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Headers().Get("N"); got != strconv.Itoa(i) {
				t.Fatalf("Accept %d returned stream %q: not in open order", i, got)
			}
			if b, err := io.ReadAll(st); err != nil || len(b) != 1 || b[0] != byte(i) {
				t.Fatalf("stream %d read %v, %v", i, b, err)
			}
		}
		for range 3 {
			if err := <-opened; err != nil {
				t.Fatalf("OpenStream: %v", err)
			}
		}
	})
}

func TestConcurrentAcceptsEachGetTheirOwnStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := acceptSessions(t, Config{KeepAliveInterval: -1})
		const n = 8
		got := make(chan *Stream, n)
		for range n {
			go func() {
				st, err := srv.Accept(context.Background())
				if err != nil {
					t.Error(err)
				}
				got <- st
			}()
		}
		synctest.Wait()
		for range n {
			go cli.OpenStream(context.Background(), nil)
		}
		seen := map[uint32]bool{}
		for range n {
			st := <-got
			if st == nil || seen[st.Identifier()] {
				t.Fatalf("Accept returned %v twice, or nil", st)
			}
			seen[st.Identifier()] = true
		}
	})
}

func TestAcceptFailsClearly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := acceptSessions(t, Config{KeepAliveInterval: -1})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := srv.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Accept with nothing to accept: %v, want the context's error", err)
		}
		if _, err := cli.Accept(context.Background()); !errors.Is(err, errNotAccepting) {
			t.Errorf("Accept on a session without AcceptStreams: %v", err)
		}
		c, _ := netPipe()
		defer c.Close()
		if _, err := Server(c, httpstream.NoOpNewStreamHandler, &Config{AcceptStreams: true}); err == nil || !strings.Contains(err.Error(), "AcceptStreams") {
			t.Errorf("Server with both a handler and AcceptStreams: %v, want an error naming AcceptStreams", err)
		}
		done := make(chan error, 1)
		go func() { _, err := srv.Accept(context.Background()); done <- err }()
		synctest.Wait()
		srv.Close()
		if err := <-done; !errors.Is(err, ErrSessionClosed) {
			t.Errorf("Accept blocked when the session closed: %v, want ErrSessionClosed", err)
		}
	})
}

func TestAcceptSkipsAStreamResetWhileItWaited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := acceptSessions(t, Config{KeepAliveInterval: -1})
		ctx, cancel := context.WithCancel(context.Background())
		gaveUp := make(chan error, 1)
		go func() { _, err := cli.OpenStream(ctx, http.Header{"N": {"gave up"}}); gaveUp <- err }()
		synctest.Wait()
		cancel() // the opener resets the stream
		<-gaveUp
		go cli.OpenStream(context.Background(), http.Header{"N": {"kept"}})
		synctest.Wait()
		st, err := srv.Accept(context.Background())
		if err != nil || st.Headers().Get("N") != "kept" {
			t.Fatalf("Accept = %v, %v; want the stream still waiting", st, err)
		}
	})
}

func TestAcceptModeRefusesPastTheBacklog(t *testing.T) {
	s, p := newRawPeer(t, false, nil, &Config{AcceptStreams: true, AcceptBacklog: 2})
	_ = s
	for _, id := range []uint32{1, 3, 5} {
		p.send(openFrame(id, nil))
	}
	if f := p.next(); f.Type != frame.FrameRefuse || f.StreamID != 5 || f.Code != frame.CodeStreamLimit {
		t.Fatalf("got %v, want REFUSE STREAM_LIMIT of stream 5", f)
	}
}

func TestTheListenerServesStreamsAsConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := acceptSessions(t, Config{KeepAliveInterval: -1})
		var ln net.Listener = srv.Listener()
		if ln.Addr() == nil {
			t.Error("the Listener has no address")
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		st, err := cli.OpenStream(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() { st.Write([]byte("echo")); st.Close() }()
		if b, err := io.ReadAll(st); err != nil || string(b) != "echo" {
			t.Fatalf("read %q, %v", b, err)
		}
		ln.Close()
		synctest.Wait()
		if srv.Err() == nil {
			t.Error("closing the Listener left the session open")
		}
	})
}
