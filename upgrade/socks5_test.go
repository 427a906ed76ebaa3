package upgrade

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/httpstream-go/httpstream"
)

// socksServer is a SOCKS5 proxy (RFC 1928, CONNECT only) with optional
// username/password authentication (RFC 1929), written for the tests
// independently of the client code.
type socksServer struct {
	user, password string              // required credentials; "" user: no authentication
	reply          byte                // if non-zero, the failure every CONNECT gets
	route          func(string) string // maps a requested target to the address dialed; nil: as is

	mu      sync.Mutex // guards targets
	targets []string
}

func (s *socksServer) start(t *testing.T) string {
	ln := listen(t)
	serveConns(t, ln, s.handle)
	return ln.Addr().String()
}

func (s *socksServer) handle(c net.Conn) {
	br := bufio.NewReader(c)
	// Greeting: VER NMETHODS METHODS.
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil || head[0] != 5 {
		return
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return
	}
	want := byte(0x00)
	if s.user != "" {
		want = 0x02
	}
	if !bytes.Contains(methods, []byte{want}) {
		_, _ = c.Write([]byte{5, 0xff})
		return
	}
	_, _ = c.Write([]byte{5, want})
	if want == 0x02 && !s.authenticate(c, br) {
		return
	}

	// Request: VER CMD RSV ATYP DST.ADDR DST.PORT.
	req := make([]byte, 4)
	if _, err := io.ReadFull(br, req); err != nil || req[0] != 5 || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 0x01, 0x04:
		ip := make([]byte, map[byte]int{0x01: 4, 0x04: 16}[req[3]])
		if _, err := io.ReadFull(br, ip); err != nil {
			return
		}
		host = net.IP(ip).String()
	case 0x03:
		n, err := br.ReadByte()
		if err != nil {
			return
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(br, name); err != nil {
			return
		}
		host = string(name)
	default:
		return
	}
	port := make([]byte, 2)
	if _, err := io.ReadFull(br, port); err != nil {
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port))))
	s.mu.Lock()
	s.targets = append(s.targets, target)
	s.mu.Unlock()

	if s.reply != 0 {
		_, _ = c.Write([]byte{5, s.reply, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	if s.route != nil {
		target = s.route(target)
	}
	upstream, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = c.Write([]byte{5, 0x05, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	// A domain-name bound address, to exercise the client's skipping of
	// the variable-length form.
	bound := []byte{5, 0, 0, 3, 9}
	bound = append(bound, "localhost"...)
	bound = append(bound, 0x04, 0x38)
	if _, err := c.Write(bound); err != nil {
		_ = upstream.Close()
		return
	}
	relay(c, br, upstream)
}

// authenticate runs the server side of RFC 1929.
func (s *socksServer) authenticate(c net.Conn, br *bufio.Reader) bool {
	field := func() (string, bool) {
		n, err := br.ReadByte()
		if err != nil {
			return "", false
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return string(b), err == nil
	}
	if v, err := br.ReadByte(); err != nil || v != 1 {
		return false
	}
	user, ok := field()
	if !ok {
		return false
	}
	password, ok := field()
	if !ok {
		return false
	}
	if user != s.user || password != s.password {
		_, _ = c.Write([]byte{1, 1})
		return false
	}
	_, _ = c.Write([]byte{1, 0})
	return true
}

func TestUpgradesThroughASOCKS5Proxy(t *testing.T) {
	for _, tt := range []struct {
		name     string
		proxy    *socksServer
		userinfo *url.Userinfo
		secure   bool
		byName   bool // ask for the server by host name, for the proxy to resolve
	}{
		{"without authentication", &socksServer{}, nil, false, false},
		{"without authentication, to a TLS server", &socksServer{}, nil, true, false},
		{"with username and password", &socksServer{user: "alice", password: "secret"}, url.UserPassword("alice", "secret"), false, false},
		{"with percent-escaped credentials", &socksServer{user: "al@ice", password: "p:ss/w%rd"}, mustUserinfo(t, "al%40ice:p%3Ass%2Fw%25rd"), true, false},
		{"with a host name the proxy resolves", &socksServer{}, nil, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, tlsConfig := newTestServer(t, newEchoServer(t), tt.secure)
			serverURL := srv.URL
			if tt.byName {
				u, _ := url.Parse(srv.URL)
				u.Host = net.JoinHostPort("server.invalid", u.Port())
				serverURL = u.String()
				tt.proxy.route = func(string) string { return srv.Listener.Addr().String() }
			}
			proxyURL := &url.URL{Scheme: "socks5", Host: tt.proxy.start(t), User: tt.userinfo}
			rt := mustRoundTripper(t, RoundTripperConfig{TLS: tlsConfig, Proxier: http.ProxyURL(proxyURL)})
			assertEcho(t, upgradeTo(t, rt, serverURL+"/exec"))

			u, _ := url.Parse(serverURL)
			tt.proxy.mu.Lock()
			defer tt.proxy.mu.Unlock()
			if len(tt.proxy.targets) != 1 || tt.proxy.targets[0] != u.Host {
				t.Errorf("proxy was asked for %q, want one connection to %s", tt.proxy.targets, u.Host)
			}
		})
	}
}

func TestASOCKS5ProxyThatRefusesIsAProxyError(t *testing.T) {
	for _, tt := range []struct {
		name     string
		proxy    *socksServer
		userinfo *url.Userinfo
	}{
		{"wrong password", &socksServer{user: "alice", password: "secret"}, url.UserPassword("alice", "guess")},
		{"credentials required but none given", &socksServer{user: "alice", password: "secret"}, nil},
		{"connection refused by the proxy", &socksServer{reply: 0x05}, nil},
		{"ruleset forbids the target", &socksServer{reply: 0x02}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxyURL := &url.URL{Scheme: "socks5", Host: tt.proxy.start(t), User: tt.userinfo}
			rt := mustRoundTripper(t, RoundTripperConfig{Proxier: http.ProxyURL(proxyURL)})
			_, err := dialUpgrade(rt, "http://server.invalid/")
			var refused *ProxyError
			if !errors.As(err, &refused) {
				t.Fatalf("error %v is not a *ProxyError", err)
			}
			if refused.StatusCode != 0 {
				t.Errorf("StatusCode = %d for a SOCKS5 proxy, want 0", refused.StatusCode)
			}
			if httpstream.IsUpgradeFailure(err) {
				t.Errorf("error %v claims the server refused the upgrade; the proxy did", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestSOCKS5ConnectRequestEncoding(t *testing.T) {
	for _, tt := range []struct {
		name   string
		target string
		want   []byte // nil: an error
	}{
		{"an IPv4 address", "192.0.2.1:80", []byte{5, 1, 0, 1, 192, 0, 2, 1, 0, 80}},
		{"an IPv4-mapped IPv6 address is sent as IPv4", "[::ffff:192.0.2.1]:443", []byte{5, 1, 0, 1, 192, 0, 2, 1, 1, 187}},
		{"an IPv6 address", "[2001:db8::1]:8080", append(append([]byte{5, 1, 0, 4}, net.ParseIP("2001:db8::1")...), 0x1f, 0x90)},
		{"a host name", "example.com:1080", append([]byte{5, 1, 0, 3, 11}, append([]byte("example.com"), 0x04, 0x38)...)},
		{"a name longer than 255 octets", string(bytes.Repeat([]byte("a"), 256)) + ":80", nil},
		{"a port out of range", "example.com:65536", nil},
		{"no port", "example.com", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := socksConnectRequest(tt.target)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("encoded %x, want an error", got)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("got %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

func TestSOCKS5CredentialsMustFitTheirLengthOctet(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 256))
	for _, tt := range []struct {
		name string
		user *url.Userinfo
		ok   bool
	}{
		{"none", nil, true},
		{"an empty password", url.User("alice"), true},
		{"an empty username", url.UserPassword("", "secret"), false},
		{"a username of 256 octets", url.UserPassword(long, "secret"), false},
		{"a password of 256 octets", url.UserPassword("alice", long), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := socksPasswordRequest(tt.user); (err == nil) != tt.ok {
				t.Errorf("error = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestSOCKS5ProxiesThatSpeakSomethingElseAreReported(t *testing.T) {
	for _, tt := range []struct {
		name    string
		answers []byte
	}{
		{"an HTTP server", []byte("HTTP/1.1 400 Bad Request\r\n\r\n")},
		{"a method that was not offered", []byte{5, 0x01}},
		{"a SOCKS4 reply to CONNECT", []byte{5, 0, 4, 0x5a, 0, 0}},
		{"an unknown bound address type", []byte{5, 0, 5, 0, 0, 9}},
		{"a reply cut short", []byte{5, 0, 5, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rw := &scriptedPeer{answers: bytes.NewReader(tt.answers)}
			request, _ := socksConnectRequest("example.com:80")
			if err := socksHandshake(rw, nil, request); err == nil {
				t.Fatal("handshake succeeded")
			} else {
				t.Logf("error: %v", err)
			}
		})
	}
}

// scriptedPeer answers with fixed octets whatever is written to it.
type scriptedPeer struct {
	answers io.Reader
	written bytes.Buffer
}

func (p *scriptedPeer) Read(b []byte) (int, error)  { return p.answers.Read(b) }
func (p *scriptedPeer) Write(b []byte) (int, error) { return p.written.Write(b) }
