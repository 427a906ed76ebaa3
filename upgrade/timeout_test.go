package upgrade

import (
	"bufio"
	"context"
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

func TestTheHandshakeTimeoutIsThirtySecondsByDefault(t *testing.T) {
	if DefaultHandshakeTimeout != 30*time.Second {
		t.Errorf("DefaultHandshakeTimeout = %v, the documented value is 30s", DefaultHandshakeTimeout)
	}
	for _, tt := range []struct {
		name string
		cfg  RoundTripperConfig
		want time.Duration
	}{
		{"zero", RoundTripperConfig{}, DefaultHandshakeTimeout},
		{"set", RoundTripperConfig{HandshakeTimeout: time.Second}, time.Second},
		{"negative: none", RoundTripperConfig{HandshakeTimeout: -1}, -1},
		{"from an UpgradeTransport that is a RoundTripper", RoundTripperConfig{UpgradeTransport: mustRoundTripper(t, RoundTripperConfig{HandshakeTimeout: 5 * time.Second})}, 5 * time.Second},
		{"an http.Transport keeps the default", RoundTripperConfig{UpgradeTransport: &http.Transport{}}, DefaultHandshakeTimeout},
	} {
		if got := mustRoundTripper(t, tt.cfg).handshakeTimeout; got != tt.want {
			t.Errorf("%s: handshake timeout %v, want %v", tt.name, got, tt.want)
		}
	}
	// NewRoundTripper, the README's constructor, has it too.
	rt, err := NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	if rt.handshakeTimeout != DefaultHandshakeTimeout {
		t.Errorf("NewRoundTripper's handshake timeout is %v", rt.handshakeTimeout)
	}
}

// silentServers are servers that accept the connection and never answer,
// at each point a dial can wait on.
func silentServers(t *testing.T) map[string]string {
	request, _ := stalledServer(t, readsARequest)
	tlsHello, _ := stalledServer(t, readsOneOctet)
	body := rawUpgradeServer(t, func(c net.Conn, br *bufio.Reader, _ *http.Request) {
		// A refusal whose body never comes.
		_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nonly a little")
		_, _ = io.Copy(io.Discard, br)
	})
	return map[string]string{
		"a server that never answers the request": "http://" + request,
		"a server that never answers TLS":         "https://" + tlsHello,
		"a refusal whose body stalls":             "http://" + body,
	}
}

func TestADialAgainstASilentServerFailsWithinTheHandshakeTimeout(t *testing.T) {
	const timeout = 150 * time.Millisecond
	for name, target := range silentServers(t) {
		for _, tunnel := range allTunnels {
			t.Run(tunnel.String()+"/"+name, func(t *testing.T) {
				rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, Tunnel: tunnel, HandshakeTimeout: timeout})
				u, _ := url.Parse(target + "/exec")
				done := make(chan error, 1)
				start := time.Now()
				// The README's client, unchanged: no context, no
				// http.Client timeout.
				go func() {
					conn, _, err := NewDialer(rt, nil, http.MethodPost, u).Dial("v5.channel.k8s.io")
					if err == nil {
						_ = conn.Close()
					}
					done <- err
				}()
				err := within(t, "Dial to give up on the silent server", done)
				took := time.Since(start)
				if err == nil {
					t.Fatal("Dial succeeded")
				}
				var ne net.Error
				refusal := strings.Contains(name, "refusal")
				if !refusal && (!errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, context.DeadlineExceeded)) {
					t.Errorf("error %v: want a net.Error timeout matching context.DeadlineExceeded", err)
				}
				if refusal && !httpstream.IsUpgradeFailure(err) {
					t.Errorf("error %v: want the refusal, with what its body said", err)
				}
				if !strings.Contains(err.Error(), "HandshakeTimeout") {
					t.Errorf("error %q does not name HandshakeTimeout", err)
				}
				if took < timeout {
					t.Errorf("Dial gave up after %v, before the timeout", took)
				}
				t.Logf("after %v: %v", took, err)
			})
		}
	}
}

func TestDialContextIsBoundedByItsContext(t *testing.T) {
	addr, reached := stalledServer(t, readsARequest)
	u, _ := url.Parse("http://" + addr + "/exec")
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, HandshakeTimeout: -1})
	t.Run("a deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, _, err := DialContext(ctx, NewDialer(rt, nil, http.MethodPost, u), "v5.channel.k8s.io")
			done <- err
		}()
		if err := within(t, "DialContext to end with its context", done); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("a cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, _, err := DialContext(ctx, NewDialer(rt, nil, http.MethodPost, u))
			done <- err
		}()
		within(t, "the server to get the request", reached)
		cancel()
		if err := within(t, "DialContext to end with its context", done); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
	t.Run("a Dialer from elsewhere", func(t *testing.T) {
		release := make(chan struct{})
		closed := make(chan struct{})
		foreign := dialerFunc(func(...string) (httpstream.Connection, string, error) {
			<-release
			return &closeSignal{closed: closed}, "", nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := DialContext(ctx, foreign); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, _, err := DialContext(ctx, foreign); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want context.DeadlineExceeded", err)
		}
		close(release)
		within(t, "the late connection to be closed", closed)
	})
}

type dialerFunc func(protocols ...string) (httpstream.Connection, string, error)

func (f dialerFunc) Dial(protocols ...string) (httpstream.Connection, string, error) {
	return f(protocols...)
}

// closeSignal is a Connection that only reports its Close.
type closeSignal struct {
	httpstream.Connection
	closed chan struct{}
}

func (c *closeSignal) Close() error { close(c.closed); return nil }

func TestTheDialerIsAContextDialer(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	u, _ := url.Parse(srv.URL)
	d := NewDialer(mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy}), nil, http.MethodPost, u)
	if _, ok := d.(contextDialer); !ok {
		t.Fatalf("NewDialer's %T has no DialContext", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, _, err := DialContext(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Canceling after the upgrade leaves the connection alone.
	cancel()
	assertEcho(t, conn)
}
