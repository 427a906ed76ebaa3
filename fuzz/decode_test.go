package fuzz

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

var decodeFile = flag.String("decode", "", "a corpus file of FuzzServerEngine or FuzzClientEngine to print as steps (TestDecodeProgram)")

// TestDecodeProgram prints an engine target's input as the steps its driver
// takes, to read a finding:
//
//	go test ./fuzz -run TestDecodeProgram -v -decode testdata/fuzz/FuzzServerEngine/<id>
func TestDecodeProgram(t *testing.T) {
	if *decodeFile == "" {
		t.Skip("pass -decode FILE to print an engine program's steps")
	}
	b, err := os.ReadFile(*decodeFile)
	if err != nil {
		t.Fatal(err)
	}
	program, err := corpusBytes(string(b))
	if err != nil {
		t.Fatalf("%s: %v", *decodeFile, err)
	}
	for i, st := range parseProgram(program) {
		t.Logf("%3d  %s", i, describeStep(st))
	}
}

// corpusBytes reads the one []byte value of a file in Go's fuzz corpus
// format ("go test fuzz v1", then a line []byte("...")).
func corpusBytes(file string) ([]byte, error) {
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a one-value corpus file of Go's fuzz format")
	}
	lit, ok := strings.CutPrefix(lines[1], "[]byte(")
	lit, ok2 := strings.CutSuffix(lit, ")")
	if !ok || !ok2 {
		return nil, fmt.Errorf("the value is not a []byte: %q", lines[1])
	}
	s, err := strconv.Unquote(lit)
	return []byte(s), err
}

// describeStep says what the driver does for st, in the words of its code.
func describeStep(st step) string {
	a := st.args
	switch st.op {
	case opOpen:
		return "OPEN the peer's next stream"
	case opData:
		return fmt.Sprintf("DATA of %d octets on opened stream #%d, within its window", int(a[1])*4, a[0])
	case opDataPastWindow:
		return fmt.Sprintf("DATA past the window (by %d+1 octets) on opened stream #%d", a[1], a[0])
	case opEnd:
		return fmt.Sprintf("END_STREAM on opened stream #%d", a[0])
	case opReset:
		return fmt.Sprintf("RESET opened stream #%d", a[0])
	case opWindowUpdate:
		return fmt.Sprintf("WINDOW_UPDATE of %d on opened stream #%d (or stream ID %d if none)", uint32(a[1])<<8|uint32(a[2]), a[0], a[0])
	case opPing:
		return fmt.Sprintf("PING %#x", a[0])
	case opGoAway:
		return fmt.Sprintf("GOAWAY last stream %d, code %d", a[0], a[1]%14)
	case opGarbage:
		return fmt.Sprintf("raw octets %x (the connection is misaligned from here)", a[1:])
	case opSettings:
		return "a second SETTINGS (a protocol error)"
	case opUnknown:
		return fmt.Sprintf("a frame of unknown type %#x, %d octets", 0x40|a[0]%16, a[0])
	case opBadHeaders:
		return "OPEN with a malformed header block (refused, the session lives)"
	}
	return fmt.Sprintf("op %d", st.op)
}

func TestEveryProgramStepHasADescription(t *testing.T) {
	for _, seed := range engineSeeds() {
		for _, st := range parseProgram(seed) {
			if strings.HasPrefix(describeStep(st), "op ") {
				t.Errorf("step %v has no description", st)
			}
		}
	}
	b, err := corpusBytes("go test fuzz v1\n[]byte(\"\\x00\\x01\")\n")
	if err != nil || string(b) != "\x00\x01" {
		t.Errorf("corpusBytes = %q, %v", b, err)
	}
}
