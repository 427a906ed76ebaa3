package upgrade

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
)

// testTimeout bounds every wait in these tests: a test that hangs fails
// with a message instead of stalling the run.
const testTimeout = 10 * time.Second

// within fails the test unless done is closed or receives within
// testTimeout.
func within[T any](t *testing.T, what string, done <-chan T) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("%s: still waiting after %v", what, testTimeout)
		panic("unreachable")
	}
}

// echoServer is an http.Handler that upgrades every request and echoes
// every stream the client opens. Close, registered as a test cleanup, closes
// the sessions and waits for the echo goroutines it started.
type echoServer struct {
	upgrader httpstream.ResponseUpgrader
	upgraded chan httpstream.Connection // each session, for tests that watch the server side; never blocks

	mu       sync.Mutex // guards sessions, closing, and adding to echoes
	sessions []httpstream.Connection
	closing  bool           // close has run: sessions upgraded later end at once
	echoes   sync.WaitGroup // one per stream being echoed
}

func newEchoServer(t *testing.T) *echoServer {
	e := &echoServer{upgrader: NewResponseUpgrader(), upgraded: make(chan httpstream.Connection, 16)}
	t.Cleanup(func() { e.close(t) })
	return e
}

func (e *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn := e.upgrader.UpgradeResponse(w, r, e.acceptStream)
	if conn == nil {
		return
	}
	e.track(conn)
	select {
	case e.upgraded <- conn:
	default:
	}
}

// track makes conn one of the sessions closed at the end of the test.
func (e *echoServer) track(conn httpstream.Connection) {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		_ = conn.Close()
		return
	}
	e.sessions = append(e.sessions, conn)
	e.mu.Unlock()
}

func (e *echoServer) acceptStream(s httpstream.Stream, replySent <-chan struct{}) error {
	// Added to under mu and only before close, so the WaitGroup is never
	// added to while close waits on it.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return errors.New("the test server is closing")
	}
	e.echoes.Add(1)
	// Owned by the session: it ends when the client half-closes the stream
	// or the session closes.
	go func() {
		defer e.echoes.Done()
		_, _ = io.Copy(s, s)
		_ = s.Close()
	}()
	return nil
}

func (e *echoServer) close(t *testing.T) {
	e.mu.Lock()
	e.closing = true
	sessions := e.sessions
	e.sessions = nil
	e.mu.Unlock()
	for _, s := range sessions {
		_ = s.Close()
	}
	waitGroup(t, "the echo goroutines, after their sessions closed", &e.echoes)
}

// newTestServer starts an httptest server, with TLS if secure, serving h,
// and returns it with a TLS configuration that trusts it.
func newTestServer(t *testing.T, h http.Handler, secure bool) (*httptest.Server, *tls.Config) {
	t.Helper()
	if !secure {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv, nil
	}
	srv := httptest.NewUnstartedServer(h)
	// The server offers h2 as well, so the tests see that the client's ALPN
	// keeps the connection on HTTP/1.1, where upgrades exist.
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

// upgradeTo upgrades a request to url with rt and returns the connection,
// closed at the end of the test.
func upgradeTo(t *testing.T, rt *RoundTripper, url string) httpstream.Connection {
	t.Helper()
	conn, err := dialUpgrade(rt, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dialUpgrade is upgradeTo for goroutines other than the test's, which
// must not call t.Fatal; the caller closes the connection.
func dialUpgrade(rt *RoundTripper, url string) (httpstream.Connection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("RoundTrip: %w", err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		return nil, fmt.Errorf("NewConnection: %w", err)
	}
	return conn, nil
}

// assertEcho opens a stream on conn, sends a message, half-closes, and
// checks that the echo server sends it back.
func assertEcho(t *testing.T, conn httpstream.Connection) {
	t.Helper()
	done := make(chan error, 1)
	// Ends by itself, or when the test's cleanup closes conn.
	go func() { done <- echoOnce(conn, "data through the upgraded connection") }()
	if err := within(t, "echo through a stream", done); err != nil {
		t.Fatal(err)
	}
}

func echoOnce(conn httpstream.Connection, msg string) error {
	s, err := conn.CreateStream(http.Header{"Streamtype": {"echo"}})
	if err != nil {
		return fmt.Errorf("CreateStream: %w", err)
	}
	if _, err := io.WriteString(s, msg); err != nil {
		return fmt.Errorf("Write: %w", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(got, []byte(msg)) {
		return fmt.Errorf("echo = %q, want %q", got, msg)
	}
	return nil
}

// listen opens a loopback TCP listener closed at the end of the test.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// serveConns accepts connections on ln and runs handle for each on its own
// goroutine, until the test ends; the cleanup closes the listener and every
// accepted connection, then waits for the goroutines.
func serveConns(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		waitGroup(t, "the test server's goroutines, after their connections closed", &wg)
	})
}

// noProxy is a Proxier that connects directly, so tests do not depend on
// the environment they run in.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// waitGroup waits for wg, failing the test after testTimeout.
func waitGroup(t *testing.T, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	within(t, what, done)
}

// testTLSConfigs returns a server configuration with httptest's certificate
// (valid for 127.0.0.1 and example.com) and a client configuration that
// trusts it, for test servers and proxies that speak TLS themselves.
func testTLSConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.StartTLS()
	defer srv.Close()
	server = &tls.Config{Certificates: srv.TLS.Certificates}
	client = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return server, client
}

// directRoundTripper returns a RoundTripper that connects without proxy,
// whatever the environment, trusting tlsConfig's roots.
func directRoundTripper(t *testing.T, tlsConfig *tls.Config) *RoundTripper {
	t.Helper()
	return mustRoundTripper(t, RoundTripperConfig{TLS: tlsConfig, Proxier: noProxy})
}

// roundTripInBackground runs rt.RoundTrip(req) and delivers its error (nil
// if a response arrived, whose body it closes); the goroutine ends with
// RoundTrip.
func roundTripInBackground(rt *RoundTripper, req *http.Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		done <- err
	}()
	return done
}
