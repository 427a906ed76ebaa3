package upgrade

import (
	"fmt"

	"github.com/httpstream-go/httpstream/frame"
)

// WebSocketProtocol is the Sec-WebSocket-Protocol token that names this
// wire protocol's version inside a WebSocket (RFC 6455 1.9): the client
// offers it, the server answers with it, and the session's frames then
// travel in binary messages. It is not Protocol itself because RFC 6455
// 4.1 forbids separators such as "/" in the token (browsers enforce it).
const WebSocketProtocol = "httpstream.v1"

// The token must change with the wire format, as Protocol does.
var _ = [1]struct{}{}[frame.Version-1]

// Tunnel chooses how a RoundTripper asks the server to switch protocols.
// The zero value means the default, TunnelAuto.
type Tunnel int

const (
	// TunnelDirect sends "Connection: Upgrade" and "Upgrade:
	// httpstream/1" (Protocol): the session's frames go straight on the
	// connection after the 101. It costs nothing on top of TCP, and works
	// with every version of this library's server, but many proxies and
	// load balancers forward only WebSocket upgrades and refuse or break
	// this one.
	TunnelDirect Tunnel = iota + 1

	// TunnelWebSocket sends an RFC 6455 handshake ("Upgrade: websocket",
	// Sec-WebSocket-Key, version 13, Sec-WebSocket-Protocol offering
	// WebSocketProtocol) as a GET request, whatever the request's method
	// (RFC 6455 4.1), and carries the frames in binary messages, masked
	// as the RFC requires of a client. It passes the proxies that forward
	// only WebSocket upgrades; servers of this library from before the
	// WebSocket tunnel refuse it with 400.
	TunnelWebSocket

	// TunnelAuto tries the WebSocket handshake first and, when the answer
	// is anything but a valid WebSocket 101 (a refusal from the server or
	// from a proxy, a 101 to something else) or the connection closes
	// before any answer, makes one direct upgrade on a new connection, as
	// kubectl does for exec and port-forward. A request with a body goes
	// direct at once: a WebSocket handshake carries none.
	//
	// It is the default: it works behind the proxies that pass only
	// WebSocket upgrades, which is what users of kubectl-like tools behind
	// corporate and cloud proxies need, and still reaches servers of older
	// versions, which answer the WebSocket handshake with 400, at the
	// price of one more request to them.
	TunnelAuto
)

var tunnelNames = [...]string{
	TunnelDirect:    "TunnelDirect",
	TunnelWebSocket: "TunnelWebSocket",
	TunnelAuto:      "TunnelAuto",
}

// String returns the constant's name, such as "TunnelWebSocket".
func (t Tunnel) String() string {
	if t > 0 && int(t) < len(tunnelNames) {
		return tunnelNames[t]
	}
	return fmt.Sprintf("Tunnel(%d)", int(t))
}

// DefaultTunnel is the Tunnel a RoundTripper uses when its
// RoundTripperConfig leaves Tunnel zero (see TunnelAuto for why).
const DefaultTunnel = TunnelAuto
