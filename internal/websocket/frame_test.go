package websocket

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// unhex decodes hex written with spaces, as the RFC prints frames.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcExamples are the frames of RFC 6455 5.7, byte for byte, with what
// they carry.
var rfcExamples = []struct {
	name    string
	wire    string
	header  Header
	payload string // unmasked; "" for the long ones, checked apart
}{
	{"a single-frame unmasked text message", "81 05 48 65 6c 6c 6f",
		Header{Fin: true, Opcode: OpText, Length: 5}, "Hello"},
	{"a single-frame masked text message", "81 85 37 fa 21 3d 7f 9f 4d 51 58",
		Header{Fin: true, Opcode: OpText, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, Length: 5}, "Hello"},
	{"the first fragment of an unmasked text message", "01 03 48 65 6c",
		Header{Opcode: OpText, Length: 3}, "Hel"},
	{"the last fragment of an unmasked text message", "80 02 6c 6f",
		Header{Fin: true, Opcode: OpContinuation, Length: 2}, "lo"},
	{"an unmasked ping", "89 05 48 65 6c 6c 6f",
		Header{Fin: true, Opcode: OpPing, Length: 5}, "Hello"},
	{"a masked pong", "8a 85 37 fa 21 3d 7f 9f 4d 51 58",
		Header{Fin: true, Opcode: OpPong, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, Length: 5}, "Hello"},
	{"256 bytes in a single unmasked binary frame", "82 7e 01 00",
		Header{Fin: true, Opcode: OpBinary, Length: 256}, ""},
	{"64 KiB in a single unmasked binary frame", "82 7f 00 00 00 00 00 01 00 00",
		Header{Fin: true, Opcode: OpBinary, Length: 65536}, ""},
}

func TestTheRFCsExampleFramesDecodeAndEncodeByteForByte(t *testing.T) {
	for _, ex := range rfcExamples {
		t.Run(ex.name, func(t *testing.T) {
			wire := unhex(t, ex.wire)
			h, n, err := ParseHeader(wire)
			if err != nil {
				t.Fatal(err)
			}
			if h != ex.header {
				t.Fatalf("header = %+v, want %+v", h, ex.header)
			}
			if got := AppendHeader(nil, h); !bytes.Equal(got, wire[:n]) {
				t.Errorf("AppendHeader = % x, want % x", got, wire[:n])
			}
			if HeaderSize(h) != n {
				t.Errorf("HeaderSize = %d, the header takes %d", HeaderSize(h), n)
			}
			if ex.payload == "" {
				return
			}
			payload := bytes.Clone(wire[n:])
			Mask(payload, h.Key, 0)
			if string(payload) != ex.payload {
				t.Errorf("payload = %q, want %q", payload, ex.payload)
			}
			// And back: masking the text with the RFC's key gives its octets.
			masked := make([]byte, len(ex.payload))
			MaskCopy(masked, []byte(ex.payload), h.Key, 0)
			if !bytes.Equal(masked, wire[n:]) {
				t.Errorf("masked = % x, want % x", masked, wire[n:])
			}
		})
	}
}

func TestTheRFCsHandshakeExample(t *testing.T) {
	// RFC 6455 1.3 and 4.2.2.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("AcceptKey = %q, want the RFC's s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", got)
	}
	if !ValidKey("dGhlIHNhbXBsZSBub25jZQ==") {
		t.Error("the RFC's key is not valid")
	}
	for _, bad := range []string{"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=!", "dGhlIHNhbXBsZSBub25jZXM=", "dGhlIHNhbXBsZSBub25jZQ==dGhl"} {
		if ValidKey(bad) {
			t.Errorf("ValidKey(%q) = true", bad)
		}
	}
	if k := NewKey(); !ValidKey(k) || k == NewKey() {
		t.Errorf("NewKey gave %q, which is invalid or not fresh", k)
	}
}

func TestLengthsAtTheBoundariesOfTheirForms(t *testing.T) {
	for _, tt := range []struct {
		length uint64
		wire   string // the length octets after the first octet, mask bit clear
	}{
		{0, "00"},
		{125, "7d"},
		{126, "7e 00 7e"},
		{65535, "7e ff ff"},
		{65536, "7f 00 00 00 00 00 01 00 00"},
		{MaxLength, "7f 7f ff ff ff ff ff ff ff"},
	} {
		t.Run(fmt.Sprint(tt.length), func(t *testing.T) {
			h := Header{Fin: true, Opcode: OpBinary, Length: tt.length}
			want := append([]byte{0x82}, unhex(t, tt.wire)...)
			if got := AppendHeader(nil, h); !bytes.Equal(got, want) {
				t.Fatalf("AppendHeader = % x, want % x", got, want)
			}
			got, n, err := ParseHeader(want)
			if err != nil || got != h || n != len(want) {
				t.Fatalf("ParseHeader = %+v, %d, %v", got, n, err)
			}
			// Every shorter prefix asks for more, never for less than it has.
			for i := range want {
				_, need, err := ParseHeader(want[:i])
				if err != ErrShortHeader || need <= i {
					t.Fatalf("ParseHeader of %d octets = need %d, %v", i, need, err)
				}
			}
		})
	}
}

func TestLengthsThatBreakTheRulesAreProtocolErrors(t *testing.T) {
	for _, tt := range []struct{ name, wire string }{
		{"64-bit length with the top bit set", "82 7f 80 00 00 00 00 00 00 00"},
		{"125 in the 16-bit form", "82 7e 00 7d"},
		{"65535 in the 64-bit form", "82 7f 00 00 00 00 00 00 ff ff"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseHeader(unhex(t, tt.wire))
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != CloseProtocolError {
				t.Fatalf("err = %v, want a 1002 *ProtocolError", err)
			}
		})
	}
}

func TestCheckAppliesTheRulesOfOneHeader(t *testing.T) {
	masked := func(h Header) Header { h.Masked = true; return h }
	for _, tt := range []struct {
		name   string
		h      Header
		client bool // the receiver
		ok     bool
	}{
		{"a masked binary frame to a server", masked(Header{Fin: true, Opcode: OpBinary}), false, true},
		{"an unmasked binary frame to a client", Header{Fin: true, Opcode: OpBinary}, true, true},
		{"an unmasked frame to a server", Header{Fin: true, Opcode: OpBinary}, false, false},
		{"a masked frame to a client", masked(Header{Fin: true, Opcode: OpBinary}), true, false},
		{"RSV1", Header{Fin: true, RSV: 4, Opcode: OpBinary}, true, false},
		{"RSV3", Header{Fin: true, RSV: 1, Opcode: OpBinary}, true, false},
		{"a text frame", Header{Fin: true, Opcode: OpText}, true, false},
		{"reserved data opcode 3", Header{Fin: true, Opcode: 3}, true, false},
		{"reserved control opcode 0xB", Header{Fin: true, Opcode: 0xB}, true, false},
		{"a 125-octet ping", Header{Fin: true, Opcode: OpPing, Length: 125}, true, true},
		{"a 126-octet ping", Header{Fin: true, Opcode: OpPing, Length: 126}, true, false},
		{"a fragmented ping", Header{Opcode: OpPing}, true, false},
		{"a close with a 1-octet body", Header{Fin: true, Opcode: OpClose, Length: 1}, true, false},
		{"a close with no body", Header{Fin: true, Opcode: OpClose}, true, true},
		{"a first fragment", Header{Opcode: OpBinary, Length: 1 << 40}, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.h, tt.client)
			if (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok %v", err, tt.ok)
			}
			var pe *ProtocolError
			if err != nil && (!errors.As(err, &pe) || pe.Code != CloseProtocolError) {
				t.Fatalf("err = %v, want a 1002 *ProtocolError", err)
			}
		})
	}
}

func TestOpcodesHaveNames(t *testing.T) {
	if OpPing.String() != "PING" || Opcode(3).String() != "UNKNOWN_OPCODE_0x3" {
		t.Errorf("names: %v %v", OpPing, Opcode(3))
	}
}

// naiveMask is RFC 6455 5.3 as written: octet i XOR key[i mod 4].
func naiveMask(b []byte, key [4]byte, pos int) {
	for i := range b {
		b[i] ^= key[(pos+i)%4]
	}
}

func TestMaskMatchesTheRFCsDefinitionAtEveryOffset(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	src := make([]byte, 200)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for pos := range 8 {
		for n := range 100 {
			want := bytes.Clone(src[:n])
			naiveMask(want, key, pos)
			got := make([]byte, n)
			if end := MaskCopy(got, src[:n], key, pos); end != pos+n {
				t.Fatalf("MaskCopy returned %d, want %d", end, pos+n)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("pos %d, n %d: % x, want % x", pos, n, got, want)
			}
			// Split in two at every point: the position carries over.
			for cut := 0; cut <= n; cut += 5 {
				in := bytes.Clone(src[:n])
				p := Mask(in[:cut], key, pos)
				Mask(in[cut:], key, p)
				if !bytes.Equal(in, want) {
					t.Fatalf("pos %d, n %d, cut %d: % x, want % x", pos, n, cut, in, want)
				}
			}
		}
	}
}

func BenchmarkMask(b *testing.B) {
	for _, size := range []int{64, 32 << 10} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			src := make([]byte, size)
			dst := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				MaskCopy(dst, src, [4]byte{1, 2, 3, 4}, 1)
			}
		})
	}
}
