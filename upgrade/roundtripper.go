package upgrade

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

// RoundTripperConfig configures a [RoundTripper].
type RoundTripperConfig struct {
	// TLS configures connections to https servers and https proxies. The
	// RoundTripper works on a copy, with ALPN limited to http/1.1 (only
	// HTTP/1.1 can switch protocols) and ServerName, when empty, taken from
	// the URL's host. nil: the system's roots, no client certificate.
	TLS *tls.Config

	// Proxier picks the proxy for a request, as http.Transport.Proxy does:
	// it returns the proxy's URL (http, https or socks5, with credentials
	// as user info) or nil to connect directly.
	//
	// nil: the environment, through http.ProxyFromEnvironment: HTTP_PROXY,
	// HTTPS_PROXY and NO_PROXY (and their lowercase forms), where NO_PROXY
	// may hold CIDR ranges such as 10.0.0.0/8. This is the only place the
	// package reads the environment, and net/http reads it once per
	// process. Requests to localhost and loopback addresses never use a
	// proxy from the environment.
	Proxier func(*http.Request) (*url.URL, error)

	// PingPeriod is a shorthand for Mux.KeepAliveInterval, the period of the
	// keepalive pings: when non-zero it overrides Mux's value. Zero keeps
	// Mux's (whose own zero means the engine's default of 30s); negative
	// turns pings off. Unlike Kubernetes' SPDY round tripper, zero does not
	// turn pings off, because a connection without pings cannot notice a
	// peer that vanished.
	PingPeriod time.Duration

	// UpgradeTransport, if set, supplies how to reach the server: its
	// dialer, TLS dialer, TLS configuration and proxy function are used
	// instead of TLS and Proxier, which must then be nil. It must be an
	// *http.Transport, a *RoundTripper, or a wrapper of one that has a
	// WrappedRoundTripper() http.RoundTripper method (as Kubernetes'
	// round tripper wrappers do). Its proxy function is used as net/http
	// uses it: nil means no proxy.
	UpgradeTransport http.RoundTripper

	// Mux configures the stream sessions NewConnection starts. nil: the
	// engine's defaults.
	Mux *mux.Config

	// MaxResponseHeaderBytes bounds the header section of the server's
	// answer (its status line and headers, and those of any informational
	// 1xx answers before it) and of an http or https proxy's answer to
	// CONNECT. Each header line counts 200 bytes on top of its length, for
	// the memory a parsed header takes, so that a flood of tiny lines is
	// bounded as well as one endless line. A server that sends more fails
	// the RoundTrip with an error wrapping ErrResponseHeaderTooLarge, after
	// the client has held at most about one and a half times the limit.
	// The limit ends with the headers: the body of a refusal is bounded on
	// its own (see NewConnection), and the octets after a 101 belong to
	// the session, unlimited.
	//
	// Zero: the UpgradeTransport's MaxResponseHeaderBytes if it is an
	// *http.Transport that sets one, else DefaultMaxResponseHeaderBytes
	// (1 MiB). Negative values are an error.
	MaxResponseHeaderBytes int64

	// ProxyConnectTimeout bounds a proxy's handshake once the TCP (and,
	// for an https proxy, TLS) connection to it is up: the CONNECT request
	// and the proxy's answer, or the whole SOCKS5 negotiation. A proxy
	// that takes longer fails the RoundTrip with an error that is a
	// net.Error with Timeout() true and matches context.DeadlineExceeded.
	// The request's context bounds the handshake too, whichever ends
	// first.
	//
	// Zero: DefaultProxyConnectTimeout (1 minute, net/http's bound on
	// CONNECT). Negative: only the request's context bounds it.
	ProxyConnectTimeout time.Duration

	// Tunnel chooses the handshake: TunnelDirect, TunnelWebSocket or
	// TunnelAuto (see each). Zero: DefaultTunnel, TunnelAuto, which
	// passes proxies that forward only WebSocket upgrades and still
	// reaches servers that speak only the direct upgrade.
	Tunnel Tunnel

	// HandshakeTimeout bounds each handshake: from the start of the dial
	// (through any proxy, and TLS) until the server's response headers
	// have arrived, and for a refusal until its body is read too. A
	// server that accepts the connection and never answers fails the
	// RoundTrip (and so Dial) after this long, with an error that is a
	// net.Error with Timeout() true and matches context.DeadlineExceeded.
	// The request's context bounds the handshake too, whichever ends
	// first; the UpgradeTransport's TLSHandshakeTimeout and
	// ResponseHeaderTimeout bound their steps within it. With TunnelAuto,
	// each of the two handshakes has its own. Once the 101 has arrived,
	// it no longer applies.
	//
	// Zero: the UpgradeTransport's, if it is a *RoundTripper, else
	// DefaultHandshakeTimeout (30 seconds). Negative: only the request's
	// context bounds the handshake.
	HandshakeTimeout time.Duration

	// NewStreamHandler accepts the streams the server opens on the
	// connection, as the handler given to a ResponseUpgrader does on the
	// server. nil: such streams are refused, which suits the usual client
	// that opens every stream itself.
	NewStreamHandler httpstream.NewStreamHandler
}

// RoundTripper is the client side of an upgrade. Its RoundTrip sends a
// request asking to switch protocols, directly ("Connection: Upgrade",
// "Upgrade: httpstream/1") or in a WebSocket, as its Tunnel says, on a
// connection of its own, never pooled, and returns the server's response;
// NewConnection turns a 101 response into a multiplexed
// [httpstream.Connection], a *mux.Session. It implements
// [httpstream.UpgradeRoundTripper].
//
// A RoundTripper holds no per-request state, so one may serve any number of
// upgrades, concurrently. The connection travels with the response: every
// response RoundTrip returns must be passed to NewConnection or have its
// Body closed, or its connection stays open.
type RoundTripper struct {
	tlsConfig      *tls.Config // the caller's, never modified; TLSClientConfig returns it
	proxier        func(*http.Request) (*url.URL, error)
	dialContext    func(ctx context.Context, network, address string) (net.Conn, error)
	dialTLSContext func(ctx context.Context, network, address string) (net.Conn, error) // from UpgradeTransport; nil otherwise
	muxConfig      *mux.Config                                                          // nil: mux defaults
	streamHandler  httpstream.NewStreamHandler

	maxHeaderBytes        int64         // RoundTripperConfig.MaxResponseHeaderBytes, resolved
	proxyConnectTimeout   time.Duration // RoundTripperConfig.ProxyConnectTimeout, resolved; <= 0: none
	tlsHandshakeTimeout   time.Duration // the UpgradeTransport's TLSHandshakeTimeout; 0: none
	responseHeaderTimeout time.Duration // the UpgradeTransport's ResponseHeaderTimeout; 0: none
	handshakeTimeout      time.Duration // RoundTripperConfig.HandshakeTimeout, resolved; <= 0: none
	tunnelChoice          Tunnel        // RoundTripperConfig.Tunnel, resolved

	// attempts maps each response RoundTrip returned to its *attempt,
	// until NewConnection takes the connection or the body is closed.
	// NewConnection normally finds it in resp.Body; the map is for
	// responses whose Body was wrapped on the way, as http.Client does
	// when it has a Timeout.
	attempts sync.Map
}

// attempt is what NewConnection needs to know of the handshake a response
// answers.
type attempt struct {
	tunnel  Tunnel // TunnelDirect or TunnelWebSocket
	key     string // the Sec-WebSocket-Key sent, for TunnelWebSocket
	earlier error  // with TunnelAuto, why the WebSocket handshake before this direct one failed

	upgraded *upgradedBody // the Body of a 101, which holds the connection; nil otherwise
}

var _ httpstream.UpgradeRoundTripper = (*RoundTripper)(nil)

// NewRoundTripper returns a RoundTripper that uses tlsConfig for https and
// the proxy settings of the environment (see RoundTripperConfig.Proxier).
func NewRoundTripper(tlsConfig *tls.Config) (*RoundTripper, error) {
	return NewRoundTripperWithConfig(RoundTripperConfig{TLS: tlsConfig})
}

// NewRoundTripperWithProxy returns a RoundTripper that uses tlsConfig for
// https and proxier to pick proxies; a nil proxier reads the environment.
func NewRoundTripperWithProxy(tlsConfig *tls.Config, proxier func(*http.Request) (*url.URL, error)) (*RoundTripper, error) {
	return NewRoundTripperWithConfig(RoundTripperConfig{TLS: tlsConfig, Proxier: proxier})
}

// NewRoundTripperWithConfig returns a RoundTripper configured by cfg. It
// fails when UpgradeTransport is combined with TLS or Proxier, or is of a
// kind whose dialer cannot be found, and when MaxResponseHeaderBytes is
// negative.
func NewRoundTripperWithConfig(cfg RoundTripperConfig) (*RoundTripper, error) {
	if cfg.MaxResponseHeaderBytes < 0 {
		return nil, fmt.Errorf("upgrade: RoundTripperConfig.MaxResponseHeaderBytes is %d: set a positive limit, or 0 for the default of %d", cfg.MaxResponseHeaderBytes, DefaultMaxResponseHeaderBytes)
	}
	switch cfg.Tunnel {
	case 0:
		cfg.Tunnel = DefaultTunnel
	case TunnelDirect, TunnelWebSocket, TunnelAuto:
	default:
		return nil, fmt.Errorf("upgrade: RoundTripperConfig.Tunnel is %v: use TunnelDirect, TunnelWebSocket, TunnelAuto, or 0 for the default (%v)", cfg.Tunnel, DefaultTunnel)
	}
	rt := &RoundTripper{
		tlsConfig:           cfg.TLS,
		proxier:             cfg.Proxier,
		dialContext:         (&net.Dialer{}).DialContext,
		muxConfig:           sessionConfig(cfg.Mux, cfg.PingPeriod),
		streamHandler:       cfg.NewStreamHandler,
		proxyConnectTimeout: cfg.ProxyConnectTimeout,
		handshakeTimeout:    cfg.HandshakeTimeout,
		tunnelChoice:        cfg.Tunnel,
	}
	if cfg.UpgradeTransport != nil {
		if cfg.TLS != nil || cfg.Proxier != nil {
			return nil, errors.New("upgrade: RoundTripperConfig.UpgradeTransport cannot be combined with TLS or Proxier: the transport brings its own; set them on the transport, or leave UpgradeTransport nil")
		}
		if err := rt.useTransport(cfg.UpgradeTransport); err != nil {
			return nil, err
		}
	} else if rt.proxier == nil {
		rt.proxier = http.ProxyFromEnvironment
	}
	// The config's own values win over what the transport brought.
	if cfg.MaxResponseHeaderBytes > 0 {
		rt.maxHeaderBytes = cfg.MaxResponseHeaderBytes
	}
	if rt.maxHeaderBytes <= 0 {
		rt.maxHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if rt.proxyConnectTimeout == 0 {
		rt.proxyConnectTimeout = DefaultProxyConnectTimeout
	}
	if rt.handshakeTimeout == 0 {
		rt.handshakeTimeout = DefaultHandshakeTimeout
	}
	return rt, nil
}

// useTransport takes the dialing setup from an UpgradeTransport, with the
// limits that come with it: an *http.Transport's TLSHandshakeTimeout,
// ResponseHeaderTimeout and MaxResponseHeaderBytes mean here what they mean
// to net/http, so a transport tuned for a cluster keeps its bounds.
func (rt *RoundTripper) useTransport(transport http.RoundTripper) error {
	switch t := transport.(type) {
	case *http.Transport:
		rt.tlsConfig = t.TLSClientConfig
		rt.proxier = t.Proxy
		rt.dialTLSContext = t.DialTLSContext
		if t.DialContext != nil {
			rt.dialContext = t.DialContext
		}
		rt.tlsHandshakeTimeout = t.TLSHandshakeTimeout
		rt.responseHeaderTimeout = t.ResponseHeaderTimeout
		rt.maxHeaderBytes = t.MaxResponseHeaderBytes
		return nil
	case *RoundTripper:
		rt.tlsConfig = t.tlsConfig
		rt.proxier = t.proxier
		rt.dialContext = t.dialContext
		rt.dialTLSContext = t.dialTLSContext
		rt.tlsHandshakeTimeout = t.tlsHandshakeTimeout
		rt.responseHeaderTimeout = t.responseHeaderTimeout
		rt.maxHeaderBytes = t.maxHeaderBytes
		if rt.proxyConnectTimeout == 0 {
			rt.proxyConnectTimeout = t.proxyConnectTimeout
		}
		if rt.handshakeTimeout == 0 {
			rt.handshakeTimeout = t.handshakeTimeout
		}
		return nil
	case interface{ WrappedRoundTripper() http.RoundTripper }:
		if inner := t.WrappedRoundTripper(); inner != nil {
			return rt.useTransport(inner)
		}
	}
	return fmt.Errorf("upgrade: RoundTripperConfig.UpgradeTransport of type %T: cannot find its dialer and TLS configuration: pass an *http.Transport, an *upgrade.RoundTripper, or a wrapper with a WrappedRoundTripper method", transport)
}

// sessionConfig merges PingPeriod into a copy of the Mux configuration; the
// copy also keeps later changes to the caller's struct from reaching
// sessions already configured.
func sessionConfig(base *mux.Config, pingPeriod time.Duration) *mux.Config {
	if base == nil && pingPeriod == 0 {
		return nil
	}
	cfg := mux.DefaultConfig()
	if base != nil {
		cfg = *base
	}
	if pingPeriod != 0 {
		cfg.KeepAliveInterval = pingPeriod
	}
	return &cfg
}

// TLSClientConfig returns the TLS configuration the RoundTripper was given
// (or found in its UpgradeTransport), so that code checking TLS settings
// along a chain of round trippers, as Kubernetes' proxy code does, can see
// it. Modifying it is not safe once requests are under way.
func (rt *RoundTripper) TLSClientConfig() *tls.Config {
	return rt.tlsConfig
}

// RoundTrip sends req, with the headers that ask to switch protocols
// added to a copy (req itself is not modified), on a new connection, and
// returns the server's response. The Tunnel chooses the handshake: the
// direct upgrade, a WebSocket (a GET, whatever req's method), or, with
// TunnelAuto, a WebSocket first and, if anything but a valid WebSocket 101
// answers it, one direct upgrade, whose response is returned. RoundTrip
// returns an error only when no response arrived; a refusal is a response,
// and NewConnection reports it.
//
// req.Context() and HandshakeTimeout bound the dial, every proxy and TLS
// handshake and the wait for the response headers, and the end of either
// aborts them at once with an error that wraps the context's cause (or a
// timeout naming HandshakeTimeout). For a response other than 101 they
// also bound reading the body. Once a 101 has arrived, neither matters:
// the upgraded connection lives until it is closed.
func (rt *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req == nil {
		return nil, errors.New("upgrade: RoundTrip needs a request, got nil")
	}
	tunnel := rt.tunnelChoice
	if hasBody(req) {
		switch tunnel {
		case TunnelAuto:
			tunnel = TunnelDirect // only the direct upgrade can carry it
		case TunnelWebSocket:
			closeRequestBody(req)
			return nil, errors.New("upgrade: the request has a body, which a WebSocket handshake (a GET) cannot carry: send it without one, or set RoundTripperConfig.Tunnel to TunnelDirect")
		}
	}
	if tunnel != TunnelAuto {
		return rt.handshake(req, tunnel, nil)
	}
	resp, err := rt.handshake(req, TunnelWebSocket, nil)
	if err != nil {
		if !closedWithoutAnswer(req.Context(), err) {
			return nil, err
		}
		return rt.handshake(req, TunnelDirect, err)
	}
	att := rt.attemptOf(resp)
	refusal := checkUpgradeResponse(resp, att)
	if refusal == nil {
		return resp, nil
	}
	// Refused, by the server or by something on the way: as kubectl
	// does, one direct upgrade follows, on a new connection.
	_ = resp.Body.Close()
	var failure *httpstream.UpgradeFailureError
	if errors.As(refusal, &failure) {
		refusal = failure.Cause
	}
	return rt.handshake(req, TunnelDirect, refusal)
}

// hasBody reports whether req has a body to send.
func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// closedWithoutAnswer reports whether err says that the connection closed
// (or was reset) before any answer came, rather than that it could not be
// made or that time ran out: a proxy that drops the WebSocket handshake
// is answered with a direct upgrade too. Errors in reaching the server
// would only repeat.
func closedWithoutAnswer(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// handshake makes one upgrade request of the given kind on a new
// connection, bounded by HandshakeTimeout; earlier is what TunnelAuto's
// WebSocket handshake met before it, for the error of a refusal.
func (rt *RoundTripper) handshake(req *http.Request, tunnel Tunnel, earlier error) (*http.Response, error) {
	host := "the server"
	if req.URL != nil {
		host = req.URL.Host
	}
	ctx, cancel := withStepTimeout(req.Context(), rt.handshakeTimeout,
		"the upgrade handshake with "+host, "RoundTripperConfig.HandshakeTimeout")
	att := &attempt{tunnel: tunnel, earlier: earlier}
	upgradeReq := upgradeRequest(req, ctx, att)
	conn, err := rt.dialAndSend(upgradeReq)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := rt.readResponse(conn, upgradeReq, att, cancel)
	if err != nil {
		cancel()
		_ = conn.Close()
		return nil, err
	}
	resp.Request = req
	return resp, nil
}

// upgradeRequest returns a copy of req, bound to ctx, that asks for the
// upgrade att names; for a WebSocket it records the key in att.
func upgradeRequest(req *http.Request, ctx context.Context, att *attempt) *http.Request {
	clone := req.Clone(ctx)
	if clone.Header == nil {
		clone.Header = make(http.Header)
	}
	// "Connection: close" would contradict the upgrade.
	clone.Close = false
	if att.tunnel == TunnelWebSocket {
		att.key = webSocketRequest(clone)
		return clone
	}
	// Connection gets the token only if it lacks it, so that other
	// hop-by-hop names the caller listed stay; Upgrade is replaced, because
	// this RoundTripper can only speak its own protocol.
	if !httpstream.IsUpgradeRequest(clone) {
		clone.Header.Add(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	}
	clone.Header.Set(httpstream.HeaderUpgrade, Protocol)
	return clone
}

// maxInformational bounds the 1xx responses skipped before the final one,
// so a server cannot keep the client reading interim answers forever.
const maxInformational = 5

// readResponse reads the response to req from conn and sets its Body: an
// upgradedBody holding the connection for a 101, a closingBody otherwise.
// The header read is bounded in size (maxHeaderBytes) and in time (req's
// context, which carries HandshakeTimeout, and responseHeaderTimeout);
// a refusal's body is bounded by req's context, and the session after a
// 101 by nothing. cancel ends req's context: at once after a 101, when
// the body is closed otherwise.
func (rt *RoundTripper) readResponse(conn net.Conn, req *http.Request, att *attempt, cancel context.CancelFunc) (*http.Response, error) {
	ctx := req.Context()
	headerCtx, cancel := withStepTimeout(ctx, rt.responseHeaderTimeout,
		"the server's response headers", "the UpgradeTransport's ResponseHeaderTimeout")
	defer cancel()
	// The limiter feeds the one bufio.Reader that both the header parser
	// and what follows read from, so nothing read ahead is lost.
	limiter := newHeaderLimiter(conn, rt.maxHeaderBytes)
	br := bufio.NewReader(limiter)
	var resp *http.Response
	err := withContext(headerCtx, conn, "waiting for the upgrade response from "+req.URL.Host, func() error {
		for range maxInformational + 1 {
			var err error
			resp, err = readHeader(br, limiter, req, "the server", "RoundTripperConfig.MaxResponseHeaderBytes")
			if err != nil {
				return err
			}
			// 101 is final for this request; other 1xx (100 Continue,
			// 103 Early Hints) announce a response still to come.
			if resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode >= 200 {
				return nil
			}
		}
		return fmt.Errorf("the server sent more than %d informational responses", maxInformational)
	})
	if err != nil {
		return nil, err
	}
	limiter.lift()
	forget := func() { rt.attempts.Delete(resp) }
	rt.attempts.Store(resp, att)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &closingBody{body: resp.Body, conn: conn, guard: watchContext(ctx, conn), att: att, cancel: cancel, forget: forget}
		return resp, nil
	}
	cancel() // the handshake is over: nothing may cut the session short
	// The server's first frames may have arrived with its 101 and now sit
	// in br; the session must read them first.
	att.upgraded = &upgradedBody{conn: withBuffered(conn, br), att: att, forget: forget}
	resp.Body = att.upgraded
	return resp, nil
}

// NewConnection checks that resp is a successful upgrade to this package's
// protocol, directly or in a WebSocket (with the Sec-WebSocket-Accept that
// matches the key sent, and WebSocketProtocol), and starts a stream
// session (mux.Client) on its connection. The Connection is a
// *mux.Session: besides CreateStream it has OpenStream with a context,
// Ping, Shutdown and streams that are net.Conns.
//
// When the server answered without switching protocols, the error is an
// *httpstream.UpgradeFailureError (httpstream.IsUpgradeFailure is true)
// whose Cause, for an answer other than 101, is a *ResponseError carrying
// the status and the server's message, taken from a JSON body's "message"
// field (a Kubernetes Status), else its "error" field, else the body's
// text, read up to a bounded size. A direct upgrade's refusal says that
// TunnelWebSocket passes proxies that forward only WebSocket upgrades.
// resp.Body is closed on every error.
//
// resp must be a response from this RoundTripper's RoundTrip, possibly
// passed through wrappers such as http.Client.
func (rt *RoundTripper) NewConnection(resp *http.Response) (httpstream.Connection, error) {
	if resp == nil {
		return nil, errors.New("upgrade: NewConnection needs the response RoundTrip returned, got nil")
	}
	att := rt.attemptOf(resp)
	if err := checkUpgradeResponse(resp, att); err != nil {
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, err
	}
	conn := rt.takeConn(resp)
	if conn == nil {
		return nil, errors.New("upgrade: the 101 response holds no connection: pass NewConnection the response from this RoundTripper's RoundTrip, once, and do not close its Body before")
	}
	if att.tunnel == TunnelWebSocket {
		conn = newWebSocketClient(conn)
	}
	session, err := mux.Client(conn, rt.streamHandler, rt.muxConfig)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("upgrade: starting the stream session: %w", err)
	}
	return session, nil
}

// attemptOf returns what RoundTrip recorded of the handshake resp answers;
// a response from elsewhere counts as a direct upgrade's.
func (rt *RoundTripper) attemptOf(resp *http.Response) *attempt {
	switch body := resp.Body.(type) {
	case *upgradedBody:
		return body.att
	case *closingBody:
		return body.att
	}
	if att, ok := rt.attempts.Load(resp); ok {
		return att.(*attempt)
	}
	return &attempt{tunnel: TunnelDirect}
}

// takeConn finds the upgraded connection of resp and takes it.
func (rt *RoundTripper) takeConn(resp *http.Response) net.Conn {
	if body, ok := resp.Body.(*upgradedBody); ok {
		return body.take()
	}
	if att, ok := rt.attempts.Load(resp); ok && att.(*attempt).upgraded != nil {
		return att.(*attempt).upgraded.take()
	}
	return nil
}
