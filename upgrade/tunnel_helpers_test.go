package upgrade

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// allTunnels is the transport matrix of the tunnel tests.
var allTunnels = []Tunnel{TunnelDirect, TunnelWebSocket, TunnelAuto}

// upgradeRecorder wraps a handler and records the Upgrade header of every
// request, to tell which handshakes a client made.
type upgradeRecorder struct {
	next http.Handler
	mu   sync.Mutex // guards seen
	seen []string
}

func (u *upgradeRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.seen = append(u.seen, strings.ToLower(r.Header.Get("Upgrade")))
	u.mu.Unlock()
	u.next.ServeHTTP(w, r)
}

// upgrades returns the Upgrade headers seen so far, lowercased.
func (u *upgradeRecorder) upgrades() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// olderServer behaves as a server of this library from before the
// WebSocket tunnel: a WebSocket upgrade gets the 400 its UpgradeResponse
// gave, anything else goes to next.
func olderServer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !headerHasToken(r.Header, "Upgrade", Protocol) {
			http.Error(w, "unable to upgrade: the Upgrade header must list \"httpstream/1\", it has [\"websocket\"]: this server speaks only httpstream/1", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// webSocketOnlyProxy starts a reverse proxy to target that forwards only
// WebSocket upgrades, as Apache httpd's mod_proxy with upgrade=websocket
// and many load balancers do: any other Upgrade is refused with 400.
func webSocketOnlyProxy(t *testing.T, target string) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up := r.Header.Get("Upgrade"); up != "" && !strings.EqualFold(up, "websocket") {
			http.Error(w, "this proxy forwards only WebSocket upgrades", http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// idleCuttingRelay relays TCP connections to target and cuts each one
// that carries nothing in either direction for idle, as load balancers
// with an idle timeout do. Each cut is signalled on the channel.
func idleCuttingRelay(t *testing.T, target string, idle time.Duration) (addr string, cuts <-chan struct{}) {
	cut := make(chan struct{}, 16)
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		extend := func() {
			deadline := time.Now().Add(idle)
			_ = c.SetReadDeadline(deadline)
			_ = up.SetReadDeadline(deadline)
		}
		extend()
		var wg sync.WaitGroup
		pump := func(dst, src net.Conn) {
			defer wg.Done()
			// Whichever side ends first ends both.
			defer func() { _ = c.Close(); _ = up.Close() }()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					extend()
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						select {
						case cut <- struct{}{}:
						default:
						}
					}
					return
				}
			}
		}
		// Owned by this handler, which waits for both; each ends when its
		// side is cut or closed.
		wg.Add(2)
		go pump(up, c)
		go pump(c, up)
		wg.Wait()
	})
	return ln.Addr().String(), cut
}

// rawUpgradeServer serves each connection with answer, which gets the
// request and the connection and may answer anything.
func rawUpgradeServer(t *testing.T, answer func(c net.Conn, br *bufio.Reader, req *http.Request)) string {
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		answer(c, br, req)
		_, _ = io.Copy(io.Discard, br)
	})
	return ln.Addr().String()
}
