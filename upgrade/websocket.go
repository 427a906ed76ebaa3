package upgrade

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/internal/websocket"
	"github.com/httpstream-go/httpstream/mux"
)

// The WebSocket tunnel (RFC 6455): the handshake on both sides. The
// framing is package internal/websocket's Conn, which the mux session runs
// on as on any net.Conn.

// Header names of RFC 6455 11.3.
const (
	headerWebSocketKey        = "Sec-WebSocket-Key"
	headerWebSocketAccept     = "Sec-WebSocket-Accept"
	headerWebSocketVersion    = "Sec-WebSocket-Version"
	headerWebSocketProtocol   = "Sec-WebSocket-Protocol"
	headerWebSocketExtensions = "Sec-WebSocket-Extensions"
)

// isWebSocketRequest reports whether req asks for a WebSocket rather than
// the direct upgrade: its Upgrade header lists "websocket" (in any case:
// browsers have sent "WebSocket") and not Protocol. A request that lists
// both gets the direct upgrade, which costs less.
func isWebSocketRequest(req *http.Request) bool {
	return headerHasToken(req.Header, httpstream.HeaderUpgrade, "websocket") &&
		!headerHasToken(req.Header, httpstream.HeaderUpgrade, Protocol)
}

// checkWebSocketRequest checks a WebSocket opening handshake as RFC 6455
// 4.2.1 lists it, and answers a bad one: 426 with the version this server
// speaks for another version (4.2.2), 403 for a cross-site request with a
// browser's credentials, 400 with what is wrong for anything else. It
// reports whether the handshake may proceed.
func checkWebSocketRequest(w http.ResponseWriter, req *http.Request) bool {
	refuse := func(status int, format string, args ...any) bool {
		w.Header().Set(headerWebSocketVersion, websocket.Version)
		http.Error(w, "unable to upgrade: the Upgrade header asks for a WebSocket, but "+fmt.Sprintf(format, args...), status)
		return false
	}
	// RFC 6455 4.1, 4.2.1 item 1: "An HTTP/1.1 or higher GET request".
	if req.Method != http.MethodGet {
		return refuse(http.StatusBadRequest, "the handshake must be a GET request (RFC 6455 4.1), this one is %s", req.Method)
	}
	// Item 4: a Connection header that includes the "Upgrade" token.
	if !httpstream.IsUpgradeRequest(req) {
		return refuse(http.StatusBadRequest, "the Connection header must carry the %q token, it has %q", "upgrade", req.Header.Values(httpstream.HeaderConnection))
	}
	// Item 5: one key, 16 octets in base64.
	if k := req.Header.Values(headerWebSocketKey); len(k) != 1 || !websocket.ValidKey(k[0]) {
		return refuse(http.StatusBadRequest, "the %s header must be one base64-encoded 16-octet value (RFC 6455 4.1), it is %q", headerWebSocketKey, k)
	}
	// Item 6, and 4.2.2 item 4: another version gets 426 and the version
	// this server speaks, so that a client can retry with it; a request
	// without one is malformed.
	switch v := req.Header.Values(headerWebSocketVersion); {
	case len(v) == 0:
		return refuse(http.StatusBadRequest, "the %s header is missing: send %s (RFC 6455)", headerWebSocketVersion, websocket.Version)
	case len(v) != 1 || strings.TrimSpace(v[0]) != websocket.Version:
		return refuse(http.StatusUpgradeRequired, "this server speaks WebSocket version %s (RFC 6455), the request asks for %q", websocket.Version, v)
	}
	if !headerHasToken(req.Header, headerWebSocketProtocol, WebSocketProtocol) {
		return refuse(http.StatusBadRequest, "the %s header must offer %q, it has %q: this server carries only httpstream sessions in its WebSockets",
			headerWebSocketProtocol, WebSocketProtocol, req.Header.Values(headerWebSocketProtocol))
	}
	if crossSiteWithCredentials(req) {
		return refuse(http.StatusForbidden, "one from the page at %q, another origin than %q, with the browser's credentials, is refused (cross-site WebSocket hijacking); a server that wants such requests removes the Origin header after checking it itself",
			req.Header.Get("Origin"), req.Host)
	}
	return true
}

// crossSiteWithCredentials reports whether req comes from a web page of
// another origin than the server (RFC 6455 10.2: the Origin header) and
// carries credentials a browser adds by itself: cookies, HTTP
// authentication, a TLS client certificate.
//
// A browser cannot make a direct upgrade, whose Upgrade token it does not
// allow scripts to send, but any page can open a WebSocket to any server,
// and the browser attaches that server's cookies: without this check, a
// page on another site could drive a user's session (an exec, a
// port-forward) with the user's own credentials. Clients that are not
// browsers send no Origin, and requests without credentials gain nothing
// from forging one, so both pass.
func crossSiteWithCredentials(req *http.Request) bool {
	origin := req.Header.Get("Origin")
	if origin == "" {
		return false
	}
	credentials := req.Header.Get("Cookie") != "" || req.Header.Get("Authorization") != "" ||
		req.TLS != nil && len(req.TLS.PeerCertificates) > 0
	if !credentials {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || !strings.EqualFold(u.Host, req.Host)
}

// upgradeWebSocket answers a WebSocket opening handshake and runs the
// server side of a session in its binary messages.
func (u *responseUpgrader) upgradeWebSocket(w http.ResponseWriter, req *http.Request, newStreamHandler httpstream.NewStreamHandler) httpstream.Connection {
	if !checkWebSocketRequest(w, req) {
		return nil
	}
	conn, rw, ok := u.hijack(w)
	if !ok {
		return nil
	}
	// RFC 6455 4.2.2 item 5: 101, Upgrade and Connection, the accept
	// value, and the subprotocol chosen. No Sec-WebSocket-Extensions: no
	// extension is agreed, so the reserved bits stay zero.
	if err := writeWebSocket101(rw.Writer, w.Header(), req.Header.Get(headerWebSocketKey)); err != nil {
		_ = conn.Close()
		u.logError("writing 101 Switching Protocols", err)
		return nil
	}
	ws := websocket.NewConn(conn, withBuffered(conn, rw.Reader), false)
	session, err := mux.Server(ws, newStreamHandler, u.cfg)
	if err != nil {
		_ = conn.Close()
		u.logError("starting the stream session", err)
		return nil
	}
	return session
}

// skipOnWebSocket101 lists, beside skipOn101's, the headers set on the
// ResponseWriter that a WebSocket 101 must not repeat: the handshake's own.
var skipOnWebSocket101 = map[string]bool{
	headerWebSocketAccept:     true,
	headerWebSocketProtocol:   true,
	headerWebSocketExtensions: true,
	headerWebSocketVersion:    true,
}

// writeWebSocket101 writes the 101 that completes a WebSocket handshake
// for key, with the headers of h that may follow, and flushes it.
func writeWebSocket101(bw *bufio.Writer, h http.Header, key string) error {
	_, _ = fmt.Fprintf(bw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n%s: %s\r\n%s: %s\r\n",
		headerWebSocketAccept, websocket.AcceptKey(key), headerWebSocketProtocol, WebSocketProtocol)
	kept := headersFor101(h)
	for key := range kept {
		if skipOnWebSocket101[http.CanonicalHeaderKey(key)] {
			delete(kept, key)
		}
	}
	if err := kept.Write(bw); err != nil {
		return err
	}
	_, _ = bw.WriteString("\r\n")
	return bw.Flush()
}

// webSocketRequest turns clone, a copy of the caller's request, into a
// WebSocket opening handshake (RFC 6455 4.1) and returns the key it sent.
func webSocketRequest(clone *http.Request) string {
	clone.Method = http.MethodGet
	// Only "Upgrade" in Connection: other tokens the caller listed would
	// make a proxy drop the headers they name, and "close" contradicts
	// the upgrade.
	clone.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	clone.Header.Set(httpstream.HeaderUpgrade, "websocket")
	key := websocket.NewKey()
	clone.Header.Set(headerWebSocketKey, key)
	clone.Header.Set(headerWebSocketVersion, websocket.Version)
	clone.Header.Set(headerWebSocketProtocol, WebSocketProtocol)
	clone.Header.Del(headerWebSocketExtensions)
	return key
}

// checkWebSocket101 checks a 101 to a WebSocket handshake that sent key, as
// RFC 6455 4.1 tells a client to ("If the server's response does not
// conform to the requirements..., the client MUST _Fail the WebSocket
// Connection_"), and says what is wrong.
func checkWebSocket101(resp *http.Response, key string) error {
	switch {
	case !headerHasToken(resp.Header, httpstream.HeaderUpgrade, "websocket"):
		return fmt.Errorf("the server switched to [%s] instead of a WebSocket", headerText(resp.Header, httpstream.HeaderUpgrade))
	case !headerHasToken(resp.Header, httpstream.HeaderConnection, "upgrade"):
		return fmt.Errorf("the server answered 101 Switching Protocols without the upgrade token in its Connection header (it has [%s])", headerText(resp.Header, httpstream.HeaderConnection))
	case resp.Header.Get(headerWebSocketAccept) != websocket.AcceptKey(key):
		return fmt.Errorf("the server's %s is [%s], not the value for the key sent: it did not answer this handshake", headerWebSocketAccept, headerText(resp.Header, headerWebSocketAccept))
	case len(resp.Header.Values(headerWebSocketExtensions)) > 0:
		return fmt.Errorf("the server chose the extensions [%s], none of which were offered", headerText(resp.Header, headerWebSocketExtensions))
	case resp.Header.Get(headerWebSocketProtocol) != WebSocketProtocol || len(resp.Header.Values(headerWebSocketProtocol)) != 1:
		return fmt.Errorf("the server chose the WebSocket subprotocol [%s] instead of %s: it is not an httpstream server, or a version that does not match",
			headerText(resp.Header, headerWebSocketProtocol), WebSocketProtocol)
	}
	return nil
}

// newWebSocketClient starts the WebSocket framing on conn, the connection
// of a 101 to a WebSocket handshake, which may hold octets read with the
// 101: writes go to the connection underneath, so that the session keeps
// its socket options, and reads through the wrapper first.
func newWebSocketClient(conn net.Conn) net.Conn {
	raw := conn
	var r io.Reader = conn
	if bc, ok := conn.(*bufferedConn); ok {
		raw = bc.Conn
	}
	return websocket.NewConn(raw, r, true)
}
