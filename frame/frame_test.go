package frame

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func hdr(length uint32, t FrameType, flags Flags, id uint32) []byte {
	return AppendFrameHeader(nil, FrameHeader{Length: length, Type: t, Flags: flags, StreamID: id})
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReaderRejectsFramesThatBreakTheSpec(t *testing.T) {
	lim := Limits{MaxFrameSize: 1024, MaxHeaderBytes: 2048}
	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	tests := []struct {
		name  string
		input []byte
		code  ErrCode
	}{
		{"DATA longer than MAX_FRAME_SIZE", hdr(1025, FrameData, 0, 1), CodeFrameSizeError},
		{"DATA on stream 0", cat(hdr(1, FrameData, 0, 0), []byte{1}), CodeProtocolError},
		{"OPEN longer than MAX_HEADER_BYTES", hdr(2049, FrameOpen, 0, 1), CodeFrameSizeError},
		{"OPEN on stream 0", cat(hdr(2, FrameOpen, 0, 0), []byte{0, 0}), CodeProtocolError},
		{"ACCEPT with a payload", cat(hdr(1, FrameAccept, 0, 2), []byte{0}), CodeFrameSizeError},
		{"ACCEPT on stream 0", hdr(0, FrameAccept, 0, 0), CodeProtocolError},
		{"REFUSE without a code", cat(hdr(3, FrameRefuse, 0, 1), []byte{0, 0, 0}), CodeFrameSizeError},
		{"REFUSE with a reason over 1024 octets", hdr(4+1025, FrameRefuse, 0, 1), CodeFrameSizeError},
		{"RESET on stream 0", cat(hdr(4, FrameReset, 0, 0), u32(0)), CodeProtocolError},
		{"RESET with a reason over 1024 octets", hdr(4+1025, FrameReset, 0, 1), CodeFrameSizeError},
		{"WINDOW_UPDATE of 3 octets", cat(hdr(3, FrameWindowUpdate, 0, 1), []byte{0, 0, 1}), CodeFrameSizeError},
		{"WINDOW_UPDATE of 5 octets", cat(hdr(5, FrameWindowUpdate, 0, 1), u32(1), []byte{0}), CodeFrameSizeError},
		{"WINDOW_UPDATE with increment 0", cat(hdr(4, FrameWindowUpdate, 0, 1), u32(0)), CodeProtocolError},
		{"WINDOW_UPDATE with the top bit set", cat(hdr(4, FrameWindowUpdate, 0, 1), u32(1<<31)), CodeProtocolError},
		{"WINDOW_UPDATE on stream 0 (no session window)", cat(hdr(4, FrameWindowUpdate, 0, 0), u32(1)), CodeProtocolError},
		{"PING of 7 octets", cat(hdr(7, FramePing, 0, 0), make([]byte, 7)), CodeFrameSizeError},
		{"PING on a stream", cat(hdr(8, FramePing, 0, 1), make([]byte, 8)), CodeProtocolError},
		{"GOAWAY of 7 octets", cat(hdr(7, FrameGoAway, 0, 0), make([]byte, 7)), CodeFrameSizeError},
		{"GOAWAY with a reason over 1024 octets", hdr(8+1025, FrameGoAway, 0, 0), CodeFrameSizeError},
		{"GOAWAY on a stream", cat(hdr(8, FrameGoAway, 0, 3), make([]byte, 8)), CodeProtocolError},
		{"SETTINGS of 7 octets", cat(hdr(7, FrameSettings, 0, 0), make([]byte, 7)), CodeFrameSizeError},
		{"SETTINGS of 17 entries", hdr(6*17, FrameSettings, 0, 0), CodeFrameSizeError},
		{"SETTINGS on a stream", hdr(0, FrameSettings, 0, 1), CodeProtocolError},
		{"SETTINGS with MAX_FRAME_SIZE below 1024", AppendSettings(nil, Setting{SettingMaxFrameSize, 1023}), CodeProtocolError},
		{"SETTINGS with MAX_FRAME_SIZE above 2^24-1", AppendSettings(nil, Setting{SettingMaxFrameSize, 1 << 24}), CodeProtocolError},
		{"SETTINGS with INITIAL_STREAM_WINDOW above 2^31-1", AppendSettings(nil, Setting{SettingInitialStreamWindow, 1 << 31}), CodeProtocolError},
		{"SETTINGS with MAX_HEADER_BYTES above 2^24-1", AppendSettings(nil, Setting{SettingMaxHeaderBytes, 1 << 24}), CodeProtocolError},
		{"unknown frame longer than MAX_FRAME_SIZE", hdr(1025, 0x77, 0, 0), CodeFrameSizeError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.input), lim).ReadFrame()
			var se *SessionError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *SessionError", err)
			}
			if se.Code != tt.code {
				t.Fatalf("got code %v (%v), want %v", se.Code, se, tt.code)
			}
			if se.Reason == "" {
				t.Fatal("the error does not say what was wrong")
			}
		})
	}
}

func TestReaderRefusesOnlyTheStreamOfABadHeaderBlock(t *testing.T) {
	bad := cat(hdr(3, FrameOpen, 0, 5), []byte{0, 1, 0})
	good := AppendAccept(nil, 2)
	r := NewReader(bytes.NewReader(cat(bad, good)), Limits{})
	_, err := r.ReadFrame()
	var se *StreamError
	if !errors.As(err, &se) || se.StreamID != 5 || se.Code != CodeProtocolError {
		t.Fatalf("got %v, want a *StreamError for stream 5 with PROTOCOL_ERROR", err)
	}
	f, err := r.ReadFrame()
	if err != nil || f.Type != FrameAccept || f.StreamID != 2 {
		t.Fatalf("the frame after a bad header block: %v, %v; want ACCEPT on stream 2", f, err)
	}
}

// blockingReader hands out its octets, then blocks until the test ends, so a
// Reader that tries to read past them shows up as a timeout.
type blockingReader struct {
	data []byte
	done chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		<-b.done
		return 0, io.EOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestReaderChecksTheLengthBeforeReadingOrAllocating(t *testing.T) {
	// A header promising 16 MiB of DATA, then silence: the Reader must reject
	// it from the header alone, neither waiting for the payload nor
	// allocating for it (SPEC 3.1, 10.1).
	src := &blockingReader{data: hdr(MaxLength, FrameData, 0, 1), done: make(chan struct{})}
	defer close(src.done)
	r := NewReader(src, Limits{MaxFrameSize: 16 << 10})
	errc := make(chan error, 1)
	go func() { _, err := r.ReadFrame(); errc <- err }()
	select {
	case err := <-errc:
		var se *SessionError
		if !errors.As(err, &se) || se.Code != CodeFrameSizeError {
			t.Fatalf("got %v, want FRAME_SIZE_ERROR", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Reader waited for a payload it should have rejected")
	}
	if cap(r.buf) != 0 {
		t.Fatalf("the Reader allocated %d octets for a rejected frame", cap(r.buf))
	}
}

func TestReaderEndsCleanlyOnlyBetweenFrames(t *testing.T) {
	full := AppendData(nil, 1, 0, []byte("hello"))
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"no octets", nil, io.EOF},
		{"half a header", full[:4], io.ErrUnexpectedEOF},
		{"half a payload", full[:HeaderSize+2], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.input), Limits{}).ReadFrame()
			if err != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReaderSkipsUnreadPayloads(t *testing.T) {
	in := cat(AppendData(nil, 1, 0, []byte("skipped")), AppendData(nil, 3, FlagEndStream, []byte("read")))
	r := NewReader(bytes.NewReader(in), Limits{})
	if h, err := r.ReadFrameHeader(); err != nil || h.StreamID != 1 {
		t.Fatalf("first header: %v %v", h, err)
	}
	var two [2]byte
	if _, err := io.ReadFull(r, two[:]); err != nil || string(two[:]) != "sk" {
		t.Fatalf("partial payload: %q %v", two, err)
	}
	h, err := r.ReadFrameHeader()
	if err != nil || h.StreamID != 3 || !h.Flags.Has(FlagEndStream) {
		t.Fatalf("second header: %v %v", h, err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "read" {
		t.Fatalf("second payload: %q %v", got, err)
	}
}

func TestReadPreface(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"the preface", Preface, nil},
		{"the preface followed by frames", Preface + "\x00\x00\x00\x08", nil},
		{"an HTTP response", "HTTP/1.1 400 Bad Request\r\n", ErrBadPreface},
		{"another protocol version", "hstream\x02", ErrVersionMismatch},
		{"nothing at all", "", ErrBadPreface},
		{"a different short answer", "no", ErrBadPreface},
		{"the start of the preface, then the end", "hstr", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NewReader(strings.NewReader(tt.input), Limits{}).ReadPreface()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	err := NewReader(strings.NewReader("HTTP/1.1 403 Forbidden\r\n"), Limits{}).ReadPreface()
	if !strings.Contains(err.Error(), "did not upgrade") {
		t.Errorf("an HTTP answer should be named as such: %v", err)
	}
}

func TestHeaderBlockRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{"nil header", nil, http.Header{}},
		{"one value", http.Header{"Streamtype": {"error"}}, http.Header{"Streamtype": {"error"}}},
		{"multi-valued, order kept", http.Header{"Accept": {"b", "a", "c"}}, http.Header{"Accept": {"b", "a", "c"}}},
		{"empty value", http.Header{"X-Empty": {""}}, http.Header{"X-Empty": {""}}},
		{"a name without values is left out", http.Header{"X-None": {}, "A": {"1"}}, http.Header{"A": {"1"}}},
		{"names are made canonical", http.Header{"x-stream-protocol-version": {"v1"}}, http.Header{"X-Stream-Protocol-Version": {"v1"}}},
		{"names that become equal are merged in name order", http.Header{"foo": {"2"}, "Foo": {"1"}, "FOO": {"0"}}, http.Header{"Foo": {"0", "1", "2"}}},
		{"spaces and tabs inside values are kept", http.Header{"V": {" a\tb "}}, http.Header{"V": {" a\tb "}}},
		{"non-ASCII values are carried", http.Header{"V": {"h\u00e9llo"}}, http.Header{"V": {"h\u00e9llo"}}},
		{"a backquote is a token character (RFC 9110 tchar)", http.Header{"x-`odd`": {"1"}}, http.Header{"X-`odd`": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendHeaderBlock(nil, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeHeaderBlock(b)
			if err != nil {
				t.Fatal(err)
			}
			if !headersEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			again, _ := AppendHeaderBlock(nil, got)
			if !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
			}
		})
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || strings.Join(va, "\x00") != strings.Join(vb, "\x00") || len(va) != len(vb) {
			return false
		}
	}
	return true
}

func TestAppendHeaderBlockRejectsWhatCannotBeCarried(t *testing.T) {
	many := make([]string, MaxHeaderValues+1)
	tests := []struct {
		name string
		in   http.Header
	}{
		{"a name with a space", http.Header{"Bad Name": {"v"}}},
		{"a name with a colon", http.Header{"Bad:": {"v"}}},
		{"an empty name", http.Header{"": {"v"}}},
		{"a value with LF", http.Header{"V": {"a\nb"}}},
		{"a value with CR", http.Header{"V": {"a\rb"}}},
		{"a value with NUL", http.Header{"V": {"a\x00b"}}},
		{"more than 1024 values", http.Header{"V": many}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendHeaderBlock(dst, tt.in)
			var he *HeaderBlockError
			if !errors.As(err, &he) {
				t.Fatalf("got %v, want a *HeaderBlockError", err)
			}
			if string(out) != "keep" {
				t.Fatalf("a failed encode appended %q", out[4:])
			}
			if _, err := AppendOpen(nil, 1, tt.in); err == nil {
				t.Fatal("AppendOpen accepted it")
			}
		})
	}
}

func TestDecodeHeaderBlockRejectsMalformedBlocks(t *testing.T) {
	entry := func(name string, values ...string) []byte {
		b := []byte{byte(len(name) >> 8), byte(len(name))}
		b = append(b, name...)
		b = append(b, byte(len(values)>>8), byte(len(values)))
		for _, v := range values {
			b = append(b, byte(len(v)>>24), byte(len(v)>>16), byte(len(v)>>8), byte(len(v)))
			b = append(b, v...)
		}
		return b
	}
	block := func(n int, entries ...[]byte) []byte {
		return cat(append([][]byte{{byte(n >> 8), byte(n)}}, entries...)...)
	}
	tests := []struct {
		name  string
		input []byte
	}{
		{"empty payload", nil},
		{"one octet", []byte{0}},
		{"count larger than the entries", block(2, entry("A", "1"))},
		{"names out of order", block(2, entry("B", "1"), entry("A", "1"))},
		{"a name twice", block(2, entry("A", "1"), entry("A", "2"))},
		{"a name not in canonical form", block(1, entry("content-type", "x"))},
		{"a name with upper case inside", block(1, entry("ConTent", "x"))},
		{"an empty name", block(1, entry("", "x"))},
		{"a name outside the token alphabet", block(1, entry("A B", "x"))},
		{"a name without values", block(1, entry("A"))},
		{"a value with LF", block(1, entry("A", "x\ny"))},
		{"a value with NUL", block(1, entry("A", "\x00"))},
		{"a value cut short", block(1, entry("A", "xyz"))[:12]},
		{"a value length past the end", cat(block(1, entry("A", "x"))[:7], []byte{0xff, 0xff, 0xff, 0xff})},
		{"octets after the last entry", cat(block(1, entry("A", "x")), []byte{0})},
		{"more than 1024 values", block(1, entry("A", make([]string, MaxHeaderValues+1)...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := DecodeHeaderBlock(tt.input)
			var he *HeaderBlockError
			if !errors.As(err, &he) {
				t.Fatalf("got %v, %v; want a *HeaderBlockError", h, err)
			}
		})
	}
}

func TestTruncateReasonCutsAtACharacterBoundary(t *testing.T) {
	short := "fine"
	if TruncateReason(short) != short {
		t.Fatal("a short reason was changed")
	}
	long := strings.Repeat("a", MaxReasonBytes-1) + "\u00e9\u00e9" // é is 2 octets: the first straddles the limit
	got := TruncateReason(long)
	if len(got) != MaxReasonBytes-1 || !strings.HasSuffix(got, "a") {
		t.Fatalf("cut to %d octets ending %q", len(got), got[len(got)-2:])
	}
	b := AppendReset(nil, 1, CodeCancel, strings.Repeat("x", 5000))
	f, err := NewReader(bytes.NewReader(b), Limits{}).ReadFrame()
	if err != nil || len(f.Reason) != MaxReasonBytes {
		t.Fatalf("a long reason is not cut to fit: %v", err)
	}
}

func TestNamesOfTypesCodesAndSettings(t *testing.T) {
	tests := []struct{ got, want string }{
		{FrameData.String(), "DATA"},
		{FrameWindowUpdate.String(), "WINDOW_UPDATE"},
		{FrameSettings.String(), "SETTINGS"},
		{FrameType(42).String(), "UNKNOWN_FRAME_TYPE_42"},
		{CodeNoError.String(), "NO_ERROR"},
		{CodeGoingAway.String(), "GOING_AWAY"},
		{ErrCode(0x1234).String(), "UNKNOWN_ERROR_0x1234"},
		{SettingMaxHeaderBytes.String(), "MAX_HEADER_BYTES"},
		{SettingID(0).String(), "UNKNOWN_SETTING_0"},
		{SettingID(99).String(), "UNKNOWN_SETTING_99"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// loopReader serves the same octets forever, for steady-state reading.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func TestReadingDataAllocatesNothingOnceWarm(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, 32<<10)
	src := &loopReader{data: AppendData(nil, 1, 0, payload)}
	r := NewReader(src, Limits{MaxFrameSize: 64 << 10})
	own := make([]byte, len(payload))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ReadFrame of DATA: %v allocations per frame, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadFrameHeader(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, own); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ReadFrameHeader + Read of DATA: %v allocations per frame, want 0", n)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendFrameHeader(buf[:0], FrameHeader{Length: 5, Type: FrameData, StreamID: 1})
		buf = AppendWindowUpdate(buf[:0], 1, 1000)
		buf = AppendPing(buf[:0], FlagAck, [8]byte{})
	}); n != 0 {
		t.Errorf("encoding control frames: %v allocations, want 0", n)
	}
}
