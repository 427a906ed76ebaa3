package upgrade

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/httpstream-go/httpstream"
)

// negotiatingServer negotiates a sub-protocol with httpstream.Handshake,
// as Kubernetes servers do, then upgrades and echoes; it records the
// X-Stream-Protocol-Version lines it received.
func negotiatingServer(t *testing.T, serverProtocols ...string) (*url.URL, <-chan []string) {
	echo := newEchoServer(t)
	offered := make(chan []string, 8) // TunnelAuto may make two requests
	srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offered <- r.Header.Values(httpstream.HeaderProtocolVersion)
		if _, err := httpstream.Handshake(r, w, serverProtocols); err != nil {
			return
		}
		echo.ServeHTTP(w, r)
	}), false)
	u, err := url.Parse(srv.URL + "/exec")
	if err != nil {
		t.Fatal(err)
	}
	return u, offered
}

func TestDialNegotiatesTheProtocol(t *testing.T) {
	u, offered := negotiatingServer(t, "v4.channel.k8s.io", "v5.channel.k8s.io")
	rt := directRoundTripper(t, nil)
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{
		{"without a client", nil},
		{"through an http.Client with a timeout", &http.Client{Transport: rt, Timeout: testTimeout}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, protocol, err := NewDialer(rt, tt.client, http.MethodPost, u).Dial("v6.channel.k8s.io", "v5.channel.k8s.io", "v4.channel.k8s.io")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			if protocol != "v5.channel.k8s.io" {
				t.Errorf("protocol = %q, want the client's first that the server speaks, v5.channel.k8s.io", protocol)
			}
			got := within(t, "the server's view of the request", offered)
			if strings.Join(got, " ") != "v6.channel.k8s.io v5.channel.k8s.io v4.channel.k8s.io" {
				t.Errorf("server received X-Stream-Protocol-Version %q, want one line per protocol, in order", got)
			}
			assertEcho(t, conn)
		})
	}
}

func TestDialWithoutACommonProtocolSaysWhatTheServerAccepts(t *testing.T) {
	u, _ := negotiatingServer(t, "v4.channel.k8s.io", "v5.channel.k8s.io")
	rt := directRoundTripper(t, nil)
	conn, _, err := NewDialer(rt, nil, http.MethodPost, u).Dial("v1.channel.k8s.io")
	if err == nil {
		_ = conn.Close()
		t.Fatal("Dial succeeded")
	}
	if !httpstream.IsUpgradeFailure(err) {
		t.Errorf("error %v is not an upgrade failure", err)
	}
	var refusal *ResponseError
	if !errors.As(err, &refusal) || refusal.StatusCode != http.StatusForbidden {
		t.Errorf("error %v does not carry the 403", err)
	}
	for _, want := range []string{"v1.channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"} {
		if n := strings.Count(err.Error(), want); n != 1 {
			t.Errorf("error %q mentions %s %d times, want once", err, want, n)
		}
	}
	t.Logf("error: %v", err)
}

func TestDialWithoutNegotiationReturnsNoProtocol(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	u, _ := url.Parse(srv.URL)
	rt := directRoundTripper(t, nil)
	conn, protocol, err := NewDialer(rt, nil, http.MethodGet, u).Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if protocol != "" {
		t.Errorf("protocol = %q, want none", protocol)
	}
	assertEcho(t, conn)
}

func TestDialNeedsARoundTripperAndAURL(t *testing.T) {
	rt := directRoundTripper(t, nil)
	u, _ := url.Parse("http://127.0.0.1:1/")
	for _, tt := range []struct {
		name   string
		dialer httpstream.Dialer
	}{
		{"a nil round tripper", NewDialer(nil, nil, http.MethodGet, u)},
		{"a nil URL", NewDialer(rt, nil, http.MethodGet, nil)},
		{"a client whose transport does not upgrade", NewDialer(rt, &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 101, Header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {Protocol}}, Body: http.NoBody}, nil
		})}, http.MethodGet, u)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if conn, _, err := tt.dialer.Dial("v1"); err == nil {
				_ = conn.Close()
				t.Fatal("Dial succeeded")
			} else {
				t.Logf("error: %v", err)
			}
		})
	}
}
