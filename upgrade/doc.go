// Package upgrade turns an HTTP/1.1 request into a multiplexed streaming
// connection, and back: it binds the engine of package mux to HTTP, the way
// Kubernetes' spdy package binds SPDY for kubectl exec and port-forward.
//
// Two upgrades carry the same session. The direct one asks for
// "Connection: Upgrade" and "Upgrade: httpstream/1", and the frames follow
// the 101 on the bare connection. The WebSocket tunnel makes an RFC 6455
// handshake offering the subprotocol [WebSocketProtocol], and the frames
// travel in binary messages: it passes the proxies and load balancers that
// forward only WebSocket upgrades. A client's [Tunnel] chooses; the
// default, [TunnelAuto], tries the WebSocket first and falls back to one
// direct upgrade, as kubectl does.
//
// On the server, a [httpstream.ResponseUpgrader] from [NewResponseUpgrader]
// checks the request's headers, answers "101 Switching Protocols" to
// either upgrade, takes over the connection and runs the server side of a
// mux session on it. Servers usually negotiate a sub-protocol with
// [httpstream.Handshake] first.
//
// On the client, a [RoundTripper] dials the server (TCP, or TLS offering
// only HTTP/1.1 by ALPN), directly or through an http, https or socks5
// proxy, sends the request with the upgrade headers added and returns the
// response; its NewConnection starts the client side of the session on a
// 101, and turns any other answer into an error carrying the server's
// message. [NewDialer] does both in one call and negotiates the
// sub-protocol, as Kubernetes' spdy.NewDialer does; [DialContext] does it
// bounded by a context.
//
// Every Connection this package returns is a *mux.Session: besides the
// httpstream.Connection methods it has OpenStream (with a context), Ping,
// Shutdown (graceful) and NumStreams, and its streams are *mux.Stream,
// which are net.Conns with deadlines (see the WebSocket tunnel example).
//
// After the upgrade the side that sent the request is the mux client and
// the side that answered is the mux server; either may open streams. The
// request's context, and RoundTripperConfig.HandshakeTimeout (30 seconds
// by default, so that a server that accepts the connection and never
// answers cannot hang a dial), bound everything up to the 101 and nothing
// after it. After it, the session's keepalive (a ping every 30 seconds
// while quiet, 30 seconds for the answer) notices a peer that vanished,
// CreateStream waits at most mux.Config.StreamOpenTimeout, Close at most a
// second; a Read or Write on a stream waits as long as a net.Conn's would,
// until its deadline.
//
// Either peer may be hostile. Before the upgrade, the client bounds what a
// server or proxy can make it hold or wait for: response headers
// (RoundTripperConfig.MaxResponseHeaderBytes), a refusal's body (16 KiB),
// a proxy's handshake (RoundTripperConfig.ProxyConnectTimeout); and any
// text of theirs that an error shows (a status line, a message, a
// certificate's names) is cut and has its control characters and
// bidirectional overrides escaped, so printing the error cannot drive a
// terminal. On the server, the http.Server's ReadHeaderTimeout is what
// bounds a client until UpgradeResponse takes the connection over.
//
// The package reads the environment in one place only: a RoundTripper
// without a Proxier takes its proxy settings from HTTP_PROXY, HTTPS_PROXY
// and NO_PROXY, as net/http does.
package upgrade
