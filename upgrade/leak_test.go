package upgrade

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

func TestUpgradesLeaveNoGoroutinesBehind(t *testing.T) {
	before := runtime.NumGoroutine()

	// Everything a client does, in a subtest whose cleanups (servers,
	// proxies, connections) have all run when it returns.
	t.Run("upgrades, refusals and cancellations", func(t *testing.T) {
		srv, tlsConfig := newTestServer(t, newEchoServer(t), true)
		proxy := &connectProxy{}
		socks := &socksServer{}
		for _, proxyURL := range []*url.URL{
			nil,
			{Scheme: "http", Host: proxy.start(t, nil)},
			{Scheme: "socks5", Host: socks.start(t)},
		} {
			proxier := noProxy
			if proxyURL != nil {
				proxier = http.ProxyURL(proxyURL)
			}
			for _, tunnel := range allTunnels {
				rt := mustRoundTripper(t, RoundTripperConfig{TLS: tlsConfig, Proxier: proxier, Tunnel: tunnel})
				assertEcho(t, upgradeTo(t, rt, srv.URL))
			}
		}
		// TunnelAuto's fallback, and a proxy that passes only WebSockets.
		older, _ := newTestServer(t, olderServer(newEchoServer(t)), false)
		assertEcho(t, upgradeTo(t, mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy}), older.URL))
		wsOnly := webSocketOnlyProxy(t, srv.URL)
		if _, err := dialUpgrade(mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelDirect}), wsOnly.URL); err == nil {
			t.Error("a direct upgrade through a WebSocket-only proxy succeeded")
		}

		refusing, _ := newTestServer(t, http.NotFoundHandler(), false)
		rt := directRoundTripper(t, nil)
		if _, err := dialUpgrade(rt, refusing.URL); err == nil {
			t.Error("an upgrade to a server that refuses succeeded")
		}

		// Hostile servers and proxies: header floods, a proxy that stalls
		// past ProxyConnectTimeout.
		flood := floodServer(t, "HTTP/1.1 101 Switching Protocols\r\n", longLines)
		stalledProxy, _ := stalledServer(t, readsARequest)
		for _, cfg := range []RoundTripperConfig{
			{Proxier: noProxy, MaxResponseHeaderBytes: 64 << 10},
			{Proxier: proxyAt("http", flood), MaxResponseHeaderBytes: 64 << 10},
			{Proxier: proxyAt("http", stalledProxy), ProxyConnectTimeout: 20 * time.Millisecond},
		} {
			if _, err := dialUpgrade(mustRoundTripper(t, cfg), "http://"+flood+"/exec"); err == nil {
				t.Error("an upgrade through a hostile server or proxy succeeded")
			}
		}

		addr, reached := stalledServer(t, readsARequest)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr, nil)
		done := roundTripInBackground(rt, req)
		within(t, "the stalled server to get the request", reached)
		cancel()
		within(t, "RoundTrip to return after cancel", done)

		// The handshake timeout, on a silent server and a stalled refusal.
		for _, target := range silentServers(t) {
			u, _ := url.Parse(target)
			quick := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, HandshakeTimeout: 50 * time.Millisecond})
			if conn, _, err := NewDialer(quick, nil, http.MethodPost, u).Dial(); err == nil {
				_ = conn.Close()
				t.Error("a dial to a silent server succeeded")
			}
		}
	})

	// Sessions end asynchronously after Close; give them a bounded while.
	deadline := time.After(testTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		select {
		case <-tick.C:
		case <-deadline:
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("%d goroutines before, %d after everything closed", before, runtime.NumGoroutine())
		}
	}
}
