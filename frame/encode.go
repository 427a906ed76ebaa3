package frame

import (
	"encoding/binary"
	"net/http"
	"unicode/utf8"
)

// The encoders below append one frame to dst and return the extended slice,
// like strconv.AppendInt: the caller owns the buffer and can batch frames
// into it without allocating. They encode what they are given; keeping
// stream IDs non-zero, increments positive and so on is the caller's part
// (package mux does), except for header blocks, whose content comes from
// users and is checked.

// AppendFrameHeader appends the 9-octet header h (SPEC 3.1).
func AppendFrameHeader(dst []byte, h FrameHeader) []byte {
	return append(dst,
		byte(h.Length>>16), byte(h.Length>>8), byte(h.Length),
		byte(h.Type), byte(h.Flags),
		byte(h.StreamID>>24), byte(h.StreamID>>16), byte(h.StreamID>>8), byte(h.StreamID))
}

// AppendData appends a DATA frame carrying data (SPEC 4.1). A writer that
// wants to avoid copying a large payload appends only the header, with
// AppendFrameHeader, and writes the payload from its own slice.
func AppendData(dst []byte, streamID uint32, flags Flags, data []byte) []byte {
	dst = AppendFrameHeader(dst, FrameHeader{Length: uint32(len(data)), Type: FrameData, Flags: flags, StreamID: streamID})
	return append(dst, data...)
}

// AppendOpen appends an OPEN frame for streamID carrying h (SPEC 4.2). It
// fails, appending nothing, when h cannot be encoded (see AppendHeaderBlock).
func AppendOpen(dst []byte, streamID uint32, h http.Header) ([]byte, error) {
	start := len(dst)
	dst = AppendFrameHeader(dst, FrameHeader{Type: FrameOpen, StreamID: streamID})
	dst, err := AppendHeaderBlock(dst, h)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - HeaderSize
	if n > MaxLength {
		return dst[:start], headerBlockErrorf("header block of %d octets is longer than a frame can carry", n)
	}
	putLength(dst[start:], uint32(n))
	return dst, nil
}

// AppendAccept appends an ACCEPT frame (SPEC 4.3).
func AppendAccept(dst []byte, streamID uint32) []byte {
	return AppendFrameHeader(dst, FrameHeader{Type: FrameAccept, StreamID: streamID})
}

// AppendRefuse appends a REFUSE frame (SPEC 4.4). A reason longer than
// MaxReasonBytes is cut at a UTF-8 boundary.
func AppendRefuse(dst []byte, streamID uint32, code ErrCode, reason string) []byte {
	return appendCodeReason(dst, FrameRefuse, streamID, code, reason)
}

// AppendReset appends a RESET frame (SPEC 4.6). A reason longer than
// MaxReasonBytes is cut at a UTF-8 boundary.
func AppendReset(dst []byte, streamID uint32, code ErrCode, reason string) []byte {
	return appendCodeReason(dst, FrameReset, streamID, code, reason)
}

func appendCodeReason(dst []byte, t FrameType, streamID uint32, code ErrCode, reason string) []byte {
	reason = TruncateReason(reason)
	dst = AppendFrameHeader(dst, FrameHeader{Length: uint32(4 + len(reason)), Type: t, StreamID: streamID})
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	return append(dst, reason...)
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame (SPEC 4.5). increment must
// be between 1 and MaxWindow and streamID non-zero.
func AppendWindowUpdate(dst []byte, streamID, increment uint32) []byte {
	dst = AppendFrameHeader(dst, FrameHeader{Length: 4, Type: FrameWindowUpdate, StreamID: streamID})
	return binary.BigEndian.AppendUint32(dst, increment)
}

// AppendPing appends a PING frame (SPEC 4.7); flags is 0 or FlagAck.
func AppendPing(dst []byte, flags Flags, data [8]byte) []byte {
	dst = AppendFrameHeader(dst, FrameHeader{Length: 8, Type: FramePing, Flags: flags})
	return append(dst, data[:]...)
}

// AppendGoAway appends a GOAWAY frame (SPEC 4.8). A reason longer than
// MaxReasonBytes is cut at a UTF-8 boundary.
func AppendGoAway(dst []byte, lastStreamID uint32, code ErrCode, reason string) []byte {
	reason = TruncateReason(reason)
	dst = AppendFrameHeader(dst, FrameHeader{Length: uint32(8 + len(reason)), Type: FrameGoAway})
	dst = binary.BigEndian.AppendUint32(dst, lastStreamID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	return append(dst, reason...)
}

// AppendSettings appends a SETTINGS frame (SPEC 4.9). At most MaxSettings
// entries may be given.
func AppendSettings(dst []byte, settings ...Setting) []byte {
	dst = AppendFrameHeader(dst, FrameHeader{Length: uint32(6 * len(settings)), Type: FrameSettings})
	for _, s := range settings {
		dst = binary.BigEndian.AppendUint16(dst, uint16(s.ID))
		dst = binary.BigEndian.AppendUint32(dst, s.Value)
	}
	return dst
}

// TruncateReason cuts reason to at most MaxReasonBytes octets, at a UTF-8
// character boundary when the text is UTF-8 (SPEC 10.4).
func TruncateReason(reason string) string {
	if len(reason) <= MaxReasonBytes {
		return reason
	}
	cut := MaxReasonBytes
	for cut > MaxReasonBytes-utf8.UTFMax && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

func putLength(b []byte, n uint32) {
	b[0], b[1], b[2] = byte(n>>16), byte(n>>8), byte(n)
}
