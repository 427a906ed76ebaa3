package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// frameOf encodes one frame as a peer would send it: masked with key when
// the receiver is a server (toServer), unmasked otherwise.
func frameOf(op Opcode, fin, toServer bool, payload []byte) []byte {
	h := Header{Fin: fin, Opcode: op, Length: uint64(len(payload)), Masked: toServer}
	if toServer {
		h.Key = [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	}
	b := AppendHeader(nil, h)
	start := len(b)
	b = append(b, payload...)
	Mask(b[start:], h.Key, 0)
	return b
}

func closeBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// scriptConn is a net.Conn that reads a fixed script and records what is
// written to it.
type scriptConn struct {
	r  io.Reader
	mu sync.Mutex // guards w
	w  bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}
func (c *scriptConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.w.Bytes())
}
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return nil }
func (c *scriptConn) RemoteAddr() net.Addr             { return nil }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// readAll reads c to its end and returns the data and the final error.
func readAll(c *Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 7) // small, so that reads end inside frames
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// sentFrame is a frame a Conn wrote, unmasked.
type sentFrame struct {
	h       Header
	payload []byte
}

// parseSent decodes the frames a Conn wrote; masked says whether they must
// be masked (the Conn is a client).
func parseSent(t *testing.T, b []byte, masked bool) []sentFrame {
	t.Helper()
	var out []sentFrame
	for len(b) > 0 {
		h, n, err := ParseHeader(b)
		if err != nil {
			t.Fatalf("the Conn wrote a bad frame: %v (% x)", err, b)
		}
		if h.Masked != masked || h.RSV != 0 || !h.Fin {
			t.Fatalf("the Conn wrote %+v", h)
		}
		payload := bytes.Clone(b[n : n+int(h.Length)])
		Mask(payload, h.Key, 0)
		out = append(out, sentFrame{h, payload})
		b = b[n+int(h.Length):]
	}
	return out
}

func TestReadReassemblesFragmentsAroundControlFrames(t *testing.T) {
	for _, client := range []bool{true, false} {
		name := map[bool]string{true: "client", false: "server"}[client]
		t.Run(name, func(t *testing.T) {
			toServer := !client
			var script []byte
			add := func(b []byte) { script = append(script, b...) }
			add(frameOf(OpBinary, false, toServer, []byte("frag")))
			add(frameOf(OpPing, true, toServer, []byte("between fragments")))
			add(frameOf(OpContinuation, false, toServer, []byte("mented ")))
			add(frameOf(OpPong, true, toServer, []byte("unsolicited")))
			add(frameOf(OpContinuation, false, toServer, nil)) // an empty middle fragment
			add(frameOf(OpContinuation, true, toServer, nil))  // a 0-length final fragment
			add(frameOf(OpBinary, true, toServer, nil))        // an empty message
			add(frameOf(OpBinary, true, toServer, bytes.Repeat([]byte("x"), 126)))
			add(frameOf(OpBinary, true, toServer, bytes.Repeat([]byte("y"), 65536)))
			add(frameOf(OpClose, true, toServer, closeBody(CloseNormal, "done")))
			peer := &scriptConn{r: bytes.NewReader(script)}
			c := NewConn(peer, nil, client)

			got, err := readAll(c)
			if err != io.EOF {
				t.Fatalf("Read ended with %v, want io.EOF after a normal close", err)
			}
			want := "fragmented " + strings.Repeat("x", 126) + strings.Repeat("y", 65536)
			if string(got) != want {
				t.Fatalf("read %d octets, want %d", len(got), len(want))
			}
			sent := parseSent(t, peer.written(), client)
			if len(sent) != 2 || sent[0].h.Opcode != OpPong || string(sent[0].payload) != "between fragments" ||
				sent[1].h.Opcode != OpClose || !bytes.Equal(sent[1].payload, closeBody(CloseNormal, "")) {
				t.Fatalf("the Conn answered %+v, want a pong with the ping's payload, then close 1000", sent)
			}
			if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after the close handshake = %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestTheCloseHandshake(t *testing.T) {
	for _, tt := range []struct {
		name     string
		body     []byte
		wantErr  error  // nil: a *CloseError with wantCode
		wantCode uint16 // the status Read reports, or the 1002/1007 this side fails with
		echo     []byte // the body of the answering close
	}{
		{"no status", nil, io.EOF, 0, nil},
		{"a normal closure", closeBody(CloseNormal, ""), io.EOF, 0, closeBody(CloseNormal, "")},
		{"going away, with a reason", closeBody(CloseGoingAway, "restarting"), io.EOF, 0, closeBody(CloseGoingAway, "")},
		{"an application's status and reason", closeBody(4000, "bye \x1b[2J"), nil, 4000, closeBody(4000, "")},
		{"an internal error", closeBody(CloseInternalError, ""), nil, CloseInternalError, closeBody(CloseInternalError, "")},
		{"status 1005, which may not be sent", closeBody(CloseNoStatus, ""), nil, CloseProtocolError, nil},
		{"status 999", closeBody(999, ""), nil, CloseProtocolError, nil},
		{"status 5000", closeBody(5000, ""), nil, CloseProtocolError, nil},
		{"a reason that is not UTF-8", closeBody(CloseNormal, "\xff"), nil, CloseInvalidData, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peer := &scriptConn{r: bytes.NewReader(frameOf(OpClose, true, false, tt.body))}
			c := NewConn(peer, nil, true)
			_, err := readAll(c)
			sent := parseSent(t, peer.written(), true)
			if len(sent) != 1 || sent[0].h.Opcode != OpClose {
				t.Fatalf("the Conn answered %+v, want one close", sent)
			}
			switch {
			case tt.wantErr != nil:
				if err != tt.wantErr {
					t.Fatalf("Read ended with %v, want %v", err, tt.wantErr)
				}
			case tt.echo != nil:
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != tt.wantCode {
					t.Fatalf("Read ended with %v, want a *CloseError with status %d", err, tt.wantCode)
				}
				if strings.ContainsRune(ce.Error(), 0x1b) {
					t.Errorf("the error prints the peer's ESC: %q", ce)
				}
			default:
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != tt.wantCode {
					t.Fatalf("Read ended with %v, want a *ProtocolError with status %d", err, tt.wantCode)
				}
				if code := binary.BigEndian.Uint16(sent[0].payload); code != tt.wantCode {
					t.Fatalf("the Conn failed the connection with %d, want %d", code, tt.wantCode)
				}
				return
			}
			if !bytes.Equal(sent[0].payload, tt.echo) {
				t.Errorf("the answering close carries % x, want % x", sent[0].payload, tt.echo)
			}
		})
	}
}

func TestFramesThatBreakTheRulesFailTheConnectionWith1002(t *testing.T) {
	for _, tt := range []struct {
		name   string
		client bool // the receiver
		wire   []byte
	}{
		{"a text frame", true, frameOf(OpText, true, false, []byte("hi"))},
		{"RSV1 set", true, append([]byte{0xc2, 0x00}, nil...)},
		{"RSV2 set", false, append([]byte{0xa2, 0x80}, 1, 2, 3, 4)},
		{"reserved opcode 3", true, []byte{0x83, 0x00}},
		{"reserved opcode 0xB", true, []byte{0x8b, 0x00}},
		{"an unmasked frame to a server", false, frameOf(OpBinary, true, false, []byte("hi"))},
		{"a masked frame to a client", true, frameOf(OpBinary, true, true, []byte("hi"))},
		{"a continuation with no message", true, frameOf(OpContinuation, true, false, []byte("hi"))},
		{"a new message inside a fragmented one", true, append(frameOf(OpBinary, false, false, []byte("a")), frameOf(OpBinary, true, false, []byte("b"))...)},
		{"a fragmented ping", true, frameOf(OpPing, false, false, nil)},
		{"an oversized ping", true, frameOf(OpPing, true, false, make([]byte, 126))},
		{"an oversized close", true, frameOf(OpClose, true, false, make([]byte, 200))},
		{"a close with a 1-octet body", true, frameOf(OpClose, true, false, []byte{3})},
		{"a 64-bit length with the top bit set", true, []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}},
		{"a length not in its shortest form", true, []byte{0x82, 0x7e, 0x00, 0x05, 1, 2, 3, 4, 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peer := &scriptConn{r: bytes.NewReader(tt.wire)}
			c := NewConn(peer, nil, tt.client)
			data, err := readAll(c)
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != CloseProtocolError {
				t.Fatalf("Read ended with %v (after %q), want a 1002 *ProtocolError", err, data)
			}
			if _, again := c.Read(make([]byte, 1)); again != err {
				t.Errorf("a second Read = %v, want the same error", again)
			}
			sent := parseSent(t, peer.written(), tt.client)
			if len(sent) != 1 || sent[0].h.Opcode != OpClose || binary.BigEndian.Uint16(sent[0].payload) != CloseProtocolError {
				t.Fatalf("the Conn sent %+v, want one close 1002", sent)
			}
			if reason := sent[0].payload[2:]; len(reason) == 0 || len(reason) > maxCloseReason {
				t.Errorf("close reason %q: want one, of at most %d octets", reason, maxCloseReason)
			}
		})
	}
}

func TestTheEndOfTheConnectionInsideAFrameIsUnexpected(t *testing.T) {
	for _, tt := range []struct {
		name string
		wire []byte
		want error
	}{
		{"between messages", frameOf(OpBinary, true, false, []byte("whole")), io.EOF},
		{"inside a header", []byte{0x82, 0x7e, 0x01}, io.ErrUnexpectedEOF},
		{"inside a payload", frameOf(OpBinary, true, false, []byte("whole"))[:4], io.ErrUnexpectedEOF},
		{"inside a fragmented message", frameOf(OpBinary, false, false, []byte("part")), io.ErrUnexpectedEOF},
		{"inside a ping", frameOf(OpPing, true, false, []byte("ping"))[:3], io.ErrUnexpectedEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConn(&scriptConn{r: bytes.NewReader(tt.wire)}, nil, true)
			if _, err := readAll(c); err != tt.want {
				t.Fatalf("Read ended with %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHalfAFrameThenAStallLosesNothingToADeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConn(a, nil, false)
	wire := append(frameOf(OpPing, true, true, []byte("ping")), frameOf(OpBinary, true, true, []byte("hello, tunnel"))...)
	// Half of the ping's header, half of the binary frame's header, then
	// the rest: each Read in between times out.
	cuts := []int{1, len(wire) - 18, len(wire) - 5, len(wire)}
	go func() {
		prev := 0
		for _, cut := range cuts {
			if _, err := b.Write(wire[prev:cut]); err != nil {
				return
			}
			prev = cut
			time.Sleep(20 * time.Millisecond) // the stall the test is about, not a wait for a result
		}
	}()
	// The pong goes out on the pipe; read it so the pipe does not block.
	pong := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2+len("ping")) // a server's pong: unmasked
		n, _ := io.ReadFull(b, buf)
		pong <- buf[:n]
	}()
	var got []byte
	timeouts := 0
	deadline := time.Now().Add(testTimeout)
	for len(got) < len("hello, tunnel") && time.Now().Before(deadline) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		buf := make([]byte, 4)
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "hello, tunnel" {
		t.Fatalf("read %q", got)
	}
	if timeouts == 0 {
		t.Error("no Read timed out: the test did not stall the frames")
	}
	select {
	case p := <-pong:
		sent := parseSent(t, p, false)
		if len(sent) != 1 || sent[0].h.Opcode != OpPong || string(sent[0].payload) != "ping" {
			t.Fatalf("answered %+v", sent)
		}
	case <-time.After(testTimeout):
		t.Fatal("no pong")
	}
}

func TestAPingIsAnsweredEvenWhileAWriteIsStuck(t *testing.T) {
	// net.Pipe has no buffer: the server's Write blocks until the client
	// reads, which it does not. The server's Read must still take the
	// ping and the message after it, leaving the pong for later, rather
	// than wait for the stuck writer.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	inWrite := &writeEnteredConn{Conn: a, entered: make(chan struct{})}
	server := NewConn(inWrite, nil, false)
	writeDone := make(chan error, 1)
	go func() {
		_, err := server.Write(make([]byte, 1000))
		writeDone <- err
	}()
	// The ping goes only once the Write is inside the connection: sent
	// earlier, Read would answer it itself, into a pipe nobody reads.
	select {
	case <-inWrite.entered:
	case <-time.After(testTimeout):
		t.Fatal("the Write never reached the connection")
	}
	sendDone := make(chan error, 1)
	go func() {
		_, err := b.Write(append(frameOf(OpPing, true, true, []byte("p")), frameOf(OpBinary, true, true, []byte("after the ping"))...))
		sendDone <- err
	}()
	readDone := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := server.Read(buf)
		readDone <- string(buf[:n])
	}()
	select {
	case got := <-readDone:
		if got != "after the ping" {
			t.Fatalf("read %q", got)
		}
	case <-time.After(testTimeout):
		t.Fatal("Read is stuck behind the blocked Write")
	}
	select {
	case err := <-sendDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the ping and the message are still being sent")
	}
	// Now the client reads: the data message, the pong, then the close.
	clientDone := make(chan error, 1)
	go func() {
		got, err := readAll(NewConn(b, nil, true))
		if err == io.EOF && len(got) != 1000 {
			err = errors.New("the client read the wrong data")
		}
		clientDone <- err
	}()
	select {
	case err := <-writeDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the Write is still stuck once the client reads")
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-clientDone:
		if err != io.EOF {
			t.Fatalf("the client's Read ended with %v, want io.EOF", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the client is still reading")
	}
}

func TestClientsMaskEveryFrameWithAFreshKey(t *testing.T) {
	peer := &scriptConn{r: bytes.NewReader(nil)}
	c := NewConn(peer, nil, true)
	msg := bytes.Repeat([]byte("data"), 40000) // larger than one write chunk
	for range 3 {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	bufs := net.Buffers{[]byte("a batch "), []byte("of "), []byte("three")}
	if n, err := c.WriteBuffers(&bufs); err != nil || n != 16 || len(bufs) != 0 {
		t.Fatalf("WriteBuffers = %d, %v, left %d", n, err, len(bufs))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	sent := parseSent(t, peer.written(), true)
	if len(sent) != 5 {
		t.Fatalf("sent %d frames, want 5", len(sent))
	}
	keys := map[[4]byte]bool{}
	for i, f := range sent[:3] {
		if f.h.Opcode != OpBinary || !bytes.Equal(f.payload, msg) {
			t.Fatalf("frame %d: %v of %d octets", i, f.h.Opcode, len(f.payload))
		}
		keys[f.h.Key] = true
	}
	if len(keys) != 3 {
		t.Errorf("3 frames used %d keys", len(keys))
	}
	if string(sent[3].payload) != "a batch of three" || sent[4].h.Opcode != OpClose {
		t.Errorf("then %q and %v", sent[3].payload, sent[4].h.Opcode)
	}
	if !bytes.Equal(msg[:8], []byte("datadata")) {
		t.Error("Write changed the caller's slice")
	}
}

func TestNoAllocationPerFrame(t *testing.T) {
	for _, client := range []bool{true, false} {
		peer := &scriptConn{}
		c := NewConn(peer, nil, client)
		msg := make([]byte, 32<<10)
		bufs := make(net.Buffers, 0, 2)
		_, _ = c.Write(msg) // grows the buffers once
		write := testing.AllocsPerRun(50, func() {
			peer.mu.Lock()
			peer.w.Reset()
			peer.mu.Unlock()
			_, _ = c.Write(msg)
			b := append(bufs[:0], msg[:100], msg[:200])
			_, _ = c.WriteBuffers(&b)
		})
		if write != 0 {
			t.Errorf("client %v: %v allocations per Write and WriteBuffers", client, write)
		}
	}
	// Reading: a script of many frames, a ping among them.
	var script []byte
	for range 200 {
		script = append(script, frameOf(OpBinary, true, true, make([]byte, 1000))...)
		script = append(script, frameOf(OpPing, true, true, []byte("p"))...)
	}
	r := bytes.NewReader(script)
	peer := &scriptConn{r: r}
	c := NewConn(peer, nil, false)
	buf := make([]byte, 1000)
	_, _ = io.ReadFull(c, buf)
	read := testing.AllocsPerRun(100, func() {
		_, _ = io.ReadFull(c, buf)
	})
	if read != 0 {
		t.Errorf("%v allocations per frame read", read)
	}
}

func TestCloseIsBoundedByAPeerThatDoesNotRead(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a, nil, true)
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case <-done:
	case <-time.After(closeTimeout + testTimeout):
		t.Fatal("Close did not return")
	}
}

// writeEnteredConn closes entered when its first Write begins.
type writeEnteredConn struct {
	net.Conn
	entered chan struct{}
	once    sync.Once
}

func (c *writeEnteredConn) Write(p []byte) (int, error) {
	c.once.Do(func() { close(c.entered) })
	return c.Conn.Write(p)
}
