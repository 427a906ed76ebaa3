package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream/internal/safetext"
)

// What a server or a proxy can make the client hold or wait for before the
// upgrade. The README's "Security and limits" table lists them too.
const (
	// DefaultMaxResponseHeaderBytes bounds the header section of the
	// server's answer to the upgrade, and of a proxy's answer to CONNECT,
	// when RoundTripperConfig.MaxResponseHeaderBytes is zero. A 101 or a
	// refusal has a few hundred bytes of headers; 1 MiB leaves room for
	// large cookies and long error headers while a hostile server cannot
	// make the client hold more than about one and a half times that
	// (net/http's client allows 10 MB).
	DefaultMaxResponseHeaderBytes = 1 << 20

	// DefaultProxyConnectTimeout bounds a proxy's handshake, once
	// connected to it, when RoundTripperConfig.ProxyConnectTimeout is
	// zero: the answer to CONNECT, or the SOCKS5 negotiation. It is the
	// bound net/http puts on a CONNECT.
	DefaultProxyConnectTimeout = time.Minute

	// DefaultHandshakeTimeout bounds each upgrade handshake, from the
	// dial to the server's response headers (and a refusal's body), when
	// RoundTripperConfig.HandshakeTimeout is zero: a server that accepts
	// the connection and never answers fails the dial after this long
	// instead of hanging it. A 101 normally comes within a round trip or
	// two; 30 seconds leaves room for a slow TLS handshake through a
	// proxy and a server that starts the session's work before answering,
	// and matches the engine's other waits (mux's StreamOpenTimeout and
	// KeepAliveTimeout).
	DefaultHandshakeTimeout = 30 * time.Second
)

// ErrResponseHeaderTooLarge is wrapped by the error RoundTrip returns when
// the server's (or a CONNECT proxy's) response headers exceed the limit set
// by RoundTripperConfig.MaxResponseHeaderBytes. Test for it with errors.Is.
var ErrResponseHeaderTooLarge = errors.New("response headers too large")

// headerLineCost is what each header line counts toward the limit on top of
// its bytes: about what a parsed header entry takes in memory (the figure
// net/textproto uses for the same purpose). Without it, a flood of tiny
// lines ("a:\r\n") would cost far more memory than bytes.
const headerLineCost = 200

// maxStatusBytes bounds the status line and other short texts of the
// server's or proxy's choosing that errors show; longer ones are cut.
const maxStatusBytes = 256

// maxWireErrorBytes bounds the text of an error from a parser or from TLS
// that may quote the peer.
const maxWireErrorBytes = 1024

// headerLimiter sits between a connection and the bufio.Reader that
// http.ReadResponse parses, and bounds the header read: until lift is
// called, every byte it passes counts against the limit, and so does every
// line of a header section, at headerLineCost. Past the limit, Read fails
// and exceeded reports it.
//
// It follows the stream of header sections itself, line by line, the way
// net/textproto splits them: a blank line ends a section, and the next one
// follows only after an informational status (1xx but 101), which has no
// body. After the final section's blank line, lines stop counting, so the
// first octets of a body or of the session that bufio reads ahead cannot
// use up the limit. Bytes keep counting until lift, so whatever this
// tracking gets wrong, the header read stays bounded.
//
// lift makes it a plain pass-through: what follows the header (a
// refusal's body, the session after a 101) is not limited here, and no
// byte is held back or lost.
type headerLimiter struct {
	r        io.Reader
	limit    int64 // the configured limit, for the error text
	left     int64 // what may still be read; below 0 once exceeded
	lifted   bool
	exceeded bool

	inHeader  bool   // the bytes passing belong to a header section
	firstLine bool   // the current line is a section's status line
	lineLen   int    // bytes of the current line before its '\n'
	lineCR    bool   // the current line starts with '\r'
	status    []byte // the status line's start, to tell a final status
}

// statusPrefix is how much of a status line the limiter keeps to read its
// code: "HTTP/1.1 " and the code fit with room for stray spaces.
const statusPrefix = 64

func newHeaderLimiter(r io.Reader, limit int64) *headerLimiter {
	return &headerLimiter{
		r: r, limit: limit, left: limit,
		inHeader: true, firstLine: true,
		status: make([]byte, 0, statusPrefix),
	}
}

// errHeaderLimit is what Read returns past the limit; readHeader turns it
// into an error that wraps ErrResponseHeaderTooLarge.
var errHeaderLimit = errors.New("header limit reached")

// Read reads from the underlying reader, at most what the limit leaves.
func (l *headerLimiter) Read(p []byte) (int, error) {
	if l.lifted {
		return l.r.Read(p)
	}
	if l.left <= 0 {
		l.exceeded = true
		return 0, errHeaderLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	for _, c := range p[:n] {
		l.track(c)
	}
	return n, err
}

// track follows one byte through the header sections and charges
// headerLineCost for every line a section holds.
func (l *headerLimiter) track(c byte) {
	if !l.inHeader {
		return
	}
	if c != '\n' {
		if l.lineLen == 0 {
			l.lineCR = c == '\r'
		}
		l.lineLen++
		if l.firstLine && len(l.status) < statusPrefix {
			l.status = append(l.status, c)
		}
		return
	}
	// As bufio.Reader.ReadLine, which net/textproto reads lines with: a
	// line ends at '\n', and a '\r' right before it is dropped.
	blank := l.lineLen == 0 || l.lineLen == 1 && l.lineCR
	switch {
	case l.firstLine:
		l.firstLine = false
		l.left -= headerLineCost
	case !blank:
		l.left -= headerLineCost
	case isFinalStatus(l.status, l.lineLen <= statusPrefix):
		l.inHeader = false
	default:
		// An informational answer: the next section follows at once.
		l.firstLine = true
		l.status = l.status[:0]
	}
	l.lineLen = 0
}

// isFinalStatus reports whether a status line, or its first statusPrefix
// bytes (complete false), surely names a status that ends the header
// sections readResponse reads: 101 or 200 and above, parsed the way
// http.ReadResponse parses it. Anything else, a status it cannot make out
// included, counts as informational, which errs toward counting more.
func isFinalStatus(line []byte, complete bool) bool {
	s := string(line)
	if complete {
		s = strings.TrimSuffix(s, "\r")
	}
	_, status, ok := strings.Cut(s, " ")
	if !ok {
		return false
	}
	code, _, ok := strings.Cut(strings.TrimLeft(status, " "), " ")
	if !ok && !complete {
		return false // the code may go on past what was kept
	}
	n, err := strconv.Atoi(code)
	return len(code) == 3 && err == nil && (n == http.StatusSwitchingProtocols || n >= 200)
}

// lift ends the limit: from now on Read passes everything through.
func (l *headerLimiter) lift() {
	l.lifted = true
}

// readHeader reads one response from br, which reads through l, and turns
// its errors into ones fit to show: past the limit, an error wrapping
// ErrResponseHeaderTooLarge that names from and what to do; otherwise the
// parser's error with the server's text in it made safe.
func readHeader(br *bufio.Reader, l *headerLimiter, req *http.Request, from, limitName string) (*http.Response, error) {
	resp, err := http.ReadResponse(br, req)
	if err == nil && l.left >= 0 {
		return resp, nil
	}
	// A section may end in the same read as the line that took the count
	// past the limit; it is over the limit all the same, whatever the
	// reads' sizes.
	if l.exceeded || l.left < 0 {
		return nil, fmt.Errorf("%w: %s sent more than the limit of %d bytes (each header line counts %d bytes on top of its length); it is broken or hostile, or, if its headers really are that large, raise %s",
			ErrResponseHeaderTooLarge, from, l.limit, headerLineCost, limitName)
	}
	return nil, &wireError{err: err}
}

// wireError carries an error whose text may quote what a peer sent (the
// parsers of net/http and net/textproto put the offending line into
// theirs; crypto/x509 the names in a certificate); Error makes that text
// safe to print and bounded, and Unwrap keeps the original for errors.Is
// and errors.As.
type wireError struct{ err error }

func (e *wireError) Error() string { return safetext.Sanitize(e.err.Error(), maxWireErrorBytes) }
func (e *wireError) Unwrap() error { return e.err }

// timeoutError is the cause of a handshake step that ran out of its time:
// a net.Error whose Timeout is true, and that matches
// context.DeadlineExceeded, as a context's own deadline does.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() error   { return context.DeadlineExceeded }

// withStepTimeout returns ctx bounded by d as well, for one step of the
// handshake; when d runs out, context.Cause is a *timeoutError saying that
// the step took longer than d and naming the setting (limitName) to raise.
// d <= 0 leaves ctx alone. The caller must call the CancelFunc.
func withStepTimeout(ctx context.Context, d time.Duration, step, limitName string) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, &timeoutError{
		msg: fmt.Sprintf("%s took longer than %v (%s)", step, d, limitName),
	})
}
