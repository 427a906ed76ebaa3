package frame

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
)

// HeaderBlockError says why a header block is malformed (SPEC 5). On the
// wire it is a stream error: the receiver refuses that one stream.
type HeaderBlockError struct {
	Reason string
}

// Error reads "invalid header block: <reason>".
func (e *HeaderBlockError) Error() string { return "invalid header block: " + e.Reason }

func headerBlockErrorf(reason string, args ...any) *HeaderBlockError {
	return &HeaderBlockError{Reason: fmt.Sprintf(reason, args...)}
}

// tokenChar marks the RFC 9110 token alphabet that header names use
// (SPEC 5, rule 3).
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" { // RFC 9110 tchar
		t[c] = true
	}
	return t
}()

// canonicalName reports whether name is a non-empty token in canonical form
// (SPEC 5, rule 3): letters upper case at the start and after '-', lower case
// elsewhere. It is the form textproto.CanonicalMIMEHeaderKey gives, so
// http.Header lookups find decoded names.
func canonicalName[T string | []byte](name T) bool {
	if len(name) == 0 {
		return false
	}
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !tokenChar[c] {
			return false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// canonicalize returns name in canonical form, or false when it holds a
// character outside the token alphabet.
func canonicalize(name string) (string, bool) {
	if canonicalName(name) {
		return name, true
	}
	if name == "" {
		return "", false
	}
	b := []byte(name)
	upper := true
	for i, c := range b {
		if !tokenChar[c] {
			return "", false
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b), true
}

// validValue reports whether v holds none of NUL, CR, LF (SPEC 5, rule 5).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

type headerKey struct{ canon, orig string }

// AppendHeaderBlock appends the encoding of h (SPEC 5). Names are put in
// canonical form; names that become equal are merged, their values taken in
// the byte order of the original names, so the output is deterministic.
// Names without values are left out. It fails, appending nothing, on a name
// outside the token alphabet, a value holding NUL, CR or LF, or more than
// MaxHeaderValues values.
func AppendHeaderBlock(dst []byte, h http.Header) ([]byte, error) {
	var stack [16]headerKey
	keys := stack[:0]
	total := 0
	for name, values := range h {
		if len(values) == 0 {
			continue // SPEC 5 rule 4: a name without values is not encoded
		}
		canon, ok := canonicalize(name)
		if !ok {
			return dst, headerBlockErrorf("header name %q has a character outside the RFC 9110 token alphabet", name)
		}
		if len(canon) > 0xffff {
			return dst, headerBlockErrorf("header name of %d octets is longer than 65535", len(canon))
		}
		for _, v := range values {
			if !validValue(v) {
				return dst, headerBlockErrorf("value of header %q holds NUL, CR or LF", canon)
			}
			if uint64(len(v)) > 0xffffffff {
				return dst, headerBlockErrorf("value of header %q is longer than 2^32-1 octets", canon)
			}
		}
		total += len(values)
		keys = append(keys, headerKey{canon, name})
	}
	if total > MaxHeaderValues {
		return dst, headerBlockErrorf("%d header values; at most %d fit in one block", total, MaxHeaderValues)
	}
	slices.SortFunc(keys, func(a, b headerKey) int {
		return cmp.Or(cmp.Compare(a.canon, b.canon), cmp.Compare(a.orig, b.orig))
	})

	countAt := len(dst)
	dst = append(dst, 0, 0)
	count := 0
	for i := 0; i < len(keys); {
		canon := keys[i].canon
		j := i
		nvalues := 0
		for ; j < len(keys) && keys[j].canon == canon; j++ {
			nvalues += len(h[keys[j].orig])
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(canon)))
		dst = append(dst, canon...)
		dst = binary.BigEndian.AppendUint16(dst, uint16(nvalues))
		for ; i < j; i++ {
			for _, v := range h[keys[i].orig] {
				dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
				dst = append(dst, v...)
			}
		}
		count++
	}
	binary.BigEndian.PutUint16(dst[countAt:], uint16(count))
	return dst, nil
}

// DecodeHeaderBlock decodes an OPEN payload (SPEC 5). It checks every rule
// of SPEC 5 before it allocates, so a malformed or oversized block costs
// nothing; a valid block costs three allocations (the map, one string holding
// every name and value, one slice holding every value). The caller bounds
// len(b) (the Reader does, with Limits.MaxHeaderBytes).
func DecodeHeaderBlock(b []byte) (http.Header, error) {
	count, values, err := checkHeaderBlock(b)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, count)
	if count == 0 {
		return h, nil
	}
	s := string(b) // one copy; names and values below are substrings of it
	all := make([]string, values)
	off := 2
	for range count {
		n := int(binary.BigEndian.Uint16(b[off:]))
		name := s[off+2 : off+2+n]
		off += 2 + n
		nv := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		vals := all[:nv:nv]
		all = all[nv:]
		for k := range nv {
			vn := int(binary.BigEndian.Uint32(b[off:]))
			vals[k] = s[off+4 : off+4+vn]
			off += 4 + vn
		}
		h[name] = vals
	}
	return h, nil
}

// checkHeaderBlock validates b against SPEC 5 and returns the number of
// names and of values, so that decoding can allocate exactly once.
func checkHeaderBlock(b []byte) (names, values int, err error) {
	if len(b) < 2 {
		return 0, 0, headerBlockErrorf("%d octets is too short for the name count", len(b))
	}
	names = int(binary.BigEndian.Uint16(b))
	off := 2
	var prev []byte
	for i := range names {
		if len(b)-off < 2 {
			return 0, 0, headerBlockErrorf("entry %d of %d is cut short", i+1, names)
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n+2 {
			return 0, 0, headerBlockErrorf("entry %d of %d is cut short", i+1, names)
		}
		name := b[off : off+n]
		off += n
		// SPEC 5 rule 3: token alphabet, canonical form.
		if !canonicalName(name) {
			return 0, 0, headerBlockErrorf("header name %q is not a canonical token", name)
		}
		// SPEC 5 rule 2: strictly increasing names.
		if prev != nil && bytes.Compare(prev, name) >= 0 {
			return 0, 0, headerBlockErrorf("header name %q is not after %q: names must be sorted and unique", name, prev)
		}
		prev = name
		nv := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		// SPEC 5 rule 4: at least one value per name.
		if nv == 0 {
			return 0, 0, headerBlockErrorf("header %q has no values", name)
		}
		// SPEC 5 rule 7: at most MaxHeaderValues values in all.
		if values += nv; values > MaxHeaderValues {
			return 0, 0, headerBlockErrorf("more than %d header values", MaxHeaderValues)
		}
		for k := range nv {
			if len(b)-off < 4 {
				return 0, 0, headerBlockErrorf("value %d of header %q is cut short", k+1, name)
			}
			vn := uint64(binary.BigEndian.Uint32(b[off:]))
			off += 4
			if uint64(len(b)-off) < vn {
				return 0, 0, headerBlockErrorf("value %d of header %q is cut short", k+1, name)
			}
			// SPEC 5 rule 5: no NUL, CR, LF.
			if bytes.ContainsAny(b[off:off+int(vn)], "\x00\r\n") {
				return 0, 0, headerBlockErrorf("value %d of header %q holds NUL, CR or LF", k+1, name)
			}
			off += int(vn)
		}
	}
	// SPEC 5 rule 6: the entries account for the whole block.
	if off != len(b) {
		return 0, 0, headerBlockErrorf("%d octets follow the last entry", len(b)-off)
	}
	return names, values, nil
}
