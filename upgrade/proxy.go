package upgrade

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/httpstream-go/httpstream/internal/safetext"
)

// ProxyError reports that a proxy answered but refused to open a tunnel to
// the server: wrong or missing credentials, a forbidden destination, a
// destination the proxy could not reach. It is told apart from network
// failures on the way to the proxy with errors.As, so callers can report
// "fix the proxy settings" rather than retry.
type ProxyError struct {
	// StatusCode is the HTTP status an http or https proxy answered CONNECT
	// with; it is 0 for a SOCKS5 proxy.
	StatusCode int
	// Reason is what the proxy said: the HTTP status line, or the SOCKS5
	// failure in words. Text from the proxy is made safe to print first
	// (control characters and bidirectional overrides escaped, as \x1b or
	// \u202e) and cut at 256 bytes.
	Reason string
}

// Error returns "proxy refused the tunnel: " and the reason.
func (e *ProxyError) Error() string {
	return "proxy refused the tunnel: " + e.Reason
}

// dialProxy opens a tunnel to target ("host:port") through the proxy at
// proxyURL. The tunnel carries the target's TLS, if any, end to end, so the
// proxy sees neither the upgrade request nor the streams.
func (rt *RoundTripper) dialProxy(ctx context.Context, proxyURL *url.URL, target string) (net.Conn, error) {
	conn, err := rt.tunnel(ctx, proxyURL, target)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s through proxy %s: %w", target, proxyURL.Redacted(), err)
	}
	return conn, nil
}

// tunnel does the work of dialProxy, per proxy scheme.
func (rt *RoundTripper) tunnel(ctx context.Context, proxyURL *url.URL, target string) (net.Conn, error) {
	switch proxyURL.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("unsupported proxy scheme %q: use http, https or socks5", proxyURL.Scheme)
	}
	if proxyURL.Hostname() == "" {
		return nil, errors.New("the proxy URL has no host: name the proxy as scheme://host:port")
	}
	conn, err := rt.dialTCP(ctx, hostPort(proxyURL))
	if err != nil {
		return nil, err
	}
	tunnel, err := rt.openTunnel(ctx, conn, proxyURL, target)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tunnel, nil
}

// openTunnel runs the proxy's handshake over conn, the TCP connection to the
// proxy.
func (rt *RoundTripper) openTunnel(ctx context.Context, conn net.Conn, proxyURL *url.URL, target string) (net.Conn, error) {
	switch proxyURL.Scheme {
	case "socks5", "socks5h":
		// Both schemes send the target's name to the proxy to resolve,
		// which is what socks5h means; resolving locally would only add a
		// lookup the proxy, which sits in the target's network, does better.
		ctx, cancel := rt.proxyHandshakeContext(ctx, "the SOCKS5 proxy's handshake")
		defer cancel()
		if err := socks5Connect(ctx, conn, proxyURL.User, target); err != nil {
			return nil, err
		}
		return conn, nil
	case "https":
		tlsConn, err := rt.handshakeTLS(ctx, conn, proxyURL.Hostname())
		if err != nil {
			return nil, err
		}
		conn = tlsConn
	}
	return rt.connectTunnel(ctx, conn, proxyURL.User, target)
}

// proxyHandshakeContext bounds one proxy handshake by ProxyConnectTimeout,
// on top of ctx.
func (rt *RoundTripper) proxyHandshakeContext(ctx context.Context, step string) (context.Context, context.CancelFunc) {
	return withStepTimeout(ctx, rt.proxyConnectTimeout, step, "RoundTripperConfig.ProxyConnectTimeout")
}

// connectTunnel asks an HTTP proxy, over conn, to open a tunnel to target
// with CONNECT. CONNECT is used for plain http targets too: a proxy that
// forwards requests would have to understand the upgrade and hand over the
// connection, which many do not, while a tunnel always carries it.
//
// The proxy's answer is bounded as the server's is: its headers by
// maxHeaderBytes, and the whole exchange by ProxyConnectTimeout as well as
// ctx.
func (rt *RoundTripper) connectTunnel(ctx context.Context, conn net.Conn, user *url.Userinfo, target string) (net.Conn, error) {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: make(http.Header),
	}
	if auth := basicProxyAuthorization(user); auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	ctx, cancel := rt.proxyHandshakeContext(ctx, "the proxy's answer to CONNECT")
	defer cancel()
	limiter := newHeaderLimiter(conn, rt.maxHeaderBytes)
	br := bufio.NewReader(limiter)
	var resp *http.Response
	err := withContext(ctx, conn, "CONNECT "+target, func() error {
		if err := req.Write(conn); err != nil {
			return err
		}
		var err error
		resp, err = readHeader(br, limiter, req, "the proxy", "RoundTripperConfig.MaxResponseHeaderBytes")
		return err
	})
	if err != nil {
		return nil, err
	}
	limiter.lift()
	// RFC 9110, 9.3.6: any 2xx answer to CONNECT means the tunnel is open.
	// The body of a 2xx is the tunnel itself, so it is not read or closed.
	if resp.StatusCode/100 != 2 {
		reason := safetext.Sanitize(resp.Status, maxStatusBytes)
		if resp.StatusCode == http.StatusProxyAuthRequired {
			if user == nil {
				reason += ": the proxy wants credentials: put them in the proxy URL (http://user:password@host:port)"
			} else {
				reason += ": the proxy rejected the credentials in the proxy URL"
			}
		}
		return nil, &ProxyError{StatusCode: resp.StatusCode, Reason: reason}
	}
	// Octets the proxy relayed right behind its answer are the server's.
	return withBuffered(conn, br), nil
}

// basicProxyAuthorization returns the Proxy-Authorization value for the
// proxy URL's user info, or "" without one. Username and Password return
// the decoded text: a password written "p%40ss" in the URL is "p@ss" on the
// wire, which is what the proxy checks.
func basicProxyAuthorization(user *url.Userinfo) string {
	if user == nil {
		return ""
	}
	password, _ := user.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user.Username()+":"+password))
}
