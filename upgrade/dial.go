package upgrade

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Dial connects to the server req.URL names, directly or through the proxy
// the Proxier picks for req, with TLS when the scheme is https, and writes
// req to the connection exactly as it is: RoundTrip adds the upgrade headers
// before it sends a request. The returned connection is positioned after
// the request, for the caller to read the response.
//
// req.Context() and HandshakeTimeout bound the dial, every proxy and TLS
// handshake and the write; once Dial has returned, neither affects the
// connection, and reading the response is the caller's to bound. Dial
// exists for Kubernetes callers, which use it through
// k8s.io/apimachinery/pkg/util/net.Dialer; most callers want RoundTrip.
func (rt *RoundTripper) Dial(req *http.Request) (net.Conn, error) {
	if req == nil {
		return nil, errors.New("upgrade: Dial needs a request, got nil")
	}
	host := ""
	if req.URL != nil {
		host = req.URL.Host
	}
	ctx, cancel := withStepTimeout(req.Context(), rt.handshakeTimeout,
		"connecting to "+host+" and sending the request", "RoundTripperConfig.HandshakeTimeout")
	defer cancel()
	return rt.dialAndSend(req.WithContext(ctx))
}

// dialAndSend does Dial's work, bounded by req's context alone.
func (rt *RoundTripper) dialAndSend(req *http.Request) (net.Conn, error) {
	conn, err := rt.dial(req)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	// Request.Write closes req.Body, as a RoundTripper must, on every path.
	err = withContext(req.Context(), conn, "sending the request to "+req.URL.Host, func() error {
		return req.Write(conn)
	})
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// dial opens the connection for req: TCP or a proxy tunnel, then TLS for
// https.
func (rt *RoundTripper) dial(req *http.Request) (net.Conn, error) {
	if err := checkURL(req.URL); err != nil {
		return nil, err
	}
	ctx := req.Context()
	target := hostPort(req.URL)
	proxyURL, err := rt.proxyFor(req)
	if err != nil {
		return nil, fmt.Errorf("choosing a proxy for %s: %w", req.URL.Redacted(), err)
	}
	secure := req.URL.Scheme == "https"
	if secure && proxyURL == nil && rt.dialTLSContext != nil {
		// The UpgradeTransport brings its own TLS dialer, and with it the
		// whole TLS setup, which net/http would use for this request too.
		conn, err := rt.dialTLSContext(ctx, "tcp", target)
		if err != nil {
			return nil, explain(ctx, "connecting to "+target+" with TLS", &wireError{err: err})
		}
		if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
			if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
				_ = conn.Close()
				return nil, fmt.Errorf("the UpgradeTransport's TLS dialer negotiated %q with %s: upgrades need HTTP/1.1; offer only \"http/1.1\" in its NextProtos", p, target)
			}
		}
		return conn, nil
	}

	var conn net.Conn
	if proxyURL != nil {
		conn, err = rt.dialProxy(ctx, proxyURL, target)
	} else {
		conn, err = rt.dialTCP(ctx, target)
	}
	if err != nil {
		return nil, err
	}
	if !secure {
		return conn, nil
	}
	tlsConn, err := rt.handshakeTLS(ctx, conn, req.URL.Hostname())
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tlsConn, nil
}

// proxyFor asks the Proxier which proxy, if any, serves req.
func (rt *RoundTripper) proxyFor(req *http.Request) (*url.URL, error) {
	if rt.proxier == nil {
		return nil, nil
	}
	return rt.proxier(req)
}

// dialTCP opens a TCP connection to addr ("host:port").
func (rt *RoundTripper) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := rt.dialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, explain(ctx, "connecting to "+addr, err)
	}
	return conn, nil
}

// handshakeTLS runs a TLS client handshake over conn for serverName, with
// the RoundTripper's TLS configuration, bounded by ctx and by the
// UpgradeTransport's TLSHandshakeTimeout, if any, as net/http bounds it.
func (rt *RoundTripper) handshakeTLS(ctx context.Context, conn net.Conn, serverName string) (net.Conn, error) {
	ctx, cancel := withStepTimeout(ctx, rt.tlsHandshakeTimeout,
		"the TLS handshake with "+serverName, "the UpgradeTransport's TLSHandshakeTimeout")
	defer cancel()
	tlsConn := tls.Client(conn, rt.tlsConfigFor(serverName))
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		// The error may quote the peer's certificate: crypto/x509 lists
		// the names it is valid for, which may hold any ASCII, ESC
		// included.
		return nil, explain(ctx, "TLS handshake with "+serverName, &wireError{err: err})
	}
	return tlsConn, nil
}

// tlsConfigFor returns a copy of the caller's TLS configuration (never
// modified: it may be shared) fit for an HTTP/1.1 upgrade to serverName.
func (rt *RoundTripper) tlsConfigFor(serverName string) *tls.Config {
	cfg := &tls.Config{}
	if rt.tlsConfig != nil {
		cfg = rt.tlsConfig.Clone()
	}
	// As net/http does: an explicit ServerName wins, since the caller may
	// connect by IP address to a certificate issued for a name.
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	// Only HTTP/1.1 can switch protocols; a server allowed to pick h2 by
	// ALPN would answer in a framing that has no Upgrade.
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

// checkURL rejects URLs RoundTrip cannot dial, before any I/O.
func checkURL(u *url.URL) error {
	if u == nil {
		return errors.New("the request has no URL: set req.URL to the server's http or https URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("unsupported URL scheme %q in %s: use http or https", u.Scheme, u.Redacted())
	}
	if u.Hostname() == "" {
		return fmt.Errorf("the URL %s has no host: name the server to upgrade with", u.Redacted())
	}
	// url.Parse rejects a bad port, but a URL built field by field is not
	// parsed, and its Port() would hide the bad one: hostPort would then
	// dial the scheme's default port instead.
	if port, ok := explicitPort(u.Host); ok && port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("the URL %s has port %q: use a number from 1 to 65535, or none for the scheme's default", u.Redacted(), port)
		}
	}
	return nil
}

// explicitPort returns what follows the host's last colon outside
// brackets, the port as written ("" for "host:", which means the default,
// as in url.Parse), and whether there is a colon at all.
func explicitPort(host string) (string, bool) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.LastIndexByte(host, ']') > i {
		return "", false
	}
	return host[i+1:], true
}

// defaultPorts are the ports implied by URL schemes, for servers and
// proxies alike (the same table as net/http's).
var defaultPorts = map[string]string{
	"http":    "80",
	"https":   "443",
	"socks5":  "1080",
	"socks5h": "1080",
}

// hostPort returns u's "host:port", with the scheme's port when u has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = defaultPorts[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// closeRequestBody closes req.Body when RoundTrip fails before writing it:
// a RoundTripper must close the body on every path.
func closeRequestBody(req *http.Request) {
	if req != nil && req.Body != nil {
		_ = req.Body.Close()
	}
}
