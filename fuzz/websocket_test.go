package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/httpstream-go/httpstream/internal/websocket"
)

// wsExamples are the frames of RFC 6455 5.7, byte for byte (the last two
// with their payloads), as a server would send them (unmasked) and, where
// the RFC shows it, as a client would (masked).
func wsExamples() (fromServer, fromClient [][]byte) {
	hello := []byte("Hello")
	fromServer = [][]byte{
		{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'},                        // an unmasked text message
		{0x01, 0x03, 'H', 'e', 'l', 0x80, 0x02, 'l', 'o'},            // a fragmented unmasked text message
		{0x89, 0x05, 'H', 'e', 'l', 'l', 'o'},                        // an unmasked ping
		append([]byte{0x82, 0x7e, 0x01, 0x00}, make([]byte, 256)...), // 256 bytes, one unmasked binary frame
		append([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, make([]byte, 65536)...),
	}
	fromClient = [][]byte{
		{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, // a masked text message
		{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, // a masked pong
	}
	// The tunnel's own frames: binary, fragmented around a ping, closes.
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	frame := func(op websocket.Opcode, fin, masked bool, payload []byte) []byte {
		h := websocket.Header{Fin: fin, Opcode: op, Masked: masked, Length: uint64(len(payload))}
		if masked {
			h.Key = key
		}
		b := websocket.AppendHeader(nil, h)
		start := len(b)
		b = append(b, payload...)
		websocket.Mask(b[start:], h.Key, 0)
		return b
	}
	for _, masked := range []bool{false, true} {
		var all []byte
		for _, f := range [][]byte{
			frame(websocket.OpBinary, true, masked, hello),
			frame(websocket.OpBinary, false, masked, hello),
			frame(websocket.OpPing, true, masked, hello),
			frame(websocket.OpContinuation, true, masked, nil),
			frame(websocket.OpBinary, true, masked, make([]byte, 126)),
			frame(websocket.OpClose, true, masked, nil),
			frame(websocket.OpClose, true, masked, binary.BigEndian.AppendUint16(nil, 1000)),
			frame(websocket.OpClose, true, masked, append(binary.BigEndian.AppendUint16(nil, 4000), "bye"...)),
		} {
			all = append(all, f...)
			if masked {
				fromClient = append(fromClient, f)
			} else {
				fromServer = append(fromServer, f)
			}
		}
		if masked {
			fromClient = append(fromClient, all)
		} else {
			fromServer = append(fromServer, all)
		}
	}
	return fromServer, fromClient
}

// wsModel decodes in as a Conn receiving it (as a client if client)
// should, frame by frame, with nothing shared with the Conn but the header
// codec: the data of the binary messages, the pings to answer, and how the
// stream ends.
type wsModel struct {
	data  []byte
	pings [][]byte
	end   string // "eof", "unexpected", "protocol 1002", "protocol 1007", "close N"
}

func decodeModel(in []byte, client bool) wsModel {
	var m wsModel
	inMessage := false
	for {
		if len(in) == 0 {
			if inMessage {
				m.end = "unexpected"
			} else {
				m.end = "eof"
			}
			return m
		}
		h, n, err := websocket.ParseHeader(in)
		if err == websocket.ErrShortHeader {
			m.end = "unexpected"
			return m
		}
		var pe *websocket.ProtocolError
		if errors.As(err, &pe) {
			m.end = fmt.Sprint("protocol ", pe.Code)
			return m
		}
		if err := websocket.Check(h, client); err != nil {
			m.end = "protocol 1002"
			return m
		}
		if h.Opcode.IsControl() && h.Length > websocket.MaxControlPayload {
			panic("Check let an oversized control frame through")
		}
		if !h.Opcode.IsControl() {
			if h.Opcode == websocket.OpContinuation && !inMessage || h.Opcode == websocket.OpBinary && inMessage {
				m.end = "protocol 1002"
				return m
			}
		}
		if uint64(len(in)-n) < h.Length {
			// The data that did arrive is delivered before the end.
			if !h.Opcode.IsControl() {
				m.data = append(m.data, unmasked(in[n:], h.Key)...)
			}
			m.end = "unexpected"
			return m
		}
		payload := unmasked(in[n:n+int(h.Length)], h.Key)
		in = in[n+int(h.Length):]
		switch h.Opcode {
		case websocket.OpPing:
			m.pings = append(m.pings, payload)
		case websocket.OpPong:
		case websocket.OpClose:
			m.end = closeEnd(payload)
			return m
		default:
			m.data = append(m.data, payload...)
			inMessage = !h.Fin
		}
	}
}

func unmasked(b []byte, key [4]byte) []byte {
	out := bytes.Clone(b)
	for i := range out {
		out[i] ^= key[i%4]
	}
	return out
}

// closeEnd is how a close frame's body ends the stream (RFC 6455 5.5.1,
// 7.4).
func closeEnd(body []byte) string {
	if len(body) == 0 {
		return "eof"
	}
	code := binary.BigEndian.Uint16(body)
	valid := code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
	switch {
	case !valid:
		return "protocol 1002"
	case !utf8.Valid(body[2:]):
		return "protocol 1007"
	case code == 1000 || code == 1001:
		return "eof"
	}
	return fmt.Sprint("close ", code)
}

// endOf names how the Conn's Read ended, in the model's terms.
func endOf(err error) string {
	var pe *websocket.ProtocolError
	var ce *websocket.CloseError
	switch {
	case err == io.EOF:
		return "eof"
	case err == io.ErrUnexpectedEOF:
		return "unexpected"
	case errors.As(err, &pe):
		return fmt.Sprint("protocol ", pe.Code)
	case errors.As(err, &ce):
		return fmt.Sprint("close ", ce.Code)
	}
	return "unexpected error: " + err.Error()
}

// frameSink is the connection the Conn under test writes to: it checks
// every write as it comes, one whole frame per write, and keeps only what
// the checks need, so that the harness allocates nothing per frame.
type frameSink struct {
	client  bool // the Conn is a client: its frames must be masked
	pongs   int
	pong    [websocket.MaxControlPayload]byte
	pongLen int
	closes  int
	code    uint16
	err     error
}

func (s *frameSink) Write(p []byte) (int, error) {
	h, n, err := websocket.ParseHeader(p)
	switch {
	case err != nil:
		s.err = fmt.Errorf("the Conn wrote a frame that does not parse: %v", err)
	case h.Masked != s.client || h.RSV != 0 || !h.Fin:
		s.err = fmt.Errorf("the Conn wrote %+v", h)
	case uint64(len(p)-n) != h.Length:
		s.err = fmt.Errorf("the Conn wrote a %d-octet frame in %d octets", h.Length, len(p)-n)
	case s.closes > 0:
		s.err = fmt.Errorf("the Conn wrote a %v after its close", h.Opcode)
	case h.Opcode == websocket.OpPong:
		s.pongs++
		s.pongLen = copy(s.pong[:], p[n:])
		websocket.Mask(s.pong[:s.pongLen], h.Key, 0)
	case h.Opcode == websocket.OpClose:
		s.closes++
		if h.Length >= 2 {
			var b [2]byte
			copy(b[:], p[n:n+2])
			websocket.Mask(b[:], h.Key, 0)
			s.code = binary.BigEndian.Uint16(b[:])
		}
	default:
		s.err = fmt.Errorf("the Conn wrote an unasked %v", h.Opcode)
	}
	return len(p), nil
}

// sinkConn is a net.Conn reading in and writing to a frameSink.
type sinkConn struct {
	r    *bytes.Reader
	sink *frameSink
}

func (c *sinkConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *sinkConn) Write(p []byte) (int, error)      { return c.sink.Write(p) }
func (c *sinkConn) Close() error                     { return nil }
func (c *sinkConn) LocalAddr() net.Addr              { return nil }
func (c *sinkConn) RemoteAddr() net.Addr             { return nil }
func (c *sinkConn) SetDeadline(time.Time) error      { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

// maxConnAlloc bounds what a Conn may allocate reading any input: its
// struct, its read buffer and its masking-key generator. Nothing may grow
// with what the peer sends (lengths, counts).
const maxConnAlloc = 16 << 10

// FuzzWebSocketReader feeds a byte stream to the WebSocket Conn, as a
// client (the stream is a server's frames) or a server, and checks: it
// never panics; every error is io.EOF, io.ErrUnexpectedEOF, a
// *websocket.ProtocolError (1002, or 1007 for a close reason that is not
// UTF-8) or a *websocket.CloseError, the one an independent decoding of
// the same bytes predicts; the data read is exactly the binary messages'
// payloads, unmasked; pings get pongs with the last ping's payload, masked
// exactly when the Conn is a client; a protocol error or a close gets one
// close frame back, with the code; the Conn allocates a bounded amount,
// whatever lengths the input claims; every header that decodes re-encodes
// to the same octets; and the data, written back through a Conn of the
// other side, reads back the same.
func FuzzWebSocketReader(f *testing.F) {
	fromServer, fromClient := wsExamples()
	for _, s := range fromServer {
		for n := 0; n <= len(s) && n < 300; n++ {
			f.Add(true, s[:n])
		}
		f.Add(true, s)
	}
	for _, s := range fromClient {
		for n := 0; n <= len(s) && n < 300; n++ {
			f.Add(false, s[:n])
		}
		f.Add(false, s)
	}
	f.Fuzz(func(t *testing.T, client bool, in []byte) {
		// Headers re-encode to the octets they came from (RFC 6455 5.2's
		// shortest form makes the encoding unique).
		for rest := in; len(rest) > 0; {
			h, n, err := websocket.ParseHeader(rest)
			if err != nil {
				break
			}
			if got := websocket.AppendHeader(nil, h); !bytes.Equal(got, rest[:n]) {
				t.Fatalf("header %+v re-encodes to % x, not % x", h, got, rest[:n])
			}
			if h.Length > uint64(len(rest)-n) {
				break
			}
			rest = rest[n+int(h.Length):]
		}

		want := decodeModel(in, client)
		sink := &frameSink{client: client}
		conn := &sinkConn{r: bytes.NewReader(in), sink: sink}
		// Reads of varying sizes, so that frames end inside reads and
		// reads inside frames. The data is at most the input: got never
		// grows, so what is allocated below is the Conn's.
		buf := make([]byte, 1+len(in)%97)
		got := make([]byte, 0, len(in))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := websocket.NewConn(conn, nil, client)
		var err error
		for err == nil {
			var n int
			n, err = c.Read(buf)
			got = append(got, buf[:n]...)
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > maxConnAlloc {
			t.Fatalf("reading %d octets allocated %d bytes", len(in), grew)
		}
		if sink.err != nil {
			t.Fatal(sink.err)
		}
		if end := endOf(err); end != want.end {
			t.Fatalf("Read ended with %q (%v), want %q", end, err, want.end)
		}
		if !bytes.Equal(got, want.data) {
			t.Fatalf("read %d octets, want %d", len(got), len(want.data))
		}
		if len(want.pings) > 0 {
			last := want.pings[len(want.pings)-1]
			if sink.pongs == 0 || sink.pongs > len(want.pings) || !bytes.Equal(sink.pong[:sink.pongLen], last) {
				t.Fatalf("%d pings got %d pongs, the last %q; want the last ping's %q", len(want.pings), sink.pongs, sink.pong[:sink.pongLen], last)
			}
		} else if sink.pongs > 0 {
			t.Fatalf("%d pongs for no ping", sink.pongs)
		}
		var wantCode uint16
		switch {
		case want.end == "protocol 1002":
			wantCode = 1002
		case want.end == "protocol 1007":
			wantCode = 1007
		}
		if wantCode != 0 && (sink.closes != 1 || sink.code != wantCode) {
			t.Fatalf("a protocol error got %d closes, code %d; want one close %d", sink.closes, sink.code, wantCode)
		}
		if sink.closes > 1 {
			t.Fatalf("%d closes", sink.closes)
		}

		// The data round-trips through a Conn of the other side.
		if len(got) > 0 && len(got) <= 64<<10 {
			var wire bytes.Buffer
			w := websocket.NewConn(&bufConn{w: &wire}, nil, !client)
			if _, err := w.Write(got[:len(got)/2]); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(got[len(got)/2:]); err != nil {
				t.Fatal(err)
			}
			r := websocket.NewConn(&bufConn{r: &wire}, nil, client)
			back, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(back, got) {
				t.Fatalf("the data written by a Conn reads back as %d octets, %v", len(back), err)
			}
		}
	})
}

// bufConn is a net.Conn over buffers.
type bufConn struct {
	r io.Reader
	w io.Writer
}

func (c *bufConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bufConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *bufConn) Close() error                     { return nil }
func (c *bufConn) LocalAddr() net.Addr              { return nil }
func (c *bufConn) RemoteAddr() net.Addr             { return nil }
func (c *bufConn) SetDeadline(time.Time) error      { return nil }
func (c *bufConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }
