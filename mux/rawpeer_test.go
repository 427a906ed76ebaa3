package mux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

// rawPeer speaks the wire protocol by hand, frame by frame, so tests can
// send what a well-behaved peer never would.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	fr   *frame.Reader
}

// newRawPeer returns a session of this package (a server unless client is
// set, with handler h) connected over net.Pipe to a raw peer that has sent
// its preface and SETTINGS and read the session's.
func newRawPeer(t testing.TB, client bool, h func(*Stream), cfg *Config) (*Session, *rawPeer) {
	t.Helper()
	a, b := net.Pipe()
	var handler func(st httpstream.Stream, replySent <-chan struct{}) error
	if h != nil {
		handler = func(st httpstream.Stream, _ <-chan struct{}) error { h(st.(*Stream)); return nil }
	}
	var s *Session
	var err error
	if client {
		s, err = Client(a, handler, cfg)
	} else {
		s, err = Server(a, handler, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, conn: b, fr: frame.NewReader(b, frame.Limits{MaxFrameSize: frame.MaxLength, MaxHeaderBytes: frame.MaxLength})}
	t.Cleanup(func() { b.Close(); s.Close() })
	p.conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Read and write concurrently: net.Pipe is synchronous.
	errc := make(chan error, 1)
	go func() {
		_, err := b.Write(frame.AppendSettings([]byte(frame.Preface), frame.Setting{ID: frame.SettingInitialStreamWindow, Value: 1 << 20}))
		errc <- err
	}()
	if err := p.fr.ReadPreface(); err != nil {
		t.Fatal(err)
	}
	if f := p.next(); f.Type != frame.FrameSettings {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return s, p
}

// send writes frames built by the given appenders, from a goroutine so that
// the synchronous pipe cannot deadlock against the session's own writes.
func (p *rawPeer) send(b []byte) {
	done := make(chan error, 1)
	go func() { _, err := p.conn.Write(b); done <- err }()
	for {
		select {
		case err := <-done:
			if err != nil {
				p.t.Fatalf("raw peer write: %v", err)
			}
			return
		case <-time.After(10 * time.Second):
			p.t.Fatal("raw peer write blocked for 10s")
		}
	}
}

// next returns the next frame the session sent, skipping PINGs (which it
// answers) and WINDOW_UPDATEs.
func (p *rawPeer) next() *frame.Frame {
	p.t.Helper()
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("raw peer read: %v", err)
		}
		if f.Type == frame.FramePing && !f.Flags.Has(frame.FlagAck) {
			go p.conn.Write(frame.AppendPing(nil, frame.FlagAck, f.PingData))
			continue
		}
		if f.Type == frame.FramePing || f.Type == frame.FrameWindowUpdate {
			continue
		}
		return f
	}
}

// expectGoAway reads until a GOAWAY and checks its code.
func (p *rawPeer) expectGoAway(code frame.ErrCode) *frame.Frame {
	p.t.Helper()
	for {
		f := p.next()
		if f.Type == frame.FrameGoAway {
			if f.Code != code {
				p.t.Fatalf("GOAWAY %v (%q), want %v", f.Code, f.Reason, code)
			}
			if f.Reason == "" {
				p.t.Fatal("GOAWAY without a reason")
			}
			return f
		}
	}
}

func waitClosed(t testing.TB, s *Session) error {
	t.Helper()
	select {
	case <-s.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("session did not close within 10s")
	}
	return s.closedErr()
}

func header(t frame.FrameType, flags frame.Flags, id uint32, payload []byte) []byte {
	return append(frame.AppendFrameHeader(nil, frame.FrameHeader{Length: uint32(len(payload)), Type: t, Flags: flags, StreamID: id}), payload...)
}

func openFrame(id uint32, h http.Header) []byte {
	b, err := frame.AppendOpen(nil, id, h)
	if err != nil {
		panic(err)
	}
	return b
}

func TestPeerThatBreaksTheProtocolGetsGoAwayAndTheSessionCloses(t *testing.T) {
	tests := []struct {
		name  string
		send  func(p *rawPeer)
		code  frame.ErrCode
		local string // a word the local error must contain
	}{
		{"DATA on a stream never opened", func(p *rawPeer) {
			p.send(frame.AppendData(nil, 7, 0, []byte("x")))
		}, frame.CodeProtocolError, "never opened"},
		{"OPEN with the server's parity", func(p *rawPeer) {
			p.send(openFrame(2, nil))
		}, frame.CodeProtocolError, "parity"},
		{"OPEN with a decreasing ID", func(p *rawPeer) {
			p.send(openFrame(5, nil))
			p.next() // ACCEPT
			p.send(openFrame(3, nil))
		}, frame.CodeProtocolError, "increase"},
		{"a second SETTINGS", func(p *rawPeer) {
			p.send(frame.AppendSettings(nil))
		}, frame.CodeProtocolError, "second SETTINGS"},
		{"DATA past the window", func(p *rawPeer) {
			p.send(openFrame(1, nil))
			p.next() // ACCEPT
			p.send(frame.AppendData(nil, 1, 0, make([]byte, 2048)))
		}, frame.CodeFlowControlError, "window"},
		{"a window pushed past 2^31-1", func(p *rawPeer) {
			p.send(openFrame(1, nil))
			p.next() // ACCEPT
			p.send(frame.AppendWindowUpdate(nil, 1, frame.MaxWindow))
		}, frame.CodeFlowControlError, "2^31-1"},
		{"DATA before ACCEPT on a stream the session opened", func(p *rawPeer) {
			p.send(frame.AppendData(nil, 2, 0, []byte("early")))
		}, frame.CodeProtocolError, "never opened"},
		{"ACCEPT for a stream the peer opened itself", func(p *rawPeer) {
			p.send(openFrame(1, nil))
			p.next() // ACCEPT
			p.send(frame.AppendAccept(nil, 1))
		}, frame.CodeProtocolError, "ACCEPT"},
		{"a header block longer than MaxHeaderBytes", func(p *rawPeer) {
			p.send(openFrame(1, http.Header{"Big": {string(bytes.Repeat([]byte("x"), 2000))}}))
		}, frame.CodeFrameSizeError, "OPEN"},
		{"a GOAWAY naming a stream never opened", func(p *rawPeer) {
			p.send(frame.AppendGoAway(nil, 200, frame.CodeNoError, ""))
		}, frame.CodeProtocolError, "never opened"},
		{"a PING on a stream", func(p *rawPeer) {
			p.send(header(frame.FramePing, 0, 1, make([]byte, 8)))
		}, frame.CodeProtocolError, "stream 0"},
		{"a WINDOW_UPDATE of 0", func(p *rawPeer) {
			p.send(header(frame.FrameWindowUpdate, 0, 1, []byte{0, 0, 0, 0}))
		}, frame.CodeProtocolError, "increment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{InitialStreamWindow: 1024, MaxHeaderBytes: 1024}
			s, p := newRawPeer(t, false, func(*Stream) {}, cfg)
			tt.send(p)
			p.expectGoAway(tt.code)
			err := waitClosed(t, s)
			if !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("session error %v does not match ErrSessionClosed", err)
			}
			var fe *frame.SessionError
			if !errors.As(err, &fe) || fe.Code != tt.code {
				t.Fatalf("session error %v does not carry code %v", err, tt.code)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.local)) {
				t.Fatalf("session error %q does not say %q", err, tt.local)
			}
		})
	}
}

func TestBadHeaderBlockRefusesOnlyThatStream(t *testing.T) {
	accepted := make(chan *Stream, 1)
	s, p := newRawPeer(t, false, func(st *Stream) { accepted <- st }, nil)
	// A block whose names are out of order (SPEC 5 rule 2).
	bad := []byte{0, 2, 0, 1, 'B', 0, 1, 0, 0, 0, 0, 0, 1, 'A', 0, 1, 0, 0, 0, 0}
	p.send(header(frame.FrameOpen, 0, 1, bad))
	f := p.next()
	if f.Type != frame.FrameRefuse || f.StreamID != 1 || f.Code != frame.CodeProtocolError {
		t.Fatalf("got %v, want REFUSE of stream 1 with PROTOCOL_ERROR", f)
	}
	p.send(openFrame(3, http.Header{"Ok": {"1"}}))
	if f := p.next(); f.Type != frame.FrameAccept || f.StreamID != 3 {
		t.Fatalf("got %v, want ACCEPT of stream 3", f)
	}
	if st := <-accepted; st.Headers().Get("Ok") != "1" {
		t.Fatalf("headers %v", st.Headers())
	}
	if s.NumStreams() != 1 {
		t.Fatalf("NumStreams %d, want 1", s.NumStreams())
	}
}

func TestFramesForClosedStreamsAndUnknownTypesAreIgnored(t *testing.T) {
	accepted := make(chan *Stream, 1)
	s, p := newRawPeer(t, false, func(st *Stream) { accepted <- st }, nil)
	p.send(openFrame(1, nil))
	p.next() // ACCEPT
	st := <-accepted
	st.Reset()
	if f := p.next(); f.Type != frame.FrameReset || f.Code != frame.CodeCancel {
		t.Fatalf("got %v, want RESET CANCEL", f)
	}
	// In flight before the RESET arrived: all ignored (SPEC 6.4).
	p.send(frame.AppendData(nil, 1, 0, []byte("late")))
	p.send(frame.AppendWindowUpdate(nil, 1, 100))
	p.send(frame.AppendReset(nil, 1, frame.CodeCancel, ""))
	p.send(header(0x42, 0x7, 1, []byte("from the future"))) // SPEC 3.4
	p.send(openFrame(3, nil))
	if f := p.next(); f.Type != frame.FrameAccept || f.StreamID != 3 {
		t.Fatalf("got %v, want ACCEPT of stream 3: the session should have carried on", f)
	}
	<-accepted
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("Read after Reset: %v", err)
	}
	_ = s
}

func TestDataAfterEndStreamResetsOnlyThatStream(t *testing.T) {
	accepted := make(chan *Stream, 1)
	_, p := newRawPeer(t, false, func(st *Stream) { accepted <- st }, nil)
	p.send(openFrame(1, nil))
	p.next()
	st := <-accepted
	p.send(frame.AppendData(nil, 1, frame.FlagEndStream, []byte("done")))
	p.send(frame.AppendData(nil, 1, 0, []byte("more")))
	if f := p.next(); f.Type != frame.FrameReset || f.Code != frame.CodeStreamClosed {
		t.Fatalf("got %v, want RESET STREAM_CLOSED", f)
	}
	if _, err := io.ReadAll(st); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("ReadAll: %v, want ErrStreamReset", err)
	}
}

func TestPeerThatDoesNotSpeakTheProtocolFailsAtOnce(t *testing.T) {
	a, b := net.Pipe()
	s, err := Client(a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go io.Copy(io.Discard, b)
	go b.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	err = waitClosed(t, s)
	if !errors.Is(err, frame.ErrBadPreface) || !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("got %v, want ErrBadPreface and ErrSessionClosed", err)
	}
	b.Close()
}

// Unknown frames have no effect on timers (SPEC 3.4): a peer that sends only
// those, and never answers a PING, is timed out by the keepalive.
func TestAPeerThatSendsOnlyUnknownFramesIsTimedOutByTheKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		s, err := Server(a, nil, &Config{KeepAliveInterval: time.Second, KeepAliveTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		defer b.Close()
		// Answer PINGs (the session's round-trip probes) for the first
		// half second, then none.
		var answering atomic.Bool
		answering.Store(true)
		go func() {
			fr := frame.NewReader(b, frame.Limits{MaxFrameSize: frame.MaxLength, MaxHeaderBytes: frame.MaxLength})
			if fr.ReadPreface() != nil {
				return
			}
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if f.Type == frame.FramePing && !f.Flags.Has(frame.FlagAck) && answering.Load() {
					go b.Write(frame.AppendPing(nil, frame.FlagAck, f.PingData))
				}
			}
		}()
		b.Write(frame.AppendSettings([]byte(frame.Preface)))
		time.AfterFunc(500*time.Millisecond, func() { answering.Store(false) })
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					if _, err := b.Write(header(0x42, 0, 0, []byte("chatter"))); err != nil {
						return
					}
				}
			}
		}()
		select {
		case <-s.CloseChan():
		case <-time.After(time.Minute):
			t.Fatal("the session is still open after a minute of unknown frames and no PING answered")
		}
		if err := s.closedErr(); !strings.Contains(err.Error(), "keepalive") {
			t.Fatalf("the session ended with %v, want the keepalive timeout", err)
		}
	})
}
