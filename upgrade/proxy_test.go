package upgrade

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/httpstream-go/httpstream"
)

// connectProxy is an HTTP proxy that only does CONNECT, written for the
// tests. It checks Proxy-Authorization against wantAuth (if set), can be
// told to refuse every tunnel with a status, and records what it was asked.
type connectProxy struct {
	wantAuth string              // the exact Proxy-Authorization required; "" for none
	refuse   int                 // if non-zero, the status every CONNECT gets
	route    func(string) string // maps a CONNECT target to the address dialed; nil: as is

	mu      sync.Mutex // guards targets, auths
	targets []string
	auths   []string
}

// start serves the proxy on a loopback listener, with TLS if tlsConfig is
// set, and returns its address.
func (p *connectProxy) start(t *testing.T, tlsConfig *tls.Config) string {
	ln := listen(t)
	var served net.Listener = ln
	if tlsConfig != nil {
		served = tls.NewListener(ln, tlsConfig)
	}
	serveConns(t, served, p.handle)
	return ln.Addr().String()
}

func (p *connectProxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	auth := req.Header.Get("Proxy-Authorization")
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auths = append(p.auths, auth)
	p.mu.Unlock()

	switch {
	case req.Method != http.MethodConnect:
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	case p.wantAuth != "" && auth != p.wantAuth:
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	case p.refuse != 0:
		writeStatus(c, p.refuse)
		return
	}
	target := req.Host
	if p.route != nil {
		target = p.route(target)
	}
	upstream, err := net.Dial("tcp", target)
	if err != nil {
		writeStatus(c, http.StatusBadGateway)
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = upstream.Close()
		return
	}
	relay(c, br, upstream)
}

func writeStatus(w io.Writer, code int) {
	resp := &http.Response{StatusCode: code, ProtoMajor: 1, ProtoMinor: 1, ContentLength: 0, Body: http.NoBody}
	_ = resp.Write(w)
}

// relay copies between the client side (c, read through br, which may hold
// octets already) and upstream until either side ends, then closes both.
func relay(c net.Conn, br io.Reader, upstream net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = c.Close()
			_ = upstream.Close()
		})
	}
	done := make(chan struct{})
	// Ends when either connection closes: closeBoth unblocks it.
	go func() {
		defer close(done)
		_, _ = io.Copy(upstream, br)
		closeBoth()
	}()
	_, _ = io.Copy(c, upstream)
	closeBoth()
	<-done
}

func (p *connectProxy) seen() (targets, auths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auths...)
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestUpgradesThroughHTTPAndHTTPSProxies(t *testing.T) {
	proxyServerTLS, proxyClientTLS := testTLSConfigs(t)
	for _, tt := range []struct {
		name        string
		proxyScheme string
		userinfo    *url.Userinfo
		wantAuth    string
		secure      bool // the server behind the proxy speaks TLS
	}{
		{"an http proxy to a plain server", "http", nil, "", false},
		{"an http proxy to a TLS server", "http", nil, "", true},
		{"an https proxy to a plain server", "https", nil, "", false},
		{"an https proxy to a TLS server, TLS inside TLS", "https", nil, "", true},
		{"an http proxy with credentials", "http", url.UserPassword("alice", "secret"), basic("alice", "secret"), false},
		{"percent-escapes in the credentials are decoded", "http", mustUserinfo(t, "al%40ice:p%3Ass%2Fw%25rd"), basic("al@ice", "p:ss/w%rd"), true},
		{"a user without password", "https", url.User("bob"), basic("bob", ""), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, serverTLS := newTestServer(t, newEchoServer(t), tt.secure)
			proxy := &connectProxy{wantAuth: tt.wantAuth}
			var proxyTLS *tls.Config
			if tt.proxyScheme == "https" {
				proxyTLS = proxyServerTLS
			}
			proxyURL := &url.URL{Scheme: tt.proxyScheme, Host: proxy.start(t, proxyTLS), User: tt.userinfo}

			// One TLS configuration serves the proxy and the server: both
			// certificates come from httptest's authority.
			clientTLS := proxyClientTLS
			if serverTLS != nil {
				clientTLS = serverTLS
			}
			rt, err := NewRoundTripperWithProxy(clientTLS, http.ProxyURL(proxyURL))
			if err != nil {
				t.Fatal(err)
			}
			assertEcho(t, upgradeTo(t, rt, srv.URL+"/exec"))

			targets, auths := proxy.seen()
			if len(targets) != 1 || targets[0] != srv.Listener.Addr().String() {
				t.Errorf("proxy was asked for %q, want one tunnel to %s", targets, srv.Listener.Addr())
			}
			if len(auths) == 1 && auths[0] != tt.wantAuth {
				t.Errorf("Proxy-Authorization = %q, want %q", auths[0], tt.wantAuth)
			}
		})
	}
}

func mustUserinfo(t *testing.T, escaped string) *url.Userinfo {
	t.Helper()
	u, err := url.Parse("http://" + escaped + "@proxy.invalid")
	if err != nil {
		t.Fatal(err)
	}
	return u.User
}

func TestAProxyThatRefusesTheTunnelIsAnErrorWithItsStatus(t *testing.T) {
	for _, tt := range []struct {
		name     string
		proxy    *connectProxy
		userinfo *url.Userinfo
		want     int
	}{
		{"missing credentials", &connectProxy{wantAuth: basic("alice", "secret")}, nil, http.StatusProxyAuthRequired},
		{"wrong credentials", &connectProxy{wantAuth: basic("alice", "secret")}, url.UserPassword("alice", "guess"), http.StatusProxyAuthRequired},
		{"a forbidden destination", &connectProxy{refuse: http.StatusForbidden}, nil, http.StatusForbidden},
		{"an unreachable destination", &connectProxy{route: func(string) string { return "127.0.0.1:1" }}, nil, http.StatusBadGateway},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxyURL := &url.URL{Scheme: "http", Host: tt.proxy.start(t, nil), User: tt.userinfo}
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: http.ProxyURL(proxyURL)})
			_, err := dialUpgrade(rt, "http://server.invalid/exec")
			var refused *ProxyError
			if !errors.As(err, &refused) {
				t.Fatalf("error %v is not a *ProxyError", err)
			}
			if refused.StatusCode != tt.want {
				t.Errorf("StatusCode = %d, want %d (error: %v)", refused.StatusCode, tt.want, err)
			}
			if httpstream.IsUpgradeFailure(err) {
				t.Errorf("error %v claims the server refused the upgrade; the proxy did", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestProxyURLsThatCannotBeUsedAreErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		proxy *url.URL
	}{
		{"an ftp proxy", &url.URL{Scheme: "ftp", Host: "127.0.0.1:1"}},
		{"a proxy without host", &url.URL{Scheme: "http"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: http.ProxyURL(tt.proxy)})
			if _, err := dialUpgrade(rt, "http://server.invalid/"); err == nil {
				t.Fatal("the upgrade succeeded")
			}
		})
	}
	failing := func(*http.Request) (*url.URL, error) { return nil, errors.New("no proxy for you") }
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: failing})
	if _, err := dialUpgrade(rt, "http://server.invalid/"); err == nil {
		t.Fatal("the upgrade succeeded although the Proxier failed")
	}
}
