package upgrade

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

func TestUpgradedConnectionCarriesStreams(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secure bool
	}{
		{"over plain TCP", false},
		{"over TLS, although the server also offers h2", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, tlsConfig := newTestServer(t, newEchoServer(t), tt.secure)
			rt := directRoundTripper(t, tlsConfig)
			conn := upgradeTo(t, rt, srv.URL+"/exec")
			assertEcho(t, conn)
		})
	}
}

func TestRoundTripAddsUpgradeHeadersToACopy(t *testing.T) {
	echo := newEchoServer(t)
	seen := make(chan http.Header, 1)
	srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		echo.ServeHTTP(w, r)
	}), false)
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelDirect})

	req, err := http.NewRequest(http.MethodPost, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "keep-alive")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("X-Caller", "kept")
	req.Close = true
	before := req.Header.Clone()

	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	assertEcho(t, conn)

	got := within(t, "the server's view of the request", seen)
	if !headerHasToken(got, "Connection", "upgrade") || !headerHasToken(got, "Connection", "keep-alive") {
		t.Errorf("server saw Connection %q, want the caller's keep-alive and upgrade", got.Values("Connection"))
	}
	if v := got.Values("Upgrade"); len(v) != 1 || v[0] != Protocol {
		t.Errorf("server saw Upgrade %q, want only %q", v, Protocol)
	}
	if got.Get("X-Caller") != "kept" {
		t.Errorf("server saw X-Caller %q, want the caller's header", got.Get("X-Caller"))
	}
	if !equalHeaders(req.Header, before) || !req.Close {
		t.Errorf("RoundTrip modified the caller's request: headers %v, want %v", req.Header, before)
	}
	if resp.Request != req {
		t.Error("resp.Request is not the caller's request")
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

func TestOneRoundTripperServesConcurrentUpgrades(t *testing.T) {
	srv, tlsConfig := newTestServer(t, newEchoServer(t), true)
	rt := directRoundTripper(t, tlsConfig)
	const upgrades = 4
	conns := make([]httpstream.Connection, upgrades)
	errs := make([]error, upgrades)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = dialUpgrade(rt, srv.URL)
		}()
	}
	waitGroup(t, "the concurrent upgrades", &wg)
	for i, conn := range conns {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(func() { _ = conn.Close() })
	}
	for _, conn := range conns {
		assertEcho(t, conn)
	}
}

func TestCancelingTheContextAfterTheUpgradeLeavesTheConnectionAlone(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	rt := directRoundTripper(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	assertEcho(t, conn)
	assertEcho(t, conn)
}

func TestNewConnectionFindsTheConnectionBehindAWrappedBody(t *testing.T) {
	// http.Client wraps the body of every response when it has a Timeout,
	// which is how Kubernetes clients are usually configured.
	srv, _ := newTestServer(t, newEchoServer(t), false)
	rt := directRoundTripper(t, nil)
	client := &http.Client{Transport: rt, Timeout: testTimeout}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Body.(*upgradedBody); ok {
		t.Log("http.Client no longer wraps the body; the test covers the direct path only")
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = resp.Body.Close() // must not close the connection NewConnection took
	assertEcho(t, conn)
}

func TestNewConnectionTakesAConnectionOnlyOnce(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	rt := directRoundTripper(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := rt.NewConnection(resp); err == nil || httpstream.IsUpgradeFailure(err) {
		t.Errorf("second NewConnection on one response: err = %v, want an error that is not an upgrade failure", err)
	}
	other := directRoundTripper(t, nil)
	forged := &http.Response{StatusCode: 101, Header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {Protocol}}, Body: http.NoBody}
	if _, err := other.NewConnection(forged); err == nil {
		t.Error("NewConnection accepted a response RoundTrip never returned")
	}
	if _, err := other.NewConnection(nil); err == nil {
		t.Error("NewConnection accepted a nil response")
	}
}

func TestClosingTheBodyOfA101ClosesTheConnection(t *testing.T) {
	echo := newEchoServer(t)
	srv, _ := newTestServer(t, echo, false)
	rt := directRoundTripper(t, nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := resp.Body.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Errorf("reading the body of a 101 gave %d octets, %v; want none: they belong to the session", n, err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	serverSide := within(t, "the server's session", echo.upgraded)
	within(t, "the server to see the connection close", serverSide.CloseChan())
	if _, ok := rt.attempts.Load(resp); ok {
		t.Error("the RoundTripper still remembers a response whose body was closed")
	}
	if _, err := rt.NewConnection(resp); err == nil {
		t.Error("NewConnection succeeded after the body was closed")
	}
}

func TestRoundTripRejectsRequestsItCannotDial(t *testing.T) {
	rt := directRoundTripper(t, nil)
	for _, tt := range []struct {
		name string
		req  *http.Request
	}{
		{"a nil request", nil},
		{"a request without URL", &http.Request{Method: "GET", Header: http.Header{}}},
		{"a ws URL", mustRequest(t, "ws://example.com/")},
		{"a URL without host", &http.Request{Method: "GET", URL: mustRequest(t, "http:///path").URL}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if resp, err := rt.RoundTrip(tt.req); err == nil {
				_ = resp.Body.Close()
				t.Fatal("RoundTrip succeeded")
			}
		})
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestUpgradeTransportIsExclusiveWithTLSAndProxier(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  RoundTripperConfig
	}{
		{"with TLS", RoundTripperConfig{UpgradeTransport: &http.Transport{}, TLS: &tls.Config{}}},
		{"with Proxier", RoundTripperConfig{UpgradeTransport: &http.Transport{}, Proxier: noProxy}},
		{"of an unknown kind", RoundTripperConfig{UpgradeTransport: roundTripFunc(nil)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRoundTripperWithConfig(tt.cfg); err == nil {
				t.Fatal("NewRoundTripperWithConfig succeeded")
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// wrapper stands for Kubernetes' round tripper wrappers.
type wrapper struct{ http.RoundTripper }

func (w wrapper) WrappedRoundTripper() http.RoundTripper { return w.RoundTripper }

func TestUpgradeTransportDialsWithTheTransportsDialerAndTLS(t *testing.T) {
	srv, tlsConfig := newTestServer(t, newEchoServer(t), true)
	var dials atomic.Int32
	transport := &http.Transport{
		TLSClientConfig: tlsConfig,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	withTLSDialer := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&tls.Dialer{Config: tlsConfig}).DialContext(ctx, network, addr)
		},
	}
	for _, tt := range []struct {
		name      string
		transport http.RoundTripper
	}{
		{"an *http.Transport", transport},
		{"a wrapped *http.Transport", wrapper{transport}},
		{"an *http.Transport with its own TLS dialer", withTLSDialer},
		{"another RoundTripper", mustRoundTripper(t, RoundTripperConfig{UpgradeTransport: transport})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := dials.Load()
			rt, err := NewRoundTripperWithConfig(RoundTripperConfig{UpgradeTransport: tt.transport})
			if err != nil {
				t.Fatal(err)
			}
			if tt.transport != withTLSDialer && rt.TLSClientConfig() != tlsConfig {
				t.Error("TLSClientConfig is not the transport's")
			}
			assertEcho(t, upgradeTo(t, rt, srv.URL))
			if dials.Load() != before+1 {
				t.Errorf("the transport's dialer ran %d times, want once", dials.Load()-before)
			}
		})
	}
}

func TestPingPeriodOverridesTheMuxKeepAliveInterval(t *testing.T) {
	base := &mux.Config{KeepAliveInterval: time.Minute, MaxFrameSize: 4096}
	for _, tt := range []struct {
		name       string
		mux        *mux.Config
		pingPeriod time.Duration
		want       *mux.Config
	}{
		{"neither set leaves the engine's defaults", nil, 0, nil},
		{"a ping period alone starts from the defaults", nil, time.Second, withKeepAlive(mux.DefaultConfig(), time.Second)},
		{"a ping period wins over Mux", base, time.Second, withKeepAlive(*base, time.Second)},
		{"a negative ping period turns pings off", base, -1, withKeepAlive(*base, -1)},
		{"zero keeps Mux's interval", base, 0, base},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := sessionConfig(tt.mux, tt.pingPeriod)
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Errorf("sessionConfig = %+v, want %+v", got, tt.want)
			}
			if got != nil && got == tt.mux {
				t.Error("sessionConfig returned the caller's struct instead of a copy")
			}
		})
	}
}

func withKeepAlive(c mux.Config, d time.Duration) *mux.Config {
	c.KeepAliveInterval = d
	return &c
}

func TestTLSConfigForLeavesTheCallersConfigAlone(t *testing.T) {
	callers := &tls.Config{}
	callers.NextProtos = []string{"h2", "http/1.1"}
	rt := directRoundTripper(t, callers)
	got := rt.tlsConfigFor("example.com")
	if got.ServerName != "example.com" || len(got.NextProtos) != 1 || got.NextProtos[0] != "http/1.1" {
		t.Errorf("TLS config for the dial: ServerName %q, NextProtos %q; want example.com and only http/1.1", got.ServerName, got.NextProtos)
	}
	if callers.ServerName != "" || len(callers.NextProtos) != 2 {
		t.Error("the caller's TLS config was modified")
	}
	callers.ServerName = "pinned.example"
	if got := rt.tlsConfigFor("example.com"); got.ServerName != "pinned.example" {
		t.Errorf("ServerName = %q, want the caller's explicit one", got.ServerName)
	}
	if rt.TLSClientConfig() != callers {
		t.Error("TLSClientConfig is not the caller's config")
	}
}

func TestNilProxierMeansTheEnvironment(t *testing.T) {
	rt, err := NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback never goes through a proxy from the environment, so this
	// holds on any machine; the child-process test checks the rest.
	if u, err := rt.proxyFor(mustRequest(t, "http://127.0.0.1:1/")); u != nil || err != nil {
		t.Errorf("proxy for loopback = %v, %v; want none", u, err)
	}
	if rt.proxier == nil {
		t.Error("no Proxier set: want http.ProxyFromEnvironment")
	}
}

func mustRoundTripper(t *testing.T, cfg RoundTripperConfig) *RoundTripper {
	t.Helper()
	rt, err := NewRoundTripperWithConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}
