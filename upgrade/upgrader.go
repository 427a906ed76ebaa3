package upgrade

import (
	"bufio"
	"fmt"
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
// them all).
//
// A request whose Connection header lacks the "upgrade" token, or whose
// Upgrade header does not list Protocol, gets 400 Bad Request with a message
// naming the header; a ResponseWriter that cannot hand over its connection
// (HTTP/2, or a wrapper without Unwrap) gets 500. In both cases
// UpgradeResponse returns nil and the handler must just return.
//
// On success the response is "101 Switching Protocols" with "Connection:
// Upgrade", "Upgrade: httpstream/1" and the headers already set on w (for
// example the X-Stream-Protocol-Version that httpstream.Handshake chose).
// The connection then belongs to the returned Connection, not to the HTTP
// server: the handler may return at once, and the connection lives until
// it is closed. Any octets the client sent behind its request (a client may
// send its first frames without waiting for the 101) are kept.
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
	if !httpstream.IsUpgradeRequest(req) {
		http.Error(w, fmt.Sprintf("unable to upgrade: the Connection header must carry the %q token, it has %q: send \"Connection: Upgrade\" with \"Upgrade: %s\"",
			"upgrade", req.Header.Values(httpstream.HeaderConnection), Protocol), http.StatusBadRequest)
		return nil
	}
	if !headerHasToken(req.Header, httpstream.HeaderUpgrade, Protocol) {
		http.Error(w, fmt.Sprintf("unable to upgrade: the Upgrade header must list %q, it has %q: this server speaks only %s",
			Protocol, req.Header.Values(httpstream.HeaderUpgrade), Protocol), http.StatusBadRequest)
		return nil
	}

	// The ResponseController finds Hijack through middleware that wraps
	// the ResponseWriter and offers Unwrap.
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, fmt.Sprintf("unable to upgrade: the server cannot take over this connection (%v): upgrades need HTTP/1.1 and a ResponseWriter that supports http.Hijacker", err),
			http.StatusInternalServerError)
		return nil
	}
	// The HTTP server may have set deadlines for reading the request and
	// writing the response; a session's connection lives on its own terms.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		_ = conn.Close()
		u.logError("clearing the hijacked connection's deadlines", err)
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
