package mux

// Attack tests (see attackharness_test.go) of hostile frames: header block
// bombs, DATA past the window, a million one-octet DATA frames, frame headers
// that promise a huge length, reason texts past 1,024 octets, frames on
// closed, unknown and idle stream IDs, and a GOAWAY with a bogus last stream
// ID. Each is refused, ignored or ends the session with the code the spec
// names, within the documented memory bound.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/httpstream-go/httpstream/frame"
)

// atkBlock encodes a header block by hand (SPEC 5): one name, with values
// of the given lengths (filled with 'v'). The encoder refuses more than
// 1,024 values, so hostile blocks are built here.
func atkBlock(name string, lens ...int) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(lens)))
	for _, n := range lens {
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = append(b, bytes.Repeat([]byte("v"), n)...)
	}
	return b
}

func TestAttackHeaderBlockBombs(t *testing.T) {
	bigValue := func(blockLen int) http.Header {
		// A block with one name of 3 octets and one value: 2 + 2 + 3 + 2
		// + 4 octets of structure.
		return http.Header{"Big": {strings.Repeat("v", blockLen-13)}}
	}

	for _, tt := range []struct {
		name     string
		blockLen func(cfg *Config) int
	}{
		{"a block one octet over MaxHeaderBytes", func(cfg *Config) int { return cfg.MaxHeaderBytes + 1 }},
		{"a block of 1 MiB", func(*Config) int { return 1 << 20 }},
	} {
		t.Run(tt.name+": FRAME_SIZE_ERROR", func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkHandshaken(t, cfg)
			open := openFrame(p.nextID, bigValue(tt.blockLen(cfg)))
			if n := len(open) - frame.HeaderSize; n != tt.blockLen(cfg) {
				t.Fatalf("block of %d octets, want %d", n, tt.blockLen(cfg))
			}
			heap := atkHeapStart()
			// The server answers the header alone and closes, so the
			// write of a large payload may fail: that is the point.
			if err := p.write(open); err != nil {
				t.Logf("attacker write: %v", err)
			}
			p.expectGoAway(t, frame.CodeFrameSizeError, atkWait)
			heap.check(t, atkBound(cfg, atkPingAck), tt.name)
			g.check(t, "after the attack")
		})
	}

	t.Run("1,025 tiny values: REFUSE PROTOCOL_ERROR, 1,024 are fine", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		heap := atkHeapStart()
		bomb := atkBlock("Tiny", make([]int, frame.MaxHeaderValues+1)...)
		id := p.nextID
		p.nextID += 2
		p.mustWrite(t, header(frame.FrameOpen, 0, id, bomb))
		f := p.await(t, "an answer to the OPEN", func(f *frame.Frame) bool { return f.StreamID == id })
		if f.Type != frame.FrameRefuse || f.Code != frame.CodeProtocolError {
			t.Fatalf("%v, want REFUSE PROTOCOL_ERROR", f)
		}
		t.Logf("%v", f)
		p.carriesOn(t)
		ok := atkBlock("Tiny", make([]int, frame.MaxHeaderValues)...)
		id = p.nextID
		p.nextID += 2
		p.mustWrite(t, header(frame.FrameOpen, 0, id, ok))
		p.awaitFrame(t, frame.FrameAccept, id)
		st := p.srv.lookup(id)
		if st == nil || len(st.Headers()["Tiny"]) != frame.MaxHeaderValues {
			t.Fatalf("the server's stream %d does not have the %d values", id, frame.MaxHeaderValues)
		}
		heap.check(t, atkBound(cfg, atkShortRefuse), "header blocks of 1,025 and 1,024 values")
		p.echoStream(t, "still here")
		g.check(t, "after the attack")
	})

	t.Run("one value just under MaxHeaderBytes, on every stream allowed: accepted", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		h := bigValue(cfg.MaxHeaderBytes)
		if n := len(openFrame(1, h)) - frame.HeaderSize; n != cfg.MaxHeaderBytes {
			t.Fatalf("block of %d octets, want %d", n, cfg.MaxHeaderBytes)
		}
		first := p.nextID
		buf := p.openFrames(cfg.MaxConcurrentStreams, h)
		heap := atkHeapStart()
		p.mustWrite(t, buf)
		for i := range cfg.MaxConcurrentStreams {
			p.awaitFrame(t, frame.FrameAccept, first+2*uint32(i))
		}
		for i := range cfg.MaxConcurrentStreams {
			st := p.srv.lookup(first + 2*uint32(i))
			if st == nil || len(st.Headers().Get("Big")) != cfg.MaxHeaderBytes-13 {
				t.Fatalf("the server's stream %d does not have the big value", first+2*uint32(i))
			}
		}
		heap.check(t, atkBound(cfg, atkShortRefuse), "MaxConcurrentStreams streams with the largest header block")
		// One more is past the stream limit, not past anything else.
		id := p.nextID
		p.mustWrite(t, openFrame(p.nextID, h))
		p.nextID += 2
		if f := p.await(t, "an answer to the OPEN", func(f *frame.Frame) bool { return f.StreamID == id }); f.Type != frame.FrameRefuse || f.Code != frame.CodeStreamLimit {
			t.Fatalf("%v, want REFUSE STREAM_LIMIT", f)
		}
		p.carriesOn(t)
		g.check(t, "after the attack")
	})
}

func TestAttackDataPastTheWindow(t *testing.T) {
	t.Run("one frame longer than the whole window: FLOW_CONTROL_ERROR", func(t *testing.T) {
		cfg := atkConfig()
		cfg.InitialStreamWindow, cfg.MaxStreamWindow = 8<<10, 8<<10 // below MaxFrameSize 16 KiB
		_, p, g := atkHandshaken(t, cfg)
		id := p.openAccepted(t, nil)
		heap := atkHeapStart()
		p.mustWrite(t, frame.AppendData(nil, id, 0, make([]byte, cfg.InitialStreamWindow+1)))
		p.expectGoAway(t, frame.CodeFlowControlError, atkWait)
		heap.check(t, atkBound(cfg, atkPingAck), "a frame past the window")
		g.check(t, "after the attack")
	})

	t.Run("one octet past a full window the handler does not read: FLOW_CONTROL_ERROR", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		id := p.openAccepted(t, http.Header{"Mode": {"hold"}})
		chunk := make([]byte, cfg.MaxFrameSize)
		heap := atkHeapStart()
		for range int(cfg.InitialStreamWindow) / len(chunk) {
			p.mustWrite(t, frame.AppendData(nil, id, 0, chunk))
		}
		p.carriesOn(t) // a full window is allowed, and buffered
		st := p.srv.lookup(id)
		if st == nil {
			t.Fatalf("the server does not track stream %d", id)
		}
		st.mu.Lock()
		buffered := st.recv.buffered()
		st.mu.Unlock()
		if buffered != int(cfg.InitialStreamWindow) {
			t.Fatalf("the server buffers %d octets of stream %d, want the whole window %d", buffered, id, cfg.InitialStreamWindow)
		}
		heap.sample()
		p.mustWrite(t, frame.AppendData(nil, id, 0, []byte{0}))
		p.expectGoAway(t, frame.CodeFlowControlError, atkWait)
		heap.check(t, atkBound(cfg, atkPingAck), "a full window, then one octet more")
		g.check(t, "after the attack")
	})
}

func TestAttackOneOctetDataFrames(t *testing.T) {
	// A million DATA frames of one octet each on a stream whose handler
	// reads everything, within the windows the server grants.
	cfg := atkConfig()
	h, p, g := atkHandshaken(t, cfg)
	id := p.openAccepted(t, http.Header{"Mode": {"sink"}})
	// A million; a quarter of that under the race detector, which slows
	// this loop about twentyfold (6 s for the million on 2 cores).
	total := int64(1_000_000)
	if atkRace() {
		total /= 4
	}
	const perWrite = 4096
	buf := make([]byte, 0, perWrite*(frame.HeaderSize+1))
	one := []byte{'x'}

	heap := atkHeapStart()
	stopWatch := heap.watch(t, 20*time.Millisecond, nil)
	stopGood := g.during(t)
	start := time.Now()
	for sent := int64(0); sent < total; {
		n := p.takeCredit(t, id, min(perWrite, total-sent))
		buf = buf[:0]
		for range n {
			buf = frame.AppendData(buf, id, 0, one)
		}
		p.mustWrite(t, buf)
		sent += n
	}
	p.mustWrite(t, frame.AppendData(nil, id, frame.FlagEndStream, nil))
	res := atkRecv(t, h.sunk, "the handler to read the stream to its end")
	elapsed := time.Since(start)
	stopGood()
	stopWatch()
	if res.err != nil || res.n != total {
		t.Fatalf("the handler read %d octets (error %v), %d were sent", res.n, res.err, total)
	}
	t.Logf("%d one-octet DATA frames delivered in %v", total, elapsed.Round(time.Millisecond))
	p.carriesOn(t)
	heap.check(t, atkBound(cfg, atkWindowUpdate), fmt.Sprintf("%d one-octet DATA frames", total))
	p.echoStream(t, "still here")
	g.check(t, "after the attack")
}

func TestAttackFrameHeaderThatPromisesAHugeLength(t *testing.T) {
	huge := func(typ frame.FrameType, id uint32) []byte {
		return frame.AppendFrameHeader(nil, frame.FrameHeader{Length: frame.MaxLength, Type: typ, StreamID: id})
	}
	// Over the limit: the header alone is enough to end the session, at
	// once (SPEC 3.1, 10.1), long before keepalive (20 s here) would.
	for _, tt := range []struct {
		name  string
		first bool // sent instead of the first SETTINGS
		typ   frame.FrameType
		id    uint32
	}{
		{"DATA on an open stream", false, frame.FrameData, 1},
		{"OPEN", false, frame.FrameOpen, 1},
		{"an unknown type", false, 0x42, 0},
		{"RESET", false, frame.FrameReset, 1},
		{"REFUSE", false, frame.FrameRefuse, 2},
		{"WINDOW_UPDATE", false, frame.FrameWindowUpdate, 1},
		{"PING", false, frame.FramePing, 0},
		{"GOAWAY", false, frame.FrameGoAway, 0},
		{"the first SETTINGS", true, frame.FrameSettings, 0},
	} {
		t.Run("over the limit: "+tt.name+": FRAME_SIZE_ERROR at once", func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkNewTest(t, cfg, 0, nil)
			if tt.first {
				p.mustWrite(t, []byte(frame.Preface))
				p.readHello(t)
				p.start(false) // an answer to the server's PING would be a first frame
			} else {
				p.handshake(t)
			}
			if tt.typ == frame.FrameData {
				p.open(t, nil)
				p.awaitFrame(t, frame.FrameAccept, tt.id)
			}
			heap := atkHeapStart()
			start := time.Now()
			p.stall(t, huge(tt.typ, tt.id))
			p.expectGoAway(t, frame.CodeFrameSizeError, 2*time.Second)
			t.Logf("GOAWAY %v after the header", time.Since(start).Round(time.Millisecond))
			// A payload buffer of the promised 16 MiB would be far past
			// the bound.
			heap.check(t, atkBound(cfg, atkPingAck), "a header promising 16 MiB")
			g.check(t, "after the attack")
		})
	}

	// Within the limit, then silence: the payload never comes. It costs
	// one payload buffer at most, and keepalive ends it (SPEC 10.1).
	for _, tt := range []struct {
		name string
		hdr  func(cfg *Config) frame.FrameHeader
	}{
		{"DATA of MaxFrameSize on an open stream", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: uint32(cfg.MaxFrameSize), Type: frame.FrameData, StreamID: 1}
		}},
		{"OPEN of MaxHeaderBytes", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: uint32(cfg.MaxHeaderBytes), Type: frame.FrameOpen, StreamID: 3}
		}},
		{"an unknown type of MaxFrameSize", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: uint32(cfg.MaxFrameSize), Type: 0x42}
		}},
		{"GOAWAY with the longest reason", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: 8 + frame.MaxReasonBytes, Type: frame.FrameGoAway}
		}},
	} {
		t.Run("within the limit, then silence: "+tt.name+": keepalive TIMEOUT", func(t *testing.T) {
			cfg := atkKeepAliveConfig()
			_, p, g := atkNewTest(t, cfg, 0, nil)
			p.handshake(t) // answers PINGs until the stall
			p.open(t, nil)
			p.awaitFrame(t, frame.FrameAccept, 1)
			h := tt.hdr(cfg)
			// The header and half the payload, then nothing, not even
			// PING answers.
			stalled := append(frame.AppendFrameHeader(nil, h), make([]byte, h.Length/2)...)
			heap := atkHeapStart()
			start := time.Now()
			p.stall(t, stalled)
			p.expectGoAway(t, frame.CodeTimeout, atkKeepAliveBound(cfg))
			t.Logf("GOAWAY %v after the stall", time.Since(start).Round(time.Millisecond))
			atkKeepAliveEnded(t, p.srv)
			heap.check(t, atkBound(cfg, atkPingAck), "a frame stalled mid-payload")
			g.check(t, "after the attack")
		})
	}
}

// atkServerOpens makes the attacker's server session open a stream toward
// the attacker, and returns its ID (read from the OPEN) and the result of
// OpenStream once the attacker answers.
func atkServerOpens(t *testing.T, p *atkPeer) (uint32, <-chan error) {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), atkWait)
		defer cancel()
		_, err := p.srv.OpenStream(ctx, nil)
		res <- err
	}()
	f := p.await(t, "the server's OPEN", func(f *frame.Frame) bool { return f.Type == frame.FrameOpen })
	return f.StreamID, res
}

// atkServerOpensAccepted is atkServerOpens with the attacker accepting the
// stream: it returns the stream's ID once the server's OpenStream succeeded.
func atkServerOpensAccepted(t *testing.T, p *atkPeer) uint32 {
	t.Helper()
	id, res := atkServerOpens(t, p)
	p.mustWrite(t, frame.AppendAccept(nil, id))
	if err := atkRecv(t, res, "OpenStream to return"); err != nil {
		t.Fatal(err)
	}
	return id
}

// atkWithReason returns a frame of type typ (REFUSE, RESET or GOAWAY) whose
// reason has n octets, encoded by hand: the encoders cut reasons at 1,024.
func atkWithReason(typ frame.FrameType, id uint32, code frame.ErrCode, n int) []byte {
	var p []byte
	if typ == frame.FrameGoAway {
		p = binary.BigEndian.AppendUint32(p, 0) // last stream ID
		id = 0
	}
	p = binary.BigEndian.AppendUint32(p, uint32(code))
	p = append(p, bytes.Repeat([]byte("r"), n)...)
	return header(typ, 0, id, p)
}

func TestAttackReasonTexts(t *testing.T) {
	reason := strings.Repeat("r", frame.MaxReasonBytes)

	t.Run("the decoder rejects 1,025 octets in every reason", func(t *testing.T) {
		for _, typ := range []frame.FrameType{frame.FrameRefuse, frame.FrameReset, frame.FrameGoAway} {
			for _, n := range []int{frame.MaxReasonBytes, frame.MaxReasonBytes + 1} {
				b := atkWithReason(typ, 1, frame.CodeCancel, n)
				_, err := frame.NewReader(bytes.NewReader(b), frame.Limits{}).ReadFrame()
				var se *frame.SessionError
				switch {
				case n <= frame.MaxReasonBytes && err != nil:
					t.Errorf("%v with a reason of %d octets: %v", typ, n, err)
				case n > frame.MaxReasonBytes && (!errors.As(err, &se) || se.Code != frame.CodeFrameSizeError):
					t.Errorf("%v with a reason of %d octets: %v, want FRAME_SIZE_ERROR", typ, n, err)
				}
			}
		}
	})

	for _, tt := range []struct {
		name string
		// attack sends the frames; it returns the code of the GOAWAY the
		// server must answer with, or CodeNoError if the session carries
		// on.
		attack func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode
	}{
		{"RESET with 1,024 octets: carries on", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id := p.openAccepted(t, http.Header{"Mode": {"sink"}})
			p.mustWrite(t, atkWithReason(frame.FrameReset, id, frame.CodeCancel, frame.MaxReasonBytes))
			res := atkRecv(t, h.sunk, "the handler's Read to end")
			if !errors.Is(res.err, ErrStreamReset) || !strings.Contains(res.err.Error(), strconvQuote(reason)) {
				t.Errorf("the handler's stream ended with %v, want the reset with the peer's reason quoted", res.err)
			}
			return frame.CodeNoError
		}},
		{"RESET with 1,025 octets: FRAME_SIZE_ERROR", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id := p.openAccepted(t, nil)
			p.mustWrite(t, atkWithReason(frame.FrameReset, id, frame.CodeCancel, frame.MaxReasonBytes+1))
			return frame.CodeFrameSizeError
		}},
		{"REFUSE with 1,024 octets: carries on", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id, res := atkServerOpens(t, p)
			p.mustWrite(t, atkWithReason(frame.FrameRefuse, id, frame.CodeRefused, frame.MaxReasonBytes))
			err := atkRecv(t, res, "OpenStream to return")
			if !errors.Is(err, ErrStreamRefused) || !strings.Contains(err.Error(), reason) {
				t.Errorf("OpenStream failed with %v, want the refusal with the peer's reason", err)
			}
			return frame.CodeNoError
		}},
		{"REFUSE with 1,025 octets: FRAME_SIZE_ERROR", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id, res := atkServerOpens(t, p)
			p.mustWrite(t, atkWithReason(frame.FrameRefuse, id, frame.CodeRefused, frame.MaxReasonBytes+1))
			if err := atkRecv(t, res, "OpenStream to return"); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("OpenStream failed with %v, want ErrSessionClosed", err)
			}
			return frame.CodeFrameSizeError
		}},
		{"a handler error of 2,000 octets: REFUSE cut to 1,024 at a character boundary", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id := p.open(t, http.Header{"Mode": {"refuse"}})
			f := p.awaitFrame(t, frame.FrameRefuse, id)
			if f.Code != frame.CodeRefused || len(f.Reason) > frame.MaxReasonBytes || len(f.Reason) < frame.MaxReasonBytes-utf8.UTFMax ||
				!utf8.ValidString(f.Reason) || !strings.HasPrefix(atkLongError, f.Reason) {
				t.Errorf("REFUSE %v with a reason of %d octets (valid UTF-8: %v), want REFUSED with the first ~1,024 octets of the error",
					f.Code, len(f.Reason), utf8.ValidString(f.Reason))
			}
			return frame.CodeNoError
		}},
		{"GOAWAY NO_ERROR with 1,024 octets: carries on", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			p.mustWrite(t, atkWithReason(frame.FrameGoAway, 0, frame.CodeNoError, frame.MaxReasonBytes))
			p.carriesOn(t)
			if _, err := p.srv.OpenStream(context.Background(), nil); !errors.Is(err, ErrGoAway) {
				t.Errorf("the server opened a stream after the peer's GOAWAY: %v", err)
			}
			return frame.CodeNoError
		}},
		{"GOAWAY SESSION_CLOSED with 1,024 octets: the session ends, quoting it", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			p.mustWrite(t, atkWithReason(frame.FrameGoAway, 0, frame.CodeSessionClosed, frame.MaxReasonBytes))
			atkRecv(t, p.srv.CloseChan(), "the server session to end")
			if err := p.srv.closedErr(); !errors.Is(err, ErrGoAway) || !strings.Contains(err.Error(), strconvQuote(reason)) {
				t.Errorf("the server session ended with %v, want the peer's GOAWAY with its reason quoted", err)
			}
			return frame.CodeSessionClosed // no GOAWAY back: the peer closed
		}},
		{"GOAWAY with 1,025 octets: FRAME_SIZE_ERROR", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			p.mustWrite(t, atkWithReason(frame.FrameGoAway, 0, frame.CodeSessionClosed, frame.MaxReasonBytes+1))
			return frame.CodeFrameSizeError
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := atkConfig()
			h, p, g := atkHandshaken(t, cfg)
			heap := atkHeapStart()
			switch code := tt.attack(t, h, p); code {
			case frame.CodeNoError:
				p.carriesOn(t)
				p.echoStream(t, "still here")
			case frame.CodeSessionClosed:
			default:
				p.expectGoAway(t, code, atkWait)
			}
			// At most one REFUSE with a long reason (9 + 4 + 1,024
			// octets) is queued, among short frames: well within the allowance for
			// a full queue of short ones.
			heap.check(t, atkBound(cfg, atkShortRefuse), tt.name)
			g.check(t, "after the attack")
		})
	}
}

// strconvQuote is how the package quotes peer texts in errors (%q).
func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

func TestAttackFramesOnClosedUnknownAndIdleStreams(t *testing.T) {
	// Each case sets up streams, then sends frames for some stream ID; the
	// server must ignore frames for closed streams (SPEC 6.3, 6.4) and end
	// the session with PROTOCOL_ERROR for IDs never opened (idle).
	// closedFrames are every stream frame that may arrive after a close.
	closedFrames := func(id uint32) []byte {
		b := frame.AppendData(nil, id, 0, []byte("late"))
		b = frame.AppendData(b, id, frame.FlagEndStream, nil)
		b = frame.AppendWindowUpdate(b, id, 1000)
		b = frame.AppendReset(b, id, frame.CodeCancel, "late")
		return b
	}
	type setup func(t *testing.T, p *atkPeer) []byte
	for _, tt := range []struct {
		name  string
		setup setup // returns the frames to send
		code  frame.ErrCode
	}{
		// Closed streams: ignored.
		{"a stream the attacker reset", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, nil)
			p.mustWrite(t, frame.AppendReset(nil, id, frame.CodeCancel, ""))
			return append(closedFrames(id), frame.AppendAccept(nil, id)...)
		}, frame.CodeNoError},
		{"a stream the server reset", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, http.Header{"Mode": {"reset"}})
			p.awaitFrame(t, frame.FrameReset, id)
			return closedFrames(id)
		}, frame.CodeNoError},
		{"a stream the server refused", func(t *testing.T, p *atkPeer) []byte {
			id := p.open(t, http.Header{"Mode": {"refuse"}})
			p.awaitFrame(t, frame.FrameRefuse, id)
			return closedFrames(id)
		}, frame.CodeNoError},
		{"a stream both sides ended", func(t *testing.T, p *atkPeer) []byte {
			p.echoStream(t, "done")
			return closedFrames(p.nextID - 2)
		}, frame.CodeNoError},
		{"a stream the server opened and the attacker refused", func(t *testing.T, p *atkPeer) []byte {
			id, res := atkServerOpens(t, p)
			p.mustWrite(t, frame.AppendRefuse(nil, id, frame.CodeRefused, "no"))
			atkRecv(t, res, "OpenStream to return")
			return append(closedFrames(id), frame.AppendRefuse(nil, id, frame.CodeRefused, "again")...)
		}, frame.CodeNoError},
		{"an ID the attacker skipped (below one it opened)", func(t *testing.T, p *atkPeer) []byte {
			p.nextID = 5
			p.openAccepted(t, nil) // stream 5
			return closedFrames(3)
		}, frame.CodeNoError},
		// Never opened (idle): PROTOCOL_ERROR, whatever the parity.
		{"DATA on the attacker's next ID", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendData(nil, 1, 0, []byte("x"))
		}, frame.CodeProtocolError},
		{"WINDOW_UPDATE on an attacker ID past the last it opened", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, nil)
			return frame.AppendWindowUpdate(nil, id+2, 1)
		}, frame.CodeProtocolError},
		{"RESET on a far attacker ID", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendReset(nil, 1001, frame.CodeCancel, "")
		}, frame.CodeProtocolError},
		{"DATA on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendData(nil, 2, 0, []byte("x"))
		}, frame.CodeProtocolError},
		{"WINDOW_UPDATE on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendWindowUpdate(nil, 2, 1)
		}, frame.CodeProtocolError},
		{"RESET on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendReset(nil, 4, frame.CodeCancel, "")
		}, frame.CodeProtocolError},
		{"ACCEPT on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendAccept(nil, 2)
		}, frame.CodeProtocolError},
		{"REFUSE on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendRefuse(nil, 2, frame.CodeRefused, "")
		}, frame.CodeProtocolError},
		{"WINDOW_UPDATE on the server's next ID after one it opened", func(t *testing.T, p *atkPeer) []byte {
			id := atkServerOpensAccepted(t, p)
			return frame.AppendWindowUpdate(nil, id+2, 1)
		}, frame.CodeProtocolError},
		{"OPEN of the server's parity", func(t *testing.T, p *atkPeer) []byte {
			return openFrame(2, nil)
		}, frame.CodeProtocolError},
		{"OPEN of a closed stream's ID", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, nil)
			p.mustWrite(t, frame.AppendReset(nil, id, frame.CodeCancel, ""))
			return openFrame(id, nil)
		}, frame.CodeProtocolError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkHandshaken(t, cfg)
			frames := tt.setup(t, p)
			heap := atkHeapStart()
			p.mustWrite(t, frames)
			if tt.code == frame.CodeNoError {
				p.carriesOn(t)
				p.echoStream(t, "still here")
			} else {
				p.expectGoAway(t, tt.code, atkWait)
			}
			heap.check(t, atkBound(cfg, atkShortRefuse), tt.name)
			g.check(t, "after the attack")
		})
	}
}

func TestAttackGoAwayWithABogusLastStreamID(t *testing.T) {
	// SPEC 4.8: a last stream ID of the sender's own parity, or higher than
	// any stream the receiver opened, is a PROTOCOL_ERROR, whatever the
	// code.
	for _, tt := range []struct {
		name         string
		serverOpens  bool // the server opens stream 2 first (accepted)
		last         uint32
		code         frame.ErrCode
		want         frame.ErrCode // CodeNoError: carries on
		attackerOpen bool          // the attacker opens stream 1 first
	}{
		{"2 when the server opened none", false, 2, frame.CodeNoError, frame.CodeProtocolError, false},
		{"2 with a closing code when the server opened none", false, 2, frame.CodeSessionClosed, frame.CodeProtocolError, false},
		{"1, of the attacker's own parity", false, 1, frame.CodeNoError, frame.CodeProtocolError, true},
		{"4 when the server opened only 2", true, 4, frame.CodeNoError, frame.CodeProtocolError, false},
		{"4,294,967,294", true, 0xfffffffe, frame.CodeNoError, frame.CodeProtocolError, false},
		{"2 when the server opened 2 (valid)", true, 2, frame.CodeNoError, frame.CodeNoError, false},
		{"0 (valid)", true, 0, frame.CodeNoError, frame.CodeNoError, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkHandshaken(t, cfg)
			if tt.attackerOpen {
				p.openAccepted(t, nil)
			}
			if tt.serverOpens {
				atkServerOpensAccepted(t, p)
			}
			heap := atkHeapStart()
			p.mustWrite(t, frame.AppendGoAway(nil, tt.last, tt.code, "bogus?"))
			if tt.want == frame.CodeNoError {
				p.carriesOn(t)
			} else {
				p.expectGoAway(t, tt.want, atkWait)
			}
			heap.check(t, atkBound(cfg, atkShortRefuse), tt.name)
			g.check(t, "after the attack")
		})
	}
}
