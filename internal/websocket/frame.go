// Package websocket is the framing of RFC 6455 (The WebSocket Protocol),
// written from the RFC for package upgrade's WebSocket tunnel: a frame
// header codec (this file), masking (mask.go), the handshake's key and
// accept values (handshake.go), and Conn (conn.go), a net.Conn whose bytes
// travel in binary messages, which is what a mux session runs on when the
// upgrade went through a WebSocket handshake.
//
// Only what the tunnel needs is here: binary messages as one byte stream,
// ping, pong and close. No extension is ever negotiated, so the reserved
// bits must be zero; text messages have no place in the tunnel. Section
// numbers in comments ("RFC 6455 5.2") point to the RFC's text that the
// code next to them enforces.
package websocket

import (
	"errors"
	"fmt"
)

// Opcode is the frame type of RFC 6455 5.2.
type Opcode uint8

// The opcodes RFC 6455 5.2 defines; the others are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

var opcodeNames = [...]string{
	OpContinuation: "CONTINUATION",
	OpText:         "TEXT",
	OpBinary:       "BINARY",
	OpClose:        "CLOSE",
	OpPing:         "PING",
	OpPong:         "PONG",
}

// String names the opcode, so that errors and logs say "PING", not 9.
func (op Opcode) String() string {
	if int(op) < len(opcodeNames) && opcodeNames[op] != "" {
		return opcodeNames[op]
	}
	return fmt.Sprintf("UNKNOWN_OPCODE_%#x", uint8(op))
}

// Known reports whether RFC 6455 defines op (RFC 6455 5.2: "%x3-7 are
// reserved for further non-control frames", "%xB-F are reserved for
// further control frames").
func (op Opcode) Known() bool {
	return int(op) < len(opcodeNames) && opcodeNames[op] != ""
}

// IsControl reports whether op is a control opcode (RFC 6455 5.5: "opcodes
// where the most significant bit of the opcode is 1").
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// Header is a decoded frame header (RFC 6455 5.2).
type Header struct {
	Fin    bool    // the final fragment of a message
	RSV    uint8   // RSV1, RSV2, RSV3, as bits 0x4, 0x2, 0x1
	Opcode Opcode  // the frame type
	Masked bool    // a masking key follows the length
	Key    [4]byte // the masking key, if Masked
	Length uint64  // the payload length, below 2^63
}

// Limits of RFC 6455 5.2 and 5.5.
const (
	// MaxHeaderSize is the longest frame header: 2 octets, a 64-bit
	// extended length and a masking key.
	MaxHeaderSize = 2 + 8 + 4
	// MaxControlPayload is the longest payload of a control frame (RFC
	// 6455 5.5: "All control frames MUST have a payload length of 125
	// bytes or less").
	MaxControlPayload = 125
	// MaxLength is the largest payload length the 64-bit form can carry
	// (RFC 6455 5.2: "the most significant bit MUST be 0").
	MaxLength = 1<<63 - 1
)

// Close status codes of RFC 6455 7.4.1 that this package sends or names.
const (
	CloseNormal        = 1000 // the purpose of the connection is fulfilled
	CloseGoingAway     = 1001 // a server going down, a browser leaving a page
	CloseProtocolError = 1002 // the peer broke the protocol
	CloseUnsupported   = 1003 // a type of data the endpoint cannot accept
	CloseNoStatus      = 1005 // reserved: no status code was present (never sent)
	CloseAbnormal      = 1006 // reserved: the connection closed without a close frame (never sent)
	CloseInvalidData   = 1007 // data inconsistent with the message type (a close reason that is not UTF-8)
	CloseInternalError = 1011 // the endpoint met a condition it cannot handle
)

// ErrShortHeader is returned by ParseHeader when b holds only part of a
// header; the n it returns then says how many octets the header needs, as
// far as b shows.
var ErrShortHeader = errors.New("websocket: incomplete frame header")

// ProtocolError reports a frame that breaks RFC 6455 or this tunnel's
// rules. Code is the close status the connection is failed with (1002, or
// 1007 for a close reason that is not UTF-8); Reason says what was wrong.
type ProtocolError struct {
	Code   uint16
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("websocket: protocol error (close %d): %s", e.Code, e.Reason)
}

func protocolErrorf(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: CloseProtocolError, Reason: fmt.Sprintf(format, args...)}
}

// ParseHeader decodes the frame header at the start of b and returns it
// with its size in octets. When b is too short it returns ErrShortHeader
// and the size needed so far (2, then the full size once the second octet
// is known), so that a caller can wait for that many octets and call again.
//
// It enforces what can be told from the header alone and holds for any
// frame: a 64-bit length below 2^63, and the shortest length form (RFC
// 6455 5.2: "the minimal number of bytes MUST be used to encode the
// length"), which is also what makes every header that decodes re-encode
// to the same octets. Rules that depend on the connection (which opcodes,
// which mask bit, fragmentation) are Check's.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 2, ErrShortHeader
	}
	var h Header
	h.Fin = b[0]&0x80 != 0
	h.RSV = b[0] >> 4 & 0x7
	h.Opcode = Opcode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	length7 := b[1] & 0x7f
	switch length7 {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h.Masked {
		n += 4
	}
	if len(b) < n {
		return Header{}, n, ErrShortHeader
	}
	switch length7 {
	case 126:
		h.Length = uint64(b[2])<<8 | uint64(b[3])
		if h.Length < 126 {
			return h, n, protocolErrorf("a %d-octet payload length sent in the 16-bit form; the 7-bit form is required (RFC 6455 5.2)", h.Length)
		}
	case 127:
		for _, c := range b[2:10] {
			h.Length = h.Length<<8 | uint64(c)
		}
		if h.Length > MaxLength {
			return h, n, protocolErrorf("a 64-bit payload length with its most significant bit set (RFC 6455 5.2)")
		}
		if h.Length <= 0xffff {
			return h, n, protocolErrorf("a %d-octet payload length sent in the 64-bit form; a shorter form is required (RFC 6455 5.2)", h.Length)
		}
	default:
		h.Length = uint64(length7)
	}
	if h.Masked {
		copy(h.Key[:], b[n-4:n])
	}
	return h, n, nil
}

// HeaderSize returns the size of h's encoding.
func HeaderSize(h Header) int {
	n := 2
	switch {
	case h.Length > 0xffff:
		n += 8
	case h.Length >= 126:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// AppendHeader appends the encoding of h to dst, with the shortest length
// form. h.Length must be at most MaxLength.
func AppendHeader(dst []byte, h Header) []byte {
	b0 := byte(h.Opcode&0x0f) | (h.RSV&0x7)<<4
	if h.Fin {
		b0 |= 0x80
	}
	var b1 byte
	if h.Masked {
		b1 = 0x80
	}
	switch {
	case h.Length > 0xffff:
		dst = append(dst, b0, b1|127,
			byte(h.Length>>56), byte(h.Length>>48), byte(h.Length>>40), byte(h.Length>>32),
			byte(h.Length>>24), byte(h.Length>>16), byte(h.Length>>8), byte(h.Length))
	case h.Length >= 126:
		dst = append(dst, b0, b1|126, byte(h.Length>>8), byte(h.Length))
	default:
		dst = append(dst, b0, b1|byte(h.Length))
	}
	if h.Masked {
		dst = append(dst, h.Key[:]...)
	}
	return dst
}

// Check applies the rules of RFC 6455 that a single header shows, for a
// frame received by a client (client true) or a server: the mask bit, the
// reserved bits, the opcode, and the control frames' limits. The rules
// that need the frames before (fragmentation) are the Conn's.
func Check(h Header, client bool) error {
	// RFC 6455 5.1: "a client MUST mask all frames that it sends to the
	// server" and "A server MUST NOT mask any frames that it sends to the
	// client"; the receiver closes the connection on either.
	if client && h.Masked {
		return protocolErrorf("a masked %v frame from the server; a server must not mask (RFC 6455 5.1)", h.Opcode)
	}
	if !client && !h.Masked {
		return protocolErrorf("an unmasked %v frame from the client; a client must mask every frame (RFC 6455 5.1)", h.Opcode)
	}
	// RFC 6455 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated
	// that defines meanings for non-zero values"; this tunnel never
	// negotiates one.
	if h.RSV != 0 {
		return protocolErrorf("reserved bits %#x set in a %v frame, and no extension was negotiated (RFC 6455 5.2)", h.RSV, h.Opcode)
	}
	// RFC 6455 5.2: "If an unknown opcode is received, the receiving
	// endpoint MUST _Fail the WebSocket Connection_."
	if !h.Opcode.Known() {
		return protocolErrorf("opcode %#x is reserved (RFC 6455 5.2)", uint8(h.Opcode))
	}
	if h.Opcode == OpText {
		// The tunnel carries a byte stream in binary messages; a text
		// message is for something else speaking on this connection.
		return protocolErrorf("a TEXT frame: the tunnel carries binary messages only")
	}
	if h.Opcode.IsControl() {
		// RFC 6455 5.5: "All control frames MUST have a payload length
		// of 125 bytes or less and MUST NOT be fragmented."
		if h.Length > MaxControlPayload {
			return protocolErrorf("a %v frame of %d octets; control frames carry at most %d (RFC 6455 5.5)", h.Opcode, h.Length, MaxControlPayload)
		}
		if !h.Fin {
			return protocolErrorf("a fragmented %v frame; control frames must not be fragmented (RFC 6455 5.5)", h.Opcode)
		}
		// RFC 6455 5.5.1: a close body is empty or starts with a 2-octet
		// status code.
		if h.Opcode == OpClose && h.Length == 1 {
			return protocolErrorf("a CLOSE frame with a 1-octet body; the status code takes 2 (RFC 6455 5.5.1)")
		}
	}
	return nil
}
