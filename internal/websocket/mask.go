package websocket

import (
	"encoding/binary"
	"math/bits"
)

// MaskCopy XORs src with the masking key (RFC 6455 5.3) into dst, which
// must be at least as long as src and may be src itself; pos is the index,
// within the frame's payload, of src's first octet, since octet i of a
// payload is XORed with key[i mod 4]. It returns the position after src, to
// pass on for the payload's next piece. Unmasking is the same operation.
//
// It works on eight octets at a time: the key, turned to start at pos and
// repeated into a 64-bit word, is XORed word by word, four words per loop,
// and only the last few octets go one by one. The bulk path of the tunnel
// masks every octet it sends, so this is where its cost would be.
func MaskCopy(dst, src []byte, key [4]byte, pos int) int {
	end := pos + len(src)
	dst = dst[:len(src)] // one bounds check here, none in the loops
	// The key as a little-endian word starting at pos: octet j of the
	// word, loaded from the payload's octet pos+j, meets key[(pos+j)%4].
	k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*(pos&3))
	k := uint64(k32)<<32 | uint64(k32)
	i := 0
	for ; len(src)-i >= 32; i += 32 {
		s, d := src[i:i+32], dst[i:i+32]
		binary.LittleEndian.PutUint64(d[0:], binary.LittleEndian.Uint64(s[0:])^k)
		binary.LittleEndian.PutUint64(d[8:], binary.LittleEndian.Uint64(s[8:])^k)
		binary.LittleEndian.PutUint64(d[16:], binary.LittleEndian.Uint64(s[16:])^k)
		binary.LittleEndian.PutUint64(d[24:], binary.LittleEndian.Uint64(s[24:])^k)
	}
	for ; len(src)-i >= 8; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:])^k)
	}
	// i is a multiple of 8, so the word's octet order still lines up.
	for ; i < len(src); i++ {
		dst[i] = src[i] ^ byte(k>>(8*(i&7)))
	}
	return end
}

// Mask masks (or unmasks) b in place; see MaskCopy.
func Mask(b []byte, key [4]byte, pos int) int {
	return MaskCopy(b, b, key, pos)
}
