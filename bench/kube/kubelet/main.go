// Command kubelet is the kubelet side of the harness: Kubernetes' own
// streaming handlers, portforward.ServePortForward and
// remotecommand.ServeExec from k8s.io/cri-streaming, called the way the
// kubelet's streaming server (k8s.io/cri-streaming/pkg/streaming, server.go)
// calls them, in front of a fake container runtime. The harness builds it
// twice: as it is (over Kubernetes' SPDY stack) and with the handlers'
// imports pointed at this library (see ../rewrite.go).
//
// It listens on -addr and prints "listening on ADDR" once ready. Routes:
//
//	POST /portforward/{pod}/{uid}            ServePortForward; the runtime dials 127.0.0.1:{port}
//	POST /exec/{pod}/{uid}/{container}       ServeExec; ?command=...&input=1&output=1&error=1&tty=1
//	GET  /debug/state[?wait=DURATION]        active handlers, runtime calls and goroutines, as JSON;
//	                                         with wait: once no handler is active, or after DURATION
//	GET  /debug/goroutines?debug=1           the goroutine profile (net/http/pprof)
//
// Both streaming routes take ?idleTimeout= and ?streamCreationTimeout=
// (Go durations; defaults: the kubelet's 4h and 30s).
//
// The runtime's commands (the first word of the command):
//
//	stdio        copy stdin to stdout, then write "stdin had N bytes\n" to stderr; exit 0
//	exit N       write "exiting N\n" to stdout and "oops\n" to stderr; exit with code N
//	tty          wait (10s at most) for a resize event, write "resize WxH\n", then copy stdin to stdout
//	wait         write "ready\n", then wait until stdin ends or fails
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// Defaults of the kubelet's streaming server (streaming.DefaultConfig).
const (
	defaultIdleTimeout           = 4 * time.Hour
	defaultStreamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	k := newKubelet()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /portforward/{pod}/{uid}", k.servePortForward)
	mux.HandleFunc("POST /exec/{pod}/{uid}/{container}", k.serveExec)
	mux.HandleFunc("GET /debug/state", k.serveState)
	mux.Handle("GET /debug/goroutines", pprof.Handler("goroutine")) // ?debug=1: grouped by stack
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}

// kubelet counts what is running, so the tests can check that every
// handler and runtime call ended.
type kubelet struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every change of the counts
	counts  counts
}

type counts struct {
	PortForwardHandlers int // ServePortForward calls running
	ExecHandlers        int // ServeExec calls running
	PortForwards        int // runtime PortForward calls running
	Execs               int // runtime ExecInContainer calls running
	Goroutines          int
}

func newKubelet() *kubelet { return &kubelet{changed: make(chan struct{})} }

func (k *kubelet) add(field *int, n int) {
	k.mu.Lock()
	*field += n
	close(k.changed)
	k.changed = make(chan struct{})
	k.mu.Unlock()
}

func (k *kubelet) state() (counts, chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.counts
	c.Goroutines = runtime.NumGoroutine()
	return c, k.changed
}

func (c counts) idle() bool {
	return c.PortForwardHandlers == 0 && c.ExecHandlers == 0 && c.PortForwards == 0 && c.Execs == 0
}

func (k *kubelet) serveState(w http.ResponseWriter, req *http.Request) {
	c, changed := k.state()
	if s := req.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		timeout := time.NewTimer(d)
		defer timeout.Stop()
	wait:
		for !c.idle() {
			select {
			case <-changed:
				c, changed = k.state()
			case <-timeout.C:
				break wait
			case <-req.Context().Done():
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c)
}

func durationParam(req *http.Request, name string, def time.Duration) (time.Duration, error) {
	s := req.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	return time.ParseDuration(s)
}

func timeouts(w http.ResponseWriter, req *http.Request) (idle, creation time.Duration, ok bool) {
	idle, err := durationParam(req, "idleTimeout", defaultIdleTimeout)
	if err == nil {
		creation, err = durationParam(req, "streamCreationTimeout", defaultStreamCreationTimeout)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, 0, false
	}
	return idle, creation, true
}

func (k *kubelet) servePortForward(w http.ResponseWriter, req *http.Request) {
	idle, creation, ok := timeouts(w, req)
	if !ok {
		return
	}
	k.add(&k.counts.PortForwardHandlers, 1)
	defer k.add(&k.counts.PortForwardHandlers, -1)
	portforward.ServePortForward(w, req, runtimeService{k}, req.PathValue("pod"), req.PathValue("uid"),
		nil, // V4Options: WebSocket requests only
		idle, creation, portforward.SupportedProtocols)
}

func (k *kubelet) serveExec(w http.ResponseWriter, req *http.Request) {
	idle, creation, ok := timeouts(w, req)
	if !ok {
		return
	}
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := req.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "no command", http.StatusBadRequest)
		return
	}
	k.add(&k.counts.ExecHandlers, 1)
	defer k.add(&k.counts.ExecHandlers, -1)
	remotecommand.ServeExec(w, req, runtimeService{k}, req.PathValue("pod"), req.PathValue("uid"), req.PathValue("container"),
		cmd, opts, idle, creation, remotecommand.SupportedStreamingProtocols)
}

// runtimeService is the fake container runtime: a port-forward dials
// 127.0.0.1:port (the harness's target), an exec runs one of the commands
// listed in the package comment.
type runtimeService struct{ k *kubelet }

// PortForward copies between the stream and the target like socat does
// (the runtimes use it or the same code): both ways at once; the end of the
// stream's data becomes a TCP half-close of the target connection, so the
// target can still answer; it returns when both directions are done.
func (r runtimeService) PortForward(ctx context.Context, pod, uid string, port int32, stream io.ReadWriteCloser) error {
	r.k.add(&r.k.counts.PortForwards, 1)
	defer r.k.add(&r.k.counts.PortForwards, -1)
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	toTarget := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		_ = conn.(*net.TCPConn).CloseWrite()
		toTarget <- err
	}()
	_, fromErr := io.Copy(stream, conn)
	if fromErr != nil {
		// The client is gone or the target failed: end the other direction.
		conn.Close()
	}
	toErr := <-toTarget
	return errors.Join(fromErr, toErr)
}

func (r runtimeService) ExecInContainer(ctx context.Context, pod, uid, container string, cmd []string, in io.Reader, out, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, timeout time.Duration) error {
	r.k.add(&r.k.counts.Execs, 1)
	defer r.k.add(&r.k.counts.Execs, -1)
	if in == nil {
		in = eof{}
	}
	if out == nil {
		out = discard{}
	}
	if stderr == nil {
		stderr = discard{}
	}
	switch cmd[0] {
	case "stdio":
		n, err := io.Copy(out, in)
		if err != nil {
			return fmt.Errorf("copying stdin to stdout: %w", err)
		}
		_, err = fmt.Fprintf(stderr, "stdin had %d bytes\n", n)
		return err
	case "exit":
		code := 1
		if len(cmd) > 1 {
			c, err := strconv.Atoi(cmd[1])
			if err != nil {
				return err
			}
			code = c
		}
		fmt.Fprintf(out, "exiting %d\n", code)
		fmt.Fprintf(stderr, "oops\n")
		if code == 0 {
			return nil
		}
		return utilexec.CodeExitError{Err: fmt.Errorf("exit status %d", code), Code: code}
	case "tty":
		if !tty || resize == nil {
			return errors.New("tty: needs a TTY and a resize stream")
		}
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		select {
		case size, ok := <-resize:
			if !ok {
				return errors.New("tty: the resize stream ended without an event")
			}
			fmt.Fprintf(out, "resize %dx%d\n", size.Width, size.Height)
		case <-timer.C:
			return errors.New("tty: no resize event within 10s")
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := io.Copy(out, in)
		return err
	case "wait":
		if _, err := io.WriteString(out, "ready\n"); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, in)
		return err
	}
	return utilexec.CodeExitError{Err: fmt.Errorf("%s: command not found", cmd[0]), Code: 127}
}

type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

func init() {
	log.SetOutput(os.Stderr)
	log.SetPrefix("kubelet: ")
}
