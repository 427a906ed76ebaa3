package fuzz

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

// The engine targets run a real session (mux.Server, or mux.Client) against
// a peer whose frames come from the fuzz input: a small program of opens,
// data (within and past windows), resets, window updates, pings, goaways,
// settings, unknown frames and raw garbage. Properties checked for every
// input:
//   - no panic, and no deadlock: after the program the session either has
//     ended or answers a PING within a bound;
//   - the heap does not grow past a bound derived from the Config;
//   - once both ends are closed, no goroutine of the engine or of the
//     driver is left;
//   - if every frame the program sent followed the SPEC, each stream the
//     peer half-closed delivered exactly the bytes sent on it.

// engineConfig has small limits, so that inputs reach them cheaply.
var engineConfig = mux.Config{
	MaxFrameSize:         1024,
	InitialStreamWindow:  4096,
	MaxStreamWindow:      16 << 10,
	MaxSessionWindow:     64 << 10,
	MaxConcurrentStreams: 8,
	AcceptBacklog:        4,
	MaxHeaderBytes:       512,
	KeepAliveInterval:    -1,
	StreamOpenTimeout:    time.Second,
}

// heapBound, plus the test's own copies of the data, is far above what the
// Config allows a peer to make the session hold (8 streams of at most 16 KiB
// windows, twice over, plus headers and bookkeeping), and far below what a
// missing limit would cost.
const heapBound = 8 << 20

func FuzzServerEngine(f *testing.F) { fuzzEngine(f, false) }
func FuzzClientEngine(f *testing.F) { fuzzEngine(f, true) }

func fuzzEngine(f *testing.F, sessionIsClient bool) {
	for _, seed := range engineSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, program []byte) {
		runEngine(t, program, sessionIsClient)
	})
}

// Program operations: the first byte of each step, modulo opCount.
const (
	opOpen = iota
	opData
	opReset
	opWindowUpdate
	opPing
	opGoAway
	opGarbage
	opSettings
	opUnknown
	opDataPastWindow
	opEnd
	opBadHeaders
	opCount
)

// engineSeeds are programs recorded from normal exchanges, plus a few that
// break a rule each.
func engineSeeds() [][]byte {
	return [][]byte{
		{opOpen, 1, opData, 0, 40, opData, 0, 200, opEnd, 0},
		{opOpen, 1, opOpen, 2, opData, 0, 100, opData, 1, 100, opEnd, 0, opEnd, 1, opPing},
		{opOpen, 0, opData, 0, 255, opData, 0, 255, opData, 0, 255, opData, 0, 255, opEnd, 0},
		{opOpen, 0, opReset, 0, opData, 0, 10, opOpen, 0, opWindowUpdate, 0, 0, 10},
		{opOpen, 0, opGoAway, 0, 0, opData, 0, 5, opEnd, 0},
		{opOpen, 0, opDataPastWindow, 0},
		{opGarbage, 8, 1, 2, 3, 4, 5, 6, 7, 8},
		{opSettings},
		{opUnknown, 5, opOpen, 0, opData, 0, 1, opEnd, 0},
		{opBadHeaders, opOpen, 0, opEnd, 0},
		{opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0, opOpen, 0},
		{opWindowUpdate, 0, 0, 0},
		{opOpen, 0, opWindowUpdate, 0, 0x7f, 0xff},
		{opGoAway, 99, 1},
	}
}

// driverStream is the peer's view of one stream it opened.
type driverStream struct {
	id    uint32
	sent  []byte
	ended bool
	dead  bool // the driver reset it or broke a rule: no integrity check

	// Set by the drain goroutine: guarded by peerState.mu.
	window  int64 // the session's receive window, as granted
	reset   bool  // the session reset it
	settled bool  // ACCEPT or REFUSE seen
	refused bool
}

// peerState is what the drain goroutine learns from the session's frames.
type peerState struct {
	mu      sync.Mutex
	cond    sync.Cond
	streams map[uint32]*driverStream
	pingAck bool
	closed  bool // the session's output ended
	goAway  bool
}

func runEngine(t *testing.T, program []byte, sessionIsClient bool) {
	baseHeap := heapObjects()

	received := map[uint32]*delivery{}
	var recvMu sync.Mutex
	// Handlers may still be called while the integrity check waits for
	// the readers it needs, so that wait is per stream; waitGoroutines
	// sees the rest end once the session is closed.
	handler := func(st httpstream.Stream, _ <-chan struct{}) error {
		dl := &delivery{done: make(chan struct{})}
		recvMu.Lock()
		received[st.Identifier()] = dl
		recvMu.Unlock()
		go func() { // ends when the stream ends, at the latest when the session does
			defer close(dl.done)
			b, _ := io.ReadAll(st)
			recvMu.Lock()
			dl.data = b
			recvMu.Unlock()
		}()
		return nil
	}

	a, b := net.Pipe()
	cfg := engineConfig
	var sess *mux.Session
	var err error
	if sessionIsClient {
		sess, err = mux.Client(a, handler, &cfg)
	} else {
		sess, err = mux.Server(a, handler, &cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Whatever check fails, the session and the pipe end with the run, so
	// that no goroutine of this input is left for the next one to count.
	t.Cleanup(func() {
		sess.Close()
		b.Close()
	})

	ps := &peerState{streams: map[uint32]*driverStream{}}
	ps.cond.L = &ps.mu
	drained := make(chan struct{})
	go drain(b, ps, drained) // ends when b is closed

	d := &driver{t: t, conn: b, ps: ps, valid: true, aligned: true, nextID: 1}
	if sessionIsClient {
		d.nextID = 2 // the peer is the server: even IDs
	}
	d.write(frame.AppendSettings([]byte(frame.Preface)))
	d.run(program)

	// No deadlock: the session has ended, or it answers a PING. After
	// garbage the session may rightly be waiting for the rest of a frame
	// that the PING then feeds; there, Close below must still end it.
	alive := d.aligned && d.pingAnswered(5*time.Second)
	select {
	case <-sess.CloseChan():
	default:
		if !alive && d.aligned {
			t.Fatalf("the session neither ended nor answered a PING within 5s after the program %x", program)
		}
	}
	// The driver keeps a copy of everything it sent, and the handler one
	// of everything it received, for the integrity check: those, and the
	// payloads made for sending, are the test's, not the session's.
	bookkeeping := int64(0)
	for _, ds := range d.order {
		// Its copy, the handler's (grown by doubling), and the garbage of
		// both: well under 8 times the data.
		bookkeeping += 8 * int64(len(ds.sent))
	}
	if grew, bound := heapObjects()-baseHeap, heapBound+bookkeeping; grew > bound {
		t.Fatalf("heap grew %d octets, bound %d (%d of it the test's own copies)", grew, bound, bookkeeping)
	}

	// Integrity, for programs that kept every rule while the session lived.
	if d.valid && alive {
		deadline := time.NewTimer(5 * time.Second)
		defer deadline.Stop()
		for _, ds := range d.order {
			ps.mu.Lock()
			check := !ds.dead && !ds.reset && ds.ended && !ds.refused && ds.settled
			ps.mu.Unlock()
			if !check {
				continue
			}
			// Accepted, so its handler ran before the ACCEPT was sent.
			recvMu.Lock()
			dl := received[ds.id]
			recvMu.Unlock()
			if dl == nil {
				t.Fatalf("stream %d was accepted without a call to the handler (program %x)", ds.id, program)
			}
			select {
			case <-dl.done:
			case <-deadline.C:
				t.Fatalf("stream %d: its reader did not see the end within 5s of the program (program %x)", ds.id, program)
			}
			recvMu.Lock()
			got := dl.data
			recvMu.Unlock()
			if !bytes.Equal(got, ds.sent) {
				t.Errorf("stream %d delivered %d octets, %d were sent (program %x)", ds.id, len(got), len(ds.sent), program)
			}
		}
	}

	closed := make(chan struct{})
	go func() { sess.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("Session.Close did not return within 5s after the program %x", program)
	}
	b.Close()
	<-drained
	waitGoroutines(t) // the handler's readers too: the session has ended

}

// delivery is what the handler's reader of one stream received.
type delivery struct {
	data []byte        // guarded by recvMu
	done chan struct{} // closed once the reader has seen the stream end
}

// waitGoroutines waits, bounded, until no goroutine of the engine or of
// this driver is left. It looks at the stacks rather than at
// runtime.NumGoroutine, which counts the fuzzing harness's goroutines too.
func waitGoroutines(t *testing.T) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		dump, leaked := ourGoroutines()
		if leaked == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the engine or the driver still run after both ends closed:\n%s", leaked, dump)
		}
		time.Sleep(time.Millisecond) // polling a state only the runtime can see; bounded above
	}
}

// ourGoroutines returns the stacks of all goroutines and how many of them,
// other than the caller, run code of package mux or of this driver.
func ourGoroutines() (string, int) {
	buf := make([]byte, 1<<20)
	dump := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for i, g := range strings.Split(dump, "\n\n") {
		if i == 0 {
			continue // the caller
		}
		if strings.Contains(g, "httpstream-go/httpstream/mux.") || strings.Contains(g, "fuzz.drain") || strings.Contains(g, "fuzz.runEngine.func") {
			n++
		}
	}
	return dump, n
}

func heapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// drain reads the session's frames, answering nothing, and records what the
// driver needs: accepts, refusals, window updates, ping answers.
func drain(c net.Conn, ps *peerState, done chan struct{}) {
	defer close(done)
	r := frame.NewReader(c, frame.Limits{MaxFrameSize: frame.MaxLength, MaxHeaderBytes: frame.MaxLength})
	defer func() {
		ps.mu.Lock()
		ps.closed = true
		ps.cond.Broadcast()
		ps.mu.Unlock()
	}()
	if r.ReadPreface() != nil {
		return
	}
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		ps.mu.Lock()
		ds := ps.streams[f.StreamID]
		switch f.Type {
		case frame.FrameAccept:
			if ds != nil {
				ds.settled = true
			}
		case frame.FrameRefuse:
			if ds != nil {
				ds.settled, ds.refused = true, true
			}
		case frame.FrameReset:
			if ds != nil {
				ds.reset = true
			}
		case frame.FrameWindowUpdate:
			if ds != nil {
				ds.window += int64(f.Increment)
			}
		case frame.FramePing:
			if f.Flags.Has(frame.FlagAck) {
				ps.pingAck = true
			}
		case frame.FrameGoAway:
			ps.goAway = true
		}
		ps.cond.Broadcast()
		ps.mu.Unlock()
	}
}

// driver turns the program into frames and keeps track of whether every
// frame so far followed the SPEC.
type driver struct {
	t       *testing.T
	conn    net.Conn
	ps      *peerState
	valid   bool
	nextID  uint32
	order   []*driverStream
	broken  bool // a write failed: the session closed the connection
	aligned bool // every write so far was whole frames
}

func (d *driver) write(b []byte) {
	if d.broken {
		return
	}
	d.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := d.conn.Write(b); err != nil {
		d.broken = true
	}
}

func (d *driver) run(program []byte) {
	for _, st := range parseProgram(program) {
		if d.broken {
			return
		}
		a := st.args
		switch st.op {
		case opOpen:
			d.open(a[0])
		case opData:
			if ds := d.pick(a[0]); ds != nil {
				d.data(ds, int(a[1])*4, false)
			}
		case opDataPastWindow:
			if ds := d.pick(a[0]); ds != nil {
				d.ps.mu.Lock()
				w := ds.window
				d.ps.mu.Unlock()
				d.data(ds, int(w)+1+int(a[1]), true)
			}
		case opEnd:
			if ds := d.pick(a[0]); ds != nil {
				d.end(ds)
			}
		case opReset:
			if ds := d.pick(a[0]); ds != nil {
				d.write(frame.AppendReset(nil, ds.id, frame.CodeCancel, "fuzz"))
				ds.dead = true
			}
		case opWindowUpdate:
			id := uint32(a[0])
			inc := uint32(a[1])<<8 | uint32(a[2])
			if ds := d.pick(byte(id)); ds != nil {
				id = ds.id
			}
			if inc == 0 || !d.known(id) {
				d.valid = false // SPEC 4.5, 6.3
			}
			d.write(frame.AppendWindowUpdate(nil, id, inc))
		case opPing:
			d.write(frame.AppendPing(nil, 0, [8]byte{a[0]}))
		case opGoAway:
			last, code := uint32(a[0]), frame.ErrCode(a[1]%14)
			if last != 0 {
				d.valid = false // the session opened nothing: any last ID is bogus
			}
			d.write(frame.AppendGoAway(nil, last, code, "fuzz"))
		case opGarbage:
			d.write(append([]byte(nil), a[1:]...))
			d.valid, d.aligned = false, false
		case opSettings:
			d.write(frame.AppendSettings(nil)) // SPEC 2.3: only one
			d.valid = false
		case opUnknown:
			n := int(a[0])
			d.write(append(frame.AppendFrameHeader(nil, frame.FrameHeader{Length: uint32(n), Type: 0x40 | frame.FrameType(n%16), StreamID: uint32(n)}), make([]byte, n)...))
		case opBadHeaders:
			id := d.nextID
			d.nextID += 2
			// Names out of order: a stream error, the session lives.
			bad := []byte{0, 2, 0, 1, 'B', 0, 1, 0, 0, 0, 0, 0, 1, 'A', 0, 1, 0, 0, 0, 0}
			d.write(append(frame.AppendFrameHeader(nil, frame.FrameHeader{Length: uint32(len(bad)), Type: frame.FrameOpen, StreamID: id}), bad...))
		}
	}
}

// step is one operation of a program and its argument bytes.
type step struct {
	op   byte
	args []byte
}

// opArgs is how many argument bytes each operation takes; opGarbage takes
// one more byte per junk byte its first argument asks for.
var opArgs = [opCount]int{
	opOpen: 1, opData: 2, opReset: 1, opWindowUpdate: 3, opPing: 1, opGoAway: 2,
	opGarbage: 1, opSettings: 0, opUnknown: 1, opDataPastWindow: 2, opEnd: 1, opBadHeaders: 0,
}

// parseProgram splits a program into steps: the first byte of each step,
// modulo opCount, is its operation, and the bytes after it its arguments. A
// program that ends inside a step reads zeros for the missing bytes, so
// every input is a program.
func parseProgram(p []byte) []step {
	next := func() byte {
		if len(p) == 0 {
			return 0
		}
		c := p[0]
		p = p[1:]
		return c
	}
	var steps []step
	for len(p) > 0 {
		st := step{op: next() % opCount}
		for range opArgs[st.op] {
			st.args = append(st.args, next())
		}
		if st.op == opGarbage {
			st.args[0] %= 32
			for range int(st.args[0]) {
				st.args = append(st.args, next())
			}
		}
		steps = append(steps, st)
	}
	return steps
}

func (d *driver) known(id uint32) bool {
	for _, ds := range d.order {
		if ds.id == id {
			return true
		}
	}
	return false
}

// gone reports whether either side reset ds.
func (d *driver) gone(ds *driverStream) bool {
	if ds.dead {
		return true
	}
	d.ps.mu.Lock()
	defer d.ps.mu.Unlock()
	return ds.reset
}

// pick returns one of the streams opened so far, chosen by b.
func (d *driver) pick(b byte) *driverStream {
	if len(d.order) == 0 {
		return nil
	}
	return d.order[int(b)%len(d.order)]
}

func (d *driver) open(b byte) {
	ds := &driverStream{id: d.nextID, window: int64(engineConfig.InitialStreamWindow)}
	d.nextID += 2
	d.ps.mu.Lock()
	d.ps.streams[ds.id] = ds
	d.ps.mu.Unlock()
	d.order = append(d.order, ds)
	h := http.Header{"Streamtype": {fmt.Sprintf("t%d", b)}}
	open, _ := frame.AppendOpen(nil, ds.id, h)
	d.write(open)
}

// settled waits, bounded, for the session's answer to ds's OPEN.
func (d *driver) settled(ds *driverStream) bool {
	if !d.aligned {
		return false // the session may be reading our frames as a payload
	}
	deadline := time.Now().Add(time.Second)
	d.ps.mu.Lock()
	defer d.ps.mu.Unlock()
	for !ds.settled && !d.ps.closed {
		if time.Now().After(deadline) {
			return false
		}
		waitCond(&d.ps.cond, 10*time.Millisecond)
	}
	return ds.settled && !ds.refused
}

// waitCond waits on c for at most d: a timer broadcast bounds the wait.
func waitCond(c *sync.Cond, d time.Duration) {
	t := time.AfterFunc(d, func() {
		c.L.Lock()
		c.Broadcast()
		c.L.Unlock()
	})
	c.Wait()
	t.Stop()
}

// data sends n octets on ds: clamped to the window unless pastWindow, in
// which case it breaks SPEC 7.1 on purpose.
func (d *driver) data(ds *driverStream, n int, pastWindow bool) {
	if d.gone(ds) && !ds.ended {
		return // reset: nothing more to say on it
	}
	if !d.settled(ds) {
		return // refused or never answered: sending would break SPEC 6.3
	}
	d.ps.mu.Lock()
	if !pastWindow {
		n = int(min(int64(n), ds.window))
	}
	if gone := ds.dead || ds.reset; ds.ended || gone {
		d.ps.mu.Unlock()
		if ds.ended && !gone && n > 0 {
			d.sendData(ds, n)
			ds.dead = true // SPEC 6.3: a stream error; no integrity check
		}
		return
	}
	if int64(n) > ds.window {
		d.valid = false
	}
	ds.window -= int64(n)
	d.ps.mu.Unlock()
	if n > 0 {
		d.sendData(ds, n)
	}
}

func (d *driver) sendData(ds *driverStream, n int) {
	for n > 0 {
		k := min(n, engineConfig.MaxFrameSize)
		payload := make([]byte, k)
		for i := range payload {
			payload[i] = byte(len(ds.sent)+i) ^ byte(ds.id*7) // streams differ
		}
		ds.sent = append(ds.sent, payload...)
		d.write(frame.AppendData(nil, ds.id, 0, payload))
		n -= k
	}
}

func (d *driver) end(ds *driverStream) {
	if ds.ended || d.gone(ds) || !d.settled(ds) {
		return
	}
	ds.ended = true
	d.write(frame.AppendData(nil, ds.id, frame.FlagEndStream, nil))
}

// pingAnswered sends a PING and waits, at most d, for an answer.
func (d *driver) pingAnswered(limit time.Duration) bool {
	d.ps.mu.Lock()
	d.ps.pingAck = false
	d.ps.mu.Unlock()
	d.write(frame.AppendPing(nil, 0, [8]byte{0xfe}))
	deadline := time.Now().Add(limit)
	d.ps.mu.Lock()
	defer d.ps.mu.Unlock()
	for !d.ps.pingAck && !d.ps.closed {
		if time.Now().After(deadline) {
			return false
		}
		waitCond(&d.ps.cond, 10*time.Millisecond)
	}
	return d.ps.pingAck
}
