package upgrade

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// bufferedConn is a net.Conn whose first reads come from a bufio.Reader that
// already holds octets read off the connection. Both ends of an upgrade need
// it: the HTTP layer reads ahead, so the peer's first frames (sent in the
// same packet as its request or its 101) may already sit in that buffer, and
// dropping them would cost the session its preface.
//
// Everything but Read (Write, Close, deadlines, addresses) goes to the
// embedded connection. Read is not safe for concurrent use, which suits the
// one reader goroutine a session runs.
type bufferedConn struct {
	net.Conn
	buffered *bufio.Reader // drained first; never asked to read the connection again
	joined   []byte        // WriteBuffers' buffer; the session writes from one goroutine at a time
}

// withBuffered returns conn itself when r holds nothing, so the common case
// costs no extra copy, and a bufferedConn otherwise.
func withBuffered(conn net.Conn, r *bufio.Reader) net.Conn {
	if r == nil || r.Buffered() == 0 {
		return conn
	}
	return &bufferedConn{Conn: conn, buffered: r}
}

// Read serves what the bufio.Reader holds, then reads the connection
// directly. The bufio.Reader is never asked to fill itself again: after a
// hijack it may read through net/http's own reader, which is no longer ours
// to use, and a direct read skips a copy.
func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.buffered.Buffered() > 0 {
		return c.buffered.Read(p)
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection where it can (TCP, TLS), so that a
// closing session can send its end and still read until the peer closes,
// as package mux does through the wrapper.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// WriteBuffers lets a session write a batch of frames in one system call
// (writev) through the wrapper, as it would on the bare connection: package
// mux looks for this method because net.Buffers cannot see through a
// wrapper. Below a connection without writev (TLS), the batch is joined
// first, so it still makes one write, not one per frame.
func (c *bufferedConn) WriteBuffers(v *net.Buffers) (int64, error) {
	if _, ok := c.Conn.(syscall.Conn); ok {
		return v.WriteTo(c.Conn)
	}
	c.joined = c.joined[:0]
	for _, b := range *v {
		c.joined = append(c.joined, b...)
	}
	*v = nil
	n, err := c.Conn.Write(c.joined)
	return int64(n), err
}

// upgradedBody is the Body of a 101 response returned by RoundTrip. It holds
// the upgraded connection until NewConnection takes it, the way net/http
// hands a 101's connection over through the response body; keeping the
// connection with the response (rather than in the RoundTripper) is what
// lets one RoundTripper serve many upgrades, even concurrently.
//
// A 101 response has no HTTP body, so Read reports io.EOF: code that drains
// bodies (logging middleware, for example) must not eat the session's
// octets. Close closes the connection unless NewConnection took it first.
type upgradedBody struct {
	mu     sync.Mutex // guards conn
	conn   net.Conn   // nil once taken by NewConnection or closed
	att    *attempt   // the handshake it answers
	forget func()     // drops the RoundTripper's lookup entry for this body
}

// Read reports io.EOF: the upgraded octets belong to the session, not to a
// reader of the response body.
func (b *upgradedBody) Read([]byte) (int, error) { return 0, io.EOF }

// Close closes the upgraded connection if nobody took it. Closing after
// NewConnection is a no-op, so the usual `defer resp.Body.Close()` is safe.
func (b *upgradedBody) Close() error {
	conn := b.take()
	if conn == nil {
		return nil
	}
	return conn.Close()
}

// take hands the connection to the caller, once; later calls return nil.
func (b *upgradedBody) take() net.Conn {
	b.mu.Lock()
	conn := b.conn
	b.conn = nil
	b.mu.Unlock()
	if conn != nil && b.forget != nil {
		b.forget()
	}
	return conn
}

// closingBody is the Body of any other response. Reads stay bounded by the
// request's context and HandshakeTimeout, and report the cause rather than
// an I/O timeout when one ends; Close closes the connection, since a
// connection that carried a refused upgrade is never reused.
type closingBody struct {
	body   io.ReadCloser
	conn   net.Conn
	guard  *contextGuard
	att    *attempt           // the handshake it answers
	cancel context.CancelFunc // ends the handshake's context
	forget func()             // drops the RoundTripper's lookup entry for this body
	once   sync.Once
}

// Read reads the response body.
func (b *closingBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil && err != io.EOF {
		err = b.guard.explain("reading the response body", err)
	}
	return n, err
}

// Close ends the context watch and closes the connection.
func (b *closingBody) Close() error {
	var err error
	b.once.Do(func() {
		b.guard.stop()
		b.cancel()
		b.forget()
		_ = b.body.Close()
		err = b.conn.Close()
	})
	return err
}
