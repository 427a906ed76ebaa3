package mux

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// Batching bounds: one write carries at most this many DATA frames or about
// this many octets, so a control frame queued behind a batch waits little.
const (
	maxBatchFrames = 64
	maxBatchBytes  = 256 << 10
)

// maxQueuedControl caps the control frames (PING answers, window updates,
// accepts, refusals, resets) waiting to be written. They pile up only when
// the peer does not read while it keeps making us answer; past the cap the
// session ends with ENHANCE_YOUR_CALM rather than buffer without bound
// (SPEC 10.2), as HTTP/2 servers do.
const maxQueuedControl = 4096

// controlHighWater is where the reader goroutine stops reading, after a
// frame that needed an answer, until the writer has drained the queue. A
// peer that reads our answers slowly is throttled to the pace it reads them
// at; one that does not read at all is cut off after controlDrainTimeout.
const (
	controlHighWater    = 1024
	controlDrainTimeout = 5 * time.Second
)

var errControlFlood = &frame.SessionError{
	Code:   frame.CodeEnhanceYourCalm,
	Reason: fmt.Sprintf("more than %d control frames waiting to be written: the peer does not read", maxQueuedControl),
}

// buffersWriter is implemented by connections that can write several buffers
// in one system call (writev), like *net.TCPConn. Wrappers that cannot be
// detected by net.Buffers (a connection holding read-ahead octets, say) may
// implement it to keep batched writes.
type buffersWriter interface {
	WriteBuffers(v *net.Buffers) (int64, error)
}

// writer owns the connection for writes. Whoever holds the write token
// (busy) flushes: usually the writer goroutine, but a Stream.Write that finds
// the connection free writes its frames itself, saving two goroutine
// switches per write. Control frames always go first in a batch; DATA frames
// are taken one per ready stream in turn.
type writer struct {
	s            *Session
	conn         net.Conn
	batchWriter  buffersWriter // nil: use net.Buffers.WriteTo or one copy
	canWritev    bool
	peerMaxFrame atomic.Uint32 // the peer's MAX_FRAME_SIZE

	mu       sync.Mutex // guards the fields below, up to the blank line
	ctrl     []byte     // encoded control frames waiting, in order
	answers  int        // frames in ctrl that answer the peer (queueAnswer)
	ctrlN    int        // frames in ctrl
	ready    streamQueue
	busy     bool  // someone holds the write token
	wantRoom bool  // the reader waits in waitForRoom
	sealed   bool  // the session ended: nothing new is queued
	failed   error // the connection failed: nothing more is written
	flushedC bool  // flushed is closed

	wake     chan struct{} // passes the write token to the writer goroutine
	flushed  chan struct{} // closed once everything queued before seal went out, or writing failed
	overflow chan struct{} // closed when ctrl reached maxQueuedControl; the monitor ends the session
	room     chan struct{} // tells a waiting reader that ctrl was drained

	// Owned by the token holder.
	spare       []byte
	hdrs        []byte
	bufs        net.Buffers
	iov         net.Buffers
	batch       []batchFrame
	batchFrames int    // frames in the batch, for Stats
	batchData   int    // DATA octets in the batch, for Stats
	arena       []byte // copies of the frames of streams with a write deadline
	scratch     []byte
}

// batchFrame is a DATA frame of the batch being written, for telling its
// stream when it is out.
type batchFrame struct {
	st     *Stream
	copied bool // its payload is in the arena, not the Write's slice
	size   int  // its payload's length
}

func (w *writer) init(s *Session) {
	w.s = s
	w.conn = s.conn
	w.batchWriter, _ = s.conn.(buffersWriter)
	_, w.canWritev = s.conn.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	w.peerMaxFrame.Store(frame.DefaultMaxFrameSize)
	w.wake = make(chan struct{}, 1)
	w.flushed = make(chan struct{})
	w.overflow = make(chan struct{})
	w.room = make(chan struct{}, 1)
	w.hdrs = make([]byte, 0, maxBatchFrames*frame.HeaderSize)
}

// run is the writer goroutine. It flushes whenever the token is handed to
// it, and ends once the session closed the connection.
func (w *writer) run() {
	defer w.s.wg.Done()
	for {
		select {
		case <-w.wake:
			w.flush(nil)
		case <-w.s.connClosed:
			return
		}
	}
}

// queueControl appends an encoded control frame that this side's own work
// produced (an OPEN, a RESET, a WINDOW_UPDATE for data read): as many as
// the application makes, which is its own business, not a flood. After the
// session ended it drops the frame.
func (w *writer) queueControl(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed || w.failed != nil {
		return
	}
	if w.s.trace {
		w.s.traceFrame("sent", b)
	}
	w.ctrlN++
	w.ctrl = append(w.ctrl, b...)
	w.kickLocked()
}

// queueAnswer appends a control frame that the reader goroutine queues in
// answer to the peer (a PING ACK, a REFUSE, a RESET for a broken stream).
// Past maxQueuedControl waiting answers it drops the frame and signals
// overflow: the peer makes this side answer and does not read the answers,
// and the session is ending (SPEC 10.2).
func (w *writer) queueAnswer(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed || w.failed != nil {
		return
	}
	if w.answers >= maxQueuedControl {
		select {
		case <-w.overflow:
		default:
			close(w.overflow)
		}
		return
	}
	if w.s.trace {
		w.s.traceFrame("sent", b)
	}
	w.answers++
	w.ctrlN++
	w.ctrl = append(w.ctrl, b...)
	w.kickLocked()
}

// queueFinal queues the closing GOAWAY, whatever the cap: it is the last
// frame, and the one that tells the peer why.
func (w *writer) queueFinal(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sealed || w.failed != nil {
		return
	}
	if w.s.trace {
		w.s.traceFrame("sent", b)
	}
	w.ctrlN++
	w.ctrl = append(w.ctrl, b...)
	w.kickLocked()
}

// waitForRoom is called by the reader goroutine after frames that made this
// side queue an answer. Past controlHighWater queued control frames it waits
// until the writer takes them, or fails with errControlFlood after
// controlDrainTimeout: the peer sends what needs answers and does not read
// the answers.
func (w *writer) waitForRoom() error {
	w.mu.Lock()
	if w.answers < controlHighWater || w.sealed || w.failed != nil {
		w.mu.Unlock()
		return nil
	}
	w.wantRoom = true
	w.mu.Unlock()
	t := time.NewTimer(controlDrainTimeout)
	defer t.Stop()
	select {
	case <-w.room:
		return nil
	case <-w.s.closed:
		return nil
	case <-t.C:
		return errControlFlood
	}
}

// kickLocked hands the token to the writer goroutine if nobody holds it.
func (w *writer) kickLocked() {
	if !w.busy {
		w.busy = true
		w.wake <- struct{}{} // cannot block: only a token holder sends, and the buffer is drained before the next
	}
}

// seal stops new frames from being queued; what is queued still goes out.
func (w *writer) seal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sealed = true
	if w.busy {
		return // the holder will see sealed when it runs out of work
	}
	if len(w.ctrl) == 0 {
		w.closeFlushedLocked()
		return
	}
	w.kickLocked()
}

func (w *writer) closeFlushedLocked() {
	if !w.flushedC {
		w.flushedC = true
		close(w.flushed)
	}
}

// submit makes st's pending data eligible for writing. If nobody holds the
// token, the calling goroutine (the stream's Write) takes it and writes
// itself, unless the stream has a write deadline: a goroutine inside
// conn.Write cannot return at a deadline, so the writer goroutine writes
// for it.
func (w *writer) submit(st *Stream) error {
	w.mu.Lock()
	if w.failed != nil {
		err := w.failed
		w.mu.Unlock()
		return &closedError{cause: &connError{op: "writing", err: err}}
	}
	if w.sealed {
		w.mu.Unlock()
		return w.s.closedErr()
	}
	if !st.inReady {
		st.inReady = true
		w.ready.push(st)
	}
	if w.busy {
		w.mu.Unlock()
		return nil
	}
	st.mu.Lock()
	self := !st.copyFramesLocked()
	st.mu.Unlock()
	if !self {
		w.kickLocked()
		w.mu.Unlock()
		return nil
	}
	w.busy = true
	w.mu.Unlock()
	w.flush(st)
	return nil
}

// flush writes batches until nothing is left, or, for a Stream.Write
// (self != nil), until self's own data is written; then it passes the
// token on to the writer goroutine if work remains, so that a writer
// never carries other streams' data for long.
func (w *writer) flush(self *Stream) {
	for {
		w.mu.Lock()
		if !w.buildLocked() {
			w.busy = false
			if w.sealed || w.failed != nil {
				w.closeFlushedLocked()
			}
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()

		err := w.writeBatch()
		if err != nil {
			// The session ends first, so that a Write woken by its lost
			// frame finds the stream failed.
			w.fail(err)
			w.completeBatch(false)
			return
		}
		w.completeBatch(true)
		if self != nil && self.writtenOut() {
			w.mu.Lock()
			if len(w.ctrl) > 0 || w.ready.len() > 0 {
				w.wake <- struct{}{} // the token passes to the writer goroutine
			} else {
				w.busy = false
				if w.sealed {
					w.closeFlushedLocked()
				}
			}
			w.mu.Unlock()
			return
		}
	}
}

// buildLocked gathers the next batch into w.bufs: every queued control
// frame, then DATA frames, one per ready stream in turn. It reports whether
// there is anything to write.
func (w *writer) buildLocked() bool {
	w.bufs, w.batch, w.hdrs, w.arena = w.bufs[:0], w.batch[:0], w.hdrs[:0], w.arena[:0]
	w.batchFrames, w.batchData = 0, 0
	if w.failed != nil {
		return false
	}
	if len(w.ctrl) > 0 {
		w.ctrl, w.spare = w.spare[:0], w.ctrl
		w.bufs = append(w.bufs, w.spare)
		w.batchFrames += w.ctrlN
		w.answers, w.ctrlN = 0, 0
		if w.wantRoom {
			w.wantRoom = false
			select {
			case w.room <- struct{}{}:
			default:
			}
		}
	}
	if w.sealed {
		for w.ready.len() > 0 {
			w.ready.pop().inReady = false
		}
		return len(w.bufs) > 0
	}
	maxFrame := int(w.peerMaxFrame.Load())
	octets := 0
	for w.ready.len() > 0 && len(w.batch) < maxBatchFrames && octets < maxBatchBytes {
		st := w.ready.pop()
		st.mu.Lock()
		if len(st.pending) > 0 && st.stopSendingLocked() {
			// Ended, or past its write deadline: its Write takes back
			// what is pending.
			st.dropped = true
			st.cond.Broadcast()
			st.mu.Unlock()
			st.inReady = false
			continue
		}
		n := min(len(st.pending), maxFrame)
		if n == 0 {
			st.mu.Unlock()
			st.inReady = false
			continue
		}
		data := st.pending[:n]
		st.pending = st.pending[n:]
		st.counters.framesSent++
		st.counters.dataSent += uint64(n)
		copied := st.copyFramesLocked()
		if copied {
			data = w.copyOf(data)
			st.copies++
			st.copiedN += n
		} else {
			st.inFlight++
		}
		more := len(st.pending) > 0
		window := st.sendWindow + int64(len(st.pending))
		st.mu.Unlock()

		start := len(w.hdrs)
		w.hdrs = frame.AppendFrameHeader(w.hdrs, frame.FrameHeader{Length: uint32(n), Type: frame.FrameData, StreamID: st.id})
		if w.s.trace {
			w.s.traceFrame("sent", w.hdrs[start:], slog.Int64("window", window))
		}
		w.bufs = append(w.bufs, w.hdrs[start:], data)
		w.batch = append(w.batch, batchFrame{st, copied, n})
		octets += n
		w.batchFrames++
		w.batchData += n
		if more {
			w.ready.push(st)
		} else {
			st.inReady = false
		}
	}
	return len(w.bufs) > 0
}

// writeBatch writes w.bufs in one system call where the connection allows.
func (w *writer) writeBatch() error {
	w.iov = w.bufs
	switch {
	case w.batchWriter != nil:
		_, err := w.batchWriter.WriteBuffers(&w.iov)
		return err
	case w.canWritev || len(w.iov) == 1:
		_, err := w.iov.WriteTo(w.conn)
		return err
	}
	// One write instead of one per buffer: for TLS that is one record
	// instead of many, for net.Pipe one handoff.
	w.scratch = w.scratch[:0]
	for _, b := range w.iov {
		w.scratch = append(w.scratch, b...)
	}
	_, err := w.conn.Write(w.scratch)
	if cap(w.scratch) > 2*maxBatchBytes {
		w.scratch = nil // do not keep a buffer grown by one burst of control frames
	}
	return err
}

// copyOf copies p into the arena, which lives until the batch is written.
// A full arena is replaced, not grown: the batch still points into it.
func (w *writer) copyOf(p []byte) []byte {
	if cap(w.arena)-len(w.arena) < len(p) {
		w.arena = make([]byte, 0, max(len(p), maxBatchBytes))
	}
	start := len(w.arena)
	w.arena = append(w.arena, p...)
	return w.arena[start:]
}

// completeBatch tells the streams of the batch whether their frames are
// out (ok) or were lost with the connection.
func (w *writer) completeBatch(ok bool) {
	if cap(w.spare) > 64<<10 {
		w.spare = nil // do not keep a buffer grown by one burst of control frames
	}
	if ok {
		w.s.counters.framesSent.Add(uint64(w.batchFrames))
		w.s.counters.dataSent.Add(uint64(w.batchData))
		if len(w.batch) > 0 {
			w.s.touch()
		}
	}
	for i, f := range w.batch {
		f.st.frameWritten(f.copied, f.size, ok)
		w.batch[i] = batchFrame{}
	}
	clear(w.bufs[:cap(w.bufs)])
}

// fail stops all writing after a connection error and ends the session.
func (w *writer) fail(err error) {
	w.mu.Lock()
	w.failed = err
	w.busy = false
	w.ctrl = nil
	for w.ready.len() > 0 {
		w.ready.pop().inReady = false
	}
	w.closeFlushedLocked()
	w.mu.Unlock()
	if errors.Is(err, net.ErrClosed) {
		err = errors.New("the connection was closed")
	}
	w.s.closeWith(&connError{op: "writing", err: err}, frame.CodeNoError, "")
}

// queued returns how many control frames wait to be written.
func (w *writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ctrlN
}

// err returns the connection's write error, if writing failed.
func (w *writer) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// streamQueue is a FIFO of streams, reusing its backing array.
type streamQueue struct {
	items []*Stream
	head  int
}

func (q *streamQueue) len() int { return len(q.items) - q.head }

func (q *streamQueue) push(st *Stream) {
	if q.head > 0 && q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	q.items = append(q.items, st)
}

func (q *streamQueue) pop() *Stream {
	st := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return st
}
