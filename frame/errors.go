package frame

import (
	"errors"
	"fmt"
)

// ErrBadPreface means the peer's first octets are not the httpstream preface
// (SPEC 2.2): it is not speaking this protocol at all, often because the
// HTTP upgrade did not happen. The error that wraps it quotes what arrived.
var ErrBadPreface = errors.New("peer did not send the httpstream preface")

// ErrVersionMismatch means the peer sent the preface of another protocol
// version (SPEC 2.2). The error that wraps it names both versions.
var ErrVersionMismatch = errors.New("peer speaks another httpstream protocol version")

// SessionError is a violation that ends the whole session: the side that
// detects it sends GOAWAY with Code and Reason, then closes (SPEC 9.1).
type SessionError struct {
	Code   ErrCode
	Reason string
}

// Error reads "httpstream protocol error (FRAME_SIZE_ERROR): <reason>".
func (e *SessionError) Error() string {
	return fmt.Sprintf("httpstream protocol error (%v): %s", e.Code, e.Reason)
}

// StreamError is a violation that ends only stream StreamID: the side that
// detects it answers RESET (or REFUSE, for a stream still opening) with Code
// and Reason; the session carries on (SPEC 9.1).
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	Reason   string
}

// Error reads "httpstream stream 5 error (PROTOCOL_ERROR): <reason>".
func (e *StreamError) Error() string {
	return fmt.Sprintf("httpstream stream %d error (%v): %s", e.StreamID, e.Code, e.Reason)
}

func sessionErrorf(code ErrCode, format string, args ...any) *SessionError {
	return &SessionError{Code: code, Reason: fmt.Sprintf(format, args...)}
}
