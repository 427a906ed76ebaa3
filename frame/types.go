package frame

import "fmt"

// Protocol constants (SPEC 2, 3.1, 4, 10).
const (
	// Version is the protocol version carried in the preface (SPEC 2.2).
	Version = 1
	// Preface is what each peer sends first (SPEC 2.2): "hstream" and the
	// version octet.
	Preface = "hstream\x01"
	// UpgradeToken names this protocol version in the HTTP Upgrade header
	// (SPEC 2.1).
	UpgradeToken = "httpstream/1"

	// HeaderSize is the length of every frame header (SPEC 3.1).
	HeaderSize = 9
	// MaxLength is the largest length the 24-bit Length field can carry.
	MaxLength = 1<<24 - 1
	// MaxWindow is the largest a flow-control window may grow (SPEC 7.1).
	MaxWindow = 1<<31 - 1
	// MaxReasonBytes bounds the reason text of REFUSE, RESET and GOAWAY
	// (SPEC 10.4).
	MaxReasonBytes = 1024
	// MaxHeaderValues bounds the values in one header block (SPEC 5, rule 7).
	MaxHeaderValues = 1024
	// MaxSettings bounds the entries of a SETTINGS frame (SPEC 4.9).
	MaxSettings = 16

	// MinMaxFrameSize is the smallest MAX_FRAME_SIZE a peer may advertise
	// (SPEC 4.9).
	MinMaxFrameSize = 1024
	// DefaultMaxFrameSize is MAX_FRAME_SIZE when a peer does not send it.
	DefaultMaxFrameSize = 16384
	// DefaultInitialStreamWindow is INITIAL_STREAM_WINDOW when a peer does
	// not send it.
	DefaultInitialStreamWindow = 65536
	// DefaultMaxHeaderBytes is MAX_HEADER_BYTES when a peer does not send it.
	DefaultMaxHeaderBytes = 16384
)

// FrameType is the type octet of a frame header (SPEC 3.2).
type FrameType uint8

// The frame types of SPEC 3.2.
const (
	FrameData         FrameType = 0x0
	FrameOpen         FrameType = 0x1
	FrameAccept       FrameType = 0x2
	FrameRefuse       FrameType = 0x3
	FrameWindowUpdate FrameType = 0x4
	FrameReset        FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameSettings     FrameType = 0x8
)

var frameTypeNames = [...]string{
	FrameData:         "DATA",
	FrameOpen:         "OPEN",
	FrameAccept:       "ACCEPT",
	FrameRefuse:       "REFUSE",
	FrameWindowUpdate: "WINDOW_UPDATE",
	FrameReset:        "RESET",
	FramePing:         "PING",
	FrameGoAway:       "GOAWAY",
	FrameSettings:     "SETTINGS",
}

// Known reports whether this version of the protocol defines t. Unknown
// types are skipped by receivers (SPEC 3.4).
func (t FrameType) Known() bool { return int(t) < len(frameTypeNames) }

// String returns the SPEC name of t, or UNKNOWN_FRAME_TYPE_n.
func (t FrameType) String() string {
	if t.Known() {
		return frameTypeNames[t]
	}
	return fmt.Sprintf("UNKNOWN_FRAME_TYPE_%d", uint8(t))
}

// Flags is the flags octet of a frame header (SPEC 3.3). Bits a frame type
// does not define are carried through untouched.
type Flags uint8

// The flags of SPEC 3.3. The same bit means different things in different
// frame types.
const (
	// FlagEndStream on DATA half-closes the sender's direction.
	FlagEndStream Flags = 0x1
	// FlagAck on PING marks the answer to an earlier PING.
	FlagAck Flags = 0x1
)

// Has reports whether every bit of v is set in f.
func (f Flags) Has(v Flags) bool { return f&v == v }

// ErrCode is the error code of REFUSE, RESET and GOAWAY (SPEC 9.2).
type ErrCode uint32

// The error codes of SPEC 9.2.
const (
	CodeNoError          ErrCode = 0x0
	CodeProtocolError    ErrCode = 0x1
	CodeInternalError    ErrCode = 0x2
	CodeFlowControlError ErrCode = 0x3
	CodeFrameSizeError   ErrCode = 0x4
	CodeStreamClosed     ErrCode = 0x5
	CodeRefused          ErrCode = 0x6
	CodeCancel           ErrCode = 0x7
	CodeSessionClosed    ErrCode = 0x8
	CodeTimeout          ErrCode = 0x9
	CodeEnhanceYourCalm  ErrCode = 0xa
	CodeStreamLimit      ErrCode = 0xb
	CodeGoingAway        ErrCode = 0xc
)

var errCodeNames = [...]string{
	CodeNoError:          "NO_ERROR",
	CodeProtocolError:    "PROTOCOL_ERROR",
	CodeInternalError:    "INTERNAL_ERROR",
	CodeFlowControlError: "FLOW_CONTROL_ERROR",
	CodeFrameSizeError:   "FRAME_SIZE_ERROR",
	CodeStreamClosed:     "STREAM_CLOSED",
	CodeRefused:          "REFUSED",
	CodeCancel:           "CANCEL",
	CodeSessionClosed:    "SESSION_CLOSED",
	CodeTimeout:          "TIMEOUT",
	CodeEnhanceYourCalm:  "ENHANCE_YOUR_CALM",
	CodeStreamLimit:      "STREAM_LIMIT",
	CodeGoingAway:        "GOING_AWAY",
}

// String returns the SPEC name of c, or UNKNOWN_ERROR_0x.. for codes this
// version does not define (which receivers treat as INTERNAL_ERROR, SPEC 9.1).
func (c ErrCode) String() string {
	if int64(c) < int64(len(errCodeNames)) {
		return errCodeNames[c]
	}
	return fmt.Sprintf("UNKNOWN_ERROR_0x%x", uint32(c))
}

// SettingID identifies one entry of a SETTINGS frame (SPEC 4.9).
type SettingID uint16

// The settings of SPEC 4.9.
const (
	SettingMaxFrameSize         SettingID = 0x1
	SettingInitialStreamWindow  SettingID = 0x2
	SettingMaxHeaderBytes       SettingID = 0x3
	SettingMaxConcurrentStreams SettingID = 0x4
)

var settingNames = [...]string{
	SettingMaxFrameSize:         "MAX_FRAME_SIZE",
	SettingInitialStreamWindow:  "INITIAL_STREAM_WINDOW",
	SettingMaxHeaderBytes:       "MAX_HEADER_BYTES",
	SettingMaxConcurrentStreams: "MAX_CONCURRENT_STREAMS",
}

// String returns the SPEC name of id, or UNKNOWN_SETTING_n.
func (id SettingID) String() string {
	if id != 0 && int(id) < len(settingNames) {
		return settingNames[id]
	}
	return fmt.Sprintf("UNKNOWN_SETTING_%d", uint16(id))
}

// Setting is one (identifier, value) entry of a SETTINGS frame.
type Setting struct {
	ID    SettingID
	Value uint32
}

// Valid checks the value against the range SPEC 4.9 gives its identifier.
// Unknown identifiers are always valid: receivers ignore them.
func (s Setting) Valid() error {
	lo, hi := uint32(0), uint32(0xffffffff)
	switch s.ID {
	case SettingMaxFrameSize:
		lo, hi = MinMaxFrameSize, MaxLength
	case SettingInitialStreamWindow:
		hi = MaxWindow
	case SettingMaxHeaderBytes:
		hi = MaxLength
	}
	if s.Value < lo || s.Value > hi {
		return fmt.Errorf("setting %v = %d is outside its range [%d, %d] (SPEC 4.9)", s.ID, s.Value, lo, hi)
	}
	return nil
}

// FrameHeader is the 9-octet header that starts every frame (SPEC 3.1).
type FrameHeader struct {
	Length   uint32 // payload octets, at most MaxLength
	Type     FrameType
	Flags    Flags
	StreamID uint32 // 0 for the session
}

// String describes h for logs: "DATA stream=3 len=5 flags=0x1".
func (h FrameHeader) String() string {
	return fmt.Sprintf("%v stream=%d len=%d flags=0x%x", h.Type, h.StreamID, h.Length, uint8(h.Flags))
}
