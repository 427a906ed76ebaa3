package httpstream

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Header names used while turning an HTTP request into a streaming
// connection. The values match Kubernetes' util/httpstream byte for byte,
// because clients and servers built on either library must be able to talk
// to each other.
const (
	// HeaderConnection is the hop-by-hop header whose "upgrade" token marks
	// a request that wants to leave HTTP; see [IsUpgradeRequest].
	HeaderConnection = "Connection"

	// HeaderUpgrade names the protocol the client wants to switch to. It is
	// only meaningful when [HeaderConnection] carries the "upgrade" token,
	// which is why [IsUpgradeRequest] does not look at it.
	HeaderUpgrade = "Upgrade"

	// HeaderProtocolVersion carries the stream sub-protocol: the client
	// lists what it speaks, most preferred first, and the server answers
	// with the single protocol [Handshake] chose.
	HeaderProtocolVersion = "X-Stream-Protocol-Version"

	// HeaderAcceptedProtocolVersions is set on a refused [Handshake] so the
	// client can tell the user (or retry with) what the server would accept.
	HeaderAcceptedProtocolVersions = "X-Accepted-Stream-Protocol-Versions"
)

// NewStreamHandler is called once for every stream the remote peer opens on
// a [Connection], one stream at a time, in the order the streams were
// opened. Returning nil accepts the stream; returning an error refuses it,
// and the peer's CreateStream fails with the error's text, so it learns at
// once that nobody will serve the stream. replySent is closed once the
// acceptance has been queued for the wire, after the handler returned nil.
// The handler should return quickly and do the stream's I/O elsewhere (hand
// the stream to a goroutine): the next stream waits for it, and the peer's
// data only flows once the stream is accepted.
//
// A handler that panics does not take the process down with this library's
// connections (package mux), as with net/http's handlers: the panic is
// logged with its stack to the session's Config.Logger, the stream is
// refused with the panic's text, and the connection carries on.
// (Kubernetes' own implementation logs and re-panics.)
type NewStreamHandler func(stream Stream, replySent <-chan struct{}) error

// NoOpNewStreamHandler accepts every stream and does nothing else. It suits
// the side that only creates streams (typically the client), which must
// still pass a handler but expects the peer never to open any, and tests
// that need a valid handler without behaviour.
func NoOpNewStreamHandler(stream Stream, replySent <-chan struct{}) error { return nil }

// Connection is an upgraded HTTP connection that carries many independent,
// bidirectional streams over one underlying network connection, so that,
// for example, stdin, stdout, stderr and resize events of a remote command
// do not each need their own TCP connection and TLS handshake.
type Connection interface {
	// CreateStream opens a new stream to the peer. headers travel with the
	// open request so the peer's NewStreamHandler can tell streams apart
	// (for example by a stream-type header) before reading any data.
	CreateStream(headers http.Header) (Stream, error)
	// Close resets every open stream and closes the underlying connection;
	// streams are reset rather than closed because nobody will be left to
	// read what a graceful close would still deliver.
	Close() error
	// CloseChan returns a channel that is closed once the underlying
	// connection is gone, so callers can select on connection loss next to
	// their own work instead of polling.
	CloseChan() <-chan bool
	// SetIdleTimeout sets how long the connection may go without any
	// stream activity before it is closed automatically, so that a peer
	// that vanished without closing does not hold resources forever. Zero
	// disables the timeout.
	SetIdleTimeout(timeout time.Duration)
	// RemoveStreams is bookkeeping only, as in Kubernetes: it drops the
	// streams from whatever list the connection keeps for its own Close,
	// and never resets, closes or otherwise changes them (Kubernetes'
	// kubelet calls it on streams still in use). Unknown streams and nil
	// are ignored.
	RemoveStreams(streams ...Stream)
}

// Stream is one bidirectional byte stream inside a [Connection].
//
// Close and Reset differ on purpose: Close only ends the local write side
// (a half-close, like TCP's FIN), so the peer reads io.EOF while this side
// can keep reading the peer's reply; Reset abandons both directions at once,
// for when the exchange has failed and nothing more should be read or
// written.
type Stream interface {
	io.ReadWriteCloser
	// Reset closes both directions of the stream immediately. Data this
	// side has not read is discarded; the peer reads what was sent before
	// the reset, then io.EOF, and its writes fail.
	Reset() error
	// Headers returns the headers the stream was created with, which is how
	// the accepting side learns what the stream is for.
	Headers() http.Header
	// Identifier returns the stream's ID, unique within its Connection,
	// useful in logs and for matching related streams.
	Identifier() uint32
}

// ResponseUpgrader is the server side of an upgrade: it answers an HTTP
// request with "101 Switching Protocols" and takes over the underlying
// network connection.
type ResponseUpgrader interface {
	// UpgradeResponse upgrades the response and returns the resulting
	// Connection. newStreamHandler is called asynchronously, once for every
	// stream the client opens. It returns nil if the upgrade failed;
	// because the method has no error result (the shape is Kubernetes'),
	// implementations answer the client with an HTTP error themselves,
	// while that is still possible, and the caller must then just return.
	UpgradeResponse(w http.ResponseWriter, req *http.Request, newStreamHandler NewStreamHandler) Connection
}

// UpgradeRoundTripper is the client side of an upgrade. It is an
// [http.RoundTripper] so that it composes with ordinary HTTP clients and
// middleware (authentication, proxies) for the upgrade request itself;
// NewConnection then turns the 101 response into a [Connection].
type UpgradeRoundTripper interface {
	http.RoundTripper
	// NewConnection validates that resp really is a successful upgrade and
	// returns the Connection that now owns the network connection. When the
	// server answered but did not switch protocols, implementations return
	// an *UpgradeFailureError, so callers can tell a refusal from a
	// transport failure with IsUpgradeFailure.
	NewConnection(resp *http.Response) (Connection, error)
}

// Dialer opens a streaming connection to a server in one step.
type Dialer interface {
	// Dial connects and upgrades, offering protocols in order of preference
	// (most preferred first). It returns the Connection and the protocol the
	// server chose, which is empty if the server did not negotiate one.
	Dial(protocols ...string) (Connection, string, error)
}

// UpgradeFailureError reports that the server answered the upgrade request
// but did not switch protocols (for example because it returned 400, 403 or
// 500). It exists so that callers can tell "the server said no", which is
// usually permanent and worth showing to the user, from network errors,
// which may be worth retrying; use [IsUpgradeFailure] to test for it.
type UpgradeFailureError struct {
	// Cause says why the upgrade was refused, typically built from the
	// server's status and response body.
	Cause error
}

// Error returns "unable to upgrade streaming request: " followed by the
// cause. The prefix is Kubernetes' wording, kept identical so that code and
// tests that match on it keep working after switching libraries.
func (e *UpgradeFailureError) Error() string {
	const prefix = "unable to upgrade streaming request"
	// A zero UpgradeFailureError is still a valid, if uninformative, error;
	// printing it must not crash the program that is reporting a failure.
	if e == nil || e.Cause == nil {
		return prefix
	}
	return prefix + ": " + e.Cause.Error()
}

// Unwrap returns Cause so that errors.Is and errors.As can see through an
// UpgradeFailureError to the underlying error.
func (e *UpgradeFailureError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Cause
}

// IsUpgradeFailure reports whether err is, or wraps, an
// *[UpgradeFailureError], so callers can detect a refused upgrade no matter
// how many layers of fmt.Errorf("...: %w", err) were added on the way up.
func IsUpgradeFailure(err error) bool {
	var target *UpgradeFailureError
	return errors.As(err, &target)
}

// IsHTTPSProxyError reports whether err is the dial error a WebSocket
// client gives when told to reach its server through an https:// proxy,
// which it cannot do ("proxy: unknown scheme: https"). kubectl checks it to
// fall back from the WebSocket path to a direct upgrade, which can use such
// a proxy. Like Kubernetes' function of the same name, it matches the text,
// because that client's error has no type to test for; a nil error is not
// one.
func IsHTTPSProxyError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "proxy: unknown scheme: https")
}

// IsUpgradeRequest reports whether req asks to switch protocols, that is
// whether its Connection header carries the "upgrade" token.
//
// The check follows RFC 9110's token rules rather than Kubernetes' substring
// match: the token is compared case-insensitively, may appear anywhere in a
// comma-separated list and on any of several Connection header lines, but
// "upgraded" or "x-upgrade" do not count, nor does an Upgrade header without
// the Connection token, because a proxy or server that treated those as
// upgrades would hijack connections the client never offered. A nil request
// is not an upgrade request.
func IsUpgradeRequest(req *http.Request) bool {
	if req == nil {
		return false
	}
	for _, line := range req.Header.Values(HeaderConnection) {
		for token := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(trimOWS(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Handshake negotiates the stream sub-protocol for an upgrade request, the
// way Kubernetes does, so that servers and clients of either library agree.
//
// The client lists the protocols it speaks in the X-Stream-Protocol-Version
// header, most preferred first, on one or several header lines and/or as
// comma-separated values. The first client protocol, in client order, that
// also appears in serverProtocols wins: the client's order decides because
// the client knows which protocol version gives its user the best
// behaviour, while the server's job is only to say what it can do.
// Comparison is exact and case-sensitive.
//
// On success Handshake sets the X-Stream-Protocol-Version response header
// to the chosen protocol and returns it, without writing a status, so the
// caller can go on to upgrade the response.
//
// On failure Handshake has already written a complete error response, so the
// caller must only return (and may log the error):
//   - no (or only empty) X-Stream-Protocol-Version values: 400 Bad Request;
//   - no protocol in common: 403 Forbidden, with the
//     X-Accepted-Stream-Protocol-Versions header holding each of
//     serverProtocols as a separate value, so the client can report or
//     retry with what the server accepts;
//   - empty serverProtocols: 500 Internal Server Error. Kubernetes panics
//     here; this package returns an error instead, because a
//     misconfigured server should fail the request, not the process.
//
// Kubernetes returns an error without writing any response when the client
// sent no protocol, although its callers assume Handshake always answers the
// client; this package writes the 400 so those callers behave as intended.
func Handshake(req *http.Request, w http.ResponseWriter, serverProtocols []string) (string, error) {
	// The server's configuration is checked first: it is wrong for every
	// request, and reporting it only when a client happens to send the
	// header would hide the bug.
	if len(serverProtocols) == 0 {
		http.Error(w, "unable to upgrade: the server has no stream protocols configured", http.StatusInternalServerError)
		return "", errors.New("unable to upgrade: serverProtocols is empty: pass the stream protocols this server supports to Handshake")
	}

	clientProtocols := splitHeaderList(req.Header.Values(HeaderProtocolVersion))
	if len(clientProtocols) == 0 {
		err := fmt.Errorf("unable to upgrade: %s is required: the client must send it with the stream protocols it supports, most preferred first", HeaderProtocolVersion)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", err
	}

	if chosen, ok := negotiate(clientProtocols, serverProtocols); ok {
		w.Header().Set(HeaderProtocolVersion, chosen)
		return chosen, nil
	}

	// Replace rather than append so the header lists exactly what this
	// server accepts, even if something upstream set it already. It must
	// happen before http.Error, which sends the headers.
	w.Header().Del(HeaderAcceptedProtocolVersions)
	for _, p := range serverProtocols {
		w.Header().Add(HeaderAcceptedProtocolVersions, p)
	}
	err := fmt.Errorf("unable to upgrade: unable to negotiate protocol: client supports %v, server accepts %v: the client must offer one of the server's protocols", clientProtocols, serverProtocols)
	http.Error(w, err.Error(), http.StatusForbidden)
	return "", err
}

// negotiate returns the first client protocol the server also supports.
// The lists hold a handful of entries, so a nested loop beats building a set.
func negotiate(clientProtocols, serverProtocols []string) (string, bool) {
	for _, c := range clientProtocols {
		for _, s := range serverProtocols {
			if c == s {
				return c, true
			}
		}
	}
	return "", false
}

// splitHeaderList flattens header lines holding comma-separated lists into
// one list, dropping empty elements, since HTTP allows a list to be sent on
// one line, several lines, or both, with empty elements tolerated.
func splitHeaderList(lines []string) []string {
	var out []string
	for _, line := range lines {
		for item := range strings.SplitSeq(line, ",") {
			if item = trimOWS(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// trimOWS removes HTTP optional whitespace (spaces and horizontal tabs).
// Kubernetes trims only spaces; tabs are trimmed too because RFC 9110 allows
// them around list elements and no protocol token can contain one.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}
