package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Stack names: the stream stack a kubelet binary and its clients use.
const (
	HTTPStream = "httpstream" // this library (the handlers rebuilt with rewritten imports)
	SPDY       = "spdy"       // Kubernetes' SPDY stack (the handlers as they are)
)

// kubeletPkg is the fake kubelet's package, relative to this module.
const kubeletPkg = "./kubelet"

// GoCommand returns the go command that runs the tests, so the kubelets are
// built by the same toolchain.
func GoCommand() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

// BuildKubelets builds the fake kubelet twice into dir: dir/kubelet-spdy
// from the sources as they are, dir/kubelet-httpstream with the modfile of
// WriteModfile (the handlers' imports rewritten). moduleDir is this module's root. It returns the binaries by
// stack name and a description of the rewrite.
func BuildKubelets(moduleDir, dir string) (map[string]string, string, error) {
	goCmd := GoCommand()
	modfile, files, err := WriteModfile(goCmd, moduleDir, kubeletPkg, filepath.Join(dir, "rewritten"))
	if err != nil {
		return nil, "", fmt.Errorf("rewriting the kubelet's imports: %w", err)
	}
	bins := map[string]string{
		SPDY:       filepath.Join(dir, "kubelet-spdy"),
		HTTPStream: filepath.Join(dir, "kubelet-httpstream"),
	}
	builds := map[string][]string{
		SPDY:       {"build", "-o", bins[SPDY], kubeletPkg},
		HTTPStream: {"build", "-modfile", modfile, "-o", bins[HTTPStream], kubeletPkg},
	}
	for _, stack := range []string{SPDY, HTTPStream} {
		cmd := exec.Command(goCmd, builds[stack]...)
		cmd.Dir = moduleDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("go %s: %v\n%s", strings.Join(builds[stack], " "), err, out)
		}
	}
	return bins, "rewritten for " + HTTPStream + ":\n" + Summary(files), nil
}

// Kubelet is a running fake kubelet process.
type Kubelet struct {
	Stack string
	Base  string // http://127.0.0.1:port
	cmd   *exec.Cmd
	exit  chan error
	log   *lockedBuffer
}

// StartKubelet starts bin and waits (10s at most) for it to listen.
func StartKubelet(stack, bin string) (*Kubelet, error) {
	k := &Kubelet{Stack: stack, exit: make(chan error, 1), log: &lockedBuffer{}}
	k.cmd = exec.Command(bin, "-addr", "127.0.0.1:0")
	k.cmd.Stderr = k.log
	stdout, err := k.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := k.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { k.exit <- k.cmd.Wait() }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case a := <-addr:
		k.Base = "http://" + a
		return k, nil
	case err := <-k.exit:
		return nil, fmt.Errorf("%s kubelet exited before listening: %v\n%s", stack, err, k.log.String())
	case <-timer.C:
		k.Stop()
		return nil, fmt.Errorf("%s kubelet did not listen within 10s\n%s", stack, k.log.String())
	}
}

// Stop kills the process and waits for it.
func (k *Kubelet) Stop() {
	_ = k.cmd.Process.Kill()
	<-k.exit
}

// LogMark returns the current length of the kubelet's log (its stderr).
func (k *Kubelet) LogMark() int { return k.log.Len() }

// LogSince returns what the kubelet logged after mark.
func (k *Kubelet) LogSince(mark int) string { return k.log.Since(mark) }

// State is the kubelet's /debug/state answer.
type State struct {
	PortForwardHandlers int // ServePortForward calls running
	ExecHandlers        int // ServeExec calls running
	PortForwards        int // runtime PortForward calls running
	Execs               int // runtime ExecInContainer calls running
	Goroutines          int
}

// Idle reports whether no handler or runtime call is running.
func (s State) Idle() bool {
	return s.PortForwardHandlers == 0 && s.ExecHandlers == 0 && s.PortForwards == 0 && s.Execs == 0
}

// WaitIdle asks the kubelet for its state once no handler is running, or
// after wait.
func (k *Kubelet) WaitIdle(wait time.Duration) (State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.Base+"/debug/state?wait="+wait.String(), nil)
	if err != nil {
		return State{}, err
	}
	resp, err := debugClient.Do(req)
	if err != nil {
		return State{}, err
	}
	defer resp.Body.Close()
	var s State
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return s, fmt.Errorf("/debug/state: %s: %s", resp.Status, b)
	}
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// Goroutines returns the kubelet's goroutines grouped by stack, compacted
// (see CompactProfile).
func (k *Kubelet) Goroutines() (string, error) {
	resp, err := debugClient.Get(k.Base + "/debug/goroutines?debug=1")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	return CompactProfile(string(b)), nil
}

// debugClient keeps no idle connections, so asking the kubelet for its
// state leaves no goroutine behind in the tests.
var debugClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// CompactProfile shortens a goroutine profile written with debug=1 to one
// line per group of identical stacks: the count, then the innermost
// frames outside the runtime and the standard library's internals.
func CompactProfile(profile string) string {
	var out []string
	for block := range strings.SplitSeq(profile, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) > 0 && strings.HasPrefix(lines[0], "goroutine profile:") {
			lines = lines[1:]
		}
		if len(lines) < 2 || !strings.Contains(lines[0], " @ ") {
			continue
		}
		count, _, _ := strings.Cut(lines[0], " @ ")
		var frames []string
		for _, l := range lines[1:] {
			f := strings.Fields(l) // "#", addr, func+off, file:line
			if len(f) < 4 {
				continue
			}
			fn, _, _ := strings.Cut(f[2], "+")
			if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/") || strings.HasPrefix(fn, "syscall.") {
				continue
			}
			frames = append(frames, fn+" ("+filepath.Base(f[3])+")")
			if len(frames) == 3 {
				break
			}
		}
		out = append(out, fmt.Sprintf("%5s x %s", count, strings.Join(frames, " <- ")))
	}
	return strings.Join(out, "\n")
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *lockedBuffer) String() string { return b.Since(0) }

func (b *lockedBuffer) Since(mark int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if mark > b.buf.Len() {
		return ""
	}
	return string(b.buf.Bytes()[mark:])
}
