package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

// floodServer is a hostile server or proxy: it reads one HTTP request (an
// upgrade request or a CONNECT), writes head, then writes what next
// appends, chunk after chunk, until the client hangs up.
func floodServer(t *testing.T, head string, next func([]byte) []byte) string {
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		if readsARequest(c, bufio.NewReader(c)) != nil {
			return
		}
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		buf := make([]byte, 0, 64<<10)
		for {
			if _, err := c.Write(next(buf[:0])); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// The floods: what follows the status line.
var (
	// longLines repeats one header line of a kilobyte.
	longLines = func(buf []byte) []byte {
		line := "X-Flood: " + strings.Repeat("a", 1000) + "\r\n"
		for len(buf)+len(line) <= cap(buf) {
			buf = append(buf, line...)
		}
		return buf
	}
	// endlessLine never ends the line it is in.
	endlessLine = func(buf []byte) []byte {
		for len(buf) < cap(buf) {
			buf = append(buf, 'a')
		}
		return buf
	}
)

// tinyLines returns a flood of the shortest header lines with distinct
// names, each of which costs a map entry: far more memory than bytes.
func tinyLines() func([]byte) []byte {
	n := 0
	return func(buf []byte) []byte {
		for len(buf)+16 <= cap(buf) {
			buf = strconv.AppendInt(append(buf, 'X'), int64(n), 36)
			buf = append(buf, ":\r\n"...)
			n++
		}
		return buf
	}
}

// heapWatch measures the live heap, as the last garbage collection marked
// it, over a baseline, and keeps the peak (as mux's attack tests do).
type heapWatch struct {
	base uint64
	peak int64
}

func startHeapWatch() *heapWatch {
	runtime.GC()
	runtime.GC() // the second one empties the sync.Pools' victim caches
	return &heapWatch{base: liveHeap()}
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func (h *heapWatch) sample() {
	runtime.GC()
	h.peak = max(h.peak, int64(liveHeap())-int64(h.base))
}

// sampledConn is the client's connection, seen from inside: every `every`
// bytes it reads, it measures the live heap, in the reading goroutine
// itself, so each sample catches everything the header parser holds at
// that point.
type sampledConn struct {
	net.Conn
	heap  *heapWatch
	every int64
	read  int64 // owned by the one goroutine that reads
}

func (c *sampledConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if every := c.every; (c.read+int64(n))/every != c.read/every {
		c.heap.sample()
	}
	c.read += int64(n)
	return n, err
}

func TestHeaderFloodsFailWithinTheLimit(t *testing.T) {
	const limit = DefaultMaxResponseHeaderBytes
	// The documented bound, about one and a half times the limit (a line's
	// buffer grows ahead of what it holds, a map ahead of its entries),
	// plus slack for what is not the flood: the bufio.Reader, the request,
	// the test's own bookkeeping.
	const bound = limit*3/2 + 256<<10
	for _, tt := range []struct {
		name  string
		proxy bool // the flood comes from a CONNECT proxy, not the server
		head  string
		next  func([]byte) []byte
		every int64 // bytes read between heap samples
	}{
		{"endless header lines from the server", false, "HTTP/1.1 101 Switching Protocols\r\n", longLines, 64 << 10},
		{"endless tiny header lines from the server", false, "HTTP/1.1 101 Switching Protocols\r\n", tinyLines(), 4 << 10},
		{"an endless status line from the server", false, "HTTP/1.1 101 ", endlessLine, 64 << 10},
		{"endless header lines from a proxy", true, "HTTP/1.1 200 Connection established\r\n", longLines, 64 << 10},
		{"endless tiny header lines from a proxy", true, "HTTP/1.1 200 Connection established\r\n", tinyLines(), 4 << 10},
		{"an endless status line from a proxy", true, "HTTP/1.1 200 ", endlessLine, 64 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := floodServer(t, tt.head, tt.next)
			serverURL := "http://" + addr + "/exec"
			var proxy func(*http.Request) (*url.URL, error)
			if tt.proxy {
				proxy = proxyAt("http", addr)
				serverURL = "http://server.invalid/exec"
			}
			var conn *sampledConn
			heap := startHeapWatch()
			transport := &http.Transport{
				Proxy: proxy,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					conn = &sampledConn{Conn: c, heap: heap, every: tt.every}
					return conn, nil
				},
			}
			rt := mustRoundTripper(t, RoundTripperConfig{UpgradeTransport: transport})
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, nil)
			start := time.Now()
			err := within(t, "RoundTrip to give up on the flood", roundTripInBackground(rt, req))
			took := time.Since(start)
			heap.sample()

			if !errors.Is(err, ErrResponseHeaderTooLarge) {
				t.Fatalf("error %v does not wrap ErrResponseHeaderTooLarge", err)
			}
			if httpstream.IsUpgradeFailure(err) {
				t.Errorf("error %q claims the server refused the upgrade", err)
			}
			t.Logf("error: %v", err)
			t.Logf("read %d bytes in %v; live heap peaked at %d KiB over the baseline (limit %d KiB, bound %d KiB)",
				conn.read, took, heap.peak>>10, limit>>10, bound>>10)
			if conn.read > limit {
				t.Errorf("the client read %d bytes of headers, over the limit of %d", conn.read, limit)
			}
			if heap.peak > bound {
				t.Errorf("live heap peaked at %d KiB over the baseline, over the bound of %d KiB", heap.peak>>10, bound>>10)
			}
		})
	}
}

func TestHeadersNearTheLimitStillUpgradeAndLoseNoOctets(t *testing.T) {
	// A 101 with headers just under a small limit, the session's first
	// frames in the same write; then more data through the session than
	// the limit, so the limit is seen to end with the headers.
	const limit = 16 << 10
	var extra strings.Builder
	for i := range 20 {
		fmt.Fprintf(&extra, "X-Padding-%d: %s\r\n", i, strings.Repeat("p", 300))
	}
	echo := newEchoServer(t)
	ln := listen(t)
	serveConns(t, ln, func(raw net.Conn) {
		br := bufio.NewReader(raw)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		conn := &handoverConn{
			Conn:    raw,
			r:       br,
			pending: []byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n" + extra.String() + "\r\n"),
		}
		session, err := mux.Server(conn, echo.acceptStream, nil)
		if err != nil {
			return
		}
		echo.track(session)
	})
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, MaxResponseHeaderBytes: limit})
	conn := upgradeTo(t, rt, "http://"+ln.Addr().String()+"/exec")
	done := make(chan error, 1)
	go func() { done <- echoOnce(conn, strings.Repeat("0123456789abcdef", 4*limit/16)) }()
	if err := within(t, "an echo larger than the header limit", done); err != nil {
		t.Fatal(err)
	}
}

func TestARefusalsBodyDoesNotCountTowardTheHeaderLimit(t *testing.T) {
	// The body, read ahead with the headers, is all newlines: were its
	// lines counted as header lines, it would take the count past the
	// limit.
	const limit = 8 << 10
	body := strings.Repeat("\n", 4000) + "no such pod"
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		if readsARequest(c, bufio.NewReader(c)) != nil {
			return
		}
		_, _ = fmt.Fprintf(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, MaxResponseHeaderBytes: limit})
	_, err := dialUpgrade(rt, "http://"+ln.Addr().String()+"/exec")
	var refusal *ResponseError
	if !errors.As(err, &refusal) {
		t.Fatalf("error %v is not the refusal", err)
	}
	if refusal.StatusCode != http.StatusNotFound || refusal.Message != "no such pod" {
		t.Errorf("refusal %d %q, want 404 and the body's text", refusal.StatusCode, refusal.Message)
	}
}

func TestManyHeaderLinesCostMoreThanTheirBytes(t *testing.T) {
	// 100 lines of 8 bytes: 800 bytes, but 100 map entries.
	const limit = 8 << 10
	var lines strings.Builder
	for i := range 100 {
		fmt.Fprintf(&lines, "X-%03d:\r\n", i)
	}
	ln := listen(t)
	serveConns(t, ln, func(c net.Conn) {
		if readsARequest(c, bufio.NewReader(c)) != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n"+lines.String()+"Content-Length: 0\r\n\r\n")
	})
	rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy, MaxResponseHeaderBytes: limit})
	_, err := dialUpgrade(rt, "http://"+ln.Addr().String()+"/exec")
	if !errors.Is(err, ErrResponseHeaderTooLarge) {
		t.Errorf("error %v does not wrap ErrResponseHeaderTooLarge", err)
	}
}

func TestMaxResponseHeaderBytes(t *testing.T) {
	t.Run("a negative limit is an error", func(t *testing.T) {
		if _, err := NewRoundTripperWithConfig(RoundTripperConfig{MaxResponseHeaderBytes: -1}); err == nil {
			t.Error("NewRoundTripperWithConfig accepted a negative MaxResponseHeaderBytes")
		}
	})
	for _, tt := range []struct {
		name string
		cfg  RoundTripperConfig
		want int64
	}{
		{"zero takes the default", RoundTripperConfig{}, DefaultMaxResponseHeaderBytes},
		{"the config's own", RoundTripperConfig{MaxResponseHeaderBytes: 4096}, 4096},
		{"an *http.Transport's", RoundTripperConfig{UpgradeTransport: &http.Transport{MaxResponseHeaderBytes: 2048}}, 2048},
		{"an *http.Transport without one: the default", RoundTripperConfig{UpgradeTransport: &http.Transport{}}, DefaultMaxResponseHeaderBytes},
		{"the config's wins over the transport's", RoundTripperConfig{UpgradeTransport: &http.Transport{MaxResponseHeaderBytes: 2048}, MaxResponseHeaderBytes: 4096}, 4096},
		{"a wrapped transport's", RoundTripperConfig{UpgradeTransport: wrapper{&http.Transport{MaxResponseHeaderBytes: 2048}}}, 2048},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustRoundTripper(t, tt.cfg).maxHeaderBytes; got != tt.want {
				t.Errorf("limit = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("an *http.Transport's limit applies", func(t *testing.T) {
		addr := floodServer(t, "HTTP/1.1 101 Switching Protocols\r\n", longLines)
		rt := mustRoundTripper(t, RoundTripperConfig{UpgradeTransport: &http.Transport{MaxResponseHeaderBytes: 4096}})
		_, err := dialUpgrade(rt, "http://"+addr+"/exec")
		if !errors.Is(err, ErrResponseHeaderTooLarge) {
			t.Fatalf("error %v does not wrap ErrResponseHeaderTooLarge", err)
		}
		if !strings.Contains(err.Error(), "4096") {
			t.Errorf("error %q does not name the limit", err)
		}
	})
}

func TestIsFinalStatus(t *testing.T) {
	for _, tt := range []struct {
		line     string
		complete bool
		want     bool
	}{
		{"HTTP/1.1 101 Switching Protocols", true, true},
		{"HTTP/1.1 101\r", true, true},
		{"HTTP/1.1 200 OK\r", true, true},
		{"HTTP/1.1    404 Not Found", true, true},
		{"HTTP/1.1 100 Continue\r", true, false},
		{"HTTP/1.1 103 Early Hints", true, false},
		{"HTTP/1.1 +99 Odd", true, false},
		{"HTTP/1.1 2000 Too long", true, false},
		{"garbage", true, false},
		{"", true, false},
		{"HTTP/1.1 200", false, false}, // cut: the code may go on
		{"HTTP/1.1 200 O", false, true},
	} {
		if got := isFinalStatus([]byte(tt.line), tt.complete); got != tt.want {
			t.Errorf("isFinalStatus(%q, %v) = %v, want %v", tt.line, tt.complete, got, tt.want)
		}
	}
}
