package upgrade

import (
	"context"
	"net"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// net/http reads the proxy environment once per process, so the test runs
// its client in a child process: the test binary again, selected by
// childModeVariable, with the environment a user would have. The parent
// runs the servers and proxies, and checks afterwards which proxy carried
// what.
const (
	childModeVariable  = "UPGRADE_TEST_CHILD_MODE"
	childProxyFromEnv  = "proxy-from-environment"
	childPlainURL      = "UPGRADE_TEST_PLAIN_URL"  // reached through HTTP_PROXY
	childTLSURL        = "UPGRADE_TEST_TLS_URL"    // reached through HTTPS_PROXY, a SOCKS5 proxy
	childDirectURL     = "UPGRADE_TEST_DIRECT_URL" // a non-loopback address in a NO_PROXY CIDR; may be empty
	childNoProxyPrefix = "10.0.0.0/8,fd00::/8,skip.example"
)

func TestProxyFromTheEnvironmentHonoursNoProxyCIDRs(t *testing.T) {
	if os.Getenv(childModeVariable) == childProxyFromEnv {
		proxyFromEnvironmentChild(t)
		return
	}

	// The server behind the HTTP proxy, asked for by a name only the proxy
	// knows.
	plain, _ := newTestServer(t, newEchoServer(t), false)
	plainURL, _ := url.Parse(plain.URL)
	plainName := net.JoinHostPort("backend.test", plainURL.Port())
	httpProxy := &connectProxy{route: func(target string) string {
		if target == plainName {
			return plainURL.Host
		}
		return target
	}}
	httpProxyAddr := httpProxy.start(t, nil)

	// The TLS server behind the SOCKS5 proxy, asked for as example.com,
	// which its certificate names.
	secure, _ := newTestServer(t, newEchoServer(t), true)
	secureURL, _ := url.Parse(secure.URL)
	secureName := net.JoinHostPort("example.com", secureURL.Port())
	socks := &socksServer{route: func(string) string { return secureURL.Host }}
	socksAddr := socks.start(t)

	// A server on a non-loopback address, which must be reached directly
	// because NO_PROXY holds a range around it. Loopback would prove
	// nothing: net/http never proxies it.
	noProxyList := childNoProxyPrefix
	directURL := ""
	if ip, ok := nonLoopbackAddress(); ok {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err == nil {
			direct := httptest.NewUnstartedServer(newEchoServer(t))
			_ = direct.Listener.Close()
			direct.Listener = ln
			direct.Start()
			t.Cleanup(direct.Close)
			directURL = direct.URL + "/exec"
			bits := 24
			if ip.Is6() {
				bits = 64
			}
			prefix, _ := ip.Prefix(bits)
			noProxyList += "," + prefix.String()
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestProxyFromTheEnvironmentHonoursNoProxyCIDRs$", "-test.count=1", "-test.v")
	cmd.Env = append(environmentWithoutProxies(),
		childModeVariable+"="+childProxyFromEnv,
		"HTTP_PROXY=http://"+httpProxyAddr,
		"HTTPS_PROXY=socks5://"+socksAddr,
		"NO_PROXY="+noProxyList,
		childPlainURL+"=http://"+plainName+"/exec",
		childTLSURL+"=https://"+secureName+"/exec",
		childDirectURL+"="+directURL,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("child process output:\n%s", out)
	if err != nil {
		t.Fatalf("child process: %v", err)
	}

	// One connection per Tunnel the child tries.
	want := strings.TrimSuffix(strings.Repeat(plainName+" ", len(allTunnels)), " ")
	if targets, _ := httpProxy.seen(); strings.Join(targets, " ") != want {
		t.Errorf("HTTP proxy carried %q, want only %s, once per Tunnel (a direct address went through it?)", targets, plainName)
	}
	socks.mu.Lock()
	defer socks.mu.Unlock()
	want = strings.TrimSuffix(strings.Repeat(secureName+" ", len(allTunnels)), " ")
	if strings.Join(socks.targets, " ") != want {
		t.Errorf("SOCKS5 proxy carried %q, want only %s, once per Tunnel", socks.targets, secureName)
	}
}

// proxyFromEnvironmentChild is the client side, in the child process.
func proxyFromEnvironmentChild(t *testing.T) {
	_, clientTLS := testTLSConfigs(t)
	rt, err := NewRoundTripper(clientTLS)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the proxy each URL gets", func(t *testing.T) {
		for _, tt := range []struct {
			url  string
			want string // "" for none
		}{
			{"http://10.1.2.3:8080/", ""},
			{"http://[fd00::1]/", ""},
			{"http://skip.example/", ""},
			{"http://11.0.0.1/", os.Getenv("HTTP_PROXY")},
			{"http://198.51.100.7/", os.Getenv("HTTP_PROXY")},
			{"https://198.51.100.7/", os.Getenv("HTTPS_PROXY")},
		} {
			got, err := rt.proxyFor(mustRequest(t, tt.url))
			if err != nil {
				t.Fatalf("%s: %v", tt.url, err)
			}
			if gotText := urlText(got); gotText != tt.want {
				t.Errorf("proxy for %s = %q, want %q", tt.url, gotText, tt.want)
			}
		}
	})
	for _, tunnel := range allTunnels {
		// The environment is read by RoundTripperConfig's nil Proxier.
		rt := mustRoundTripper(t, RoundTripperConfig{TLS: clientTLS, Tunnel: tunnel})
		t.Run(tunnel.String()+"/through HTTP_PROXY", func(t *testing.T) {
			assertEcho(t, upgradeTo(t, rt, os.Getenv(childPlainURL)))
		})
		t.Run(tunnel.String()+"/through HTTPS_PROXY to a TLS server", func(t *testing.T) {
			assertEcho(t, upgradeTo(t, rt, os.Getenv(childTLSURL)))
		})
		t.Run(tunnel.String()+"/directly to an address in a NO_PROXY range", func(t *testing.T) {
			direct := os.Getenv(childDirectURL)
			if direct == "" {
				t.Skip("this machine has no non-loopback address to listen on")
			}
			assertEcho(t, upgradeTo(t, rt, direct))
		})
	}
}

func urlText(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// environmentWithoutProxies is the test's environment without proxy
// settings, so the child sees only those the test sets. REQUEST_METHOD
// goes too: with it, net/http ignores HTTP_PROXY (it may be a CGI header).
func environmentWithoutProxies() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD", childModeVariable:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// nonLoopbackAddress returns an address of this machine that is neither
// loopback nor link-local.
func nonLoopbackAddress() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := prefix.Addr()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
			continue
		}
		return ip.Unmap(), true
	}
	return netip.Addr{}, false
}
