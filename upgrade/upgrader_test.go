package upgrade

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

func TestUpgradeResponseRefusesRequestsThatDoNotAskForIt(t *testing.T) {
	for _, tt := range []struct {
		name       string
		header     http.Header
		wantHeader string // the header the 400's message must name
	}{
		{"no Connection header", http.Header{"Upgrade": {Protocol}}, "Connection"},
		{"Connection without the upgrade token", http.Header{"Connection": {"keep-alive"}, "Upgrade": {Protocol}}, "Connection"},
		{"a token that only contains upgrade", http.Header{"Connection": {"upgraded, x-upgrade"}, "Upgrade": {Protocol}}, "Connection"},
		{"no Upgrade header", http.Header{"Connection": {"Upgrade"}}, "Upgrade"},
		{"another protocol", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, "Upgrade"},
		{"another version of this protocol", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"httpstream/2"}}, "Upgrade"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://example.com/exec", nil)
			req.Header = tt.header
			rec := httptest.NewRecorder()
			if conn := NewResponseUpgrader().UpgradeResponse(rec, req, nil); conn != nil {
				_ = conn.Close()
				t.Fatal("UpgradeResponse returned a connection")
			}
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", rec.Code)
			}
			if msg := rec.Body.String(); !strings.Contains(msg, "the "+tt.wantHeader+" header") {
				t.Errorf("message %q does not name the %s header", msg, tt.wantHeader)
			}
		})
	}
}

func TestUpgradeResponseNeedsAHijackableResponseWriter(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "http://example.com/exec", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", Protocol)
	rec := httptest.NewRecorder() // cannot hijack
	if conn := NewResponseUpgrader().UpgradeResponse(rec, req, nil); conn != nil {
		t.Fatal("UpgradeResponse returned a connection")
	}
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	if msg := rec.Body.String(); !strings.Contains(msg, "Hijacker") {
		t.Errorf("message %q does not say hijacking is what is missing", msg)
	}
}

func TestUpgradeResponseAcceptsTheTokensInAnyCaseAndList(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header string // raw header lines
	}{
		{"the canonical form", "Connection: Upgrade\r\nUpgrade: httpstream/1\r\n"},
		{"lower case", "connection: upgrade\r\nupgrade: httpstream/1\r\n"},
		{"upper case protocol", "Connection: UPGRADE\r\nUpgrade: HTTPSTREAM/1\r\n"},
		{"tokens inside lists", "Connection: keep-alive, Upgrade\r\nUpgrade: websocket, httpstream/1\r\n"},
		{"tokens on later lines", "Connection: keep-alive\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nUpgrade: httpstream/1\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newTestServer(t, newEchoServer(t), false)
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /exec HTTP/1.1\r\nHost: example.com\r\n%s\r\n", tt.header)
			resp, err := readResponseWithin(t, conn)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("status = %s, want 101", resp.Status)
			}
		})
	}
}

// readResponseWithin reads an HTTP response from conn, bounded by
// testTimeout.
func readResponseWithin(t *testing.T, conn net.Conn) (*http.Response, error) {
	t.Helper()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		done <- result{resp, err}
	}()
	r := within(t, "the server's response", done)
	return r.resp, r.err
}

func TestThe101CarriesTheHeadersSetBeforeTheUpgrade(t *testing.T) {
	echo := newEchoServer(t)
	srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(httpstream.HeaderProtocolVersion, "v5.channel.k8s.io")
		w.Header().Set("Content-Length", "12") // meaningless on a 101, so dropped
		echo.ServeHTTP(w, r)
	}), false)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", Protocol)

	head := make(chan string, 1)
	go func() {
		// Everything up to the blank line, octet for octet.
		var b bytes.Buffer
		one := make([]byte, 1)
		for !bytes.HasSuffix(b.Bytes(), []byte("\r\n\r\n")) {
			if _, err := conn.Read(one); err != nil {
				break
			}
			b.Write(one)
		}
		head <- b.String()
	}()
	got := within(t, "the 101 response", head)
	wantStart := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: httpstream/1\r\n"
	if !strings.HasPrefix(got, wantStart) {
		t.Errorf("101 response starts %q, want %q", got, wantStart)
	}
	if !strings.Contains(got, "\r\nX-Stream-Protocol-Version: v5.channel.k8s.io\r\n") {
		t.Errorf("101 response %q lacks the X-Stream-Protocol-Version set by the handler", got)
	}
	if strings.Contains(got, "Content-Length") {
		t.Errorf("101 response %q carries Content-Length", got)
	}
}

// handoverConn stands for a peer that writes its first frames in the same
// packet as its HTTP message: the first Write sends pending and the frames
// together. Reads come from r, after readHead, if set, has consumed the
// other side's HTTP message.
type handoverConn struct {
	net.Conn
	r        io.Reader
	readHead func() error

	mu      sync.Mutex // guards pending
	pending []byte

	headOnce sync.Once
	headErr  error
}

func (c *handoverConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	if pending == nil {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(append(pending, p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *handoverConn) Read(p []byte) (int, error) {
	c.headOnce.Do(func() {
		if c.readHead != nil {
			c.headErr = c.readHead()
		}
	})
	if c.headErr != nil {
		return 0, c.headErr
	}
	return c.r.Read(p)
}

func TestOctetsTheClientSendsWithItsRequestAreKept(t *testing.T) {
	srv, _ := newTestServer(t, newEchoServer(t), false)
	raw, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(raw)
	conn := &handoverConn{
		Conn:    raw,
		r:       br,
		pending: []byte("GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"),
		readHead: func() error {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				return fmt.Errorf("server answered %s", resp.Status)
			}
			return nil
		},
	}
	// The client session writes its preface at once, so request and
	// preface leave in one Write, before any 101.
	session, err := mux.Client(conn, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = session.Close() })
	assertEcho(t, session)
}

func TestOctetsTheServerSendsWithIts101AreKept(t *testing.T) {
	echo := newEchoServer(t)
	ln := listen(t)
	serveConns(t, ln, func(raw net.Conn) {
		br := bufio.NewReader(raw)
		req, err := http.ReadRequest(br)
		if err != nil || !httpstream.IsUpgradeRequest(req) {
			_, _ = io.WriteString(raw, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		conn := &handoverConn{
			Conn:    raw,
			r:       br,
			pending: []byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"),
		}
		// The server session writes its preface and settings at once, so
		// they leave in the same Write as the 101.
		session, err := mux.Server(conn, echo.acceptStream, nil)
		if err != nil {
			return
		}
		echo.track(session)
	})
	rt := directRoundTripper(t, nil)
	assertEcho(t, upgradeTo(t, rt, "http://"+ln.Addr().String()+"/exec"))
}
