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
	"unicode/utf8"

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
	h.mu.Unlock()
	go func() {
		defer h.handlers.Done()
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

// atkBlock encodes a header block by hand (SPEC 5): one name, with values
// of the given lengths (filled with 'v'). The encoder refuses more than
// 1,024 values, so hostile blocks are built here.
func atkBlock(name string, lens ...int) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(lens)))
	for _, n := range lens {
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = append(b, bytes.Repeat([]byte("v"), n)...)
	}
	return b
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

// ---- the attacks ----

func TestAttackPingFlood(t *testing.T) {
	t.Run("without reading the ACKs: ENHANCE_YOUR_CALM", func(t *testing.T) {
		// Small socket buffers, so the server's writes block after a few
		// kilobytes of ACKs and its control queue fills fast.
		cfg := atkConfig()
		_, p, g := atkNewTestSmallBuffers(t, cfg)
		p.mustWrite(t, frame.AppendSettings([]byte(frame.Preface), atkSettings...))
		p.readHello(t) // and never read again

		pings := atkPings(256, [4]byte{1, 2, 3, 4})
		heap := atkHeapStart()
		stopWatch := heap.watchControlQueue(t, p.srv)
		stopGood := g.during(t)

		sent := p.floodPings(pings)
		err := atkSessionError(t, p.srv, frame.CodeEnhanceYourCalm)
		stopGood()
		peakQueued := stopWatch()
		t.Logf("%d PINGs sent before the server ended the session: %v (peak control queue seen: %d frames)", sent, err, peakQueued)
		if sent < maxQueuedControl {
			t.Errorf("the session ended after %d PINGs, fewer than the control-queue cap %d", sent, maxQueuedControl)
		}
		if peakQueued > maxQueuedControl {
			t.Errorf("%d control frames queued, past the cap %d", peakQueued, maxQueuedControl)
		}
		heap.check(t, atkBound(cfg, atkPingAck), "a ping flood without reads")
		g.check(t, "after the attack")
	})

	t.Run("reading the ACKs, 2,000 unanswered at most: carries on", func(t *testing.T) {
		// A peer that reads its ACKs as it floods. It keeps fewer PINGs
		// unanswered than the control-queue cap: one that floods at line
		// rate can make the server queue more ACKs than the cap, and the
		// cap is then allowed to end the session (SPEC 10.2).
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		const batch, total, unanswered = 500, 50_000, 2000
		pings := atkPings(batch, [4]byte{1, 2, 3, 4})
		heap := atkHeapStart()
		stopWatch := heap.watch(t, 20*time.Millisecond, nil)
		stopGood := g.during(t)
		for sent := 0; sent < total; sent += batch {
			atkPoll(t, atkWait, "the server to answer the flood", func() bool {
				return sent-int(p.floodAcks.Load()) <= unanswered-batch
			})
			p.mustWrite(t, pings)
		}
		p.carriesOn(t) // its ACK comes after every flood ACK
		stopGood()
		stopWatch()
		if n := p.floodAcks.Load(); n != total {
			t.Errorf("%d PINGs answered, %d sent", n, total)
		}
		heap.check(t, atkBound(cfg, atkPingAck), "a ping flood whose ACKs are read")
		p.echoStream(t, "still here")
		g.check(t, "after the attack")
	})
	t.Run("reading the ACKs, at line rate: throttled, carries on", func(t *testing.T) {
		// No pause at all: the server's reader may get ahead of its
		// writer, so it waits for the writer (controlHighWater) instead of
		// ending a session whose peer does read.
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		const batch, total = 500, 100_000
		pings := atkPings(batch, [4]byte{1, 2, 3, 4})
		heap := atkHeapStart()
		stopWatch := heap.watch(t, 20*time.Millisecond, nil)
		for sent := 0; sent < total; sent += batch {
			p.mustWrite(t, pings)
		}
		p.carriesOn(t)
		stopWatch()
		if n := p.floodAcks.Load(); n != total {
			t.Errorf("%d PINGs answered, %d sent", n, total)
		}
		heap.check(t, atkBound(cfg, atkPingAck), "a ping flood at line rate whose ACKs are read")
		g.check(t, "after the attack")
	})
}

func TestAttackWindowUpdates(t *testing.T) {
	// The server's send window on stream id, as it tracks it.
	sendWindow := func(t *testing.T, p *atkPeer, id uint32) int64 {
		t.Helper()
		st := p.srv.lookup(id)
		if st == nil {
			t.Fatalf("the server does not track stream %d", id)
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.sendWindow
	}
	updates := func(id uint32, n int) []byte {
		b := make([]byte, 0, n*atkWindowUpdate)
		for range n {
			b = frame.AppendWindowUpdate(b, id, 1)
		}
		return b
	}

	t.Run("a flood of increments of 1: carries on", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		open := p.openAccepted(t, nil)
		closed := p.openAccepted(t, nil)
		p.mustWrite(t, frame.AppendReset(nil, closed, frame.CodeCancel, ""))
		const perWrite, writes = 10_000, 15
		onOpen, onClosed := updates(open, perWrite), updates(closed, perWrite)
		before := sendWindow(t, p, open)

		heap := atkHeapStart()
		stopWatch := heap.watch(t, 20*time.Millisecond, nil)
		stopGood := g.during(t)
		for range writes {
			p.mustWrite(t, onOpen)
			p.mustWrite(t, onClosed) // a closed stream: ignored (SPEC 6.4)
		}
		p.carriesOn(t)
		stopGood()
		stopWatch()
		if got, want := sendWindow(t, p, open), before+perWrite*writes; got != want {
			t.Errorf("send window %d after %d increments of 1 on %d, want %d", got, perWrite*writes, before, want)
		}
		heap.check(t, atkBound(cfg, atkPingAck), "a window-update flood")
		p.echoStream(t, "still here")
		g.check(t, "after the attack")
	})

	t.Run("one increment past 2^31-1: FLOW_CONTROL_ERROR", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		id := p.openAccepted(t, nil)
		heap := atkHeapStart()
		p.mustWrite(t, frame.AppendWindowUpdate(nil, id, frame.MaxWindow))
		p.expectGoAway(t, frame.CodeFlowControlError, atkWait)
		heap.check(t, atkBound(cfg, atkPingAck), "a window overflow")
		g.check(t, "after the attack")
	})

	t.Run("increments of 1 adding up past 2^31-1: FLOW_CONTROL_ERROR", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkNewTest(t, cfg, 0, nil)
		const n = 50_000
		p.handshake(t, frame.Setting{ID: frame.SettingInitialStreamWindow, Value: frame.MaxWindow - n})
		id := p.openAccepted(t, nil)
		heap := atkHeapStart()
		p.mustWrite(t, updates(id, n))
		p.carriesOn(t) // the window is now exactly 2^31-1: allowed
		if w := sendWindow(t, p, id); w != frame.MaxWindow {
			t.Fatalf("send window %d, want %d", w, frame.MaxWindow)
		}
		p.mustWrite(t, frame.AppendWindowUpdate(nil, id, 1))
		p.expectGoAway(t, frame.CodeFlowControlError, atkWait)
		heap.check(t, atkBound(cfg, atkPingAck), "a window overflow by accumulation")
		g.check(t, "after the attack")
	})
}

func TestAttackRapidOpenThenReset(t *testing.T) {
	// 100,000 streams opened and reset at once, in batches of 500 pairs,
	// while the attacker reads (and drops) whatever the server answers.
	cfg := atkConfig()
	_, p, g := atkHandshaken(t, cfg)
	p.forward.Store(false) // counted, not kept
	const pairs, batch = 100_000, 500
	buf := make([]byte, 0, batch*64)

	var peakStreams int
	heap := atkHeapStart()
	stopWatch := heap.watch(t, 20*time.Millisecond, func() {
		peakStreams = max(peakStreams, p.srv.NumStreams())
	})
	stopGood := g.during(t)
	start := time.Now()
	var err error
	for i := 0; i < pairs && err == nil; i += batch {
		buf = buf[:0]
		for range batch {
			id := p.nextID
			p.nextID += 2
			buf = append(buf, openFrame(id, nil)...)
			buf = frame.AppendReset(buf, id, frame.CodeCancel, "")
		}
		err = p.write(buf)
	}
	if err == nil {
		err = p.tryRoundTrip()
	}
	elapsed := time.Since(start)
	stopGood()
	stopWatch()
	t.Logf("%d open+reset pairs in %v; the server answered %d ACCEPT, %d REFUSE (%d STREAM_LIMIT), %d RESET; peak streams tracked %d, peak goroutines %d (%d at the start)",
		pairs, elapsed.Round(time.Millisecond), p.counts[frame.FrameAccept].Load(), p.counts[frame.FrameRefuse].Load(),
		p.refusals[frame.CodeStreamLimit].Load(), p.counts[frame.FrameReset].Load(), peakStreams, heap.goroutine, runtime.NumGoroutine())
	// Each OPEN comes after the RESET of the stream before it, so at most
	// one stream of the attacker is alive when an OPEN arrives: neither
	// MaxConcurrentStreams nor AcceptBacklog (streams waiting for the
	// handler) is crossed, and a REFUSE STREAM_LIMIT has no ground (SPEC
	// 10.2, Config.AcceptBacklog). Streams reset at once cost no reply
	// (SPEC 10.5); ACCEPTs of streams the handler took before the RESET
	// arrived are the race SPEC 6.4 allows.
	if n := p.counts[frame.FrameRefuse].Load(); n > 0 {
		t.Errorf("%d REFUSE (%d STREAM_LIMIT) for streams opened one at a time and reset at once: streams already reset still fill the accept backlog",
			n, p.refusals[frame.CodeStreamLimit].Load())
	}
	if err != nil {
		t.Fatalf("the attacker's session did not carry on: %v; server session: closed %v, %v", err, p.srv.isClosed(), p.srv.closedErr())
	}
	if p.srv.isClosed() {
		t.Fatalf("the attacker's server session ended: %v", p.srv.closedErr())
	}
	if peakStreams > cfg.MaxConcurrentStreams {
		t.Errorf("the server tracked %d streams of the attacker at once, past MaxConcurrentStreams %d", peakStreams, cfg.MaxConcurrentStreams)
	}
	// Goroutines: the server's handler runs one goroutine per accepted
	// stream, which ends when the stream is reset; streams have none of
	// their own. So at most the live streams' worth, twice over for the
	// ones that are ending, on top of what ran before.
	if limit := runtime.NumGoroutine() + 2*(cfg.MaxConcurrentStreams+cfg.AcceptBacklog); heap.goroutine > limit {
		t.Errorf("peak of %d goroutines, more than %d", heap.goroutine, limit)
	}
	atkPoll(t, atkWait, "the server forgets every reset stream", func() bool { return p.srv.NumStreams() == 0 })
	heap.check(t, atkBound(cfg, atkShortRefuse), "100,000 open+reset pairs")
	p.forward.Store(true)
	p.echoStream(t, "a normal stream after the attack")
	g.check(t, "after the attack")
}

func TestAttackOpenFlood(t *testing.T) {
	t.Run("past MaxConcurrentStreams: REFUSE STREAM_LIMIT", func(t *testing.T) {
		cfg := atkConfig() // MaxConcurrentStreams 16, AcceptBacklog 16
		_, p, g := atkHandshaken(t, cfg)
		const extra = 500
		heap := atkHeapStart()
		first := p.nextID
		p.mustWrite(t, p.openFrames(cfg.MaxConcurrentStreams+extra, nil))
		p.carriesOn(t) // every REFUSE was queued before the ACK
		if n := p.refusals[frame.CodeStreamLimit].Load(); n != extra {
			t.Errorf("%d REFUSE STREAM_LIMIT, want %d (one per stream past the limit)", n, extra)
		}
		accepted := 0
		for accepted < cfg.MaxConcurrentStreams {
			f := p.await(t, "ACCEPT or REFUSE", func(f *frame.Frame) bool {
				return f.Type == frame.FrameAccept || f.Type == frame.FrameRefuse
			})
			if f.Type == frame.FrameAccept {
				if f.StreamID >= first+2*uint32(cfg.MaxConcurrentStreams) {
					t.Fatalf("ACCEPT of stream %d, past the first %d", f.StreamID, cfg.MaxConcurrentStreams)
				}
				accepted++
			} else if f.Code != frame.CodeStreamLimit {
				t.Fatalf("%v, want REFUSE STREAM_LIMIT", f)
			}
		}
		if n := p.srv.NumStreams(); n != cfg.MaxConcurrentStreams {
			t.Errorf("the server tracks %d streams, want MaxConcurrentStreams %d", n, cfg.MaxConcurrentStreams)
		}
		heap.check(t, atkBound(cfg, atkShortRefuse), "an open flood past MaxConcurrentStreams")
		// Once one stream ends, another may open.
		p.mustWrite(t, frame.AppendReset(nil, first, frame.CodeCancel, ""))
		p.carriesOn(t)
		p.echoStream(t, "room again")
		g.check(t, "after the attack")
	})

	t.Run("past AcceptBacklog: REFUSE STREAM_LIMIT", func(t *testing.T) {
		cfg := atkConfig()
		cfg.AcceptBacklog = 4 // MaxConcurrentStreams 16 is more than the backlog and the handler hold
		h, p, g := atkHandshaken(t, cfg)
		const total = 101
		heap := atkHeapStart()
		// The first stream's handler blocks: the rest wait in the backlog.
		p.open(t, http.Header{"Mode": {"block"}})
		p.mustWrite(t, p.openFrames(total-1, nil))
		p.carriesOn(t)
		refused := int(p.refusals[frame.CodeStreamLimit].Load())
		// The handler took stream 1 off the backlog, or not yet when the
		// others arrived.
		if lo, hi := total-cfg.AcceptBacklog-1, total-cfg.AcceptBacklog; refused < lo || refused > hi {
			t.Errorf("%d REFUSE STREAM_LIMIT, want %d or %d", refused, lo, hi)
		}
		if n := p.counts[frame.FrameRefuse].Load(); n != int64(refused) {
			t.Errorf("%d REFUSE in all, %d with STREAM_LIMIT", n, refused)
		}
		if n := p.counts[frame.FrameAccept].Load(); n != 0 {
			t.Errorf("%d ACCEPT while the handler is blocked", n)
		}
		if n := p.srv.NumStreams(); n > cfg.AcceptBacklog+1 {
			t.Errorf("the server tracks %d streams, more than AcceptBacklog %d and the one in the handler", n, cfg.AcceptBacklog)
		}
		heap.check(t, atkBound(cfg, atkShortRefuse), "an open flood past AcceptBacklog")
		h.releaseHandlers()
		atkPoll(t, atkWait, "the handler accepts every stream in the backlog", func() bool {
			return p.counts[frame.FrameAccept].Load() == int64(total-refused)
		})
		p.carriesOn(t)
		g.check(t, "after the attack")
	})
}

func TestAttackHeaderBlockBombs(t *testing.T) {
	bigValue := func(blockLen int) http.Header {
		// A block with one name of 3 octets and one value: 2 + 2 + 3 + 2
		// + 4 octets of structure.
		return http.Header{"Big": {strings.Repeat("v", blockLen-13)}}
	}

	for _, tt := range []struct {
		name     string
		blockLen func(cfg *Config) int
	}{
		{"a block one octet over MaxHeaderBytes", func(cfg *Config) int { return cfg.MaxHeaderBytes + 1 }},
		{"a block of 1 MiB", func(*Config) int { return 1 << 20 }},
	} {
		t.Run(tt.name+": FRAME_SIZE_ERROR", func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkHandshaken(t, cfg)
			open := openFrame(p.nextID, bigValue(tt.blockLen(cfg)))
			if n := len(open) - frame.HeaderSize; n != tt.blockLen(cfg) {
				t.Fatalf("block of %d octets, want %d", n, tt.blockLen(cfg))
			}
			heap := atkHeapStart()
			// The server answers the header alone and closes, so the
			// write of a large payload may fail: that is the point.
			if err := p.write(open); err != nil {
				t.Logf("attacker write: %v", err)
			}
			p.expectGoAway(t, frame.CodeFrameSizeError, atkWait)
			heap.check(t, atkBound(cfg, atkPingAck), tt.name)
			g.check(t, "after the attack")
		})
	}

	t.Run("1,025 tiny values: REFUSE PROTOCOL_ERROR, 1,024 are fine", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		heap := atkHeapStart()
		bomb := atkBlock("Tiny", make([]int, frame.MaxHeaderValues+1)...)
		id := p.nextID
		p.nextID += 2
		p.mustWrite(t, header(frame.FrameOpen, 0, id, bomb))
		f := p.await(t, "an answer to the OPEN", func(f *frame.Frame) bool { return f.StreamID == id })
		if f.Type != frame.FrameRefuse || f.Code != frame.CodeProtocolError {
			t.Fatalf("%v, want REFUSE PROTOCOL_ERROR", f)
		}
		t.Logf("%v", f)
		p.carriesOn(t)
		ok := atkBlock("Tiny", make([]int, frame.MaxHeaderValues)...)
		id = p.nextID
		p.nextID += 2
		p.mustWrite(t, header(frame.FrameOpen, 0, id, ok))
		p.awaitFrame(t, frame.FrameAccept, id)
		st := p.srv.lookup(id)
		if st == nil || len(st.Headers()["Tiny"]) != frame.MaxHeaderValues {
			t.Fatalf("the server's stream %d does not have the %d values", id, frame.MaxHeaderValues)
		}
		heap.check(t, atkBound(cfg, atkShortRefuse), "header blocks of 1,025 and 1,024 values")
		p.echoStream(t, "still here")
		g.check(t, "after the attack")
	})

	t.Run("one value just under MaxHeaderBytes, on every stream allowed: accepted", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		h := bigValue(cfg.MaxHeaderBytes)
		if n := len(openFrame(1, h)) - frame.HeaderSize; n != cfg.MaxHeaderBytes {
			t.Fatalf("block of %d octets, want %d", n, cfg.MaxHeaderBytes)
		}
		first := p.nextID
		buf := p.openFrames(cfg.MaxConcurrentStreams, h)
		heap := atkHeapStart()
		p.mustWrite(t, buf)
		for i := range cfg.MaxConcurrentStreams {
			p.awaitFrame(t, frame.FrameAccept, first+2*uint32(i))
		}
		for i := range cfg.MaxConcurrentStreams {
			st := p.srv.lookup(first + 2*uint32(i))
			if st == nil || len(st.Headers().Get("Big")) != cfg.MaxHeaderBytes-13 {
				t.Fatalf("the server's stream %d does not have the big value", first+2*uint32(i))
			}
		}
		heap.check(t, atkBound(cfg, atkShortRefuse), "MaxConcurrentStreams streams with the largest header block")
		// One more is past the stream limit, not past anything else.
		id := p.nextID
		p.mustWrite(t, openFrame(p.nextID, h))
		p.nextID += 2
		if f := p.await(t, "an answer to the OPEN", func(f *frame.Frame) bool { return f.StreamID == id }); f.Type != frame.FrameRefuse || f.Code != frame.CodeStreamLimit {
			t.Fatalf("%v, want REFUSE STREAM_LIMIT", f)
		}
		p.carriesOn(t)
		g.check(t, "after the attack")
	})
}

func TestAttackDataPastTheWindow(t *testing.T) {
	t.Run("one frame longer than the whole window: FLOW_CONTROL_ERROR", func(t *testing.T) {
		cfg := atkConfig()
		cfg.InitialStreamWindow, cfg.MaxStreamWindow = 8<<10, 8<<10 // below MaxFrameSize 16 KiB
		_, p, g := atkHandshaken(t, cfg)
		id := p.openAccepted(t, nil)
		heap := atkHeapStart()
		p.mustWrite(t, frame.AppendData(nil, id, 0, make([]byte, cfg.InitialStreamWindow+1)))
		p.expectGoAway(t, frame.CodeFlowControlError, atkWait)
		heap.check(t, atkBound(cfg, atkPingAck), "a frame past the window")
		g.check(t, "after the attack")
	})

	t.Run("one octet past a full window the handler does not read: FLOW_CONTROL_ERROR", func(t *testing.T) {
		cfg := atkConfig()
		_, p, g := atkHandshaken(t, cfg)
		id := p.openAccepted(t, http.Header{"Mode": {"hold"}})
		chunk := make([]byte, cfg.MaxFrameSize)
		heap := atkHeapStart()
		for range int(cfg.InitialStreamWindow) / len(chunk) {
			p.mustWrite(t, frame.AppendData(nil, id, 0, chunk))
		}
		p.carriesOn(t) // a full window is allowed, and buffered
		st := p.srv.lookup(id)
		if st == nil {
			t.Fatalf("the server does not track stream %d", id)
		}
		st.mu.Lock()
		buffered := st.recv.buffered()
		st.mu.Unlock()
		if buffered != int(cfg.InitialStreamWindow) {
			t.Fatalf("the server buffers %d octets of stream %d, want the whole window %d", buffered, id, cfg.InitialStreamWindow)
		}
		heap.sample()
		p.mustWrite(t, frame.AppendData(nil, id, 0, []byte{0}))
		p.expectGoAway(t, frame.CodeFlowControlError, atkWait)
		heap.check(t, atkBound(cfg, atkPingAck), "a full window, then one octet more")
		g.check(t, "after the attack")
	})
}

func TestAttackOneOctetDataFrames(t *testing.T) {
	// A million DATA frames of one octet each on a stream whose handler
	// reads everything, within the windows the server grants.
	cfg := atkConfig()
	h, p, g := atkHandshaken(t, cfg)
	id := p.openAccepted(t, http.Header{"Mode": {"sink"}})
	// A million; a quarter of that under the race detector, which slows
	// this loop about twentyfold (6 s for the million on 2 cores).
	total := int64(1_000_000)
	if atkRace() {
		total /= 4
	}
	const perWrite = 4096
	buf := make([]byte, 0, perWrite*(frame.HeaderSize+1))
	one := []byte{'x'}

	heap := atkHeapStart()
	stopWatch := heap.watch(t, 20*time.Millisecond, nil)
	stopGood := g.during(t)
	start := time.Now()
	for sent := int64(0); sent < total; {
		n := p.takeCredit(t, id, min(perWrite, total-sent))
		buf = buf[:0]
		for range n {
			buf = frame.AppendData(buf, id, 0, one)
		}
		p.mustWrite(t, buf)
		sent += n
	}
	p.mustWrite(t, frame.AppendData(nil, id, frame.FlagEndStream, nil))
	res := atkRecv(t, h.sunk, "the handler to read the stream to its end")
	elapsed := time.Since(start)
	stopGood()
	stopWatch()
	if res.err != nil || res.n != total {
		t.Fatalf("the handler read %d octets (error %v), %d were sent", res.n, res.err, total)
	}
	t.Logf("%d one-octet DATA frames delivered in %v", total, elapsed.Round(time.Millisecond))
	p.carriesOn(t)
	heap.check(t, atkBound(cfg, atkWindowUpdate), fmt.Sprintf("%d one-octet DATA frames", total))
	p.echoStream(t, "still here")
	g.check(t, "after the attack")
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

func TestAttackFrameHeaderThatPromisesAHugeLength(t *testing.T) {
	huge := func(typ frame.FrameType, id uint32) []byte {
		return frame.AppendFrameHeader(nil, frame.FrameHeader{Length: frame.MaxLength, Type: typ, StreamID: id})
	}
	// Over the limit: the header alone is enough to end the session, at
	// once (SPEC 3.1, 10.1), long before keepalive (20 s here) would.
	for _, tt := range []struct {
		name  string
		first bool // sent instead of the first SETTINGS
		typ   frame.FrameType
		id    uint32
	}{
		{"DATA on an open stream", false, frame.FrameData, 1},
		{"OPEN", false, frame.FrameOpen, 1},
		{"an unknown type", false, 0x42, 0},
		{"RESET", false, frame.FrameReset, 1},
		{"REFUSE", false, frame.FrameRefuse, 2},
		{"WINDOW_UPDATE", false, frame.FrameWindowUpdate, 1},
		{"PING", false, frame.FramePing, 0},
		{"GOAWAY", false, frame.FrameGoAway, 0},
		{"the first SETTINGS", true, frame.FrameSettings, 0},
	} {
		t.Run("over the limit: "+tt.name+": FRAME_SIZE_ERROR at once", func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkNewTest(t, cfg, 0, nil)
			if tt.first {
				p.mustWrite(t, []byte(frame.Preface))
				p.readHello(t)
				p.start(false) // an answer to the server's PING would be a first frame
			} else {
				p.handshake(t)
			}
			if tt.typ == frame.FrameData {
				p.open(t, nil)
				p.awaitFrame(t, frame.FrameAccept, tt.id)
			}
			heap := atkHeapStart()
			start := time.Now()
			p.stall(t, huge(tt.typ, tt.id))
			p.expectGoAway(t, frame.CodeFrameSizeError, 2*time.Second)
			t.Logf("GOAWAY %v after the header", time.Since(start).Round(time.Millisecond))
			// A payload buffer of the promised 16 MiB would be far past
			// the bound.
			heap.check(t, atkBound(cfg, atkPingAck), "a header promising 16 MiB")
			g.check(t, "after the attack")
		})
	}

	// Within the limit, then silence: the payload never comes. It costs
	// one payload buffer at most, and keepalive ends it (SPEC 10.1).
	for _, tt := range []struct {
		name string
		hdr  func(cfg *Config) frame.FrameHeader
	}{
		{"DATA of MaxFrameSize on an open stream", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: uint32(cfg.MaxFrameSize), Type: frame.FrameData, StreamID: 1}
		}},
		{"OPEN of MaxHeaderBytes", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: uint32(cfg.MaxHeaderBytes), Type: frame.FrameOpen, StreamID: 3}
		}},
		{"an unknown type of MaxFrameSize", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: uint32(cfg.MaxFrameSize), Type: 0x42}
		}},
		{"GOAWAY with the longest reason", func(cfg *Config) frame.FrameHeader {
			return frame.FrameHeader{Length: 8 + frame.MaxReasonBytes, Type: frame.FrameGoAway}
		}},
	} {
		t.Run("within the limit, then silence: "+tt.name+": keepalive TIMEOUT", func(t *testing.T) {
			cfg := atkKeepAliveConfig()
			_, p, g := atkNewTest(t, cfg, 0, nil)
			p.handshake(t) // answers PINGs until the stall
			p.open(t, nil)
			p.awaitFrame(t, frame.FrameAccept, 1)
			h := tt.hdr(cfg)
			// The header and half the payload, then nothing, not even
			// PING answers.
			stalled := append(frame.AppendFrameHeader(nil, h), make([]byte, h.Length/2)...)
			heap := atkHeapStart()
			start := time.Now()
			p.stall(t, stalled)
			p.expectGoAway(t, frame.CodeTimeout, atkKeepAliveBound(cfg))
			t.Logf("GOAWAY %v after the stall", time.Since(start).Round(time.Millisecond))
			atkKeepAliveEnded(t, p.srv)
			heap.check(t, atkBound(cfg, atkPingAck), "a frame stalled mid-payload")
			g.check(t, "after the attack")
		})
	}
}

func TestAttackSlowloris(t *testing.T) {
	for _, tt := range []struct {
		name  string
		sends []byte
	}{
		{"nothing at all", nil},
		{"the preface, then nothing", []byte(frame.Preface)},
		{"the preface and SETTINGS, then nothing", frame.AppendSettings([]byte(frame.Preface), atkSettings...)},
	} {
		t.Run(tt.name+": keepalive TIMEOUT", func(t *testing.T) {
			cfg := atkKeepAliveConfig()
			_, p, g := atkNewTest(t, cfg, 0, nil)
			heap := atkHeapStart()
			if tt.sends != nil {
				p.mustWrite(t, tt.sends)
			}
			p.readHello(t)
			p.start(false) // reads, answers nothing
			stopGood := g.during(t)
			p.expectGoAway(t, frame.CodeTimeout, atkKeepAliveBound(cfg))
			took := time.Since(p.dialed)
			stopGood()
			t.Logf("GOAWAY TIMEOUT %v after the connection (KeepAliveTimeout %v)", took.Round(time.Millisecond), cfg.KeepAliveTimeout)
			if took < cfg.KeepAliveTimeout {
				t.Errorf("the session ended after %v, before KeepAliveTimeout %v", took, cfg.KeepAliveTimeout)
			}
			atkKeepAliveEnded(t, p.srv)
			heap.check(t, atkBound(cfg, atkPingAck), "a silent peer")
			// The well-behaved session outlived several keepalive
			// timeouts: it answered the server's pings.
			g.check(t, "after the attack")
		})
	}
}

func TestAttackPeerThatNeverReads(t *testing.T) {
	// The attacker grants the largest window, opens a stream whose handler
	// writes without end, and never reads. Small socket buffers make the
	// server's writes block soon.
	cfg := atkConfig()
	h, p, g := atkNewTestSmallBuffers(t, cfg)
	p.mustWrite(t, frame.AppendSettings([]byte(frame.Preface),
		frame.Setting{ID: frame.SettingInitialStreamWindow, Value: frame.MaxWindow}))
	p.readHello(t) // and never read again
	heap := atkHeapStart()
	stopWatch := heap.watchControlQueue(t, p.srv)
	stopGood := g.during(t)
	p.open(t, http.Header{"Mode": {"flood"}})

	// The server's writes block on TCP: what the handler got written stops
	// growing (polled; there is no signal for "blocked").
	var last int64 = -1
	stable := 0
	atkPoll(t, atkWait, "the handler's writes to block", func() bool {
		n := h.flooded.Load()
		if n > 0 && n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		return stable >= 25 // 50 ms without progress
	})
	heap.sample()
	t.Logf("the handler wrote %d KiB before its writes blocked", last>>10)
	if p.srv.isClosed() {
		t.Fatalf("the session ended before the pings: %v", p.srv.closedErr())
	}

	// Now PINGs: their ACKs cannot be written, so they queue, up to the
	// cap (SPEC 10.2).
	sent := p.floodPings(atkPings(256, [4]byte{9, 9, 9, 9}))
	err := atkSessionError(t, p.srv, frame.CodeEnhanceYourCalm)
	stopGood()
	peakQueued := stopWatch()
	t.Logf("%d PINGs sent, then %v (peak control queue seen: %d frames)", sent, err, peakQueued)
	if peakQueued > maxQueuedControl {
		t.Errorf("%d control frames queued, past the cap %d", peakQueued, maxQueuedControl)
	}
	if flooded := h.flooded.Load(); flooded > last+(1<<20) {
		t.Errorf("the handler wrote %d octets in all, %d before the pings: writes to a peer that does not read did not stay blocked", flooded, last)
	}
	heap.check(t, atkBound(cfg, atkPingAck), "a peer that never reads")
	g.check(t, "after the attack")
}

// atkServerOpens makes the attacker's server session open a stream toward
// the attacker, and returns its ID (read from the OPEN) and the result of
// OpenStream once the attacker answers.
func atkServerOpens(t *testing.T, p *atkPeer) (uint32, <-chan error) {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), atkWait)
		defer cancel()
		_, err := p.srv.OpenStream(ctx, nil)
		res <- err
	}()
	f := p.await(t, "the server's OPEN", func(f *frame.Frame) bool { return f.Type == frame.FrameOpen })
	return f.StreamID, res
}

// atkServerOpensAccepted is atkServerOpens with the attacker accepting the
// stream: it returns the stream's ID once the server's OpenStream succeeded.
func atkServerOpensAccepted(t *testing.T, p *atkPeer) uint32 {
	t.Helper()
	id, res := atkServerOpens(t, p)
	p.mustWrite(t, frame.AppendAccept(nil, id))
	if err := atkRecv(t, res, "OpenStream to return"); err != nil {
		t.Fatal(err)
	}
	return id
}

// atkWithReason returns a frame of type typ (REFUSE, RESET or GOAWAY) whose
// reason has n octets, encoded by hand: the encoders cut reasons at 1,024.
func atkWithReason(typ frame.FrameType, id uint32, code frame.ErrCode, n int) []byte {
	var p []byte
	if typ == frame.FrameGoAway {
		p = binary.BigEndian.AppendUint32(p, 0) // last stream ID
		id = 0
	}
	p = binary.BigEndian.AppendUint32(p, uint32(code))
	p = append(p, bytes.Repeat([]byte("r"), n)...)
	return header(typ, 0, id, p)
}

func TestAttackReasonTexts(t *testing.T) {
	reason := strings.Repeat("r", frame.MaxReasonBytes)

	t.Run("the decoder rejects 1,025 octets in every reason", func(t *testing.T) {
		for _, typ := range []frame.FrameType{frame.FrameRefuse, frame.FrameReset, frame.FrameGoAway} {
			for _, n := range []int{frame.MaxReasonBytes, frame.MaxReasonBytes + 1} {
				b := atkWithReason(typ, 1, frame.CodeCancel, n)
				_, err := frame.NewReader(bytes.NewReader(b), frame.Limits{}).ReadFrame()
				var se *frame.SessionError
				switch {
				case n <= frame.MaxReasonBytes && err != nil:
					t.Errorf("%v with a reason of %d octets: %v", typ, n, err)
				case n > frame.MaxReasonBytes && (!errors.As(err, &se) || se.Code != frame.CodeFrameSizeError):
					t.Errorf("%v with a reason of %d octets: %v, want FRAME_SIZE_ERROR", typ, n, err)
				}
			}
		}
	})

	for _, tt := range []struct {
		name string
		// attack sends the frames; it returns the code of the GOAWAY the
		// server must answer with, or CodeNoError if the session carries
		// on.
		attack func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode
	}{
		{"RESET with 1,024 octets: carries on", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id := p.openAccepted(t, http.Header{"Mode": {"sink"}})
			p.mustWrite(t, atkWithReason(frame.FrameReset, id, frame.CodeCancel, frame.MaxReasonBytes))
			res := atkRecv(t, h.sunk, "the handler's Read to end")
			if !errors.Is(res.err, ErrStreamReset) || !strings.Contains(res.err.Error(), strconvQuote(reason)) {
				t.Errorf("the handler's stream ended with %v, want the reset with the peer's reason quoted", res.err)
			}
			return frame.CodeNoError
		}},
		{"RESET with 1,025 octets: FRAME_SIZE_ERROR", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id := p.openAccepted(t, nil)
			p.mustWrite(t, atkWithReason(frame.FrameReset, id, frame.CodeCancel, frame.MaxReasonBytes+1))
			return frame.CodeFrameSizeError
		}},
		{"REFUSE with 1,024 octets: carries on", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id, res := atkServerOpens(t, p)
			p.mustWrite(t, atkWithReason(frame.FrameRefuse, id, frame.CodeRefused, frame.MaxReasonBytes))
			err := atkRecv(t, res, "OpenStream to return")
			if !errors.Is(err, ErrStreamRefused) || !strings.Contains(err.Error(), reason) {
				t.Errorf("OpenStream failed with %v, want the refusal with the peer's reason", err)
			}
			return frame.CodeNoError
		}},
		{"REFUSE with 1,025 octets: FRAME_SIZE_ERROR", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id, res := atkServerOpens(t, p)
			p.mustWrite(t, atkWithReason(frame.FrameRefuse, id, frame.CodeRefused, frame.MaxReasonBytes+1))
			if err := atkRecv(t, res, "OpenStream to return"); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("OpenStream failed with %v, want ErrSessionClosed", err)
			}
			return frame.CodeFrameSizeError
		}},
		{"a handler error of 2,000 octets: REFUSE cut to 1,024 at a character boundary", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			id := p.open(t, http.Header{"Mode": {"refuse"}})
			f := p.awaitFrame(t, frame.FrameRefuse, id)
			if f.Code != frame.CodeRefused || len(f.Reason) > frame.MaxReasonBytes || len(f.Reason) < frame.MaxReasonBytes-utf8.UTFMax ||
				!utf8.ValidString(f.Reason) || !strings.HasPrefix(atkLongError, f.Reason) {
				t.Errorf("REFUSE %v with a reason of %d octets (valid UTF-8: %v), want REFUSED with the first ~1,024 octets of the error",
					f.Code, len(f.Reason), utf8.ValidString(f.Reason))
			}
			return frame.CodeNoError
		}},
		{"GOAWAY NO_ERROR with 1,024 octets: carries on", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			p.mustWrite(t, atkWithReason(frame.FrameGoAway, 0, frame.CodeNoError, frame.MaxReasonBytes))
			p.carriesOn(t)
			if _, err := p.srv.OpenStream(context.Background(), nil); !errors.Is(err, ErrGoAway) {
				t.Errorf("the server opened a stream after the peer's GOAWAY: %v", err)
			}
			return frame.CodeNoError
		}},
		{"GOAWAY SESSION_CLOSED with 1,024 octets: the session ends, quoting it", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			p.mustWrite(t, atkWithReason(frame.FrameGoAway, 0, frame.CodeSessionClosed, frame.MaxReasonBytes))
			atkRecv(t, p.srv.CloseChan(), "the server session to end")
			if err := p.srv.closedErr(); !errors.Is(err, ErrGoAway) || !strings.Contains(err.Error(), strconvQuote(reason)) {
				t.Errorf("the server session ended with %v, want the peer's GOAWAY with its reason quoted", err)
			}
			return frame.CodeSessionClosed // no GOAWAY back: the peer closed
		}},
		{"GOAWAY with 1,025 octets: FRAME_SIZE_ERROR", func(t *testing.T, h *atkServer, p *atkPeer) frame.ErrCode {
			p.mustWrite(t, atkWithReason(frame.FrameGoAway, 0, frame.CodeSessionClosed, frame.MaxReasonBytes+1))
			return frame.CodeFrameSizeError
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := atkConfig()
			h, p, g := atkHandshaken(t, cfg)
			heap := atkHeapStart()
			switch code := tt.attack(t, h, p); code {
			case frame.CodeNoError:
				p.carriesOn(t)
				p.echoStream(t, "still here")
			case frame.CodeSessionClosed:
			default:
				p.expectGoAway(t, code, atkWait)
			}
			// At most one REFUSE with a long reason (9 + 4 + 1,024
			// octets) is queued, among short frames: well within the allowance for
			// a full queue of short ones.
			heap.check(t, atkBound(cfg, atkShortRefuse), tt.name)
			g.check(t, "after the attack")
		})
	}
}

// strconvQuote is how the package quotes peer texts in errors (%q).
func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

func TestAttackFramesOnClosedUnknownAndIdleStreams(t *testing.T) {
	// Each case sets up streams, then sends frames for some stream ID; the
	// server must ignore frames for closed streams (SPEC 6.3, 6.4) and end
	// the session with PROTOCOL_ERROR for IDs never opened (idle).
	// closedFrames are every stream frame that may arrive after a close.
	closedFrames := func(id uint32) []byte {
		b := frame.AppendData(nil, id, 0, []byte("late"))
		b = frame.AppendData(b, id, frame.FlagEndStream, nil)
		b = frame.AppendWindowUpdate(b, id, 1000)
		b = frame.AppendReset(b, id, frame.CodeCancel, "late")
		return b
	}
	type setup func(t *testing.T, p *atkPeer) []byte
	for _, tt := range []struct {
		name  string
		setup setup // returns the frames to send
		code  frame.ErrCode
	}{
		// Closed streams: ignored.
		{"a stream the attacker reset", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, nil)
			p.mustWrite(t, frame.AppendReset(nil, id, frame.CodeCancel, ""))
			return append(closedFrames(id), frame.AppendAccept(nil, id)...)
		}, frame.CodeNoError},
		{"a stream the server reset", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, http.Header{"Mode": {"reset"}})
			p.awaitFrame(t, frame.FrameReset, id)
			return closedFrames(id)
		}, frame.CodeNoError},
		{"a stream the server refused", func(t *testing.T, p *atkPeer) []byte {
			id := p.open(t, http.Header{"Mode": {"refuse"}})
			p.awaitFrame(t, frame.FrameRefuse, id)
			return closedFrames(id)
		}, frame.CodeNoError},
		{"a stream both sides ended", func(t *testing.T, p *atkPeer) []byte {
			p.echoStream(t, "done")
			return closedFrames(p.nextID - 2)
		}, frame.CodeNoError},
		{"a stream the server opened and the attacker refused", func(t *testing.T, p *atkPeer) []byte {
			id, res := atkServerOpens(t, p)
			p.mustWrite(t, frame.AppendRefuse(nil, id, frame.CodeRefused, "no"))
			atkRecv(t, res, "OpenStream to return")
			return append(closedFrames(id), frame.AppendRefuse(nil, id, frame.CodeRefused, "again")...)
		}, frame.CodeNoError},
		{"an ID the attacker skipped (below one it opened)", func(t *testing.T, p *atkPeer) []byte {
			p.nextID = 5
			p.openAccepted(t, nil) // stream 5
			return closedFrames(3)
		}, frame.CodeNoError},
		// Never opened (idle): PROTOCOL_ERROR, whatever the parity.
		{"DATA on the attacker's next ID", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendData(nil, 1, 0, []byte("x"))
		}, frame.CodeProtocolError},
		{"WINDOW_UPDATE on an attacker ID past the last it opened", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, nil)
			return frame.AppendWindowUpdate(nil, id+2, 1)
		}, frame.CodeProtocolError},
		{"RESET on a far attacker ID", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendReset(nil, 1001, frame.CodeCancel, "")
		}, frame.CodeProtocolError},
		{"DATA on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendData(nil, 2, 0, []byte("x"))
		}, frame.CodeProtocolError},
		{"WINDOW_UPDATE on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendWindowUpdate(nil, 2, 1)
		}, frame.CodeProtocolError},
		{"RESET on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendReset(nil, 4, frame.CodeCancel, "")
		}, frame.CodeProtocolError},
		{"ACCEPT on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendAccept(nil, 2)
		}, frame.CodeProtocolError},
		{"REFUSE on a server ID never opened", func(t *testing.T, p *atkPeer) []byte {
			return frame.AppendRefuse(nil, 2, frame.CodeRefused, "")
		}, frame.CodeProtocolError},
		{"WINDOW_UPDATE on the server's next ID after one it opened", func(t *testing.T, p *atkPeer) []byte {
			id := atkServerOpensAccepted(t, p)
			return frame.AppendWindowUpdate(nil, id+2, 1)
		}, frame.CodeProtocolError},
		{"OPEN of the server's parity", func(t *testing.T, p *atkPeer) []byte {
			return openFrame(2, nil)
		}, frame.CodeProtocolError},
		{"OPEN of a closed stream's ID", func(t *testing.T, p *atkPeer) []byte {
			id := p.openAccepted(t, nil)
			p.mustWrite(t, frame.AppendReset(nil, id, frame.CodeCancel, ""))
			return openFrame(id, nil)
		}, frame.CodeProtocolError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkHandshaken(t, cfg)
			frames := tt.setup(t, p)
			heap := atkHeapStart()
			p.mustWrite(t, frames)
			if tt.code == frame.CodeNoError {
				p.carriesOn(t)
				p.echoStream(t, "still here")
			} else {
				p.expectGoAway(t, tt.code, atkWait)
			}
			heap.check(t, atkBound(cfg, atkShortRefuse), tt.name)
			g.check(t, "after the attack")
		})
	}
}

func TestAttackGoAwayWithABogusLastStreamID(t *testing.T) {
	// SPEC 4.8: a last stream ID of the sender's own parity, or higher than
	// any stream the receiver opened, is a PROTOCOL_ERROR, whatever the
	// code.
	for _, tt := range []struct {
		name         string
		serverOpens  bool // the server opens stream 2 first (accepted)
		last         uint32
		code         frame.ErrCode
		want         frame.ErrCode // CodeNoError: carries on
		attackerOpen bool          // the attacker opens stream 1 first
	}{
		{"2 when the server opened none", false, 2, frame.CodeNoError, frame.CodeProtocolError, false},
		{"2 with a closing code when the server opened none", false, 2, frame.CodeSessionClosed, frame.CodeProtocolError, false},
		{"1, of the attacker's own parity", false, 1, frame.CodeNoError, frame.CodeProtocolError, true},
		{"4 when the server opened only 2", true, 4, frame.CodeNoError, frame.CodeProtocolError, false},
		{"4,294,967,294", true, 0xfffffffe, frame.CodeNoError, frame.CodeProtocolError, false},
		{"2 when the server opened 2 (valid)", true, 2, frame.CodeNoError, frame.CodeNoError, false},
		{"0 (valid)", true, 0, frame.CodeNoError, frame.CodeNoError, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := atkConfig()
			_, p, g := atkHandshaken(t, cfg)
			if tt.attackerOpen {
				p.openAccepted(t, nil)
			}
			if tt.serverOpens {
				atkServerOpensAccepted(t, p)
			}
			heap := atkHeapStart()
			p.mustWrite(t, frame.AppendGoAway(nil, tt.last, tt.code, "bogus?"))
			if tt.want == frame.CodeNoError {
				p.carriesOn(t)
			} else {
				p.expectGoAway(t, tt.want, atkWait)
			}
			heap.check(t, atkBound(cfg, atkShortRefuse), tt.name)
			g.check(t, "after the attack")
		})
	}
}

// A peer that opens every stream it may and fills every window it is
// granted, while the application reads none of them, makes the session hold
// no more than the documented bound, which no longer scales with
// InitialStreamWindow: every stream has its floor, and what is granted past
// it (and the headers) comes out of MaxSessionWindow (SPEC 7.4, 10.3). The
// session, and a new stream on it, carry on.
func TestAttackEveryWindowFilledAndNeverRead(t *testing.T) {
	cfg := atkConfig()
	cfg.MaxConcurrentStreams = 400
	cfg.AcceptBacklog = 400
	_, p, g := atkHandshaken(t, cfg)
	heap := atkHeapStart()
	streams := cfg.MaxConcurrentStreams - 1 // one place left for the stream that proves the session lives
	first := p.nextID
	p.mustWrite(t, p.openFrames(streams, http.Header{"Mode": {"hold"}}))
	ids := make([]uint32, streams)
	for i := range ids {
		ids[i] = first + 2*uint32(i)
		p.awaitFrame(t, frame.FrameAccept, ids[i])
	}
	// Twice over: the first DATA on a stream raises its window from the
	// floor while the budget lasts, and the second pass fills that too.
	sent := int64(0)
	chunk := make([]byte, cfg.MaxFrameSize)
	for range 2 {
		for _, id := range ids {
			for {
				p.mu.Lock()
				n := min(p.win[id], int64(len(chunk)))
				p.win[id] -= n
				p.mu.Unlock()
				if n == 0 {
					break
				}
				p.mustWrite(t, frame.AppendData(nil, id, 0, chunk[:n]))
				sent += n
			}
		}
		p.roundTrip(t) // every WINDOW_UPDATE the DATA earned has arrived
		heap.sample()
	}
	floor := int64(cfg.streamWindowFloor())
	if min := int64(streams) * floor; sent < min {
		t.Fatalf("the attacker could send %d octets, want at least the floor of every stream (%d)", sent, min)
	}
	if max := int64(streams)*floor + int64(cfg.MaxSessionWindow); sent > max {
		t.Fatalf("the attacker could send %d octets, more than the floors and the budget (%d)", sent, max)
	}
	t.Logf("%d streams took %d KiB: %d KiB past their floors", streams, sent>>10, (sent-int64(streams)*floor)>>10)
	heap.check(t, atkBound(cfg, atkWindowUpdate), "every window filled, none read")
	p.echoStream(t, "a new stream still has a window")
	g.check(t, "after the attack")
}
