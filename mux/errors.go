package mux

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// Sentinel errors. Every error the package returns that means one of these
// matches it with errors.Is, and says more in its text.
var (
	// ErrSessionClosed: the session has ended (Close, Shutdown, a failed
	// connection, a peer that closed or broke the protocol, a keepalive or
	// idle timeout). The error's text gives the first cause.
	ErrSessionClosed = errors.New("httpstream: session closed")
	// ErrStreamReset: the stream was reset, by either side, or ended with
	// its session.
	ErrStreamReset = errors.New("httpstream: stream reset")
	// ErrStreamRefused: the peer did not accept a stream this side opened:
	// its handler returned an error, its backlog or stream limit was full,
	// or it is going away. The error's text carries the peer's reason.
	ErrStreamRefused = errors.New("httpstream: stream refused")
	// ErrGoAway: the peer sent GOAWAY: it accepts no new streams.
	ErrGoAway = errors.New("httpstream: peer is going away")
)

// closedError is the sticky error of an ended session: every call after the
// end returns it, so users see the first cause rather than "use of closed
// network connection".
type closedError struct{ cause error }

func (e *closedError) Error() string        { return "httpstream: session closed: " + e.cause.Error() }
func (e *closedError) Unwrap() error        { return e.cause }
func (e *closedError) Is(target error) bool { return target == ErrSessionClosed }

// Causes of a session's end.
var (
	errClosedLocally = errors.New("closed by this side (Session.Close)")
	errShutdown      = errors.New("this side is shutting down (Session.Shutdown)")
)

// protocolError is a violation of the SPEC, by the peer (detected here) or
// by this side (reported by the peer's GOAWAY).
type protocolError struct {
	byPeer bool
	err    *frame.SessionError
}

func (e *protocolError) Error() string {
	if e.byPeer {
		return fmt.Sprintf("the peer broke the protocol (%v): %s", e.err.Code, e.err.Reason)
	}
	return fmt.Sprintf("the peer says this side broke the protocol (%v): %q", e.err.Code, e.err.Reason)
}
func (e *protocolError) Unwrap() error { return e.err }

// goAwayError is the peer's GOAWAY: graceful (NO_ERROR) or a close.
type goAwayError struct {
	code   frame.ErrCode
	reason string
}

func (e *goAwayError) Error() string {
	if e.code == frame.CodeNoError {
		return "the peer is going away (GOAWAY) and accepts no new streams"
	}
	if e.reason == "" {
		return fmt.Sprintf("the peer closed the session (%v)", e.code)
	}
	return fmt.Sprintf("the peer closed the session (%v): %q", e.code, e.reason)
}
func (e *goAwayError) Is(target error) bool { return target == ErrGoAway }

// resetError ends one stream. cause is set when the stream ended with its
// session, so the error also matches ErrSessionClosed.
type resetError struct {
	streamID uint32
	byPeer   bool
	code     frame.ErrCode
	reason   string
	cause    error
}

func (e *resetError) Error() string {
	switch {
	case e.cause != nil:
		var c *closedError
		if errors.As(e.cause, &c) {
			return fmt.Sprintf("httpstream: stream %d ended with its session, which closed: %v", e.streamID, c.cause)
		}
		return fmt.Sprintf("httpstream: stream %d ended with its session: %v", e.streamID, e.cause)
	case !e.byPeer:
		return fmt.Sprintf("httpstream: stream %d reset by this side", e.streamID)
	case e.reason == "":
		return fmt.Sprintf("httpstream: stream %d reset by the peer (%v)", e.streamID, e.code)
	}
	return fmt.Sprintf("httpstream: stream %d reset by the peer (%v): %q", e.streamID, e.code, e.reason)
}
func (e *resetError) Unwrap() error        { return e.cause }
func (e *resetError) Is(target error) bool { return target == ErrStreamReset }

// isPeerClose reports whether a session's end cause is the peer's close on
// purpose (GOAWAY SESSION_CLOSED: its Close, Shutdown or idle timeout),
// after which streams read to io.EOF, as Kubernetes' do. Any other code
// (a keepalive TIMEOUT, a protocol error) is a failure: a stream cut by it
// must not read as complete.
func isPeerClose(cause error) bool {
	var g *goAwayError
	return errors.As(cause, &g) && g.code == frame.CodeSessionClosed
}

// refusedError: the peer declined a stream this side opened.
type refusedError struct {
	streamID uint32
	code     frame.ErrCode
	reason   string
}

func (e *refusedError) Error() string {
	if e.code == frame.CodeGoingAway && e.reason == "" {
		return fmt.Sprintf("httpstream: stream %d refused: the peer is going away; open it on a new session", e.streamID)
	}
	return fmt.Sprintf("httpstream: stream %d refused by the peer (%v): %q", e.streamID, e.code, e.reason)
}
func (e *refusedError) Is(target error) bool {
	return target == ErrStreamRefused || target == ErrGoAway && e.code == frame.CodeGoingAway
}

// openTimeoutError: the peer did not answer an open in time, or the
// caller's context ended first. It is a net.Error with Timeout() true.
type openTimeoutError struct {
	streamID uint32
	waited   time.Duration
	cause    error // os.ErrDeadlineExceeded, or the context's error
}

func (e *openTimeoutError) Error() string {
	if e.streamID == 0 { // nothing was sent: SPEC 2.3, no OPEN before the peer's SETTINGS
		return fmt.Sprintf("httpstream: no stream was opened: the peer's SETTINGS did not arrive within %v: %v", e.waited.Round(time.Millisecond), e.cause)
	}
	return fmt.Sprintf("httpstream: stream %d was not accepted by the peer within %v: %v", e.streamID, e.waited.Round(time.Millisecond), e.cause)
}
func (e *openTimeoutError) Unwrap() error   { return e.cause }
func (e *openTimeoutError) Timeout() bool   { return true }
func (e *openTimeoutError) Temporary() bool { return true }

// errDeadline is what Read and Write return past their deadline, as
// net.Conn implementations do: a net.Error with Timeout() true.
var errDeadline error = os.ErrDeadlineExceeded

// connError: the connection failed under the session.
type connError struct {
	op  string // "reading" or "writing"
	err error
}

func (e *connError) Error() string { return "connection lost while " + e.op + ": " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }
