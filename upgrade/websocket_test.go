package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/internal/websocket"
	"github.com/httpstream-go/httpstream/mux"
)

func TestEveryTunnelCarriesStreamsOverEveryPath(t *testing.T) {
	rec := &upgradeRecorder{next: newEchoServer(t)}
	// httptest gives every server the same certificate, so one client
	// configuration trusts the TLS server and the https proxy alike.
	serverTLS, clientTLS := testTLSConfigs(t)
	for _, secure := range []bool{false, true} {
		// The TLS server also offers h2: the client's ALPN must keep it on
		// HTTP/1.1 for either handshake.
		srv, _ := newTestServer(t, rec, secure)
		for _, proxy := range []struct {
			name    string
			proxier func(*http.Request) (*url.URL, error)
		}{
			{"no proxy", noProxy},
			{"an http proxy", proxyAt("http", (&connectProxy{}).start(t, nil))},
			{"an https proxy", proxyAt("https", (&connectProxy{}).start(t, serverTLS))},
			{"a socks5 proxy", proxyAt("socks5", (&socksServer{}).start(t))},
			{"a socks5 proxy with credentials", func(*http.Request) (*url.URL, error) {
				return &url.URL{Scheme: "socks5", User: url.UserPassword("user", "p@ss"),
					Host: (&socksServer{user: "user", password: "p@ss"}).start(t)}, nil
			}},
		} {
			for _, tunnel := range allTunnels {
				t.Run(fmt.Sprintf("%v/%s/tls=%v", tunnel, proxy.name, secure), func(t *testing.T) {
					rt := mustRoundTripper(t, RoundTripperConfig{TLS: clientTLS, Proxier: proxy.proxier, Tunnel: tunnel})
					before := len(rec.upgrades())
					assertEcho(t, upgradeTo(t, rt, srv.URL+"/exec"))
					seen := rec.upgrades()[before:]
					want := map[Tunnel]string{TunnelDirect: Protocol, TunnelWebSocket: "websocket", TunnelAuto: "websocket"}[tunnel]
					if len(seen) != 1 || seen[0] != want {
						t.Errorf("the server saw upgrades %q, want one %q", seen, want)
					}
				})
			}
		}
	}
}

func TestLargeTransfersCrossTheTunnelIntactBothWays(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	conn := upgradeTo(t, mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelWebSocket}), srv.URL)
	data := make([]byte, 3<<20+7) // many frames, many batches, odd length
	_, _ = rand.Read(data)
	errs := make(chan error, 4)
	for range 4 {
		// Ends by itself, or when the cleanup closes conn.
		go func() {
			s, err := conn.CreateStream(nil)
			if err != nil {
				errs <- err
				return
			}
			go func() { _, _ = s.Write(data); _ = s.Close() }()
			got, err := io.ReadAll(s)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("echoed %d octets, not the %d sent", len(got), len(data))
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := within(t, "a 3 MiB echo", errs); err != nil {
			t.Fatal(err)
		}
	}
}

// webSocketHandshake is a valid opening handshake for our server, as a
// browser might send it: keep-alive in Connection, "WebSocket" in any
// case, our protocol second in the list, a same-origin Origin.
func webSocketHandshake(host string) http.Header {
	return http.Header{
		"Connection":             {"keep-alive, Upgrade"},
		"Upgrade":                {"WebSocket"},
		"Sec-Websocket-Key":      {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version":  {"13"},
		"Sec-Websocket-Protocol": {"chat, " + WebSocketProtocol},
		"Origin":                 {"http://" + host},
		"Cookie":                 {"session=1"},
	}
}

func TestTheServerAnswersABrowserStyleWebSocketHandshake(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/exec", nil)
	req.Header = webSocketHandshake(host)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %s", resp.Status)
	}
	// RFC 6455 1.3: the accept value of the RFC's own key.
	for name, want := range map[string]string{
		"Sec-WebSocket-Accept":   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
		"Sec-WebSocket-Protocol": WebSocketProtocol,
		"Upgrade":                "websocket",
		"Connection":             "Upgrade",
	} {
		if got := resp.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if ext := resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) != 0 {
		t.Errorf("the server chose extensions %q", ext)
	}
	// A session runs in the binary messages.
	ws := websocket.NewConn(c, br, true)
	session, err := mux.Client(ws, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	assertEcho(t, session)
}

func TestBrokenWebSocketHandshakesAreRefusedWithAMessage(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		name   string
		method string
		change func(http.Header)
		status int
		says   string
	}{
		{"a POST", http.MethodPost, func(http.Header) {}, 400, "GET"},
		{"no key", http.MethodGet, func(h http.Header) { h.Del("Sec-WebSocket-Key") }, 400, "Sec-WebSocket-Key"},
		{"a key of 15 octets", http.MethodGet, func(h http.Header) { h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ") }, 400, "Sec-WebSocket-Key"},
		{"two keys", http.MethodGet, func(h http.Header) { h.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") }, 400, "Sec-WebSocket-Key"},
		{"no version", http.MethodGet, func(h http.Header) { h.Del("Sec-WebSocket-Version") }, 400, "Sec-WebSocket-Version"},
		{"version 8", http.MethodGet, func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, 426, "version 13"},
		{"our protocol not offered", http.MethodGet, func(h http.Header) { h.Set("Sec-WebSocket-Protocol", "chat") }, 400, WebSocketProtocol},
		{"no protocol", http.MethodGet, func(h http.Header) { h.Del("Sec-WebSocket-Protocol") }, 400, WebSocketProtocol},
		{"no upgrade in Connection", http.MethodGet, func(h http.Header) { h.Set("Connection", "keep-alive") }, 400, "Connection"},
		{"another site's page, with cookies", http.MethodGet, func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, "cross-site"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+"/exec", nil)
			req.Header = webSocketHandshake(host)
			tt.change(req.Header)
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s (%s), want %d", resp.Status, body, tt.status)
			}
			if !strings.Contains(string(body), tt.says) || !strings.Contains(string(body), "the Upgrade header") {
				t.Errorf("message %q does not say %q", body, tt.says)
			}
			if v := resp.Header.Get("Sec-WebSocket-Version"); v != "13" {
				t.Errorf("Sec-WebSocket-Version = %q, want 13 (RFC 6455 4.2.2)", v)
			}
		})
	}
	t.Run("another site's page without credentials", func(t *testing.T) {
		// Nothing to steal: the RFC's own example (Origin of another host)
		// upgrades.
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/chat", nil)
		req.Header = webSocketHandshake(host)
		req.Header.Set("Origin", "http://example.com")
		req.Header.Del("Cookie")
		if err := req.Write(c); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %s", resp.Status)
		}
	})
}

func TestTheWebSocketRequestAsksForTheRFCsHandshakeOnACopy(t *testing.T) {
	seen := make(chan *http.Request, 1)
	echo := newEchoServer(t)
	srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		echo.ServeHTTP(w, r)
	}), false)
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelWebSocket})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/exec?command=sh", nil)
	req.Header.Set("Connection", "close")
	req.Header.Set(httpstream.HeaderProtocolVersion, "v5.channel.k8s.io")
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
	got := within(t, "the server's view of the request", seen)
	if got.Method != http.MethodGet || got.URL.RawQuery != "command=sh" {
		t.Errorf("server saw %s ?%s, want GET with the query", got.Method, got.URL.RawQuery)
	}
	for name, want := range map[string]string{
		"Upgrade":                        "websocket",
		"Connection":                     "Upgrade",
		"Sec-WebSocket-Version":          "13",
		"Sec-WebSocket-Protocol":         WebSocketProtocol,
		httpstream.HeaderProtocolVersion: "v5.channel.k8s.io",
	} {
		if v := got.Header.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("server saw %s %q, want %q", name, v, want)
		}
	}
	if !websocket.ValidKey(got.Header.Get("Sec-WebSocket-Key")) {
		t.Errorf("Sec-WebSocket-Key %q is not 16 octets in base64", got.Header.Get("Sec-WebSocket-Key"))
	}
	if req.Method != http.MethodPost || !equalHeaders(req.Header, before) {
		t.Error("RoundTrip modified the caller's request")
	}
	assertEcho(t, conn)
}

func TestTheClientSendsNoFrameBeforeThe101(t *testing.T) {
	quiet := make(chan error, 1)
	addr := rawUpgradeServer(t, func(c net.Conn, br *bufio.Reader, req *http.Request) {
		// Nothing may follow the request until the 101 is out. A read
		// deadline bounds the check; an early frame would arrive within
		// it, since the client sends its preface as soon as it can.
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := br.Peek(1); len(n) > 0 {
			quiet <- fmt.Errorf("the client sent %q before the 101 (%v)", n, err)
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		quiet <- nil
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
			websocket.AcceptKey(req.Header.Get("Sec-WebSocket-Key")), WebSocketProtocol)
		// Now the preface, in a masked binary frame.
		ws := websocket.NewConn(c, br, false)
		preface := make([]byte, 8)
		if _, err := io.ReadFull(ws, preface); err != nil || string(preface) != "hstream\x01" {
			quiet <- fmt.Errorf("after the 101 the client sent %q, %v", preface, err)
			return
		}
		quiet <- nil
	})
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelWebSocket})
	conn, err := dialUpgrade(rt, "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 2 {
		if err := within(t, "the server's checks", quiet); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAnInvalidWebSocket101FailsTheUpgrade(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(key string) string
		says   string
	}{
		{"a wrong accept value", func(string) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: " + WebSocketProtocol + "\r\n"
		}, "Sec-WebSocket-Accept"},
		{"no subprotocol", func(key string) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + websocket.AcceptKey(key) + "\r\n"
		}, WebSocketProtocol},
		{"an extension", func(key string) string {
			return "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + websocket.AcceptKey(key) + "\r\nSec-WebSocket-Protocol: " + WebSocketProtocol + "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
		}, "extensions"},
		{"the direct protocol", func(string) string {
			return "Upgrade: " + Protocol + "\r\nConnection: Upgrade\r\n"
		}, "instead of a WebSocket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawUpgradeServer(t, func(c net.Conn, _ *bufio.Reader, req *http.Request) {
				fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", tt.answer(req.Header.Get("Sec-WebSocket-Key")))
			})
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelWebSocket})
			conn, err := dialUpgrade(rt, "http://"+addr)
			if err == nil {
				_ = conn.Close()
				t.Fatal("the upgrade succeeded")
			}
			if !httpstream.IsUpgradeFailure(err) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q is not an upgrade failure that says %q", err, tt.says)
			}
		})
	}
}

func TestAutoFallsBackToOneDirectUpgrade(t *testing.T) {
	t.Run("a server of an older version", func(t *testing.T) {
		rec := &upgradeRecorder{next: olderServer(newEchoServer(t))}
		srv, _ := newTestServer(t, rec, false)
		conn := upgradeTo(t, mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy}), srv.URL)
		assertEcho(t, conn)
		if got := rec.upgrades(); strings.Join(got, ",") != "websocket,"+Protocol {
			t.Errorf("the server saw %q, want a WebSocket handshake, then one direct upgrade", got)
		}
	})
	t.Run("a server that closes the connection at a WebSocket handshake", func(t *testing.T) {
		echo := newEchoServer(t)
		srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isWebSocketRequest(r) {
				c, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = c.Close()
				}
				return
			}
			echo.ServeHTTP(w, r)
		}), false)
		assertEcho(t, upgradeTo(t, mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy}), srv.URL))
	})
	t.Run("a server that refuses both", func(t *testing.T) {
		rec := &upgradeRecorder{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no sessions for "+r.Header.Get("Upgrade"), http.StatusForbidden)
		})}
		srv, _ := newTestServer(t, rec, false)
		_, err := dialUpgrade(mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy}), srv.URL)
		var refusal *ResponseError
		if !errors.As(err, &refusal) || refusal.StatusCode != http.StatusForbidden || refusal.Tunnel != TunnelDirect {
			t.Fatalf("error %v: want the direct upgrade's 403", err)
		}
		var earlier *ResponseError
		if !errors.As(refusal.Earlier, &earlier) || earlier.Tunnel != TunnelWebSocket || earlier.Message != "no sessions for websocket" {
			t.Errorf("Earlier = %v, want the WebSocket handshake's refusal", refusal.Earlier)
		}
		for _, want := range []string{"no sessions for websocket", "no sessions for " + Protocol} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not carry the server's message %q", err, want)
			}
		}
		if got := rec.upgrades(); len(got) != 2 {
			t.Errorf("%d requests, want 2", len(got))
		}
	})
}

func TestThroughAProxyThatForwardsOnlyWebSockets(t *testing.T) {
	rec := &upgradeRecorder{next: newEchoServer(t)}
	srv, _ := newTestServer(t, rec, false)
	proxy := webSocketOnlyProxy(t, srv.URL)
	for _, tunnel := range allTunnels {
		t.Run(tunnel.String(), func(t *testing.T) {
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: tunnel})
			conn, err := dialUpgrade(rt, proxy.URL+"/exec")
			if tunnel != TunnelDirect {
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				assertEcho(t, conn)
				return
			}
			if err == nil {
				_ = conn.Close()
				t.Fatal("a direct upgrade got through")
			}
			if !httpstream.IsUpgradeFailure(err) || !strings.Contains(err.Error(), "TunnelWebSocket") ||
				!strings.Contains(err.Error(), "this proxy forwards only WebSocket upgrades") {
				t.Errorf("error %q does not carry the proxy's message and name TunnelWebSocket", err)
			}
		})
	}
}

func TestAWebSocketRefusedByAnOlderServerSuggestsAuto(t *testing.T) {
	srv, _ := newTestServer(t, olderServer(newEchoServer(t)), false)
	_, err := dialUpgrade(mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelWebSocket}), srv.URL)
	var refusal *ResponseError
	if !errors.As(err, &refusal) || refusal.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "TunnelAuto") {
		t.Fatalf("error %v: want the 400 and a hint to TunnelAuto", err)
	}
}

func TestAWebSocketHandshakeCarriesNoBody(t *testing.T) {
	rec := &upgradeRecorder{next: newEchoServer(t)}
	srv, _ := newTestServer(t, rec, false)
	body := func() io.Reader { return strings.NewReader("a body") }
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body())
	if _, err := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: TunnelWebSocket}).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "TunnelDirect") {
		t.Errorf("TunnelWebSocket with a body: %v, want an error naming TunnelDirect", err)
	}
	// TunnelAuto sends it in a direct upgrade.
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy})
	req, _ = http.NewRequest(http.MethodPost, srv.URL, body())
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := rec.upgrades(); len(got) != 1 || got[0] != Protocol {
		t.Errorf("the server saw %q, want one direct upgrade", got)
	}
}

func TestKeepalivePingsHoldAnIdleSessionThroughAnIdleCuttingProxy(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	const idleCut = 400 * time.Millisecond
	for _, tunnel := range []Tunnel{TunnelDirect, TunnelWebSocket} {
		t.Run(tunnel.String(), func(t *testing.T) {
			relay, cuts := idleCuttingRelay(t, strings.TrimPrefix(srv.URL, "http://"), idleCut)
			// Pings every 50 ms: eight per idle period, room for a loaded
			// machine.
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: tunnel, PingPeriod: 50 * time.Millisecond})
			conn := upgradeTo(t, rt, "http://"+relay)
			// Quiet for several idle periods: only the pings move.
			select {
			case <-cuts:
				t.Fatal("the relay cut a session that pings")
			case <-conn.CloseChan():
				t.Fatal("the session ended")
			case <-time.After(4 * idleCut):
			}
			assertEcho(t, conn)

			// The control: without pings, the relay cuts the session.
			quiet := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: tunnel, PingPeriod: -1})
			idle := upgradeTo(t, quiet, "http://"+relay)
			within(t, "the relay to cut a session without pings", cuts)
			within(t, "the session without pings to end", idle.CloseChan())
		})
	}
}

func TestTunnelConfig(t *testing.T) {
	if got := mustRoundTripper(t, RoundTripperConfig{}).tunnelChoice; got != TunnelAuto || DefaultTunnel != TunnelAuto {
		t.Errorf("the default Tunnel is %v, want TunnelAuto", got)
	}
	if _, err := NewRoundTripperWithConfig(RoundTripperConfig{Tunnel: 7}); err == nil || !strings.Contains(err.Error(), "Tunnel(7)") {
		t.Errorf("Tunnel 7: %v, want an error naming it", err)
	}
	for tunnel, name := range map[Tunnel]string{TunnelDirect: "TunnelDirect", TunnelWebSocket: "TunnelWebSocket", TunnelAuto: "TunnelAuto", 0: "Tunnel(0)"} {
		if tunnel.String() != name {
			t.Errorf("%d.String() = %q, want %q", int(tunnel), tunnel, name)
		}
	}
}

func TestCancelingTheContextAbortsAWebSocketHandshake(t *testing.T) {
	addr, reached := stalledServer(t, readsARequest)
	for _, tunnel := range []Tunnel{TunnelWebSocket, TunnelAuto} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr, nil)
		done := roundTripInBackground(mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: tunnel}), req)
		within(t, "the stalled server to get the request", reached)
		cancel()
		if err := within(t, "RoundTrip to return after cancel", done); !errors.Is(err, context.Canceled) {
			t.Errorf("%v: error %v, want context.Canceled", tunnel, err)
		}
	}
}
