package kube

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	k8sstream "k8s.io/apimachinery/pkg/util/httpstream"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	k8sspdy "k8s.io/client-go/transport/spdy"
)

// stacks are the two stream stacks every case runs on, in this order.
var stacks []*stack

// stack is one kubelet binary and the matching client side.
type stack struct {
	name    string
	kubelet *Kubelet
}

func (s *stack) url(path string, query url.Values) *url.URL {
	u, err := url.Parse(s.kubelet.Base + path)
	if err != nil {
		panic(err)
	}
	u.RawQuery = query.Encode()
	return u
}

// roundTripperFor is client-go's spdy.RoundTripperFor (the control) or its
// twin over this library (adapter.go), as kubectl builds them.
func (s *stack) roundTripperFor() (http.RoundTripper, k8sspdy.Upgrader, error) {
	cfg := &restclient.Config{Host: s.kubelet.Base}
	if s.name == SPDY {
		return k8sspdy.RoundTripperFor(cfg)
	}
	return RoundTripperFor(cfg)
}

// dialer is what kubectl port-forward hands to portforward.New.
func (s *stack) dialer(u *url.URL) (k8sstream.Dialer, error) {
	rt, up, err := s.roundTripperFor()
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: rt}
	if s.name == SPDY {
		return k8sspdy.NewDialer(up, client, http.MethodPost, u), nil
	}
	return NewDialer(up.(Upgrader), client, http.MethodPost, u), nil
}

// executor is client-go's SPDY executor (remotecommand), limited to one
// protocol version.
func (s *stack) executor(u *url.URL, protocol string) (remotecommand.Executor, error) {
	rt, up, err := s.roundTripperFor()
	if err != nil {
		return nil, err
	}
	return remotecommand.NewSPDYExecutorForProtocols(rt, up, http.MethodPost, u, protocol)
}

// forEachStack runs f as the subtest of each stack.
func forEachStack(t *testing.T, f func(t *testing.T, st *stack)) {
	for _, st := range stacks {
		t.Run(st.name, func(t *testing.T) { f(t, st) })
	}
}

// runCase runs one case as a subtest with the checks every case shares:
// afterwards (after the case's own cleanups) the kubelet must have ended
// every handler and runtime call, and this process must be back to the
// goroutines it had; if the case failed, the kubelet's log of the case is
// shown.
func runCase(t *testing.T, st *stack, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		before := runtime.NumGoroutine()
		mark := st.kubelet.LogMark()
		t.Cleanup(func() {
			if s, err := st.kubelet.WaitIdle(10 * time.Second); err != nil {
				t.Errorf("kubelet state: %v", err)
			} else if !s.Idle() {
				t.Errorf("kubelet still busy 10s after the case: %+v", s)
			}
			checkGoroutines(t, before)
			if t.Failed() {
				if log := st.kubelet.LogSince(mark); log != "" {
					t.Logf("kubelet (%s) log during the case:\n%s", st.name, trimLog(log, 40))
				}
			}
		})
		f(t)
	})
}

// checkGoroutines waits (5s at most) for the goroutine count to come back
// to before, and reports the goroutines left if it does not.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the goroutine count, bounded above
	}
	if n := runtime.NumGoroutine(); n > before {
		// The profile groups goroutines with the same stack, with a count.
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		profile := CompactProfile(buf.String())
		var note string
		if strings.Contains(profile, "portforward.(*PortForwarder).handleConnection.func1") {
			note = "\n(handleConnection.func1 is client-go's error-stream reader: when CreateStream of the data stream fails, " +
				"handleConnection returns without receiving from errorChan, and the reader blocks forever: a client-go leak that " +
				"only a refused stream triggers)"
		}
		t.Errorf("goroutine leak: %d before the case, %d 5s after it ended; all goroutines, grouped by stack:\n%s%s", before, n, trimLog(profile, 40), note)
	}
}

func trimLog(s string, maxLines int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("... (%d more lines)", len(lines)-maxLines))
	}
	return strings.Join(lines, "\n")
}

// Errors client-go reports through runtime.HandleError (it has no other
// way to tell its user that a forwarded connection failed) are captured
// here instead of logged, so the cases can check them.
var handled struct {
	mu   sync.Mutex
	errs []handledError
}

type handledError struct {
	msg string
	err error
	kv  map[string]any
}

func (h handledError) String() string {
	return fmt.Sprintf("%s: %v %v", h.msg, h.err, h.kv)
}

func captureError(_ context.Context, err error, msg string, kv ...any) {
	h := handledError{msg: msg, err: err, kv: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.kv[fmt.Sprint(kv[i])] = kv[i+1]
	}
	handled.mu.Lock()
	handled.errs = append(handled.errs, h)
	handled.mu.Unlock()
}

// handledFor returns the errors client-go reported for a local port.
func handledFor(localPort uint16) []handledError {
	handled.mu.Lock()
	defer handled.mu.Unlock()
	var out []handledError
	for _, h := range handled.errs {
		if fmt.Sprint(h.kv["localPort"]) == fmt.Sprint(localPort) {
			out = append(out, h)
		}
	}
	return out
}

// throughput records the 64 MiB port-forward result of each stack, in
// MB/s each way, for the summary TestMain prints.
var throughput = struct {
	sync.Mutex
	mbps map[string]float64
}{mbps: map[string]float64{}}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{captureError}

	dir, err := os.MkdirTemp("", "bench-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	bins, desc, err := BuildKubelets(wd, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the kubelets:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("built the kubelets in %v; %s\n", time.Since(start).Round(time.Millisecond), desc)
	}
	baseline := map[string]int{}
	for _, name := range []string{HTTPStream, SPDY} {
		k, err := StartKubelet(name, bins[name])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer k.Stop()
		s, err := k.WaitIdle(0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		baseline[name] = s.Goroutines
		stacks = append(stacks, &stack{name: name, kubelet: k})
	}

	code := m.Run()

	for _, st := range stacks {
		if s, err := st.kubelet.WaitIdle(10 * time.Second); err == nil {
			fmt.Printf("kubelet %-10s goroutines: %d at start, %d at the end\n", st.name, baseline[st.name], s.Goroutines)
			if s.Goroutines > baseline[st.name] {
				if g, err := st.kubelet.Goroutines(); err == nil {
					fmt.Println(trimLog(g, 20))
				}
			}
		}
	}
	throughput.Lock()
	var names []string
	for name := range throughput.mbps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("port-forward 64 MiB each way, %-10s %8.1f MB/s\n", name, throughput.mbps[name])
	}
	throughput.Unlock()
	return code
}
