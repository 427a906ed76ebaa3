package upgrade

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
)

// stalledServer accepts connections, lets stall read as much of what the
// client sends as the stage under test needs, signals reached, and then
// never answers.
func stalledServer(t *testing.T, stall func(net.Conn, *bufio.Reader) error) (addr string, reached <-chan struct{}) {
	signal := make(chan struct{}, 1)
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		if stall(c, br) != nil {
			return
		}
		select {
		case signal <- struct{}{}:
		default:
		}
		// Silence: read and drop until the client gives up.
		_, _ = io.Copy(io.Discard, br)
	})
	return ln.Addr().String(), signal
}

// readsOneOctet stalls once the client has sent anything: a TLS
// ClientHello, a SOCKS5 greeting.
func readsOneOctet(_ net.Conn, br *bufio.Reader) error {
	_, err := br.ReadByte()
	return err
}

// readsARequest stalls once a whole HTTP request has arrived: an upgrade
// request, a CONNECT.
func readsARequest(_ net.Conn, br *bufio.Reader) error {
	_, err := http.ReadRequest(br)
	return err
}

// opensATunnelThenStalls answers CONNECT with 200 and stalls once the
// client sends through the tunnel (its TLS ClientHello to the server).
func opensATunnelThenStalls(c net.Conn, br *bufio.Reader) error {
	if _, err := http.ReadRequest(br); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return err
	}
	return readsOneOctet(c, br)
}

func proxyAt(scheme, addr string) func(*http.Request) (*url.URL, error) {
	return func(*http.Request) (*url.URL, error) { return &url.URL{Scheme: scheme, Host: addr}, nil }
}

func TestCancelingTheContextAbortsEveryStageOfTheHandshake(t *testing.T) {
	for _, tt := range []struct {
		name    string
		stall   func(net.Conn, *bufio.Reader) error
		scheme  string // of the server's URL
		proxy   string // scheme of a proxy at the stalled address; "" for none
		stalled string // what stalls, for the record
	}{
		{"a TCP server that never handshakes TLS", readsOneOctet, "https", "", "TLS handshake"},
		{"an HTTP server that never answers the upgrade", readsARequest, "http", "", "the wait for the response"},
		{"an HTTPS server that never answers the upgrade", nil, "https", "", "the wait for the response, over TLS"},
		{"an HTTP proxy that never answers CONNECT", readsARequest, "http", "http", "CONNECT"},
		{"an HTTPS proxy that never handshakes TLS", readsOneOctet, "http", "https", "TLS with the proxy"},
		{"a server behind an HTTP proxy that never handshakes TLS", opensATunnelThenStalls, "https", "http", "TLS through the tunnel"},
		{"a SOCKS5 proxy that never answers", readsOneOctet, "http", "socks5", "SOCKS5 greeting"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var (
				addr      string
				reached   <-chan struct{}
				tlsConfig *tls.Config
			)
			if tt.stall != nil {
				addr, reached = stalledServer(t, tt.stall)
			} else {
				addr, reached, tlsConfig = stalledTLSServer(t)
			}
			if tlsConfig == nil {
				// The stalled server speaks no TLS; the handshake never gets
				// far enough to check a certificate.
				tlsConfig = &tls.Config{InsecureSkipVerify: true}
			}
			proxier := noProxy
			serverURL := tt.scheme + "://" + addr + "/exec"
			if tt.proxy != "" {
				proxier = proxyAt(tt.proxy, addr)
				serverURL = tt.scheme + "://server.invalid/exec"
			}
			rt := mustRoundTripper(t, RoundTripperConfig{TLS: tlsConfig, Proxier: proxier})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			done := roundTripInBackground(rt, req)
			within(t, "the client to reach the stalled stage ("+tt.stalled+")", reached)
			canceled := time.Now()
			cancel()
			err = within(t, "RoundTrip to return after cancel", done)
			assertCanceled(t, err, time.Since(canceled))
		})
	}
}

// stalledTLSServer completes TLS handshakes, reads the upgrade request,
// signals, and never answers.
func stalledTLSServer(t *testing.T) (addr string, reached <-chan struct{}, client *tls.Config) {
	serverConfig, clientConfig := testTLSConfigs(t)
	addr, reached = stalledServer(t, func(c net.Conn, br *bufio.Reader) error {
		tc := tls.Server(c, serverConfig)
		return readsARequest(tc, bufio.NewReader(tc))
	})
	return addr, reached, clientConfig
}

// assertCanceled checks that a handshake step reported its cancellation
// promptly and in words.
func assertCanceled(t *testing.T, err error, took time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatal("RoundTrip succeeded although its context was canceled")
	}
	t.Logf("error after cancel: %v", err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %q does not wrap context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "canceled") {
		t.Errorf("error %q does not say the request was canceled", err)
	}
	if httpstream.IsUpgradeFailure(err) {
		t.Errorf("error %q claims the server refused the upgrade", err)
	}
	// Prompt: the client returns as soon as it sees the cancellation, not
	// when some timeout fires. The bound is loose for slow machines.
	if took > 2*time.Second {
		t.Errorf("RoundTrip returned %v after cancel, want at once", took)
	}
}

func TestAContextCanceledBeforehandStopsTheDial(t *testing.T) {
	addr, _ := stalledServer(t, readsARequest)
	rt := directRoundTripper(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = within(t, "RoundTrip to return", roundTripInBackground(rt, req))
	assertCanceled(t, err, time.Since(start))
}

func TestADeadlineEndsAStalledHandshake(t *testing.T) {
	addr, _ := stalledServer(t, readsARequest)
	rt := directRoundTripper(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := roundTripInBackground(rt, req)
	if err := within(t, "RoundTrip to give up at the deadline", done); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
	}
}

func TestCancelingTheContextAbortsReadingARefusal(t *testing.T) {
	// The server sends the head of a refusal, then stalls in its body, so
	// NewConnection, which reads the body for the message, would wait.
	signal := make(chan struct{}, 1)
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		if readsARequest(c, bufio.NewReader(c)) != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nnot all of it")
		signal <- struct{}{}
		_, _ = io.Copy(io.Discard, c)
	})
	rt := directRoundTripper(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String(), nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "the server to stall", signal)
	done := make(chan error, 1)
	go func() {
		_, err := rt.NewConnection(resp)
		done <- err
	}()
	cancel()
	err = within(t, "NewConnection to return after cancel", done)
	var refusal *ResponseError
	if !errors.As(err, &refusal) || refusal.StatusCode != http.StatusForbidden {
		t.Errorf("NewConnection error = %v, want the 403 refusal", err)
	}
}
