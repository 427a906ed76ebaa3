package upgrade

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
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

	// NewStreamHandler accepts the streams the server opens on the
	// connection, as the handler given to a ResponseUpgrader does on the
	// server. nil: such streams are refused, which suits the usual client
	// that opens every stream itself.
	NewStreamHandler httpstream.NewStreamHandler
}

// RoundTripper is the client side of an upgrade. Its RoundTrip sends a
// request with "Connection: Upgrade" and "Upgrade: httpstream/1" on a
// connection of its own, never pooled, and returns the server's response;
// NewConnection turns a 101 response into a multiplexed
// [httpstream.Connection]. It implements [httpstream.UpgradeRoundTripper].
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

	// upgrades maps each 101 response RoundTrip returned to its
	// *upgradedBody, until NewConnection takes the connection or the body
	// is closed. NewConnection normally finds the body in resp.Body; the
	// map is for responses whose Body was wrapped on the way, as
	// http.Client does when it has a Timeout.
	upgrades sync.Map
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
	rt := &RoundTripper{
		tlsConfig:           cfg.TLS,
		proxier:             cfg.Proxier,
		dialContext:         (&net.Dialer{}).DialContext,
		muxConfig:           sessionConfig(cfg.Mux, cfg.PingPeriod),
		streamHandler:       cfg.NewStreamHandler,
		proxyConnectTimeout: cfg.ProxyConnectTimeout,
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

// RoundTrip sends req, with the Connection and Upgrade headers that ask for
// the httpstream protocol added to a copy (req itself is not modified), on a
// new connection, and returns the server's response. It returns an error
// only when no response arrived; a refusal is a response, and NewConnection
// reports it.
//
// req.Context() bounds the dial, every proxy and TLS handshake and the wait
// for the response headers, and canceling it aborts them at once with an
// error that wraps the context's cause. For a response other than 101 it
// also bounds reading the body. Once a 101 has arrived, the context no
// longer matters: the upgraded connection lives until it is closed.
func (rt *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	upgradeReq, err := upgradeRequest(req)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	conn, err := rt.Dial(upgradeReq)
	if err != nil {
		return nil, err
	}
	resp, err := rt.readResponse(conn, upgradeReq)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	resp.Request = req
	return resp, nil
}

// upgradeRequest returns a copy of req that asks for the upgrade.
func upgradeRequest(req *http.Request) (*http.Request, error) {
	if req == nil {
		return nil, errors.New("upgrade: RoundTrip needs a request, got nil")
	}
	clone := req.Clone(req.Context())
	if clone.Header == nil {
		clone.Header = make(http.Header)
	}
	// Connection gets the token only if it lacks it, so that other
	// hop-by-hop names the caller listed stay; Upgrade is replaced, because
	// this RoundTripper can only speak its own protocol.
	if !httpstream.IsUpgradeRequest(clone) {
		clone.Header.Add(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	}
	clone.Header.Set(httpstream.HeaderUpgrade, Protocol)
	// "Connection: close" would contradict the upgrade.
	clone.Close = false
	return clone, nil
}

// maxInformational bounds the 1xx responses skipped before the final one,
// so a server cannot keep the client reading interim answers forever.
const maxInformational = 5

// readResponse reads the response to req from conn and sets its Body: an
// upgradedBody holding the connection for a 101, a closingBody otherwise.
// The header read is bounded in size (maxHeaderBytes) and, when the
// UpgradeTransport set one, in time (responseHeaderTimeout); the body and
// the session after a 101 are not.
func (rt *RoundTripper) readResponse(conn net.Conn, req *http.Request) (*http.Response, error) {
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
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &closingBody{body: resp.Body, conn: conn, guard: watchContext(ctx, conn)}
		return resp, nil
	}
	// The server's first frames may have arrived with its 101 and now sit
	// in br; the session must read them first.
	body := &upgradedBody{conn: withBuffered(conn, br)}
	body.forget = func() { rt.upgrades.Delete(resp) }
	rt.upgrades.Store(resp, body)
	resp.Body = body
	return resp, nil
}

// NewConnection checks that resp is a successful upgrade to this package's
// protocol and starts a stream session (mux.Client) on its connection.
//
// When the server answered without switching protocols, the error is an
// *httpstream.UpgradeFailureError (httpstream.IsUpgradeFailure is true)
// whose Cause, for an answer other than 101, is a *ResponseError carrying
// the status and the server's message, taken from a JSON body's "message"
// field (a Kubernetes Status), else its "error" field, else the body's
// text, read up to a bounded size. resp.Body is closed on every error.
//
// resp must be a response from this RoundTripper's RoundTrip, possibly
// passed through wrappers such as http.Client.
func (rt *RoundTripper) NewConnection(resp *http.Response) (httpstream.Connection, error) {
	if resp == nil {
		return nil, errors.New("upgrade: NewConnection needs the response RoundTrip returned, got nil")
	}
	if err := checkUpgradeResponse(resp); err != nil {
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, err
	}
	conn := rt.takeConn(resp)
	if conn == nil {
		return nil, errors.New("upgrade: the 101 response holds no connection: pass NewConnection the response from this RoundTripper's RoundTrip, once, and do not close its Body before")
	}
	session, err := mux.Client(conn, rt.streamHandler, rt.muxConfig)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("upgrade: starting the stream session: %w", err)
	}
	return session, nil
}

// takeConn finds the upgraded connection of resp and takes it.
func (rt *RoundTripper) takeConn(resp *http.Response) net.Conn {
	if body, ok := resp.Body.(*upgradedBody); ok {
		return body.take()
	}
	if body, ok := rt.upgrades.Load(resp); ok {
		return body.(*upgradedBody).take()
	}
	return nil
}
