package websocket

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/httpstream-go/httpstream/internal/safetext"
)

// Sizes of the Conn's buffers, fixed so that nothing a peer sends makes
// the Conn allocate: data payloads go straight into the caller's slice,
// and control payloads (125 octets at most) into a fixed array.
const (
	// ReadBufferSize is the buffer in front of the connection. It holds
	// the handshake's leftovers and batches small frames; a payload read
	// into a slice at least this large skips it (bufio reads straight
	// into the slice), so a bulk payload is copied once.
	ReadBufferSize = 4 << 10
	// maxWriteChunk bounds the client's buffer of masked octets: a larger
	// message is masked and written in pieces of this size, one frame
	// all the same.
	maxWriteChunk = 64 << 10
	// closeTimeout bounds how long Close tries to send the close frame to
	// a peer that does not read.
	closeTimeout = time.Second
	// maxCloseReason is what a close frame's body leaves for the reason
	// after the 2-octet code (RFC 6455 5.5: 125 octets in all).
	maxCloseReason = MaxControlPayload - 2
)

// CloseError is what Read returns once the peer closed the connection with
// a status other than a normal closure (1000), going away (1001) or no
// status (1005), which end the stream with io.EOF.
type CloseError struct {
	Code   uint16 // the peer's status code (RFC 6455 7.4)
	Reason string // the peer's reason, made safe to print
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket: the peer closed the connection with status %d", e.Code)
	}
	return fmt.Sprintf("websocket: the peer closed the connection with status %d: %s", e.Code, e.Reason)
}

// errClosing is what a write returns after this side sent its close frame
// (RFC 6455 5.5.1: "The application MUST NOT send any more data frames
// after sending a Close frame").
var errClosing = fmt.Errorf("websocket: the close frame was sent, no data may follow: %w", net.ErrClosed)

// Conn is a net.Conn over a WebSocket connection whose opening handshake
// is done. Write sends each call's bytes as one binary message; Read
// returns the payloads of the binary messages received as one stream of
// bytes, so how the peer cuts its data into messages and fragments does
// not matter (RFC 6455 5.4). Pings are answered with pongs; a close frame
// is answered with one and ends the stream. A frame that breaks RFC 6455,
// a text frame, or one with reserved bits or opcodes fails the connection:
// the peer gets a close frame with status 1002, and Read returns a
// *ProtocolError.
//
// Read and Write may run at the same time, on different goroutines, as a
// mux session runs them. Deadlines are the underlying connection's.
type Conn struct {
	conn   net.Conn      // writes, deadlines, addresses, Close
	br     *bufio.Reader // reads: the handshake's leftovers, then conn
	client bool          // masks what it sends, and wants unmasked frames

	readMu    sync.Mutex // guards the read state up to the blank line; one Read at a time
	remaining uint64     // payload octets of the current data frame still to read
	key       [4]byte    // the current data frame's masking key
	masked    bool       // the current data frame is masked
	pos       int        // the next payload octet's index, for unmasking
	inMessage bool       // a fragmented message has begun and not ended (RFC 6455 5.4)
	readErr   error      // sticky: io.EOF after a close, or why reading failed
	ctrl      [MaxControlPayload]byte

	// The write token: whoever holds it (busy) writes to conn. A data
	// Write waits for it; the reader, answering a ping or a close, only
	// tries, and leaves its answer pending if the token is taken: it must
	// never wait on a peer that does not read, or two peers writing at
	// once, each with a full socket, would stop reading for good. The
	// holder writes the pending answers before it lets go.
	mu           sync.Mutex // guards busy, the pending answers and closeSent; lock order: readMu, then mu
	idle         sync.Cond  // signalled when busy turns false
	busy         bool
	pongPending  bool
	pongLen      int
	pong         [MaxControlPayload]byte // the last ping's payload (RFC 6455 5.5.3: answering the last one is enough)
	closePending bool
	closeCode    uint16
	closeReason  string
	closeSent    bool

	// Owned by the token holder.
	writeErr error // sticky: a frame was cut short, so nothing more can follow
	buf      []byte
	iov      net.Buffers
	iovLeft  net.Buffers // what sendPlain's writes consume
	one      [1][]byte   // Write's slice, as a batch of one, without an allocation
	out      [MaxHeaderSize + MaxControlPayload]byte
	rng      *mrand.ChaCha8 // masking keys (client only)

	closeOnce sync.Once
	closeErr  error
}

// NewConn returns the Conn for conn, whose handshake is done, as a client
// (which masks every frame it sends, RFC 6455 5.3) or a server. r is what
// to read from: conn itself, or a reader holding octets that arrived with
// the handshake and then conn. The Conn owns conn from now on.
func NewConn(conn net.Conn, r io.Reader, client bool) *Conn {
	if r == nil {
		r = conn
	}
	c := &Conn{conn: conn, br: bufio.NewReaderSize(r, ReadBufferSize), client: client}
	c.idle.L = &c.mu
	if client {
		// RFC 6455 5.3: the masking key "MUST be derived from a strong
		// source of entropy", fresh for every frame. ChaCha8, seeded from
		// crypto/rand, is a cryptographically strong generator that costs
		// a few nanoseconds a key and allocates nothing.
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails (Go 1.24)
		c.rng = mrand.NewChaCha8(seed)
	}
	return c
}

// Read reads payload octets of the binary messages the peer sends. It
// handles the control frames on the way: a ping queues a pong, a pong is
// dropped, a close queues the answering close and ends the stream (io.EOF
// for a normal closure, else a *CloseError).
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.readErr != nil {
			return 0, c.readErr
		}
		if c.remaining > 0 {
			return c.readPayload(p)
		}
		if err := c.nextFrame(); err != nil {
			return 0, err
		}
	}
}

// readPayload reads what p and the current frame allow, unmasking it in
// place.
func (c *Conn) readPayload(p []byte) (int, error) {
	if uint64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.br.Read(p)
	if c.masked {
		c.pos = Mask(p[:n], c.key, c.pos)
	}
	c.remaining -= uint64(n)
	if err != nil {
		err = c.readFailed(err, c.remaining > 0)
	}
	return n, err
}

// nextFrame reads the next frame header and acts on it: a data frame
// becomes the current one; a control frame is read whole and handled. It
// consumes nothing until the whole header (and a control frame's payload)
// has arrived, so a read deadline in the middle loses nothing.
func (c *Conn) nextFrame() error {
	b, err := c.br.Peek(2)
	if err != nil {
		return c.readFailed(err, len(b) > 0)
	}
	h, n, err := ParseHeader(b)
	if err == ErrShortHeader {
		if b, err = c.br.Peek(n); err != nil {
			return c.readFailed(err, true)
		}
		h, n, err = ParseHeader(b)
	}
	if err != nil {
		return c.fail(err.(*ProtocolError))
	}
	if err := Check(h, c.client); err != nil {
		return c.fail(err.(*ProtocolError))
	}
	if h.Opcode.IsControl() {
		// At most 14+125 octets: they fit in the buffer, so a control
		// frame is taken whole or not at all. RFC 6455 5.4: control
		// frames "MAY be injected in the middle of a fragmented message".
		total := n + int(h.Length)
		b, err := c.br.Peek(total)
		if err != nil {
			return c.readFailed(err, true)
		}
		payload := c.ctrl[:h.Length]
		MaskCopy(payload, b[n:], h.Key, 0) // a server's frames have a zero key: a copy
		_, _ = c.br.Discard(total)         // cannot fail: Peek returned that many
		return c.control(h.Opcode, payload)
	}
	// RFC 6455 5.4: a fragmented message is a first frame with FIN clear,
	// continuation frames, and a last one with FIN set; "the fragments of
	// one message MUST NOT be interleaved between the fragments of
	// another message".
	if h.Opcode == OpContinuation && !c.inMessage {
		return c.fail(protocolErrorf("a CONTINUATION frame with no message to continue (RFC 6455 5.4)"))
	}
	if h.Opcode == OpBinary && c.inMessage {
		return c.fail(protocolErrorf("a BINARY frame began a new message before the fragmented one ended (RFC 6455 5.4)"))
	}
	_, _ = c.br.Discard(n)
	c.inMessage = !h.Fin
	c.remaining, c.key, c.masked, c.pos = h.Length, h.Key, h.Masked, 0
	return nil
}

// control handles a control frame's payload (RFC 6455 5.5).
func (c *Conn) control(op Opcode, payload []byte) error {
	switch op {
	case OpPing:
		// RFC 6455 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST
		// send a Pong frame in response", with the same payload.
		c.mu.Lock()
		c.pongPending = true
		c.pongLen = copy(c.pong[:], payload)
		c.mu.Unlock()
		c.tryFlush()
		return nil
	case OpPong:
		return nil // RFC 6455 5.5.3: an unsolicited pong needs no answer
	}
	code, reason, err := parseClose(payload)
	if err != nil {
		return c.fail(err)
	}
	// RFC 6455 5.5.1: "If an endpoint receives a Close frame and did not
	// previously send a Close frame, the endpoint MUST send a Close frame
	// in response", typically echoing the status code.
	echo := code
	if code == CloseNoStatus {
		echo = 0 // an empty body, as received
	}
	c.queueClose(echo, "")
	switch code {
	case CloseNormal, CloseGoingAway, CloseNoStatus:
		c.readErr = io.EOF
	default:
		c.readErr = &CloseError{Code: code, Reason: safetext.Sanitize(reason, maxCloseReason+16)}
	}
	return c.readErr
}

// parseClose decodes a close frame's body (RFC 6455 5.5.1): nothing (no
// status, reported as 1005), or a status code and a UTF-8 reason.
func parseClose(payload []byte) (uint16, string, *ProtocolError) {
	if len(payload) == 0 {
		return CloseNoStatus, "", nil
	}
	code := binary.BigEndian.Uint16(payload)
	if !validCloseCode(code) {
		return code, "", protocolErrorf("close status %d may not be sent (RFC 6455 7.4)", code)
	}
	reason := payload[2:]
	if !utf8.Valid(reason) {
		// RFC 6455 5.5.1: the reason is UTF-8; 8.1: invalid UTF-8 fails
		// the connection, with 1007 (7.4.1).
		return code, "", &ProtocolError{Code: CloseInvalidData, Reason: "a close reason that is not UTF-8 (RFC 6455 5.5.1)"}
	}
	return code, string(reason), nil
}

// validCloseCode reports whether a peer may send code (RFC 6455 7.4.1,
// 7.4.2, and IANA's registry, which added 1012 to 1014): 1004, 1005, 1006
// and 1015 are reserved, the rest of 1000-2999 is for the RFC and
// extensions, 3000-4999 for libraries and applications.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fail fails the connection (RFC 6455 7.1.7): the peer is sent a close
// frame with e's code, and every later Read returns e.
func (c *Conn) fail(e *ProtocolError) error {
	c.readErr = e
	c.queueClose(e.Code, e.Reason)
	return e
}

// readFailed turns an error from the connection into Read's: a timeout
// passes through and leaves the state as it was, so a Read after a new
// deadline carries on; the end of the connection is io.EOF between frames
// and io.ErrUnexpectedEOF inside one (RFC 6455 7.1.5: closed without a
// close frame, status 1006); anything else sticks.
func (c *Conn) readFailed(err error, inFrame bool) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if err == io.EOF && (inFrame || c.inMessage) {
		err = io.ErrUnexpectedEOF
	}
	c.readErr = err
	return err
}

// queueClose records the close frame to send, unless one is already sent
// or pending, and sends it if the connection is free.
func (c *Conn) queueClose(code uint16, reason string) {
	c.mu.Lock()
	if !c.closeSent && !c.closePending {
		c.closePending = true
		c.closeCode = code
		c.closeReason = reason
	}
	c.mu.Unlock()
	c.tryFlush()
}

// tryFlush writes the pending answers if nobody holds the write token;
// otherwise the holder writes them when it lets go.
func (c *Conn) tryFlush() {
	c.mu.Lock()
	if c.busy {
		c.mu.Unlock()
		return
	}
	c.busy = true
	c.mu.Unlock()
	c.release()
}

// acquire waits for the write token.
func (c *Conn) acquire() {
	c.mu.Lock()
	for c.busy {
		c.idle.Wait()
	}
	c.busy = true
	c.mu.Unlock()
}

// release writes the pending answers, then gives the token back.
func (c *Conn) release() {
	for {
		var body [MaxControlPayload]byte
		var op Opcode
		var n int
		c.mu.Lock()
		switch {
		case c.closeSent || c.writeErr != nil:
			// RFC 6455 5.5.1: nothing follows a close frame.
			c.pongPending, c.closePending = false, false
		case c.pongPending:
			op, n = OpPong, copy(body[:], c.pong[:c.pongLen])
			c.pongPending = false
		case c.closePending:
			op, n = OpClose, appendClose(body[:0], c.closeCode, c.closeReason)
			c.closePending = false
			c.closeSent = true
		}
		if op != OpPong && op != OpClose {
			c.busy = false
			c.idle.Signal()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.writeControl(op, body[:n])
	}
}

// appendClose encodes a close frame's body into b (of room 125) and
// returns its length: nothing for code 0, else the code and as much of
// reason as fits, cut at a character boundary.
func appendClose(b []byte, code uint16, reason string) int {
	if code == 0 {
		return 0
	}
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, reason...)
	return len(b)
}

// writeControl writes a control frame; the caller holds the token.
func (c *Conn) writeControl(op Opcode, payload []byte) {
	if c.writeErr != nil {
		return
	}
	h := Header{Fin: true, Opcode: op, Length: uint64(len(payload)), Masked: c.client}
	if c.client {
		binary.LittleEndian.PutUint32(h.Key[:], uint32(c.rng.Uint64()))
	}
	b := AppendHeader(c.out[:0], h)
	start := len(b)
	b = b[:start+len(payload)]
	MaskCopy(b[start:], payload, h.Key, 0)
	if _, err := c.conn.Write(b); err != nil {
		c.writeErr = err
	}
}

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.acquire()
	c.one[0] = p
	n, err := c.send(c.one[:])
	c.one[0] = nil // do not keep the caller's slice
	c.release()
	return int(n), err
}

// WriteBuffers sends the buffers of v as one binary message, and empties
// v. A mux session writes its batches of frames through it, so that a
// batch makes one frame and, on a server's TCP connection, one writev.
func (c *Conn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.acquire()
	n, err := c.send(*v)
	c.release()
	*v = nil
	return n, err
}

// send writes bufs as one binary frame; the caller holds the token.
func (c *Conn) send(bufs [][]byte) (int64, error) {
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	c.mu.Lock()
	closed := c.closeSent
	c.mu.Unlock()
	if closed {
		return 0, errClosing
	}
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	var err error
	if c.client {
		err = c.sendMasked(bufs, total)
	} else {
		err = c.sendPlain(bufs, total)
	}
	if err != nil {
		// Part of a frame may be out: nothing can follow it.
		c.writeErr = err
		return 0, err
	}
	return total, nil
}

// sendMasked writes bufs as one masked frame (RFC 6455 5.3), masking into
// a buffer of its own (the caller's octets are not touched) in pieces of
// at most maxWriteChunk, each written as it is full.
func (c *Conn) sendMasked(bufs [][]byte, total int64) error {
	h := Header{Fin: true, Opcode: OpBinary, Masked: true, Length: uint64(total)}
	binary.LittleEndian.PutUint32(h.Key[:], uint32(c.rng.Uint64()))
	if want := MaxHeaderSize + int(min(total, maxWriteChunk)); cap(c.buf) < want {
		c.buf = make([]byte, 0, want)
	}
	buf := AppendHeader(c.buf[:0], h)
	pos := 0
	for _, b := range bufs {
		for len(b) > 0 {
			if len(buf) == cap(buf) {
				if _, err := c.conn.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
			start := len(buf)
			take := min(cap(buf)-start, len(b))
			buf = buf[:start+take]
			pos = MaskCopy(buf[start:], b[:take], h.Key, pos)
			b = b[take:]
		}
	}
	_, err := c.conn.Write(buf)
	return err
}

// buffersWriter is a connection that writes several buffers in one call
// itself (package upgrade's wrapper of a connection with read-ahead).
type buffersWriter interface {
	WriteBuffers(v *net.Buffers) (int64, error)
}

// sendPlain writes the header and bufs as they are, in one writev where
// the connection has it, else joined into one write (one TLS record
// rather than one per buffer).
func (c *Conn) sendPlain(bufs [][]byte, total int64) error {
	hdr := AppendHeader(c.out[:0], Header{Fin: true, Opcode: OpBinary, Length: uint64(total)})
	c.iov = append(c.iov[:0], hdr)
	c.iov = append(c.iov, bufs...)
	// The writes consume the slice they are given: a field, not a local,
	// so that taking its address allocates nothing.
	c.iovLeft = c.iov
	var err error
	switch conn := c.conn.(type) {
	case buffersWriter:
		_, err = conn.WriteBuffers(&c.iovLeft)
	case syscall.Conn:
		_, err = c.iovLeft.WriteTo(c.conn)
	default:
		c.buf = c.buf[:0]
		for _, b := range c.iov {
			c.buf = append(c.buf, b...)
		}
		_, err = c.conn.Write(c.buf)
		if cap(c.buf) > 2*maxWriteChunk {
			c.buf = nil // do not keep what one large batch grew
		}
	}
	clear(c.iov) // do not keep the caller's slices
	c.iovLeft = nil
	return err
}

// CloseWrite sends the close frame (status 1000) and nothing more: the
// WebSocket form of a half-close. The peer answers with its own close
// frame, after which Read returns io.EOF; a mux session ending on purpose
// waits for that before it closes the connection, so that no data in
// flight is lost to a TCP reset.
func (c *Conn) CloseWrite() error {
	c.acquire()
	c.mu.Lock()
	code, reason := uint16(CloseNormal), ""
	if c.closePending {
		code, reason = c.closeCode, c.closeReason
	}
	send := !c.closeSent && c.writeErr == nil
	c.closeSent, c.closePending, c.pongPending = true, false, false
	c.mu.Unlock()
	if send {
		var body [MaxControlPayload]byte
		c.writeControl(OpClose, body[:appendClose(body[:0], code, reason)])
	}
	err := c.writeErr
	c.release()
	return err
}

// Close sends the close frame, if it was not sent yet, within a second,
// and closes the connection. A close already queued (the answer to the
// peer's, or a protocol error's 1002) goes out instead of 1000.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// The deadline also ends a write stuck on a peer that does not
		// read, so the token comes free.
		_ = c.conn.SetWriteDeadline(time.Now().Add(closeTimeout))
		_ = c.CloseWrite()
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

// LocalAddr returns the connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the connection's read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the connection's read deadline. A Read it cuts
// short loses nothing: the next Read carries on where it stopped.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline. A write it cuts
// short may leave part of a frame on the wire, so the Conn writes no more.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// SyscallConn gives access to the socket underneath, for socket options
// (a mux session sets TCP_NOTSENT_LOWAT through it, as on a bare TCP
// connection). Reading or writing the socket directly would break the
// framing. It fails with errors.ErrUnsupported over a connection that has
// no socket of its own, such as TLS.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
