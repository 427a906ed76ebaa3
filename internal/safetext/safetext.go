// Package safetext makes text that a peer chose safe to show to a person.
//
// A status line, an error body, a proxy's answer or a stream's reset
// reason comes from the other end of a connection, and it often ends up in
// an error that a command-line tool prints. Raw, such text can drive the
// terminal it is printed on: ESC sequences set the window title, clear the
// screen or recolour what follows; a carriage return overwrites the line
// with a fake message; bidirectional overrides reorder what the reader sees
// (the "Trojan Source" trick). It can also be large. Sanitize is the one
// place this module turns such text into something inert and bounded;
// every package that puts peer-supplied text into an error goes through it.
package safetext

import (
	"unicode/utf8"
)

// Truncated is what Sanitize ends a text with when the text did not fit.
const Truncated = " [truncated]"

// Sanitize returns s fit to print: every character that could act on a
// terminal or mislead a reader is replaced by a visible escape, and the
// result is at most maxBytes bytes long.
//
// Escaped, each as the Go escape that names it:
//   - the C0 controls (U+0000 to U+001F) except newline and tab, such as
//     ESC as \x1b and carriage return as \x0d, and DEL as \x7f;
//   - the C1 controls (U+0080 to U+009F), such as \u009b (CSI, which some
//     terminals take as ESC [);
//   - the characters that steer bidirectional text (Unicode's Bidi_Control
//     set): the embeddings and overrides U+202A to U+202E, the isolates
//     U+2066 to U+2069, and the marks U+200E, U+200F and U+061C, such as
//     \u202e;
//   - each byte that is not part of valid UTF-8, as \xNN.
//
// Newline and tab are kept, since messages use them for layout, and so is
// everything else, backslashes included: the result is for people to read,
// not for decoding back into s.
//
// When the escaped text is longer than maxBytes, it is cut at a character
// (or escape) boundary and ends with [Truncated], the marker included in the
// maxBytes; a maxBytes too small to hold even the marker yields as much of
// the marker as fits. maxBytes <= 0 means no limit. Sanitize reads no more of
// s than it needs, so a huge s costs only about maxBytes of work.
//
// Sanitize is idempotent for a given maxBytes: its output contains nothing
// it would change, so text may safely pass through it twice.
func Sanitize(s string, maxBytes int) string {
	if (maxBytes <= 0 || len(s) <= maxBytes) && isClean(s) {
		return s // the usual case: no copy
	}
	// keep is how long the output may grow before the marker must take
	// over: a text that ends up longer than maxBytes keeps only what fits
	// in front of the marker.
	keep := maxBytes - len(Truncated)
	out := make([]byte, 0, min(len(s), max(maxBytes, 0))+8)
	cut := 0 // the longest output, at a boundary, that fits in front of the marker
	for i := 0; i < len(s); {
		// One unit of output: the character as it is (raw), or its
		// escape (esc); a cut never splits either.
		r, size := utf8.DecodeRuneInString(s[i:])
		var buf [6]byte
		var esc []byte
		raw := ""
		switch {
		case r == utf8.RuneError && size == 1:
			esc = appendByteEscape(buf[:0], s[i])
		case mustEscape(r):
			esc = appendRuneEscape(buf[:0], r)
		default:
			raw = s[i : i+size]
		}
		if maxBytes > 0 {
			if len(out) <= keep {
				cut = len(out)
			}
			if len(out)+len(esc)+len(raw) > maxBytes {
				return truncate(out, cut, maxBytes)
			}
		}
		out = append(out, esc...)
		out = append(out, raw...)
		i += size
	}
	return string(out)
}

// truncate ends out at cut with the marker, or, when maxBytes cannot hold
// the marker, returns the part of the marker that fits.
func truncate(out []byte, cut, maxBytes int) string {
	if maxBytes < len(Truncated) {
		return Truncated[:maxBytes]
	}
	return string(append(out[:cut], Truncated...))
}

// isClean reports whether s has nothing to escape.
func isClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
			return isCleanSlow(s[i:])
		}
	}
	return true
}

// isCleanSlow is isClean from the first byte that is not plain printable
// ASCII.
func isCleanSlow(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || mustEscape(r) {
			return false
		}
		i += size
	}
	return true
}

// mustEscape reports whether the (valid) character r is one Sanitize
// replaces.
func mustEscape(r rune) bool {
	switch {
	case r < 0x20:
		return r != '\n' && r != '\t'
	case r < 0x7f:
		return false
	case r <= 0x9f: // DEL and the C1 controls
		return true
	}
	switch r {
	case '\u061c', '\u200e', '\u200f', // ALM, LRM, RLM
		'\u202a', '\u202b', '\u202c', '\u202d', '\u202e', // LRE, RLE, PDF, LRO, RLO
		'\u2066', '\u2067', '\u2068', '\u2069': // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendByteEscape appends \xNN for one byte.
func appendByteEscape(dst []byte, b byte) []byte {
	return append(dst, '\\', 'x', hexDigits[b>>4], hexDigits[b&0xf])
}

// appendRuneEscape appends the escape of r: \xNN for ASCII (C0, DEL), \uNNNN
// for the rest, as Go writes them.
func appendRuneEscape(dst []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		return appendByteEscape(dst, byte(r))
	}
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
