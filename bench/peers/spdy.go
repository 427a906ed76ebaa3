package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// SPDY is the Kubernetes SPDY stack (k8s.io/streaming's spdy package over
// moby/spdystream), as kubectl exec and port-forward use it, over one
// loopback TCP connection: spdy.NewClientConnection and
// spdy.NewServerConnection, streams made with CreateStream and a header
// block, as port-forward makes them.
type SPDY struct{}

// Name returns "spdy".
func (SPDY) Name() string { return "spdy" }

// Notes gives the defaults that shape the numbers and what the stack cannot
// do.
func (SPDY) Notes() string {
	return "k8s.io/streaming over moby/spdystream: no flow control (an unread stream stalls " +
		"the connection: hol FAILs); a DATA frame per Write; one write lock for all streams; " +
		"5 frame workers, 50-frame queues; no keepalive; no stream limit; " +
		"per-stream deadlines emulated by reset"
}

// acceptBacklog bounds the streams the server has accepted and the scenario
// has not yet taken; more are refused (reset), as scenario.Mux does.
const acceptBacklog = 1024

// NewPair starts a SPDY client and server connection over a loopback
// connection.
func (t SPDY) NewPair() (scenario.Pair, error) { return t.NewPairOn(scenario.Loopback{}) }

// NewPairOn starts a SPDY client and server connection over a connection
// across n.
func (SPDY) NewPairOn(n scenario.Network) (scenario.Pair, error) {
	rawA, rawB, err := scenario.ConnectOn(n)
	if err != nil {
		return nil, err
	}
	a, b := &closeOnceConn{Conn: rawA}, &closeOnceConn{Conn: rawB}
	p := &spdyPair{
		rawClient: a,
		rawServer: b,
		accepted:  make(chan httpstream.Stream, acceptBacklog),
		closed:    make(chan struct{}),
	}
	p.server, err = spdy.NewServerConnection(b, p.onStream)
	if err != nil {
		a.Close()
		return nil, err // NewServerConnection closed b
	}
	p.client, err = spdy.NewClientConnection(a)
	if err != nil {
		p.server.Close()
		b.Close()
		return nil, err // NewClientConnection closed a
	}
	return p, nil
}

// errBacklogFull refuses a stream when the scenario does not accept fast
// enough; no scenario opens that many streams without accepting them.
var errBacklogFull = errors.New("benchmark accept backlog full")

type spdyPair struct {
	rawClient, rawServer net.Conn
	client, server       httpstream.Connection
	accepted             chan httpstream.Stream
	nextID               atomic.Uint64 // requestID header of the next stream
	closeOnce            sync.Once
	closed               chan struct{} // closed by Close
}

// onStream is the server's NewStreamHandler: it runs on a spdystream frame
// worker before the reply is sent, so it must not block.
func (p *spdyPair) onStream(s httpstream.Stream, _ <-chan struct{}) error {
	select {
	case p.accepted <- s:
		return nil
	default:
		return errBacklogFull
	}
}

// Open creates a stream with the header block port-forward sends, and waits
// for the server's reply (CreateStream does).
func (p *spdyPair) Open() (scenario.Stream, error) {
	h := http.Header{}
	h.Set("streamType", "data")
	h.Set("port", "8080")
	h.Set("requestID", strconv.FormatUint(p.nextID.Add(1), 10))
	s, err := p.client.CreateStream(h)
	if err != nil {
		return nil, err
	}
	return newSPDYStream(s, p.client, p.closed), nil
}

func (p *spdyPair) Accept() (scenario.Stream, error) {
	select {
	case s := <-p.accepted:
		return newSPDYStream(s, p.server, p.closed), nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}

// Close tears both connections down without waiting on the peer.
//
// Order matters. Without flow control a writer can be blocked in a write to
// a full socket while holding spdystream's connection-wide write lock (the
// hol scenario does exactly that), and the Kubernetes Close first writes a
// RST_STREAM for every stream, under that lock: closing it first would hang.
// So the sockets are closed first, which fails the blocked write and makes
// every later frame write fail at once; then the Kubernetes Close resets
// every registered stream locally, which unblocks readers and any frame
// worker stuck handing data to a stream nobody reads, so that spdystream's
// Serve goroutine and its workers end, and its shutdown goroutine with
// them (see closeOnceConn).
func (p *spdyPair) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.rawClient.Close()
		p.rawServer.Close()
		p.client.Close()
		p.server.Close()
	})
	return nil
}

// closeOnceConn closes its connection once and returns nil from later
// calls. spdystream's shutdown goroutine closes the connection itself after
// its streams are gone; had that Close failed (the pair closed the socket
// first), it would linger a second offering the error to a Wait that
// nobody calls, and the next run would count it.
type closeOnceConn struct {
	net.Conn
	once sync.Once
}

func (c *closeOnceConn) Close() error {
	var err error
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

// spdyStream adapts an httpstream.Stream to scenario.Stream: it adds
// per-stream deadlines, which spdystream lacks, reports reads after the
// pair closed as net.ErrClosed rather than io.EOF, and removes the stream
// from the Kubernetes connection's registry once both directions are done,
// as port-forward does with RemoveStreams (else the registry keeps every
// stream ever opened until the connection closes).
type spdyStream struct {
	httpstream.Stream
	conn       httpstream.Connection
	pairClosed <-chan struct{}

	expired atomic.Bool // the deadline passed: the stream was reset

	mu           sync.Mutex  // guards the fields below
	timer        *time.Timer // fires expire at the deadline; nil if none
	deadlineGen  uint64      // bumped by SetDeadline: a stale timer does nothing
	wroteFIN     bool        // Close was called
	readFIN      bool        // Read saw the peer's FIN
	unregistered bool        // RemoveStreams was called
}

func newSPDYStream(s httpstream.Stream, c httpstream.Connection, pairClosed <-chan struct{}) *spdyStream {
	return &spdyStream{Stream: s, conn: c, pairClosed: pairClosed}
}

func (s *spdyStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if err == io.EOF {
		select {
		case <-s.pairClosed:
			// A reset by the pair's Close reads as io.EOF in spdystream.
			return n, net.ErrClosed
		default:
		}
		if s.expired.Load() {
			return n, os.ErrDeadlineExceeded
		}
		s.mu.Lock()
		s.readFIN = true
		s.unregisterIfDoneLocked()
		s.mu.Unlock()
	}
	return n, err
}

func (s *spdyStream) Write(b []byte) (int, error) {
	// spdystream still sends DATA frames on a reset stream (the peer drops
	// them), so an expired deadline is checked here.
	if s.expired.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	return s.Stream.Write(b)
}

// Close sends a DATA frame with FIN: the peer reads what was written, then
// io.EOF; this side may still read.
func (s *spdyStream) Close() error {
	err := s.Stream.Close()
	s.mu.Lock()
	s.wroteFIN = true
	s.unregisterIfDoneLocked()
	s.mu.Unlock()
	return err
}

func (s *spdyStream) unregisterIfDoneLocked() {
	if s.wroteFIN && s.readFIN && !s.unregistered {
		s.unregistered = true
		s.conn.RemoveStreams(s.Stream)
	}
}

// SetDeadline emulates a per-stream deadline: when it passes, the stream is
// reset (RST_STREAM), which wakes a blocked Read, and later reads and writes
// fail with os.ErrDeadlineExceeded. Unlike a net.Conn deadline this is
// final (the stream cannot be used again after it fires), and a Write
// already blocked on the shared connection is not woken: spdystream has
// nothing per stream to interrupt there. No scenario sets deadlines; this
// is here so the adapter honours the interface.
func (s *spdyStream) SetDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expired.Load() {
		return os.ErrDeadlineExceeded
	}
	s.deadlineGen++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	gen := s.deadlineGen
	s.timer = time.AfterFunc(time.Until(t), func() { s.expire(gen) })
	return nil
}

func (s *spdyStream) expire(gen uint64) {
	s.mu.Lock()
	if gen != s.deadlineGen {
		s.mu.Unlock()
		return
	}
	s.timer = nil
	s.expired.Store(true)
	s.mu.Unlock()
	s.Stream.Reset()
}
