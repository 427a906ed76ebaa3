package frame

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt from the frames in golden_test.go")

const goldenPath = "testdata/golden.txt"

// goldenFrames are the frames whose exact octets testdata/golden.txt fixes
// (SPEC 12): every type, and every flag combination that changes meaning.
var goldenFrames = []struct {
	name  string
	frame Frame
}{
	{"data", Frame{FrameHeader: FrameHeader{Type: FrameData, StreamID: 1}, Data: []byte("hello")}},
	{"data-end-stream", Frame{FrameHeader: FrameHeader{Type: FrameData, Flags: FlagEndStream, StreamID: 3}, Data: []byte("bye")}},
	{"data-empty-end-stream", Frame{FrameHeader: FrameHeader{Type: FrameData, Flags: FlagEndStream, StreamID: 2}}},
	{"data-undefined-flags-kept", Frame{FrameHeader: FrameHeader{Type: FrameData, Flags: 0x80 | FlagEndStream, StreamID: 4}, Data: []byte("x")}},
	{"data-max-stream-id", Frame{FrameHeader: FrameHeader{Type: FrameData, StreamID: 0xffffffff}, Data: []byte{0, 0xff}}},
	{"open", Frame{FrameHeader: FrameHeader{Type: FrameOpen, StreamID: 1}, Headers: http.Header{
		"Streamtype":                {"stdout"},
		"X-Stream-Protocol-Version": {"v4.channel.k8s.io"},
	}}},
	{"open-multi-valued", Frame{FrameHeader: FrameHeader{Type: FrameOpen, StreamID: 6}, Headers: http.Header{
		"Accept":  {"a", "b"},
		"X-Empty": {""},
	}}},
	{"open-no-headers", Frame{FrameHeader: FrameHeader{Type: FrameOpen, StreamID: 3}, Headers: http.Header{}}},
	{"accept", Frame{FrameHeader: FrameHeader{Type: FrameAccept, StreamID: 2}}},
	{"refuse", Frame{FrameHeader: FrameHeader{Type: FrameRefuse, StreamID: 3}, Code: CodeRefused, Reason: "no such container"}},
	{"refuse-stream-limit", Frame{FrameHeader: FrameHeader{Type: FrameRefuse, StreamID: 5}, Code: CodeStreamLimit, Reason: "too many streams (100)"}},
	{"window-update", Frame{FrameHeader: FrameHeader{Type: FrameWindowUpdate, StreamID: 1}, Increment: 65536}},
	{"window-update-max", Frame{FrameHeader: FrameHeader{Type: FrameWindowUpdate, StreamID: 2}, Increment: MaxWindow}},
	{"reset", Frame{FrameHeader: FrameHeader{Type: FrameReset, StreamID: 5}, Code: CodeCancel}},
	{"reset-with-reason", Frame{FrameHeader: FrameHeader{Type: FrameReset, StreamID: 7}, Code: CodeStreamClosed, Reason: "DATA after END_STREAM"}},
	{"ping", Frame{FrameHeader: FrameHeader{Type: FramePing}, PingData: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}},
	{"ping-ack", Frame{FrameHeader: FrameHeader{Type: FramePing, Flags: FlagAck}, PingData: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}},
	{"goaway-graceful", Frame{FrameHeader: FrameHeader{Type: FrameGoAway}, LastStreamID: 7, Code: CodeNoError}},
	{"goaway-closed", Frame{FrameHeader: FrameHeader{Type: FrameGoAway}, LastStreamID: 0, Code: CodeSessionClosed, Reason: "closed by the application"}},
	{"goaway-protocol-error", Frame{FrameHeader: FrameHeader{Type: FrameGoAway}, LastStreamID: 4, Code: CodeProtocolError, Reason: "DATA on stream 9, which was never opened"}},
	{"settings", Frame{FrameHeader: FrameHeader{Type: FrameSettings}, Settings: []Setting{
		{SettingMaxFrameSize, 32768},
		{SettingInitialStreamWindow, 262144},
		{SettingMaxHeaderBytes, 16384},
		{SettingMaxConcurrentStreams, 256},
	}}},
	{"settings-empty", Frame{FrameHeader: FrameHeader{Type: FrameSettings}}},
	{"settings-unknown-kept", Frame{FrameHeader: FrameHeader{Type: FrameSettings}, Settings: []Setting{{0x99, 7}, {SettingMaxFrameSize, 1024}}}},
	{"unknown-type-kept", Frame{FrameHeader: FrameHeader{Type: 0x2a, Flags: 0x3, StreamID: 9}, Data: []byte("future")}},
}

func TestGoldenVectors(t *testing.T) {
	var out strings.Builder
	out.WriteString("# Golden wire vectors of httpstream protocol version 1 (frame/SPEC.md section 12).\n")
	out.WriteString("# Each entry: a comment describing the frame, then \"name hex\". Regenerate with\n")
	out.WriteString("#   go test ./frame -run TestGoldenVectors -update\n")
	out.WriteString("# and review the diff: any change here is a change of the wire format.\n\n")
	fmt.Fprintf(&out, "# connection preface (SPEC 2.2)\npreface %x\n\n", Preface)
	got := map[string]string{"preface": hex.EncodeToString([]byte(Preface))}
	for _, g := range goldenFrames {
		b, err := g.frame.AppendTo(nil)
		if err != nil {
			t.Fatalf("%s: encode: %v", g.name, err)
		}
		got[g.name] = hex.EncodeToString(b)
		described := g.frame
		described.Length = uint32(len(b) - HeaderSize)
		fmt.Fprintf(&out, "# %v\n%s %x\n\n", &described, g.name, b)
	}
	if *update {
		if err := os.WriteFile(goldenPath, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readGolden(t)
	if len(want) != len(got) {
		t.Errorf("golden file has %d vectors, the test defines %d (run with -update after a deliberate change)", len(want), len(got))
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: encoding is\n  %s\nwant (golden file)\n  %s", name, got[name], w)
		}
	}
	for _, g := range goldenFrames {
		b, _ := hex.DecodeString(want[g.name])
		r := NewReader(bytes.NewReader(b), Limits{})
		f, err := r.ReadFrame()
		if err != nil {
			t.Errorf("%s: decoding the golden octets: %v", g.name, err)
			continue
		}
		wantFrame := g.frame
		wantFrame.Length = uint32(len(b) - HeaderSize)
		if !f.Equal(&wantFrame) {
			t.Errorf("%s: decoded\n  %v\nwant\n  %v", g.name, f, &wantFrame)
		}
	}
}

func TestGoldenPrefaceIsAccepted(t *testing.T) {
	b, _ := hex.DecodeString(readGolden(t)["preface"])
	if err := NewReader(bytes.NewReader(b), Limits{}).ReadPreface(); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hx, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("golden line %q is not \"name hex\"", line)
		}
		m[name] = hx
	}
	return m
}
