package mux

// Regression tests for the send side and the ends of a stream: what Write,
// Close, the handler's answer and Session.Close promise when the connection
// is slow, stuck or failing, or the peer is quick to reuse a stream's place.

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

// gatedSessions starts a server session over TCP and a client session whose
// writes pass a gate the test can close, and opens one stream.
func gatedSessions(t *testing.T) (cli *Session, gate *gatedConn, st, peer *Stream) {
	t.Helper()
	a, b := tcpPair(t)
	accepted := make(chan *Stream, 1)
	srv, err := Server(b, func(s httpstream.Stream, _ <-chan struct{}) error {
		accepted <- s.(*Stream)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate = newGatedConn(a)
	cli, err = Client(gate, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.setOpen(true); cli.Close(); srv.Close() })
	st, err = cli.OpenStream(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case peer = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's handler did not get the stream within 10s")
	}
	return cli, gate, st, peer
}

func TestAWriteDeadlineEndsAWriteWhoseFramesTheConnectionHolds(t *testing.T) {
	_, gate, st, peer := gatedSessions(t)
	gate.setOpen(false) // the connection stops taking writes: a peer that does not read
	st.SetWriteDeadline(time.Now().Add(time.Hour))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	result := make(chan writeResult, 1)
	go func() {
		n, err := st.Write(data)
		result <- writeResult{n, err}
	}()
	// Wait until the Write's first frame is inside conn.Write; let smaller
	// writes (a keepalive probe) through.
	for waitGate(t, gate) < maxStreamWindowFloor {
		gate.permits <- struct{}{}
	}
	st.SetWriteDeadline(time.Now())
	r := recvWrite(t, result) // the gate stays closed: the Write must end by its deadline
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = (%d, %v), want os.ErrDeadlineExceeded", r.n, r.err)
	}
	// What the Write reported written goes out once the connection moves.
	gate.setOpen(true)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, r.n)
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("the peer read: %v", err)
	}
	for i := range got {
		if got[i] != data[i] {
			t.Fatalf("octet %d is %d, want %d: the Write's slice was not what went out", i, got[i], data[i])
		}
	}
}

func TestCloseReturnsWhileTheConnectionHoldsItsWrites(t *testing.T) {
	_, gate, st, peer := gatedSessions(t)
	gate.setOpen(false)
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close still blocked after 10s: it waits for the connection")
	}
	gate.setOpen(true)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(peer); err != nil || len(b) != 0 || peer.EndReason() != nil {
		t.Fatalf("the peer read %q, %v (EndReason %v); want io.EOF from the half-close", b, err, peer.EndReason())
	}
}

// clientOfServer starts a client session on a and a server session on b that
// runs handler with serverCfg, closes both when the test ends, and returns
// the client.
func clientOfServer(t *testing.T, a, b net.Conn, handler httpstream.NewStreamHandler, serverCfg *Config) *Session {
	t.Helper()
	srv, err := Server(b, handler, serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Client(a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli
}

// failingConn fails every Write once fail is set.
type failingConn struct {
	net.Conn
	fail atomic.Bool
}

func (c *failingConn) Write(p []byte) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("injected write failure")
	}
	return c.Conn.Write(p)
}

func TestAWriteThatTheConnectionFailedReportsNoOctetsWritten(t *testing.T) {
	for _, deadline := range []bool{false, true} {
		name := "written by the Write's goroutine"
		if deadline {
			name = "copied to the writer (a write deadline is set)"
		}
		t.Run(name, func(t *testing.T) {
			a, b := tcpPair(t)
			conn := &failingConn{Conn: a}
			cli := clientOfServer(t, conn, b, func(httpstream.Stream, <-chan struct{}) error { return nil }, nil)
			st, err := cli.OpenStream(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if deadline {
				st.SetWriteDeadline(time.Now().Add(time.Hour))
			}
			conn.fail.Store(true)
			n, err := st.Write([]byte("hello"))
			if n != 0 || !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("Write = (%d, %v), want (0, an error matching ErrSessionClosed): nothing reached the connection", n, err)
			}
		})
	}
}

func TestSessionCloseSendsTheEndOfAStreamClosedBeforeIt(t *testing.T) {
	cli, gate, st, peer := gatedSessions(t)
	if _, err := st.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	gate.setOpen(false)
	go cli.Ping(context.Background()) // the writer goroutine takes the token and waits at the gate
	waitGate(t, gate)
	st.Close() // END_STREAM waits behind the busy writer
	closed := make(chan struct{})
	go func() { cli.Close(); close(closed) }()
	deadline := time.Now().Add(10 * time.Second)
	for { // bounded: sealing has no signal of its own
		cli.w.mu.Lock()
		sealed := cli.w.sealed
		cli.w.mu.Unlock()
		if sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not seal the writer within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	gate.setOpen(true)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s")
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "data" {
		t.Fatalf("the peer read %q, %v; want the data, then io.EOF", got, err)
	}
	if err := peer.EndReason(); err != nil {
		t.Fatalf("the peer's stream ended with %v, want its END_STREAM (nil)", err)
	}
}

// A stream both sides closed frees its place in the peer's
// MaxConcurrentStreams before the opener can see it closed, so the next open
// is never refused for it.
func TestAStreamClosedByBothSidesFreesItsPlaceBeforeTheNextOpen(t *testing.T) {
	a, b := tcpPair(t)
	cli := clientOfServer(t, a, b, func(s httpstream.Stream, _ <-chan struct{}) error {
		go func() { io.Copy(s, s); s.Close() }()
		return nil
	}, &Config{MaxConcurrentStreams: 1})
	for i := range 300 {
		st, err := cli.OpenStream(t.Context(), nil)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		st.Write([]byte("x"))
		st.Close()
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(st); err != nil || string(got) != "x" {
			t.Fatalf("stream %d echoed %q, %v", i, got, err)
		}
	}
}

func TestARefusalReasonIsQuotedInTheError(t *testing.T) {
	a, b := tcpPair(t)
	cli := clientOfServer(t, a, b, func(httpstream.Stream, <-chan struct{}) error {
		return errors.New("no\x1b[2J\r\nfake: all is well")
	}, nil)
	_, err := cli.OpenStream(t.Context(), nil)
	if !errors.Is(err, ErrStreamRefused) {
		t.Fatalf("OpenStream: %v, want a refusal", err)
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\x1b\r\n") || !strings.Contains(msg, `\x1b[2J\r\n`) {
		t.Fatalf("the error %q carries the peer's reason raw, want it quoted", msg)
	}
}

func TestNoAnswerGoesOutForAStreamResetWhileItsHandlerRan(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		name := "the handler accepts"
		if refuse {
			name = "the handler refuses"
		}
		t.Run(name, func(t *testing.T) {
			s, p := newRawPeer(t, false, nil, nil)
			s.handler = func(st httpstream.Stream, _ <-chan struct{}) error {
				if st.Identifier() == 1 {
					io.ReadAll(st) // returns once the peer's RESET has arrived
					if refuse {
						return errors.New("too late")
					}
				}
				return nil
			}
			p.send(openFrame(1, nil))
			p.send(frame.AppendReset(nil, 1, frame.CodeCancel, ""))
			p.send(openFrame(3, nil))
			if f := p.next(); f.StreamID != 3 || f.Type != frame.FrameAccept {
				t.Fatalf("got %v, want ACCEPT of stream 3: nothing is sent on stream 1 after its RESET (SPEC 6.2)", f)
			}
		})
	}
}

func TestASessionThatRejectsABadPrefaceSendsItsOwnFirst(t *testing.T) {
	for range 40 {
		a, b := net.Pipe()
		s, err := Server(a, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		go b.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		// Read only once the session has ended: its preface and SETTINGS
		// must still be waiting to go out, not dropped with the connection.
		err = waitClosed(t, s)
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		fr := frame.NewReader(b, frame.Limits{})
		if err := fr.ReadPreface(); err != nil {
			t.Fatalf("the preface: %v", err)
		}
		if f, err := fr.ReadFrame(); err != nil || f.Type != frame.FrameSettings {
			t.Fatalf("the first frame: %v, %v; want SETTINGS", f, err)
		}
		if !errors.Is(err, frame.ErrBadPreface) {
			t.Fatalf("the session ended with %v, want ErrBadPreface", err)
		}
		b.Close()
		s.Close()
	}
}
