package safetext

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       string
		maxBytes int
		want     string
	}{
		{"plain text is returned as is", "403 Forbidden", 256, "403 Forbidden"},
		{"an empty text stays empty", "", 10, ""},
		{"newline and tab are kept for layout", "line one\n\tline two", 0, "line one\n\tline two"},
		{"non-ASCII letters are kept", "Zugriff verweigert: ø, 拒绝, ✓", 0, "Zugriff verweigert: ø, 拒绝, ✓"},
		{"ESC is escaped", "\x1b[2J", 0, `\x1b[2J`},
		{"a title-setting OSC sequence is inert", "\x1b]0;PWNED\a", 0, `\x1b]0;PWNED\x07`},
		{"carriage return cannot overwrite the line", "ok\rFAKE", 0, `ok\x0dFAKE`},
		{"NUL and the other C0 controls are escaped", "a\x00b\x01c\x1f", 0, `a\x00b\x01c\x1f`},
		{"DEL is escaped", "a\x7fb", 0, `a\x7fb`},
		{"C1 controls are escaped", "a\u009b31mb\u0085", 0, `a\u009b31mb\u0085`},
		{"bidi overrides are escaped", "abc\u202edcba\u202c", 0, `abc\u202edcba\u202c`},
		{"bidi embeddings are escaped", "\u202a\u202b", 0, `\u202a\u202b`},
		{"bidi isolates are escaped", "\u2066\u2067\u2068\u2069", 0, `\u2066\u2067\u2068\u2069`},
		{"bidi marks are escaped", "\u200e\u200f\u061c", 0, `\u200e\u200f\u061c`},
		{"invalid UTF-8 shows its bytes", "a\xffb\xc3", 0, `a\xffb\xc3`},
		{"an encoded C1 control split in two is two bytes", "\xc2", 0, `\xc2`},
		{"backslashes are left alone", `C:\path\x1b`, 0, `C:\path\x1b`},
		{"a text that fits exactly is not cut", "0123456789", 10, "0123456789"},
		{"a long text is cut with the marker, within the limit", strings.Repeat("a", 40), 20, "aaaaaaaa" + Truncated},
		{"a cut never splits a character", "ééééééééééé", 20, "éééé" + Truncated},
		{"a cut never splits an escape", "abcdefg\x1b\x1b\x1b\x1b\x1b", 20, "abcdefg" + Truncated},
		{"escapes count toward the limit", "\x1b\x1b\x1b\x1b\x1b\x1b", 20, `\x1b\x1b` + Truncated},
		{"a limit smaller than the marker keeps part of the marker", "abcdefghijklmnop", 5, Truncated[:5]},
		{"a limit of zero means none", strings.Repeat("a", 100), 0, strings.Repeat("a", 100)},
		{"a negative limit means none", "abc\x1b", -1, `abc\x1b`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Sanitize(tt.in, tt.maxBytes)
			if got != tt.want {
				t.Errorf("Sanitize(%q, %d) = %q, want %q", tt.in, tt.maxBytes, got, tt.want)
			}
			checkSafe(t, got, tt.maxBytes)
			if again := Sanitize(got, tt.maxBytes); again != got {
				t.Errorf("Sanitize is not idempotent: %q, then %q", got, again)
			}
		})
	}
}

// checkSafe fails unless s is valid UTF-8 with nothing Sanitize escapes and
// fits in maxBytes.
func checkSafe(t *testing.T, s string, maxBytes int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("output %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if mustEscape(r) {
			t.Errorf("output %q still holds %U", s, r)
		}
	}
	if maxBytes > 0 && len(s) > maxBytes {
		t.Errorf("output is %d bytes, over the limit of %d", len(s), maxBytes)
	}
}

func TestSanitizeMakesEveryInputSafe(t *testing.T) {
	// Every byte value at every position of a short text, and every
	// character from U+0000 to U+2FFF, under a few limits.
	var inputs []string
	for b := range 256 {
		inputs = append(inputs, string([]byte{byte(b)}), "ab"+string([]byte{byte(b)})+"é")
	}
	for r := rune(0); r < 0x3000; r++ {
		inputs = append(inputs, string(r)+"x")
	}
	for _, in := range inputs {
		for _, maxBytes := range []int{0, 1, 5, len(Truncated), len(Truncated) + 1, 16} {
			got := Sanitize(in, maxBytes)
			checkSafe(t, got, maxBytes)
			if again := Sanitize(got, maxBytes); again != got {
				t.Fatalf("Sanitize(%q, %d): %q, then %q", in, maxBytes, got, again)
			}
		}
	}
}

func TestSanitizeReadsOnlyWhatTheLimitNeeds(t *testing.T) {
	huge := strings.Repeat("\x1b", 16<<20)
	allocs := testing.AllocsPerRun(5, func() { _ = Sanitize(huge, 256) })
	if allocs > 2 {
		t.Errorf("Sanitize of a 16 MiB text cut at 256 bytes: %.0f allocations, want at most 2", allocs)
	}
}

func TestSanitizeDoesNotCopyCleanText(t *testing.T) {
	s := "the server answered 403 Forbidden: no"
	if allocs := testing.AllocsPerRun(10, func() { _ = Sanitize(s, 256) }); allocs != 0 {
		t.Errorf("Sanitize of clean text: %.0f allocations, want none", allocs)
	}
}

func BenchmarkSanitize(b *testing.B) {
	clean := strings.Repeat("pods \"web\" is forbidden: ", 20)
	dirty := strings.Repeat("\x1b[31mred\x1b[0m \u202e", 20)
	b.Run("clean", func(b *testing.B) {
		for b.Loop() {
			_ = Sanitize(clean, 1024)
		}
	})
	b.Run("dirty", func(b *testing.B) {
		for b.Loop() {
			_ = Sanitize(dirty, 1024)
		}
	})
}

// A peer's reason text, as a stream reset or a refusal carries it, goes
// through Sanitize before it joins an error.
func ExampleSanitize() {
	reason := "quota exceeded\x1b]0;owned\a\x1b[2J \u202eexe.txt"
	fmt.Println(fmt.Errorf("stream refused by the peer: %s", Sanitize(reason, 64)))
	fmt.Println(Sanitize(strings.Repeat("long reason ", 10), 32))
	// Output:
	// stream refused by the peer: quota exceeded\x1b]0;owned\x07\x1b[2J \u202eexe.txt
	// long reason long rea [truncated]
}
