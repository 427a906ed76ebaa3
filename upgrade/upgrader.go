package upgrade

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

// Protocol is the token that names this wire protocol's version in the
// Upgrade header of the request and of the 101 response (frame/SPEC.md,
// 2.1). A later, incompatible version has a different token, so versions
// are negotiated in HTTP, before any frame is sent.
const Protocol = frame.UpgradeToken

// responseUpgrader is the ResponseUpgrader the constructors return.
type responseUpgrader struct {
	cfg *mux.Config // a private copy; nil: mux defaults
}

// NewResponseUpgrader returns a ResponseUpgrader whose sessions use the
// engine's default configuration.
func NewResponseUpgrader() httpstream.ResponseUpgrader {
	return NewResponseUpgraderWithConfig(nil)
}

// NewResponseUpgraderWithConfig returns a ResponseUpgrader whose sessions
// use cfg (nil: the engine's defaults). cfg is copied, so changing it later
// does not affect the upgrader.
func NewResponseUpgraderWithConfig(cfg *mux.Config) httpstream.ResponseUpgrader {
	u := &responseUpgrader{}
	if cfg != nil {
		c := *cfg
		u.cfg = &c
	}
	return u
}

// UpgradeResponse switches the request's connection to the httpstream
// protocol and returns the server side of the session (mux.Server), which
// calls newStreamHandler for every stream the client opens (nil refuses
// them all). The Connection is a *mux.Session.
//
// It serves both upgrades a client can ask for, with no configuration:
//   - the direct one, "Connection: Upgrade" and "Upgrade: httpstream/1":
//     the session's frames follow the 101 on the connection;
//   - a WebSocket (RFC 6455): "Upgrade: websocket", version 13, a
//     Sec-WebSocket-Key, and Sec-WebSocket-Protocol offering
//     WebSocketProtocol (in any place of the list, as browsers send it).
//     The 101 carries Sec-WebSocket-Accept and WebSocketProtocol, and the
//     frames then travel in binary messages. The handshake is a GET, as
//     RFC 6455 4.1 requires, whatever method the client's code chose:
//     route GET to the handler too.
//
// A request whose Connection header lacks the "upgrade" token, or whose
// Upgrade header lists neither Protocol nor "websocket", gets 400 Bad
// Request with a message naming the header. A WebSocket handshake that is
// not a GET, or has a missing or bad key, or does not offer
// WebSocketProtocol, gets 400 with a message; one of a version other than
// 13 gets 426 Upgrade Required with "Sec-WebSocket-Version: 13" (RFC 6455
// 4.2.2). A WebSocket from a web page of another origin that carries the
// browser's credentials (cookies, HTTP authentication, a client
// certificate) gets 403: without that, any site a user visits could drive
// the user's sessions (cross-site WebSocket hijacking); a server that
// wants such requests checks Origin itself and removes the header before
// calling UpgradeResponse. A ResponseWriter that cannot hand over its
// connection (HTTP/2, or a wrapper without Unwrap) gets 500. In all these
// cases UpgradeResponse returns nil and the handler must just return.
//
// On success the 101 also carries the headers already set on w (for
// example the X-Stream-Protocol-Version that httpstream.Handshake chose,
// which works the same for both upgrades). The connection then belongs to
// the returned Connection, not to the HTTP server: the handler may return
// at once, and the connection lives until it is closed. Any octets the
// client sent behind its request (a direct client may send its first
// frames without waiting for the 101) are kept.
//
// Until the handler runs, the connection is the http.Server's: a client
// that sends its request headers slowly, or never finishes them, is bounded
// only by the server's ReadHeaderTimeout (or ReadTimeout), which
// http.Server leaves unset. Set ReadHeaderTimeout on every server that
// upgrades (the package example shows one). UpgradeResponse clears the
// connection's deadlines when it takes the connection over, so those
// timeouts never cut a session short; after the 101, the session's
// keepalive and idle timeout watch the client.
func (u *responseUpgrader) UpgradeResponse(w http.ResponseWriter, req *http.Request, newStreamHandler httpstream.NewStreamHandler) httpstream.Connection {
	if isWebSocketRequest(req) {
		return u.upgradeWebSocket(w, req, newStreamHandler)
	}
	if !httpstream.IsUpgradeRequest(req) {
		http.Error(w, fmt.Sprintf("unable to upgrade: the Connection header must carry the %q token, it has %q: send \"Connection: Upgrade\" with \"Upgrade: %s\"",
			"upgrade", req.Header.Values(httpstream.HeaderConnection), Protocol), http.StatusBadRequest)
		return nil
	}
	if !headerHasToken(req.Header, httpstream.HeaderUpgrade, Protocol) {
		http.Error(w, fmt.Sprintf("unable to upgrade: the Upgrade header must list %q, or \"websocket\" with %s: %s, it has %q: this server speaks only %s",
			Protocol, headerWebSocketProtocol, WebSocketProtocol, req.Header.Values(httpstream.HeaderUpgrade), Protocol), http.StatusBadRequest)
		return nil
	}
	conn, rw, ok := u.hijack(w)
	if !ok {
		return nil
	}
	if err := writeSwitchingProtocols(rw.Writer, w.Header()); err != nil {
		_ = conn.Close()
		u.logError("writing 101 Switching Protocols", err)
		return nil
	}
	session, err := mux.Server(withBuffered(conn, rw.Reader), newStreamHandler, u.cfg)
	if err != nil {
		_ = conn.Close()
		u.logError("starting the stream session", err)
		return nil
	}
	return session
}

// hijack takes the connection over from the HTTP server, or answers 500
// and reports false.
func (u *responseUpgrader) hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, bool) {
	// The ResponseController finds Hijack through middleware that wraps
	// the ResponseWriter and offers Unwrap.
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, fmt.Sprintf("unable to upgrade: the server cannot take over this connection (%v): upgrades need HTTP/1.1 and a ResponseWriter that supports http.Hijacker", err),
			http.StatusInternalServerError)
		return nil, nil, false
	}
	// The HTTP server may have set deadlines for reading the request and
	// writing the response; a session's connection lives on its own terms.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		_ = conn.Close()
		u.logError("clearing the hijacked connection's deadlines", err)
		return nil, nil, false
	}
	return conn, rw, true
}

// skipOn101 lists the headers set on the ResponseWriter that the 101 must
// not repeat: the two it sets itself, and framing headers that mean nothing
// once the connection stops speaking HTTP. Keys are canonical; headersFor101
// compares any key in its canonical form.
var skipOn101 = map[string]bool{
	"Connection":        true,
	"Upgrade":           true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Keep-Alive":        true,
}

// headersFor101 returns the headers of h that the 101 carries. A handler may
// have written a key in any case straight into the map
// (w.Header()["connection"] = ...), which http.Header's own exclusion, an
// exact-key lookup, would let through: a second Connection line that
// contradicts the upgrade. So every key is compared in canonical form.
func headersFor101(h http.Header) http.Header {
	kept := make(http.Header, len(h))
	for key, values := range h {
		if !skipOn101[textproto.CanonicalMIMEHeaderKey(key)] {
			kept[key] = values
		}
	}
	return kept
}

// writeSwitchingProtocols writes the 101 response and flushes it. It is
// written by hand, after the hijack, rather than with WriteHeader: what
// net/http does with a 101 passed to WriteHeader has changed between
// releases and differs between ResponseWriter implementations.
// Header.Write drops invalid names and turns CR and LF in values into
// spaces, so no header can split the response.
func writeSwitchingProtocols(bw *bufio.Writer, h http.Header) error {
	_, _ = fmt.Fprintf(bw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n", Protocol)
	if err := headersFor101(h).Write(bw); err != nil {
		return err
	}
	_, _ = bw.WriteString("\r\n")
	return bw.Flush()
}

// logError reports a failure after the hijack, when the client can no
// longer be told over HTTP, to the configured logger if any.
func (u *responseUpgrader) logError(what string, err error) {
	if u.cfg != nil && u.cfg.Logger != nil {
		u.cfg.Logger.Error("upgrade failed after taking over the connection", "step", what, "error", err)
	}
}
