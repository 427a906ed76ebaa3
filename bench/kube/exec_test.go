package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// Remote command protocols the SPDY executor speaks (v5 is WebSocket only;
// v1 is the unversioned original).
var execProtocols = []string{"v2.channel.k8s.io", "v3.channel.k8s.io", "v4.channel.k8s.io"}

const execTimeout = 30 * time.Second

// TestExec runs client-go's SPDY executor (what kubectl exec runs when it
// does not use WebSockets) against the kubelet's ServeExec, on each
// protocol version, and its cancellation and idle timeout on v4.
func TestExec(t *testing.T) {
	forEachStack(t, func(t *testing.T, st *stack) {
		for _, proto := range execProtocols {
			version := proto[:2]
			t.Run(version, func(t *testing.T) {
				runCase(t, st, "stdio", func(t *testing.T) { execStdio(t, st, proto) })
				runCase(t, st, "exit-0", func(t *testing.T) { execExit(t, st, proto, 0) })
				runCase(t, st, "exit-3", func(t *testing.T) { execExit(t, st, proto, 3) })
				runCase(t, st, "tty-resize", func(t *testing.T) {
					if version == "v2" {
						t.Skip("v2 has no resize stream")
					}
					execTTY(t, st, proto)
				})
			})
		}
		runCase(t, st, "cancel", func(t *testing.T) { execCancel(t, st) })
		runCase(t, st, "idle-timeout", func(t *testing.T) { execIdle(t, st) })
	})
}

// execURL is the kubelet's exec URL for command, with these streams.
func execURL(st *stack, command []string, streams ...string) *url.URL {
	q := url.Values{"command": command}
	for _, s := range streams {
		q.Set(s, "1")
	}
	return st.url("/exec/pod-"+st.name+"/uid/ctr", q)
}

// stream runs the executor's StreamWithContext with a bound.
func stream(t *testing.T, st *stack, u *url.URL, proto string, opts remotecommand.StreamOptions) error {
	t.Helper()
	e, err := st.executor(u, proto)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.StreamWithContext(ctx, opts) }()
	select {
	case err := <-done:
		return err
	case <-time.After(execTimeout):
		cancel()
		t.Fatalf("StreamWithContext did not return within %v", execTimeout)
		return nil
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	on  func(string) // called with the whole content after each write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.on != nil {
		b.on(b.buf.String())
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func execStdio(t *testing.T, st *stack, proto string) {
	const in = "hello from stdin"
	var stdout, stderr syncBuffer
	err := stream(t, st, execURL(st, []string{"stdio"}, "input", "output", "error"), proto, remotecommand.StreamOptions{
		Stdin: strings.NewReader(in), Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		t.Errorf("StreamWithContext = %v, want nil", err)
	}
	if got := stdout.String(); got != in {
		t.Errorf("stdout = %q, want %q", got, in)
	}
	if got, want := stderr.String(), "stdin had 16 bytes\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func execExit(t *testing.T, st *stack, proto string, code int) {
	var stdout, stderr syncBuffer
	err := stream(t, st, execURL(st, []string{"exit", strconv.Itoa(code)}, "output", "error"), proto, remotecommand.StreamOptions{
		Stdout: &stdout, Stderr: &stderr,
	})
	if got, want := stdout.String(), "exiting "+strconv.Itoa(code)+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := stderr.String(), "oops\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	switch {
	case code == 0:
		if err != nil {
			t.Errorf("StreamWithContext = %v, want nil", err)
		}
	case strings.HasPrefix(proto, "v4"):
		// v4 carries the exit code: client-go returns a CodeExitError.
		var ce exec.CodeExitError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Errorf("StreamWithContext = %#v, want a CodeExitError with code %d", err, code)
		}
		var ee exec.ExitError
		if !errors.As(err, &ee) || !ee.Exited() || ee.ExitStatus() != code {
			t.Errorf("StreamWithContext = %v, want an exec.ExitError with status %d", err, code)
		}
	default:
		// v2 and v3 carry only the kubelet's message.
		if err == nil || !strings.Contains(err.Error(), "command terminated with non-zero exit code: exit status "+strconv.Itoa(code)) {
			t.Errorf("StreamWithContext = %v, want the kubelet's non-zero exit message", err)
		}
	}
}

// sizeQueue hands out one terminal size, then none until done.
type sizeQueue struct {
	once sync.Once
	done chan struct{}
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	var first bool
	q.once.Do(func() { first = true })
	if first {
		return &remotecommand.TerminalSize{Width: 100, Height: 40}
	}
	<-q.done
	return nil
}

func execTTY(t *testing.T, st *stack, proto string) {
	q := &sizeQueue{done: make(chan struct{})}
	defer close(q.done)
	var stdout syncBuffer
	err := stream(t, st, execURL(st, []string{"tty"}, "input", "output", "tty"), proto, remotecommand.StreamOptions{
		Stdin: strings.NewReader("typed\n"), Stdout: &stdout, Tty: true, TerminalSizeQueue: q,
	})
	if err != nil {
		t.Errorf("StreamWithContext = %v, want nil", err)
	}
	if got, want := stdout.String(), "resize 100x40\ntyped\n"; got != want {
		t.Errorf("stdout = %q, want %q (the resize event must reach the kubelet's runtime)", got, want)
	}
}

// execCancel: canceling StreamWithContext's context ends the exec at once,
// and the kubelet's handler ends too (runCase checks it).
func execCancel(t *testing.T, st *stack) {
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	ready := make(chan struct{})
	var once sync.Once
	stdout := &syncBuffer{on: func(s string) {
		if strings.Contains(s, "ready\n") {
			once.Do(func() { close(ready) })
		}
	}}
	e, err := st.executor(execURL(st, []string{"wait"}, "input", "output"), "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: stdout}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("StreamWithContext = %v before the command was ready", err)
	case <-time.After(execTimeout):
		t.Fatalf("the command was not ready within %v", execTimeout)
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("StreamWithContext = %v, want context.Canceled", err)
		}
		t.Logf("returned %v after cancel", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("StreamWithContext did not return within 5s of cancel")
	}
}

// execIdle: with the kubelet's stream idle timeout at 1s and a command
// that waits for stdin that never comes, the kubelet closes the
// connection and StreamWithContext returns.
func execIdle(t *testing.T, st *stack) {
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	u := execURL(st, []string{"wait"}, "input", "output")
	q := u.Query()
	q.Set("idleTimeout", "1s")
	u.RawQuery = q.Encode()
	var stdout syncBuffer
	start := time.Now()
	e, err := st.executor(u, "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- e.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout})
	}()
	select {
	case err := <-done:
		t.Logf("StreamWithContext returned %v after %v; stdout %q", err, time.Since(start).Round(10*time.Millisecond), stdout.String())
		// As over SPDY: the kubelet closed on purpose, so the streams end
		// with io.EOF and the exec returns no error.
		if err != nil {
			t.Errorf("StreamWithContext = %v, want nil, as Kubernetes' own stack returns", err)
		}
		if stdout.String() != "ready\n" {
			t.Errorf("stdout = %q, want %q", stdout.String(), "ready\n")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("StreamWithContext still running 15s into a 1s idle timeout")
	}
}
