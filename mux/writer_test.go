package mux

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
)

// gatedConn lets the test hold every Write on the connection until it hands
// out a permit, and tells it when a Write is waiting, so that a test can
// stop the writer with a batch in flight.
type gatedConn struct {
	net.Conn
	mu      sync.Mutex
	open    bool          // no permits needed
	permits chan struct{} // one per Write while closed
	waiting chan int      // the size of each Write that waits for a permit
}

func newGatedConn(c net.Conn) *gatedConn {
	return &gatedConn{Conn: c, open: true, permits: make(chan struct{}, 16), waiting: make(chan int, 16)}
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		g.waiting <- len(p)
		<-g.permits
	}
	return g.Conn.Write(p)
}

func (g *gatedConn) setOpen(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
	if open {
		for range cap(g.permits) {
			select {
			case g.permits <- struct{}{}:
			default:
			}
		}
	}
}

// writeBlockedWithBatchInFlight opens a stream on a gated client session,
// and returns once a Write of 4 MiB has its first batch in flight (held by
// the gate) and the rest pending. The Write's result arrives on the channel.
func writeBlockedWithBatchInFlight(t *testing.T) (*Session, *Stream, *gatedConn, chan writeResult) {
	t.Helper()
	a, b := tcpPair(t)
	srv, err := Server(b, func(st httpstream.Stream, _ <-chan struct{}) error {
		go io.Copy(io.Discard, st)
		return nil
	}, &Config{InitialStreamWindow: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	gate := newGatedConn(a)
	cli, err := Client(gate, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.setOpen(true); cli.Close(); srv.Close() })
	st, err := cli.OpenStream(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The server raises the window from its floor once data arrives.
	if _, err := st.Write(make([]byte, startAfter)); err != nil {
		t.Fatal(err)
	}
	waitSendWindow(t, st, 4<<20)
	gate.setOpen(false)
	go cli.Ping(t.Context()) // the writer goroutine takes the token, and waits at the gate
	waitGate(t, gate)
	result := make(chan writeResult, 1)
	go func() {
		n, err := st.Write(make([]byte, 4<<20))
		result <- writeResult{n, err}
	}()
	// The Write finds the token taken and queues its data; once the PING
	// goes, the writer goroutine takes the Write's first batch and waits.
	waitStreamQueued(t, cli, st)
	gate.permits <- struct{}{}
	if n := waitGate(t, gate); n < maxBatchBytes {
		t.Fatalf("the write at the gate is %d octets, want a whole batch of DATA", n)
	}
	return cli, st, gate, result
}

type writeResult struct {
	n   int
	err error
}

func waitGate(t *testing.T, g *gatedConn) int {
	t.Helper()
	select {
	case n := <-g.waiting:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no write reached the gate within 10s")
		return 0
	}
}

// waitSendWindow waits until st may send at least n octets. Polling, with
// a bound, as waitStreamQueued.
func waitSendWindow(t *testing.T, st *Stream, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st.mu.Lock()
		w := st.sendWindow
		st.mu.Unlock()
		if w >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send window is %d octets after 10s, want at least %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitStreamQueued waits until st's Write has handed its data to the
// writer. Polling, with a bound: the hand-over has no signal of its own.
func waitStreamQueued(t *testing.T, s *Session, st *Stream) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.w.mu.Lock()
		queued := st.inReady
		s.w.mu.Unlock()
		if queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the Write did not queue its data within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func recvWrite(t *testing.T, ch chan writeResult) writeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the Write did not return within 10s")
		return writeResult{}
	}
}

func TestAWriteWithABatchInFlightReturnsWhenTheStreamIsReset(t *testing.T) {
	_, st, gate, result := writeBlockedWithBatchInFlight(t)
	st.Reset()
	gate.setOpen(true) // the batch in flight completes
	r := recvWrite(t, result)
	if !errors.Is(r.err, ErrStreamReset) || r.n != maxBatchBytes {
		t.Fatalf("Write = (%d, %v), want (%d, ErrStreamReset): the batch that went out, then the reset", r.n, r.err, maxBatchBytes)
	}
}

func TestAWriteWithABatchInFlightReturnsWhenTheSessionCloses(t *testing.T) {
	cli, _, gate, result := writeBlockedWithBatchInFlight(t)
	closed := make(chan struct{})
	go func() { cli.Close(); close(closed) }()
	<-cli.CloseChan()
	gate.setOpen(true)
	r := recvWrite(t, result)
	if !errors.Is(r.err, ErrSessionClosed) {
		t.Fatalf("Write = (%d, %v), want ErrSessionClosed", r.n, r.err)
	}
	<-closed
}

func TestAWriteDeadlineStopsTheRestOfALargeWrite(t *testing.T) {
	_, st, gate, result := writeBlockedWithBatchInFlight(t)
	st.SetWriteDeadline(time.Now()) // passes while the first batch is in flight
	gate.setOpen(true)
	r := recvWrite(t, result)
	if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n != maxBatchBytes {
		t.Fatalf("Write = (%d, %v), want (%d, os.ErrDeadlineExceeded): no more taken past the deadline", r.n, r.err, maxBatchBytes)
	}
}
