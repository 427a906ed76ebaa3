package kube

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/portforward"
)

// Bounds of the port-forward cases.
const (
	readyTimeout = 10 * time.Second // ForwardPorts listening
	ioTimeout    = 30 * time.Second // one connection's exchange
	stopTimeout  = 10 * time.Second // ForwardPorts returning after stop, a connection ending
	bulkTimeout  = 2 * time.Minute  // the 64 MiB transfer
)

// TestPortForward runs client-go's PortForwarder (what kubectl
// port-forward runs) against the kubelet's ServePortForward; the kubelet's
// runtime forwards to a TCP server of the test.
func TestPortForward(t *testing.T) {
	forEachStack(t, func(t *testing.T, st *stack) {
		runCase(t, st, "echo", func(t *testing.T) { pfEcho(t, st) })
		runCase(t, st, "concurrent-8", func(t *testing.T) { pfConcurrent(t, st, 8, 4<<20) })
		runCase(t, st, "64MiB", func(t *testing.T) { pfBulk(t, st, 64<<20) })
		runCase(t, st, "half-close", func(t *testing.T) { pfHalfClose(t, st) })
		runCase(t, st, "concurrent-500", func(t *testing.T) { pfConcurrent(t, st, 500, 64) })
		runCase(t, st, "target-refuses", func(t *testing.T) { pfRefused(t, st) })
		runCase(t, st, "stop-mid-connection", func(t *testing.T) { pfStop(t, st) })
		runCase(t, st, "idle-timeout", func(t *testing.T) { pfIdle(t, st) })
	})
}

// forward is a running client-go PortForwarder.
type forward struct {
	pod, uid string
	local    uint16 // the local port it listens on
	stop     func() // closes stopChan
	finished chan struct{}
	err      error // ForwardPorts' result, once finished is closed
}

// startForward starts a PortForwarder to the kubelet's port-forward of
// remotePort and waits until it listens. Cleanup stops it and waits for
// ForwardPorts to return.
func startForward(t *testing.T, st *stack, remotePort int, query url.Values) *forward {
	t.Helper()
	f := &forward{pod: "pod-" + st.name, uid: "uid-" + strconv.Itoa(remotePort), finished: make(chan struct{})}
	d, err := st.dialer(st.url("/portforward/"+f.pod+"/"+f.uid, query))
	if err != nil {
		t.Fatal(err)
	}
	stopChan, readyChan := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", remotePort)},
		stopChan, readyChan, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	f.stop = func() { once.Do(func() { close(stopChan) }) }
	go func() {
		f.err = pf.ForwardPorts()
		close(f.finished)
	}()
	t.Cleanup(func() {
		f.stop()
		if !waitFor(f.finished, stopTimeout) {
			t.Errorf("ForwardPorts did not return within %v of closing stopChan", stopTimeout)
		}
	})
	select {
	case <-readyChan:
	case <-f.finished:
		t.Fatalf("ForwardPorts: %v", f.err)
	case <-time.After(readyTimeout):
		t.Fatalf("the forwarder was not ready within %v", readyTimeout)
	}
	ports, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	f.local = ports[0].Local
	return f
}

// dial connects to the forwarder's local port; the connection has a
// deadline of timeout and is closed by cleanup.
func (f *forward) dial(t testing.TB, timeout time.Duration) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(f.local))), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(timeout))
	return c.(*net.TCPConn)
}

func waitFor(ch <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// target is the TCP server the kubelet's runtime forwards to (the pod's
// port). Cleanup closes it and waits for its handlers.
type target struct {
	port  int
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	ended chan struct{} // one element per handler that returned
}

func startTarget(t *testing.T, handle func(c *net.TCPConn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{port: ln.Addr().(*net.TCPAddr).Port, ln: ln, conns: map[net.Conn]bool{}, ended: make(chan struct{}, 1024)}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.mu.Lock()
			tg.conns[c] = true
			tg.mu.Unlock()
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				_ = c.SetDeadline(time.Now().Add(bulkTimeout))
				handle(c.(*net.TCPConn))
				c.Close()
				tg.mu.Lock()
				delete(tg.conns, c)
				tg.mu.Unlock()
				select {
				case tg.ended <- struct{}{}:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tg.mu.Lock()
		for c := range tg.conns {
			c.Close()
		}
		tg.mu.Unlock()
		done := make(chan struct{})
		go func() { tg.wg.Wait(); close(done) }()
		if !waitFor(done, stopTimeout) {
			t.Errorf("target handlers still running %v after cleanup", stopTimeout)
		}
	})
	return tg
}

// echo copies everything back, then closes when the peer has closed its
// write side.
func echo(c *net.TCPConn) {
	buf := make([]byte, 64<<10)
	_, _ = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, buf)
}

func pfEcho(t *testing.T, st *stack) {
	tg := startTarget(t, echo)
	f := startForward(t, st, tg.port, nil)
	c := f.dial(t, ioTimeout)
	for _, msg := range []string{"hello, kubelet", "second message"} {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("reading the echo of %q: %v (client-go reported: %s)", msg, err, summarize(handledFor(f.local)))
		}
		if string(got) != msg {
			t.Fatalf("echo = %q, want %q", got, msg)
		}
	}
	// Closing the write side ends the forward: the echo server sees EOF
	// and closes, and that EOF comes back.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after the half-close: read %q, %v; want EOF", rest, err)
	}
}

// pattern returns n deterministic bytes for connection i.
func pattern(i, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(i), 0x6b756265))
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

// pfConcurrent opens n forwarded connections at once, each sending size
// bytes and reading the echo, and closes them only once all have had
// their echo (or failed), so all n are open at the same time: 2n streams
// on one connection.
func pfConcurrent(t *testing.T, st *stack, n, size int) {
	tg := startTarget(t, echo)
	f := startForward(t, st, tg.port, nil)
	errs := make(chan error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pfExchange(f, i, size, release)
		}()
	}
	var failed []string
	for range n {
		if err := <-errs; err != nil {
			failed = append(failed, err.Error())
		}
	}
	close(release)
	wg.Wait()
	if nf := len(failed); nf > 0 {
		if nf > 3 {
			failed = append(failed[:3], "...")
		}
		t.Errorf("%d of %d connections failed: %s\nclient-go reported: %s", nf, n, strings.Join(failed, "; "), summarize(handledFor(f.local)))
	}
}

// pfExchange does one connection of pfConcurrent: it sends, reads the
// echo, reports, and keeps the connection open until release.
func pfExchange(f *forward, i, size int, release <-chan struct{}) (err error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(f.local))), ioTimeout)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.Close()
			return
		}
		go func() { <-release; c.Close() }()
	}()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	want := pattern(i, size)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	got := make([]byte, size)
	n, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		return fmt.Errorf("conn %d: write: %v", i, err)
	}
	if rerr != nil {
		return fmt.Errorf("conn %d: read %d of %d bytes: %v", i, n, size, rerr)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("conn %d: the echo differs from what was sent", i)
	}
	return nil
}

// streamID matches the stream numbers in error messages, which
// summarize blanks out to group the same error on different streams.
var streamID = regexp.MustCompile(`stream \d+`)

// summarize groups the errors client-go reported, with counts.
func summarize(hs []handledError) string {
	counts := map[string]int{}
	var order []string
	for _, h := range hs {
		k := h.msg + ": " + streamID.ReplaceAllString(fmt.Sprint(h.err), "stream N")
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	if len(order) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for _, k := range order {
		fmt.Fprintf(&b, "\n\t%dx %s", counts[k], k)
	}
	return b.String()
}

// pfBulk sends size bytes through one forwarded connection while reading
// the echo, and records the rate each way.
func pfBulk(t *testing.T, st *stack, size int) {
	tg := startTarget(t, echo)
	f := startForward(t, st, tg.port, nil)
	c := f.dial(t, bulkTimeout)
	const chunk = 256 << 10
	data := pattern(1, chunk)
	sent := sha256.New()
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < size; off += chunk {
			data[0] = byte(off / chunk) // every chunk differs
			sent.Write(data)
			if _, err := c.Write(data); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.CloseWrite()
	}()
	recv := sha256.New()
	n, err := io.Copy(recv, c)
	elapsed := time.Since(start)
	if werr := <-werr; werr != nil {
		t.Fatalf("writing: %v", werr)
	}
	if err != nil || n != int64(size) {
		t.Fatalf("read %d of %d bytes: %v (client-go reported: %s)", n, size, err, summarize(handledFor(f.local)))
	}
	if !bytes.Equal(sent.Sum(nil), recv.Sum(nil)) {
		t.Fatal("the echo differs from what was sent")
	}
	mbps := float64(size) / 1e6 / elapsed.Seconds()
	throughput.Lock()
	throughput.mbps[st.name] = mbps
	throughput.Unlock()
	t.Logf("%s: %d MiB each way in %v: %.1f MB/s each way", st.name, size>>20, elapsed.Round(time.Millisecond), mbps)
}

// pfHalfClose: the client closes its write side; the target sees EOF and
// still answers, and the answer reaches the client, then EOF.
func pfHalfClose(t *testing.T, st *stack) {
	sawEOF := make(chan string, 1)
	tg := startTarget(t, func(c *net.TCPConn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		sawEOF <- string(got)
		fmt.Fprintf(c, "got %d bytes: %s", len(got), got)
	})
	f := startForward(t, st, tg.port, nil)
	c := f.dial(t, ioTimeout)
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-sawEOF:
		if got != "ping" {
			t.Fatalf("the target read %q before EOF, want %q", got, "ping")
		}
	case <-time.After(ioTimeout):
		t.Fatalf("the target did not see EOF within %v (client-go reported: %s)", ioTimeout, summarize(handledFor(f.local)))
	}
	answer, err := io.ReadAll(c)
	if want := "got 4 bytes: ping"; err != nil || string(answer) != want {
		t.Fatalf("answer after the half-close: %q, %v; want %q then EOF (client-go reported: %s)", answer, err, want, summarize(handledFor(f.local)))
	}
}

// pfRefused: nothing listens on the target port; the kubelet's error
// message ("error forwarding port ...") reaches client-go over the error
// stream, which reports it, and client-go ends the port-forward.
func pfRefused(t *testing.T, st *stack) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	f := startForward(t, st, port, nil)
	c := f.dial(t, ioTimeout)
	if got, err := io.ReadAll(c); err != nil || len(got) > 0 {
		t.Errorf("local connection: read %q, %v; want EOF", got, err)
	}
	if !waitFor(f.finished, stopTimeout) {
		t.Fatalf("ForwardPorts still running %v after the failed forward", stopTimeout)
	}
	if !errors.Is(f.err, portforward.ErrLostConnectionToPod) {
		t.Errorf("ForwardPorts = %v, want %v", f.err, portforward.ErrLostConnectionToPod)
	}
	want := fmt.Sprintf("error forwarding port %d to pod %s, uid %s: dial tcp 127.0.0.1:%d: connect: connection refused", port, f.pod, f.uid, port)
	hs := handledFor(f.local)
	for _, h := range hs {
		if h.msg == "An error occurred forwarding" && h.err != nil && h.err.Error() == want {
			return
		}
	}
	t.Errorf("client-go did not report the kubelet's message %q; it reported: %s", want, summarize(hs))
}

// pfStop: stopping the forwarder (closing stopChan) while a forwarded
// connection is open ends everything: ForwardPorts returns nil, the local
// connection and the target's connection end.
func pfStop(t *testing.T, st *stack) {
	tg := startTarget(t, echo)
	f := startForward(t, st, tg.port, nil)
	c := f.dial(t, ioTimeout)
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo before stopping: %v (client-go reported: %s)", err, summarize(handledFor(f.local)))
	}
	f.stop()
	if !waitFor(f.finished, stopTimeout) {
		t.Fatalf("ForwardPorts did not return within %v of closing stopChan", stopTimeout)
	}
	if f.err != nil {
		t.Errorf("ForwardPorts = %v, want nil", f.err)
	}
	_ = c.SetDeadline(time.Now().Add(stopTimeout))
	if rest, err := io.ReadAll(c); err != nil && !isConnReset(err) {
		t.Errorf("the local connection did not end: read %q, %v", rest, err)
	}
	if !waitFor(tg.ended, stopTimeout) {
		t.Errorf("the target's connection did not end within %v", stopTimeout)
	}
}

func isConnReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// pfIdle: with the kubelet's stream idle timeout at 1s and no forwarded
// connection, the kubelet closes the connection and client-go's
// ForwardPorts returns ErrLostConnectionToPod.
func pfIdle(t *testing.T, st *stack) {
	tg := startTarget(t, echo)
	start := time.Now()
	f := startForward(t, st, tg.port, url.Values{"idleTimeout": {"1s"}})
	if !waitFor(f.finished, 15*time.Second) {
		t.Fatal("the connection was still open 15s into a 1s idle timeout")
	}
	if !errors.Is(f.err, portforward.ErrLostConnectionToPod) {
		t.Errorf("ForwardPorts = %v, want %v", f.err, portforward.ErrLostConnectionToPod)
	}
	t.Logf("closed after %v", time.Since(start).Round(10*time.Millisecond))
}
