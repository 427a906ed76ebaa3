package fuzz

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/httpstream-go/httpstream/frame"
)

// Small limits, so that inputs reach the oversize paths cheaply.
var fuzzLimits = frame.Limits{MaxFrameSize: 4096, MaxHeaderBytes: 2048}

// goldenSeeds returns every vector of frame/testdata/golden.txt and each of
// its truncated prefixes.
func goldenSeeds(t testing.TB) [][]byte {
	text, err := os.ReadFile("../frame/testdata/golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for _, line := range strings.Split(string(text), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		b, err := hex.DecodeString(fields[1])
		if err != nil {
			t.Fatalf("golden line %q: %v", line, err)
		}
		for n := 0; n <= len(b); n++ {
			seeds = append(seeds, b[:n])
		}
	}
	return seeds
}

// limitFor is the largest payload the Reader may accept for a frame type
// (SPEC 10.1).
func limitFor(t frame.FrameType) uint32 {
	switch t {
	case frame.FrameData:
		return fuzzLimits.MaxFrameSize
	case frame.FrameOpen:
		return fuzzLimits.MaxHeaderBytes
	case frame.FrameAccept:
		return 0
	case frame.FrameRefuse, frame.FrameReset:
		return 4 + frame.MaxReasonBytes
	case frame.FrameWindowUpdate:
		return 4
	case frame.FramePing:
		return 8
	case frame.FrameGoAway:
		return 8 + frame.MaxReasonBytes
	case frame.FrameSettings:
		return 6 * frame.MaxSettings
	}
	return fuzzLimits.MaxFrameSize
}

// FuzzFrameReader decodes a stream of frames and checks, for every frame
// that decodes: its length is within the limit for its type, so nothing was
// allocated beyond the limits; re-encoding it gives exactly the octets read
// (SPEC 11); and decoding that encoding gives the same frame.
func FuzzFrameReader(f *testing.F) {
	seeds := goldenSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	// Several frames in a row, and garbage after a good frame.
	f.Add(bytes.Join(seeds, nil))
	f.Add(append(frame.AppendAccept(nil, 2), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := frame.NewReader(bytes.NewReader(in), fuzzLimits)
		off := 0
		for {
			fr, err := r.ReadFrame()
			var streamErr *frame.StreamError
			switch {
			case err == nil:
			case errors.As(err, &streamErr):
				// A bad header block: the stream is refused, the session
				// reads on (SPEC 4.2).
				if fr == nil || fr.Type != frame.FrameOpen || streamErr.StreamID != fr.StreamID {
					t.Fatalf("stream error %v for frame %v", err, fr)
				}
				off += frame.HeaderSize + int(fr.Length)
				continue
			default:
				var sessionErr *frame.SessionError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &sessionErr) {
					t.Fatalf("an error that is neither EOF nor typed: %v", err)
				}
				return
			}
			if fr.Length > limitFor(fr.Type) {
				t.Fatalf("%v accepted past its limit %d", fr, limitFor(fr.Type))
			}
			n := frame.HeaderSize + int(fr.Length)
			raw := in[off : off+n]
			off += n
			enc, err := fr.AppendTo(nil)
			if err != nil {
				t.Fatalf("re-encoding %v: %v", fr, err)
			}
			if !bytes.Equal(enc, raw) {
				t.Fatalf("re-encoding %v gives\n%x\nread\n%x", fr, enc, raw)
			}
			again, err := frame.NewReader(bytes.NewReader(enc), fuzzLimits).ReadFrame()
			if err != nil {
				t.Fatalf("decoding the re-encoding of %v: %v", fr, err)
			}
			if !again.Equal(fr) {
				t.Fatalf("decode(encode(f)) = %v, f = %v", again, fr)
			}
		}
	})
}

// FuzzHeaderBlock checks the header block codec both ways: any octets that
// decode re-encode to the same octets (SPEC 11), and any header built from
// the input either fails to encode with an error or survives a round trip.
func FuzzHeaderBlock(f *testing.F) {
	for _, h := range []http.Header{
		{},
		{"Streamtype": {"stdout"}, "X-Stream-Protocol-Version": {"v4.channel.k8s.io"}},
		{"Accept": {"a", "b"}, "X-Empty": {""}},
	} {
		b, err := frame.AppendHeaderBlock(nil, h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name=value\nother=1\nname=2"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if h, err := frame.DecodeHeaderBlock(in); err == nil {
			enc, err := frame.AppendHeaderBlock(nil, h)
			if err != nil {
				t.Fatalf("re-encoding %v: %v", h, err)
			}
			if !bytes.Equal(enc, in) {
				t.Fatalf("re-encoding %v gives\n%x\nread\n%x", h, enc, in)
			}
		}
		// Read the input as lines of name=value and encode that.
		h := http.Header{}
		for _, line := range strings.Split(string(in), "\n") {
			name, value, _ := strings.Cut(line, "=")
			h[name] = append(h[name], value)
		}
		enc, err := frame.AppendHeaderBlock(nil, h)
		if err != nil {
			return // names or values the format cannot carry: a clear error is right
		}
		got, err := frame.DecodeHeaderBlock(enc)
		if err != nil {
			t.Fatalf("decoding what AppendHeaderBlock produced for %q: %v", h, err)
		}
		want := http.Header{}
		for name, values := range h {
			want[http.CanonicalHeaderKey(name)] = append(want[http.CanonicalHeaderKey(name)], values...)
		}
		for name, values := range want {
			if len(got[name]) != len(values) {
				t.Fatalf("%q: got %q, want %q", name, got[name], values)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("got %d names, want %d", len(got), len(want))
		}
	})
}
