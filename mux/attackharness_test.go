package mux

// Attack tests (issue 7, "Attack tests"): one test per attack of a hostile
// peer, over loopback TCP. Each test runs a server (a listener whose every
// connection gets mux.Server with a real handler), one attacker connection
// that speaks frames by hand, and one well-behaved mux.Client session on
// another connection to the same server. Each asserts:
//
//  1. the heap grows no more than the bound documented for the Config used
//     (Config's doc comment, SPEC 10.2 and 10.3; see atkBound);
//  2. the attacker's session either carries on (a PING is answered, a
//     normal stream still opens) or ends with a GOAWAY whose code names the
//     cause (read on the attacker's connection when it reads, else taken
//     from the server session's error);
//  3. the well-behaved session is unaffected: an echo round trip succeeds,
//     during (for attacks that last) and after the attack, within a bound.
//
// The helpers are prefixed atk so as not to collide with other tests of the
// package.
//
// This file is the harness: the memory bound, the heap and goroutine checks,
// the server, the well-behaved session and the hand-speaking attacker. The
// attacks are in attack_floods_test.go, attack_frames_test.go and
// attack_peers_test.go.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

// atkWait bounds every wait of these tests that has no tighter bound.
const atkWait = 5 * time.Second

// atkGoodWithin bounds one echo round trip of the well-behaved session.
const atkGoodWithin = 3 * time.Second

// atkConfig is the server's (and the well-behaved client's) Config: small
// limits, so that attacks reach them fast and the memory bound is tight.
// Window auto-tuning cannot grow any window past InitialStreamWindow
// (MaxStreamWindow = InitialStreamWindow), and MaxSessionWindow, which
// holds the windows past their floor and the headers, is small, but large
// enough for MaxHeaderBytes on every stream. Keepalive is long, so that it ends no session by itself unless
// a test shortens it.
func atkConfig() *Config {
	return &Config{
		MaxFrameSize:         16 << 10,
		InitialStreamWindow:  64 << 10,
		MaxStreamWindow:      64 << 10,
		MaxSessionWindow:     512 << 10,
		MaxConcurrentStreams: 16,
		AcceptBacklog:        16,
		MaxHeaderBytes:       8 << 10,
		KeepAliveInterval:    20 * time.Second,
		KeepAliveTimeout:     20 * time.Second,
		StreamOpenTimeout:    atkWait,
	}
}

// Sizes of the control frames an attack can make the server queue.
const (
	atkPingAck      = frame.HeaderSize + 8
	atkWindowUpdate = frame.HeaderSize + 4
	// REFUSE and RESET with the server's own reasons, which are short
	// sentences; 128 octets is above every one of them.
	atkShortRefuse = frame.HeaderSize + 4 + 128
)

// atkBound returns the heap growth the documentation allows an attack on a
// server with Config cfg, over a baseline taken once the attacker and the
// well-behaved session are connected:
//
//   - the attacker's session, by the formula of Config's doc comment (SPEC
//     10.3): MaxConcurrentStreams × 17 KiB (one block and the stream) +
//     MaxSessionWindow + 4,096 queued control frames (SPEC 10.2). The control frames are counted at ctrlFrame
//     octets each, the largest control frame the attack makes the server
//     queue, four times over: the writer holds the queue and the batch being
//     written in two buffers, each grown by append to up to twice what it
//     holds;
//   - the well-behaved pair, by the same formula: its server session holds
//     one stream the client opened (InitialStreamWindow + MaxHeaderBytes +
//     33 KiB), its client session one stream it opened itself
//     (InitialStreamWindow + 33 KiB), and the echo's 16 KiB
//     payload and the copy read back;
//   - fixed costs: for each of the three sessions, the frame reader's
//     buffer (frame.ReaderBufferSize), its payload buffer (at most
//     max(MaxHeaderBytes, 8 + MaxReasonBytes)) and 32 KiB for the writer's
//     buffers, maps and stream table; and 512 KiB for the test's own
//     goroutines and runtime noise (a sample taken during a flood also
//     counts what the flood allocates while the sample's collection runs).
func atkBound(cfg *Config, ctrlFrame int) int64 {
	r, err := cfg.resolve()
	if err != nil {
		panic(err)
	}
	window, headers := int64(r.InitialStreamWindow), int64(r.MaxHeaderBytes)
	const perStream = 33 << 10
	attacker := int64(r.MaxConcurrentStreams)*(blockSize+1<<10) + int64(r.MaxSessionWindow) +
		4*maxQueuedControl*int64(ctrlFrame)
	good := (window + headers + perStream) + (window + perStream) + 2*atkEchoSize
	fixed := 3*(frame.ReaderBufferSize+max(headers, 8+frame.MaxReasonBytes)+32<<10) + 512<<10
	return attacker + good + fixed
}

// ---- goroutines and heap ----

// atkLeakCheck records the goroutines running now and, when the test ends
// (after every cleanup registered later), waits until no more run.
func atkLeakCheck(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.NewTimer(10 * time.Second)
		defer deadline.Stop()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for runtime.NumGoroutine() > before {
			select {
			case <-tick.C:
			case <-deadline.C:
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before the test, %d after it closed everything:\n%s",
					before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
		}
	})
}

// atkHeap measures heap growth over a baseline: each sample runs a garbage
// collection first, so it counts live memory only. It keeps the peak.
type atkHeap struct {
	mu        sync.Mutex
	base      uint64
	peak      int64
	samples   int
	goroutine int // peak runtime.NumGoroutine
}

func atkHeapStart() *atkHeap {
	runtime.GC()
	runtime.GC() // the second one empties the sync.Pools' victim caches
	return &atkHeap{base: atkLiveHeap(), goroutine: runtime.NumGoroutine()}
}

// atkLiveHeap returns the live heap as the last GC marked it. HeapAlloc
// read after runtime.GC would also count what the attack allocated (and
// dropped) between the GC and the read, which at a flood's rate is
// megabytes of garbage.
func atkLiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func (h *atkHeap) sample() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	runtime.GC()
	g := int64(atkLiveHeap()) - int64(h.base)
	h.peak = max(h.peak, g)
	h.goroutine = max(h.goroutine, runtime.NumGoroutine())
	h.samples++
	return g
}

// watch samples every interval until the returned function is called (or
// the test ends), calling also after each sample.
func (h *atkHeap) watch(t *testing.T, every time.Duration, also func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				h.sample()
				if also != nil {
					also()
				}
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			atkRecv(t, done, "the heap watcher to stop")
		})
	}
	t.Cleanup(stop)
	return stop
}

// check takes a last sample and fails the test if the peak growth passed
// bound.
func (h *atkHeap) check(t *testing.T, bound int64, what string) {
	t.Helper()
	last := h.sample()
	h.mu.Lock()
	peak, n := h.peak, h.samples
	h.mu.Unlock()
	t.Logf("heap: %s: peak growth %d KiB over %d samples (last %d KiB); bound %d KiB", what, peak>>10, n, last>>10, bound>>10)
	if peak > bound {
		t.Errorf("heap grew %d octets during %s, past the documented bound of %d", peak, what, bound)
	}
}

// watchControlQueue is watch for the attacks that fill the server session
// s's control-frame queue, which must stay within its cap: each sample also
// notes the queue's length, and stop returns the longest seen.
func (h *atkHeap) watchControlQueue(t *testing.T, s *Session) (stop func() (peakQueued int)) {
	t.Helper()
	var peak int
	stopWatch := h.watch(t, 20*time.Millisecond, func() {
		s.w.mu.Lock()
		peak = max(peak, s.w.answers)
		s.w.mu.Unlock()
	})
	return func() int {
		stopWatch() // the sampler has stopped: peak is ours to read
		return peak
	}
}

// atkRecv waits, at most atkWait, for ch to deliver or close.
func atkRecv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(atkWait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", atkWait, what)
		panic("unreachable")
	}
}

// atkPoll polls cond with a short ticker until it holds, at most within.
func atkPoll(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting until %s", within, what)
		}
	}
}

// ---- the server ----

// atkServer accepts TCP connections and runs mux.Server on each, with a
// handler that serves each stream as its "Mode" header says:
//
//	(none)   echo: send back what is read, then half-close
//	"sink"   read everything, report the count on sunk, half-close
//	"flood"  write without end, counting the octets in flooded
//	"hold"   accept, then wait for release before echoing
//	"block"  the handler itself waits for release before it accepts (so
//	         the streams after it wait in the accept backlog), then echo
//	"refuse" refuse with a 2,000-octet error text
//	"reset"  accept, then reset the stream
type atkServer struct {
	cfg        *Config
	ln         net.Listener
	sessions   chan *Session // in accept order
	acceptDone chan struct{}
	onAccept   func(n int, c *net.TCPConn)

	stop    chan struct{} // closed at cleanup: every handler ends
	release chan struct{} // closed by the test or at cleanup
	relOnce sync.Once
	sunk    chan atkSunk
	flooded atomic.Int64
	// running counts the handlers' goroutines (the test's own, one per
	// accepted stream), so that goroutine bounds can leave them out.
	running atomic.Int64

	mu       sync.Mutex // guards closing and handlers.Add
	closing  bool
	handlers sync.WaitGroup
	all      []*Session
}

type atkSunk struct {
	id  uint32
	n   int64
	err error
}

// atkLongError is what "refuse" handlers return: 2,000 octets of two-octet
// characters, so a cut at 1,024 octets that ignored character boundaries
// would show.
var atkLongError = strings.Repeat("é", 1000)

func newAtkServer(t *testing.T, cfg *Config, onAccept func(n int, c *net.TCPConn)) *atkServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &atkServer{
		cfg:        cfg,
		ln:         ln,
		sessions:   make(chan *Session, 8),
		acceptDone: make(chan struct{}),
		onAccept:   onAccept,
		stop:       make(chan struct{}),
		release:    make(chan struct{}),
		sunk:       make(chan atkSunk, 64),
	}
	go h.acceptLoop(t)
	t.Cleanup(func() { h.close(t) })
	return h
}

func (h *atkServer) acceptLoop(t *testing.T) {
	defer close(h.acceptDone)
	for n := 0; ; n++ {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		if h.onAccept != nil {
			h.onAccept(n, c.(*net.TCPConn))
		}
		s, err := Server(c, h.handle, h.cfg)
		if err != nil {
			t.Errorf("mux.Server: %v", err)
			c.Close()
			continue
		}
		h.mu.Lock()
		h.all = append(h.all, s)
		h.mu.Unlock()
		select {
		case h.sessions <- s:
		case <-h.stop:
		}
	}
}

func (h *atkServer) releaseHandlers() { h.relOnce.Do(func() { close(h.release) }) }

// close ends everything the server started, each wait bounded.
func (h *atkServer) close(t *testing.T) {
	h.releaseHandlers()
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	close(h.stop)
	h.ln.Close()
	atkRecv(t, h.acceptDone, "the accept loop to end")
	h.mu.Lock()
	all := h.all
	h.mu.Unlock()
	for _, s := range all {
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		atkRecv(t, done, "a server session's Close")
	}
	done := make(chan struct{})
	go func() { h.handlers.Wait(); close(done) }()
	atkRecv(t, done, "the handlers' goroutines to end")
}

func (h *atkServer) waitRelease() bool {
	select {
	case <-h.release:
		return true
	case <-h.stop:
		return false
	}
}

func (h *atkServer) handle(hs httpstream.Stream, replySent <-chan struct{}) error {
	st := hs.(*Stream)
	mode := st.Headers().Get("Mode")
	switch mode {
	case "refuse":
		return errors.New(atkLongError)
	case "block":
		if !h.waitRelease() {
			return errors.New("the test is over")
		}
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return errors.New("the test is over")
	}
	h.handlers.Add(1)
	h.running.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.handlers.Done()
		defer h.running.Add(-1)
		switch mode {
		case "sink":
			n, err := io.Copy(io.Discard, st)
			if err == nil {
				err = st.EndReason() // nil after a half-close; the reset after a RESET
			}
			st.Close()
			select {
			case h.sunk <- atkSunk{st.id, n, err}:
			case <-h.stop:
			}
			return
		case "flood":
			buf := make([]byte, 32<<10)
			for {
				n, err := st.Write(buf)
				h.flooded.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "reset":
			select {
			case <-replySent:
				st.Reset()
			case <-h.stop:
			}
			return
		case "hold":
			if !h.waitRelease() {
				return
			}
		}
		// A small buffer: the handler's goroutines are the test's, and a
		// 32 KiB buffer each (io.Copy's) would be counted against the
		// session's memory bound during floods of short-lived streams.
		io.CopyBuffer(st, st, make([]byte, 1024))
		st.Close()
	}()
	return nil
}

// dial connects to the server and returns the connection and the server
// session on its other end.
func (h *atkServer) dial(t *testing.T) (*net.TCPConn, *Session) {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.ln.Addr().String(), atkWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn), atkRecv(t, h.sessions, "the server session of a new connection")
}

// ---- the well-behaved session ----

// atkEchoSize is what one echo round trip of the well-behaved session
// sends.
const atkEchoSize = 16 << 10

type atkGood struct {
	cli     *Session
	payload []byte
}

// good connects the well-behaved client and checks one round trip.
func (h *atkServer) good(t *testing.T) *atkGood {
	t.Helper()
	c, _ := h.dial(t)
	cli, err := Client(c, nil, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { cli.Close(); close(done) }()
		atkRecv(t, done, "the good client's Close")
	})
	g := &atkGood{cli: cli, payload: make([]byte, atkEchoSize)}
	for i := range g.payload {
		g.payload[i] = byte(i*7 + i>>8)
	}
	g.check(t, "before the attack")
	return g
}

// echo opens a stream, sends the payload, half-closes, and reads the echo
// back, all within atkGoodWithin.
func (g *atkGood) echo() error {
	ctx, cancel := context.WithTimeout(context.Background(), atkGoodWithin)
	defer cancel()
	st, err := g.cli.OpenStream(ctx, nil)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer st.Reset()
	st.SetDeadline(time.Now().Add(atkGoodWithin))
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(g.payload)
		if err == nil {
			err = st.Close()
		}
		werr <- err
	}()
	got, err := io.ReadAll(st)
	if err2 := <-werr; err2 != nil { // bounded by the write deadline
		return fmt.Errorf("write: %w", err2)
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, g.payload) {
		return fmt.Errorf("echo of %d octets came back as %d different octets", len(g.payload), len(got))
	}
	return nil
}

// check runs one echo round trip and fails the test if it does not succeed
// within atkGoodWithin.
func (g *atkGood) check(t *testing.T, when string) {
	t.Helper()
	start := time.Now()
	if err := g.echo(); err != nil {
		t.Fatalf("the well-behaved session failed an echo %s: %v", when, err)
	}
	if d := time.Since(start); d > atkGoodWithin {
		t.Fatalf("the well-behaved session's echo %s took %v", when, d)
	}
}

// during runs echo round trips, one every 20 ms, until the returned
// function is called; that function fails the test if one failed, and
// makes sure at least one ran.
func (g *atkGood) during(t *testing.T) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	var (
		n     int
		worst time.Duration
		fail  error
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			start := time.Now()
			err := g.echo()
			worst = max(worst, time.Since(start))
			n++
			if err != nil {
				fail = err
				return
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			timer := time.NewTimer(2 * atkGoodWithin)
			defer timer.Stop()
			select {
			case <-done:
			case <-timer.C:
				t.Errorf("the well-behaved session's echo loop did not stop within %v", 2*atkGoodWithin)
				return
			}
			t.Logf("well-behaved session during the attack: %d echo round trips, slowest %v", n, worst.Round(time.Millisecond))
			if fail != nil {
				t.Errorf("the well-behaved session failed an echo during the attack (after %d): %v", n-1, fail)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// ---- the attacker ----

// atkPeer is the attacker: a TCP connection to the server on which the test
// writes frames by hand. Once started, a reader goroutine reads what the
// server sends: it answers the server's PINGs while answer is set, tracks the
// send windows the server grants, counts frames by type, and passes the
// others on (unless forward is off).
type atkPeer struct {
	dialed time.Time // before the connection, so before the server session started
	conn   *net.TCPConn
	srv    *Session // the server session on the other end
	fr     *frame.Reader
	nextID uint32

	serverWindow uint32 // the server's INITIAL_STREAM_WINDOW

	wmu     sync.Mutex // serializes writes
	stalled bool       // no more writes: the test stopped mid-frame

	answer    atomic.Bool // answer the server's PINGs
	forward   atomic.Bool // pass frames on through frames
	counts    [256]atomic.Int64
	refusals  [16]atomic.Int64 // REFUSE frames by code
	floodAcks atomic.Int64     // ACKs of PINGs of ping floods

	mu     sync.Mutex // guards win
	win    map[uint32]int64
	credit chan struct{} // signalled after win grew

	frames   chan *frame.Frame
	acks     chan [8]byte // ACKs of the test's liveness PINGs
	goaway   chan *frame.Frame
	answers  chan [8]byte // the server's PINGs, for the answerer
	quit     chan struct{}
	readDone chan struct{}
	ansDone  chan struct{}
	readErr  error
	started  bool
	pingSeq  uint32
}

// attacker connects a raw peer; readBuffer > 0 shrinks its socket's
// receive buffer.
func (h *atkServer) attacker(t *testing.T, readBuffer int) *atkPeer {
	t.Helper()
	dialed := time.Now()
	c, s := h.dial(t)
	if readBuffer > 0 {
		if err := c.SetReadBuffer(readBuffer); err != nil {
			t.Fatal(err)
		}
	}
	p := &atkPeer{
		dialed:   dialed,
		conn:     c,
		srv:      s,
		fr:       frame.NewReader(c, frame.Limits{MaxFrameSize: frame.MaxLength, MaxHeaderBytes: frame.MaxLength}),
		nextID:   1,
		win:      make(map[uint32]int64),
		credit:   make(chan struct{}, 1),
		frames:   make(chan *frame.Frame, 1024),
		acks:     make(chan [8]byte, 16),
		goaway:   make(chan *frame.Frame, 1),
		answers:  make(chan [8]byte, 64),
		quit:     make(chan struct{}),
		readDone: make(chan struct{}),
		ansDone:  make(chan struct{}),
	}
	p.forward.Store(true)
	t.Cleanup(func() {
		c.Close()
		close(p.quit)
		if p.started {
			atkRecv(t, p.readDone, "the attacker's reader to end")
			atkRecv(t, p.ansDone, "the attacker's PING answerer to end")
		}
	})
	return p
}

// atkSettings is what the attacker advertises unless a test says otherwise.
var atkSettings = []frame.Setting{
	{ID: frame.SettingInitialStreamWindow, Value: 64 << 10},
	{ID: frame.SettingMaxFrameSize, Value: 16 << 10},
}

// handshake sends the preface and SETTINGS, reads the server's, and starts
// the reader (answering PINGs).
func (p *atkPeer) handshake(t *testing.T, settings ...frame.Setting) {
	t.Helper()
	if settings == nil {
		settings = atkSettings
	}
	p.mustWrite(t, frame.AppendSettings([]byte(frame.Preface), settings...))
	p.readHello(t)
	p.start(true)
}

// readHello reads the server's preface and SETTINGS, which it sends at once
// whatever the peer does (SPEC 2.2, 2.3).
func (p *atkPeer) readHello(t *testing.T) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(atkWait))
	defer p.conn.SetReadDeadline(time.Time{})
	if err := p.fr.ReadPreface(); err != nil {
		t.Fatalf("server preface: %v", err)
	}
	f, err := p.fr.ReadFrame()
	if err != nil || f.Type != frame.FrameSettings {
		t.Fatalf("server's first frame: %v, %v; want SETTINGS", f, err)
	}
	p.serverWindow = frame.DefaultInitialStreamWindow
	for _, s := range f.Settings {
		if s.ID == frame.SettingInitialStreamWindow {
			p.serverWindow = s.Value
		}
	}
}

// start starts the reader goroutine.
func (p *atkPeer) start(answerPings bool) {
	p.answer.Store(answerPings)
	p.started = true
	go p.readLoop()
	go func() {
		defer close(p.ansDone)
		for {
			select {
			case data := <-p.answers:
				if p.answer.Load() {
					p.write(frame.AppendPing(nil, frame.FlagAck, data))
				}
			case <-p.quit:
				return
			}
		}
	}()
}

func (p *atkPeer) readLoop() {
	defer close(p.readDone)
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.readErr = err
			return
		}
		p.counts[f.Type].Add(1)
		switch f.Type {
		case frame.FramePing:
			switch {
			case !f.Flags.Has(frame.FlagAck):
				if p.answer.Load() {
					// Answered from another goroutine: the reader must
					// never wait for the test's writes.
					select {
					case p.answers <- f.PingData:
					default: // the answerer is behind: this one goes unanswered
					}
				}
			case f.PingData[0] == 0xa5 && f.PingData[1] == 0x5a:
				select {
				case p.acks <- f.PingData:
				default:
				}
			default:
				p.floodAcks.Add(1)
			}
			continue
		case frame.FrameWindowUpdate:
			p.grant(f.StreamID, int64(f.Increment))
			continue
		case frame.FrameAccept:
			p.grant(f.StreamID, int64(p.serverWindow))
		case frame.FrameRefuse:
			p.refusals[min(int(f.Code), len(p.refusals)-1)].Add(1)
		case frame.FrameGoAway:
			select {
			case p.goaway <- atkCopy(f):
			default:
			}
		}
		if !p.forward.Load() {
			continue
		}
		select {
		case p.frames <- atkCopy(f):
		case <-p.quit:
			return
		}
	}
}

func atkCopy(f *frame.Frame) *frame.Frame {
	c := *f
	c.Data = bytes.Clone(f.Data)
	c.Settings = append([]frame.Setting(nil), f.Settings...)
	return &c
}

func (p *atkPeer) grant(id uint32, n int64) {
	p.mu.Lock()
	p.win[id] += n
	p.mu.Unlock()
	select {
	case p.credit <- struct{}{}:
	default:
	}
}

// takeCredit takes up to want octets of the window the server granted on
// stream id, waiting (bounded) while it is empty.
func (p *atkPeer) takeCredit(t *testing.T, id uint32, want int64) int64 {
	t.Helper()
	timer := time.NewTimer(atkWait)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if w := p.win[id]; w > 0 {
			n := min(w, want)
			p.win[id] -= n
			p.mu.Unlock()
			return n
		}
		p.mu.Unlock()
		select {
		case <-p.credit:
		case <-p.readDone:
			t.Fatalf("the connection ended while waiting for window on stream %d: %v", id, p.readErr)
		case <-timer.C:
			t.Fatalf("no window on stream %d within %v", id, atkWait)
		}
	}
}

var errAtkStalled = errors.New("the attacker stalled: no more writes")

func (p *atkPeer) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.stalled {
		return errAtkStalled
	}
	p.conn.SetWriteDeadline(time.Now().Add(atkWait))
	_, err := p.conn.Write(b)
	return err
}

func (p *atkPeer) mustWrite(t *testing.T, b []byte) {
	t.Helper()
	if err := p.write(b); err != nil {
		t.Fatalf("attacker write: %v", err)
	}
}

// stall writes b, then nothing ever again (not even PING answers).
func (p *atkPeer) stall(t *testing.T, b []byte) {
	t.Helper()
	p.mustWrite(t, b)
	p.wmu.Lock()
	p.stalled = true
	p.wmu.Unlock()
}

// open opens the next stream with headers h and returns its ID.
func (p *atkPeer) open(t *testing.T, h http.Header) uint32 {
	t.Helper()
	id := p.nextID
	p.nextID += 2
	p.mustWrite(t, openFrame(id, h))
	return id
}

// openAccepted opens the next stream with headers h, waits for the server's
// ACCEPT and returns its ID: the open stream most attacks aim at.
func (p *atkPeer) openAccepted(t *testing.T, h http.Header) uint32 {
	t.Helper()
	id := p.open(t, h)
	p.awaitFrame(t, frame.FrameAccept, id)
	return id
}

// openFrames encodes OPENs, all with headers h, of the next n streams, for an
// attack that sends them in one write.
func (p *atkPeer) openFrames(n int, h http.Header) []byte {
	var b []byte
	for range n {
		b = append(b, openFrame(p.nextID, h)...)
		p.nextID += 2
	}
	return b
}

// atkPings encodes n PINGs whose data starts with tag and ends with their
// index, for floods; the reader counts their ACKs in floodAcks.
func atkPings(n int, tag [4]byte) []byte {
	b := make([]byte, 0, n*atkPingAck)
	for i := range n {
		b = frame.AppendPing(b, 0, [8]byte{tag[0], tag[1], tag[2], tag[3], 0, 0, byte(i >> 8), byte(i)})
	}
	return b
}

// floodPings writes pings (built by atkPings) over and over, for at most 4
// s, until the server session ends or stops reading, and returns how many
// PINGs went out: for a peer that does not read the ACKs, whose session the
// server must end once its control queue is full.
func (p *atkPeer) floodPings(pings []byte) (sent int) {
	deadline := time.Now().Add(4 * time.Second)
	for !p.srv.isClosed() && time.Now().Before(deadline) {
		p.conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := p.conn.Write(pings); err != nil {
			break // the server stopped reading, or closed
		}
		sent += len(pings) / atkPingAck
	}
	return sent
}

// await returns the next frame that match accepts, skipping others; a
// GOAWAY it does not accept fails the test.
func (p *atkPeer) await(t *testing.T, what string, match func(*frame.Frame) bool) *frame.Frame {
	t.Helper()
	timer := time.NewTimer(atkWait)
	defer timer.Stop()
	check := func(f *frame.Frame) bool {
		t.Helper()
		if match(f) {
			return true
		}
		if f.Type == frame.FrameGoAway {
			t.Fatalf("waiting for %s, got %v", what, f)
		}
		return false
	}
	for {
		select {
		case f := <-p.frames:
			if check(f) {
				return f
			}
		case <-p.readDone:
			for {
				select {
				case f := <-p.frames:
					if check(f) {
						return f
					}
				default:
					t.Fatalf("waiting for %s, the connection ended: %v", what, p.readErr)
				}
			}
		case <-timer.C:
			t.Fatalf("waiting for %s: nothing within %v", what, atkWait)
		}
	}
}

// awaitFrame waits for a frame of type typ on stream id.
func (p *atkPeer) awaitFrame(t *testing.T, typ frame.FrameType, id uint32) *frame.Frame {
	t.Helper()
	return p.await(t, fmt.Sprintf("%v on stream %d", typ, id), func(f *frame.Frame) bool {
		return f.Type == typ && f.StreamID == id
	})
}

// roundTrip sends a PING and waits for its ACK. Since the server handles
// frames in order and writes its control frames in order, the ACK also
// means every frame sent before was handled without ending the session, and
// every control frame it queued for them has been read.
func (p *atkPeer) roundTrip(t *testing.T) {
	t.Helper()
	if err := p.tryRoundTrip(); err != nil {
		t.Fatal(err)
	}
}

func (p *atkPeer) tryRoundTrip() error {
	p.pingSeq++
	var data [8]byte
	data[0], data[1] = 0xa5, 0x5a
	binary.BigEndian.PutUint32(data[4:], p.pingSeq)
	if err := p.write(frame.AppendPing(nil, 0, data)); err != nil {
		return fmt.Errorf("PING not sent: %w", err)
	}
	timer := time.NewTimer(atkWait)
	defer timer.Stop()
	for {
		select {
		case got := <-p.acks:
			if got == data {
				return nil
			}
		case f := <-p.goaway:
			p.goaway <- f // for expectGoAway
			return fmt.Errorf("PING not answered: the server sent %v", f)
		case <-p.readDone:
			return fmt.Errorf("PING not answered: the connection ended: %v", p.readErr)
		case <-timer.C:
			return fmt.Errorf("PING not answered within %v", atkWait)
		}
	}
}

// carriesOn checks that the attacker's session is alive: a PING is
// answered and the server session has not ended.
func (p *atkPeer) carriesOn(t *testing.T) {
	t.Helper()
	p.roundTrip(t)
	if p.srv.isClosed() {
		t.Fatalf("the attacker's server session ended: %v", p.srv.closedErr())
	}
}

// echoStream opens a normal stream, sends msg with END_STREAM, and checks
// that the echo handler sends it back and half-closes.
func (p *atkPeer) echoStream(t *testing.T, msg string) {
	t.Helper()
	id := p.openAccepted(t, nil)
	p.mustWrite(t, frame.AppendData(nil, id, frame.FlagEndStream, []byte(msg)))
	var got []byte
	for {
		f := p.awaitFrame(t, frame.FrameData, id)
		got = append(got, f.Data...)
		if f.Flags.Has(frame.FlagEndStream) {
			break
		}
	}
	if string(got) != msg {
		t.Fatalf("stream %d echoed %q, want %q", id, got, msg)
	}
}

// expectGoAway waits, at most within, for the server's GOAWAY, checks its
// code and that it has a reason, and checks that the server session ended
// with the same code.
func (p *atkPeer) expectGoAway(t *testing.T, code frame.ErrCode, within time.Duration) *frame.Frame {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	var f *frame.Frame
	select {
	case f = <-p.goaway:
	case <-p.readDone:
		select {
		case f = <-p.goaway:
		default:
			t.Fatalf("the connection ended (%v) without GOAWAY %v; server session: %v", p.readErr, code, p.srv.closedErr())
		}
	case <-timer.C:
		t.Fatalf("no GOAWAY within %v (want %v); server session closed: %v", within, code, p.srv.isClosed())
	}
	if f.Code != code {
		t.Fatalf("GOAWAY %v (%q), want %v", f.Code, f.Reason, code)
	}
	if f.Reason == "" {
		t.Fatalf("GOAWAY %v without a reason", f.Code)
	}
	t.Logf("GOAWAY %v %q", f.Code, f.Reason)
	if code != frame.CodeTimeout {
		atkSessionError(t, p.srv, code)
	}
	return f
}

// atkSessionError waits for s to end and checks that it ended with a
// session error of the given code (SPEC 9.1).
func atkSessionError(t *testing.T, s *Session, code frame.ErrCode) error {
	t.Helper()
	atkRecv(t, s.CloseChan(), "the server session to end")
	err := s.closedErr()
	var se *frame.SessionError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("server session ended with %v, want a session error %v", err, code)
	}
	return err
}

// atkKeepAliveEnded waits for s to end and checks that its keepalive ended
// it, the only defence against a peer that goes silent.
func atkKeepAliveEnded(t *testing.T, s *Session) {
	t.Helper()
	atkRecv(t, s.CloseChan(), "the server session to end")
	if err := s.closedErr(); !strings.Contains(err.Error(), "keepalive timeout") {
		t.Errorf("server session ended with %v, want a keepalive timeout", err)
	}
}

// atkRace reports whether the test binary was built with -race.
func atkRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// atkNewTest starts what every attack test needs: the leak check, a server
// with cfg, the attacker (dialed first, so it is connection 0 for
// onAccept) and the well-behaved session.
func atkNewTest(t *testing.T, cfg *Config, readBuffer int, onAccept func(n int, c *net.TCPConn)) (*atkServer, *atkPeer, *atkGood) {
	t.Helper()
	atkLeakCheck(t)
	h := newAtkServer(t, cfg, onAccept)
	p := h.attacker(t, readBuffer)
	g := h.good(t)
	return h, p, g
}

// atkHandshaken is atkNewTest after the attacker's handshake with the
// default settings, its reader started: where most attacks begin.
func atkHandshaken(t *testing.T, cfg *Config) (*atkServer, *atkPeer, *atkGood) {
	t.Helper()
	h, p, g := atkNewTest(t, cfg, 0, nil)
	p.handshake(t)
	return h, p, g
}

// atkSmallSockBuf is the socket buffer size of atkNewTestSmallBuffers.
const atkSmallSockBuf = 4 << 10

// atkNewTestSmallBuffers is atkNewTest with small socket buffers on the
// attacker's receiving side and the server's sending side, for attacks by a
// peer that does not read: the server's writes to it block after a few
// kilobytes, so its queues fill fast.
func atkNewTestSmallBuffers(t *testing.T, cfg *Config) (*atkServer, *atkPeer, *atkGood) {
	t.Helper()
	return atkNewTest(t, cfg, atkSmallSockBuf, func(n int, c *net.TCPConn) {
		if n == 0 { // the attacker's connection
			c.SetWriteBuffer(atkSmallSockBuf)
		}
	})
}

// atkKeepAliveConfig is atkConfig with a short keepalive, for the attacks
// that only keepalive can end.
func atkKeepAliveConfig() *Config {
	cfg := atkConfig()
	cfg.KeepAliveInterval, cfg.KeepAliveTimeout = 200*time.Millisecond, 500*time.Millisecond
	return cfg
}

// atkKeepAliveBound is how long a silent peer may keep its session: a
// whole interval for the monitor to notice the silence and ping, then the
// timeout for the answer (SPEC 8.1), plus slack for a loaded machine.
func atkKeepAliveBound(cfg *Config) time.Duration {
	return 2*cfg.KeepAliveInterval + cfg.KeepAliveTimeout + 2*time.Second
}
