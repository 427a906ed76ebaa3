package frame

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"slices"
)

// Frame is one decoded frame. The fields that mean something depend on Type;
// the others are zero. A Frame returned by Reader.ReadFrame is reused by the
// next call, and Data aliases the Reader's buffer until then.
type Frame struct {
	FrameHeader

	// Data is the payload of DATA frames and of frames of unknown type.
	Data []byte
	// Headers is the decoded header block of OPEN.
	Headers http.Header
	// Code and Reason are the error code and reason text of REFUSE, RESET
	// and GOAWAY. Reason comes from the peer: quote it before showing it
	// (SPEC 10.4).
	Code   ErrCode
	Reason string
	// Increment is the WINDOW_UPDATE increment.
	Increment uint32
	// PingData is the opaque PING payload.
	PingData [8]byte
	// LastStreamID is the GOAWAY last stream ID.
	LastStreamID uint32
	// Settings are the SETTINGS entries in wire order, unknown ones
	// included (SPEC 11).
	Settings []Setting
}

// AppendTo appends the encoding of f. For a frame that a Reader decoded, the
// octets are exactly those read (SPEC 11). Length in f.FrameHeader is
// ignored: it is computed from the payload.
func (f *Frame) AppendTo(dst []byte) ([]byte, error) {
	h := f.FrameHeader
	start := len(dst)
	switch h.Type {
	case FrameData:
		return AppendData(dst, h.StreamID, h.Flags, f.Data), nil
	case FrameOpen:
		dst, err := AppendOpen(dst, h.StreamID, f.Headers)
		if err == nil {
			dst[start+4] = byte(h.Flags)
		}
		return dst, err
	case FrameAccept:
		dst = AppendAccept(dst, h.StreamID)
	case FrameRefuse:
		dst = AppendRefuse(dst, h.StreamID, f.Code, f.Reason)
	case FrameWindowUpdate:
		dst = AppendWindowUpdate(dst, h.StreamID, f.Increment)
	case FrameReset:
		dst = AppendReset(dst, h.StreamID, f.Code, f.Reason)
	case FramePing:
		dst = AppendPing(dst, h.Flags, f.PingData)
	case FrameGoAway:
		dst = AppendGoAway(dst, f.LastStreamID, f.Code, f.Reason)
	case FrameSettings:
		dst = AppendSettings(dst, f.Settings...)
	default:
		h.Length = uint32(len(f.Data))
		return append(AppendFrameHeader(dst, h), f.Data...), nil
	}
	// Undefined flag bits are carried as they were, so that re-encoding is
	// exact (SPEC 3.3, 11).
	dst[start+4] = byte(h.Flags)
	return dst, nil
}

// Equal reports whether f and g are the same frame: same header, same
// fields. A nil and an empty payload or settings list are equal, since both
// encode to nothing.
func (f *Frame) Equal(g *Frame) bool {
	if f.FrameHeader != g.FrameHeader || !bytes.Equal(f.Data, g.Data) || f.Code != g.Code ||
		f.Reason != g.Reason || f.Increment != g.Increment || f.PingData != g.PingData ||
		f.LastStreamID != g.LastStreamID || !slices.Equal(f.Settings, g.Settings) {
		return false
	}
	if len(f.Headers) != len(g.Headers) {
		return false
	}
	for name, fv := range f.Headers {
		if gv, ok := g.Headers[name]; !ok || !slices.Equal(fv, gv) {
			return false
		}
	}
	return true
}

// String describes f for logs and test failures.
func (f *Frame) String() string {
	s := f.FrameHeader.String()
	switch f.Type {
	case FrameOpen:
		s += fmt.Sprintf(" headers=%v", f.Headers)
	case FrameRefuse, FrameReset:
		s += fmt.Sprintf(" code=%v reason=%q", f.Code, f.Reason)
	case FrameWindowUpdate:
		s += fmt.Sprintf(" increment=%d", f.Increment)
	case FramePing:
		s += fmt.Sprintf(" data=%x", f.PingData)
	case FrameGoAway:
		s += fmt.Sprintf(" last=%d code=%v reason=%q", f.LastStreamID, f.Code, f.Reason)
	case FrameSettings:
		s += fmt.Sprintf(" settings=%v", f.Settings)
	}
	return s
}

// frameRule is what SPEC 3.2 and 10.1 say about one frame type, checkable
// from the header alone.
type frameRule struct {
	sessionFrame   bool                // stream ID must be 0 (true) or non-zero (false)
	minLen, maxLen uint32              // length bounds, unless limit is set
	limit          func(Limits) uint32 // the upper bound, when it comes from Limits
	parse          func(f *Frame, p []byte) error
}

var frameRules = [...]frameRule{
	// SPEC 4.1, 10.1: DATA up to the receiver's MAX_FRAME_SIZE.
	FrameData: {limit: func(l Limits) uint32 { return l.MaxFrameSize }, parse: parseData},
	// SPEC 4.2, 10.1: OPEN up to the receiver's MAX_HEADER_BYTES.
	FrameOpen: {limit: func(l Limits) uint32 { return l.MaxHeaderBytes }, parse: parseOpen},
	// SPEC 4.3: ACCEPT is empty.
	FrameAccept: {parse: parseNothing},
	// SPEC 4.4, 4.6: code and a reason of at most MaxReasonBytes.
	FrameRefuse: {minLen: 4, maxLen: 4 + MaxReasonBytes, parse: parseCodeReason},
	// SPEC 4.5: exactly the 4-octet increment, and never on stream 0: there
	// is no session window in this version (SPEC 7.4).
	FrameWindowUpdate: {minLen: 4, maxLen: 4, parse: parseWindowUpdate},
	FrameReset:        {minLen: 4, maxLen: 4 + MaxReasonBytes, parse: parseCodeReason},
	// SPEC 4.7: exactly 8 opaque octets.
	FramePing: {sessionFrame: true, minLen: 8, maxLen: 8, parse: parsePing},
	// SPEC 4.8: last stream ID, code and a reason of at most MaxReasonBytes.
	FrameGoAway: {sessionFrame: true, minLen: 8, maxLen: 8 + MaxReasonBytes, parse: parseGoAway},
	// SPEC 4.9: up to MaxSettings entries of 6 octets.
	FrameSettings: {sessionFrame: true, minLen: 0, maxLen: 6 * MaxSettings, parse: parseSettings},
}

// checkHeader applies SPEC 3.1, 3.2, 3.4 and 10.1 to h before anything of
// its payload is read.
func checkHeader(h FrameHeader, lim Limits) error {
	if !h.Type.Known() {
		// SPEC 3.4: unknown frames are skipped, but never longer than DATA.
		if h.Length > lim.MaxFrameSize {
			return sessionErrorf(CodeFrameSizeError, "%v frame of %d octets is longer than MAX_FRAME_SIZE %d", h.Type, h.Length, lim.MaxFrameSize)
		}
		return nil
	}
	r := &frameRules[h.Type]
	// SPEC 3.2: session frames on stream 0, stream frames elsewhere.
	if r.sessionFrame && h.StreamID != 0 {
		return sessionErrorf(CodeProtocolError, "%v frame on stream %d; it belongs to stream 0", h.Type, h.StreamID)
	}
	if !r.sessionFrame && h.StreamID == 0 {
		return sessionErrorf(CodeProtocolError, "%v frame on stream 0; it needs a stream", h.Type)
	}
	max := r.maxLen
	if r.limit != nil {
		max = r.limit(lim)
	}
	// SPEC 3.1, 10.1: the length is checked before the payload is read.
	if h.Length < r.minLen || h.Length > max {
		if r.minLen == max {
			return sessionErrorf(CodeFrameSizeError, "%v frame of %d octets; it must be %d", h.Type, h.Length, max)
		}
		return sessionErrorf(CodeFrameSizeError, "%v frame of %d octets; it must be %d to %d", h.Type, h.Length, r.minLen, max)
	}
	if h.Type == FrameSettings && h.Length%6 != 0 {
		return sessionErrorf(CodeFrameSizeError, "SETTINGS frame of %d octets is not a multiple of 6", h.Length)
	}
	return nil
}

func parseNothing(*Frame, []byte) error { return nil }

func parseData(f *Frame, p []byte) error {
	f.Data = p
	return nil
}

func parseOpen(f *Frame, p []byte) error {
	h, err := DecodeHeaderBlock(p)
	if err != nil {
		// SPEC 4.2: a bad header block only refuses this stream.
		return &StreamError{StreamID: f.StreamID, Code: CodeProtocolError, Reason: err.Error()}
	}
	f.Headers = h
	return nil
}

func parseCodeReason(f *Frame, p []byte) error {
	f.Code = ErrCode(binary.BigEndian.Uint32(p))
	f.Reason = string(p[4:])
	return nil
}

func parseWindowUpdate(f *Frame, p []byte) error {
	f.Increment = binary.BigEndian.Uint32(p)
	// SPEC 4.5: an increment of 0 or with the top bit set is a session error.
	if f.Increment == 0 || f.Increment > MaxWindow {
		return sessionErrorf(CodeProtocolError, "WINDOW_UPDATE on stream %d with increment %d; it must be 1 to %d", f.StreamID, f.Increment, MaxWindow)
	}
	return nil
}

func parsePing(f *Frame, p []byte) error {
	copy(f.PingData[:], p)
	return nil
}

func parseGoAway(f *Frame, p []byte) error {
	f.LastStreamID = binary.BigEndian.Uint32(p)
	f.Code = ErrCode(binary.BigEndian.Uint32(p[4:]))
	f.Reason = string(p[8:])
	return nil
}

func parseSettings(f *Frame, p []byte) error {
	f.Settings = f.Settings[:0]
	for ; len(p) >= 6; p = p[6:] {
		s := Setting{ID: SettingID(binary.BigEndian.Uint16(p)), Value: binary.BigEndian.Uint32(p[2:])}
		// SPEC 4.9: a known setting outside its range is a session error.
		if err := s.Valid(); err != nil {
			return &SessionError{Code: CodeProtocolError, Reason: err.Error()}
		}
		f.Settings = append(f.Settings, s)
	}
	return nil
}
