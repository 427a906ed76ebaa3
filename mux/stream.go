package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// Stream is one bidirectional stream of a Session. It implements
// httpstream.Stream and net.Conn: Read and Write may be called concurrently
// with each other and with every other method. Close half-closes (the
// peer reads io.EOF after everything written before), Reset ends both
// directions at once.
type Stream struct {
	sess    *Session
	id      uint32
	local   bool // opened by this side
	headers http.Header

	mu   sync.Mutex // guards the fields below, except inReady
	cond sync.Cond  // broadcast on every change that Read, Write or an open waits for

	accepted    bool  // ACCEPT received, or sent: this side may send DATA (SPEC 6.2)
	peerMaySend bool  // ACCEPT received, or about to be sent: the peer may send DATA
	openErr     error // why the peer did not accept a stream this side opened
	err         error // reset, or the session ended: Write fails with it, and Read once the data is read
	discard     bool  // ended by this side: buffered data is dropped and Read fails at once (SPEC 4.6)
	eofAfter    bool  // ended by the peer on purpose (RESET, closing GOAWAY): Read ends with io.EOF, not err
	recvEnd     bool  // END_STREAM received
	sentEnd     bool  // END_STREAM queued for the wire
	endQueued   bool  // Close came while a Write ran or before ACCEPT: END_STREAM goes after
	closedWrite bool  // Close was called

	recv       recvBuffer
	reading    bool   // a Read is in progress
	readBuf    []byte // an empty-handed Read's slice, offered to the reader goroutine
	readN      int    // octets the reader goroutine put straight into readBuf
	filling    bool   // the reader goroutine is writing into readBuf now
	lastDirect bool   // the last payload went straight into a Read's slice

	sendWindow int64  // octets the peer lets us send (SPEC 7.1)
	writing    bool   // a Write is in progress
	pending    []byte // the part of a Write's slice not yet taken by the writer
	inFlight   int    // frames taken by the writer, not yet written, that point into the Write's slice
	copies     int    // frames taken by the writer, not yet written, copied out of the Write's slice
	copiedN    int    // octets in those copies
	lost       bool   // a frame of the Write failed to reach the connection
	dropped    bool   // the writer dropped the stream from its queue at a passed deadline
	inReady    bool   // in the writer's ready queue; guarded by writer.mu
	queued     bool   // waiting for the handler; guarded by Session.mu
	holdsPlace bool   // forgotten with unread data: still counted in the session's limits
	headerCost uint32 // the peer's OPEN header block, counted in the session's budget; guarded by Session.mu

	dl *deadlines // nil until a deadline is set

	counters streamCounters
}

type deadlines struct {
	read, write deadline
	wake        func() // st.wake, made once: a method value allocates
}

// deadline is one of a stream's two deadlines, with the timer that wakes
// waiters when it passes.
type deadline struct {
	at    time.Time
	timer *time.Timer
}

// set moves the deadline to t (zero: none) and re-arms the timer to call
// wake then, reusing it.
func (d *deadline) set(t time.Time, wake func()) {
	d.at = t
	if t.IsZero() {
		stopTimer(d.timer)
		return
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(time.Until(t), wake)
		return
	}
	d.timer.Reset(time.Until(t))
}

func newStream(s *Session, id uint32, headers http.Header, local bool) *Stream {
	st := &Stream{sess: s, id: id, local: local, headers: headers}
	st.cond.L = &st.mu
	// Both windows are known: the peer's SETTINGS came before anything
	// that opens a stream (SPEC 2.3).
	st.sendWindow = int64(s.peer.initialWindow)
	st.recv.init(s.cfg.streamWindowFloor())
	return st
}

// Identifier returns the stream ID (SPEC 6.1): odd for streams the client
// opened, even for the server's.
func (st *Stream) Identifier() uint32 { return st.id }

// Headers returns the headers the stream was opened with.
func (st *Stream) Headers() http.Header { return st.headers }

// LocalAddr returns the local address of the session's connection.
func (st *Stream) LocalAddr() net.Addr { return st.sess.conn.LocalAddr() }

// RemoteAddr returns the remote address of the session's connection.
func (st *Stream) RemoteAddr() net.Addr { return st.sess.conn.RemoteAddr() }

// Read reads data the peer sent. It returns io.EOF once every octet has
// been read after the peer half-closed the stream, and also after the peer
// ended it on purpose: reset it, or closed the session (Session.Close,
// Shutdown or its idle timeout, at the peer), because, as with Kubernetes' streams, a peer may
// write a last message and reset or close at once (EndReason tells these
// ends apart). When the connection failed or the session ended on an error
// (a protocol error, a keepalive timeout), Read fails, after the data that
// had arrived, with an error matching ErrSessionClosed that says why, so a
// cut transfer never looks complete. After this side's Reset or Close of the
// session it fails at once, with ErrStreamReset or ErrSessionClosed. Past
// the read deadline it fails with os.ErrDeadlineExceeded. Concurrent Reads
// take turns.
//
// Without a read deadline, a Read waiting for data may receive a payload
// straight from the connection into p, with no copy; a deadline set while
// such a payload is arriving takes effect once it has arrived.
func (st *Stream) Read(p []byte) (int, error) {
	st.mu.Lock()
	defer st.unlockAfterRead()
	for st.reading {
		if err := st.waitLocked(st.readDeadlineLocked()); err != nil {
			return 0, err
		}
	}
	st.reading = true
	defer st.endRead()
	for {
		switch {
		case st.filling:
			// The reader goroutine is writing into p: p is not ours
			// to return until it is done, deadline or not.
			st.cond.Wait()
			continue
		case st.discard:
			st.readBuf, st.readN = nil, 0
			return 0, st.err
		case st.readN > 0:
			// A payload went straight into p; anything after it is in the
			// buffer, in order.
			n := st.readN
			st.readBuf, st.readN = nil, 0
			st.recv.unacked += uint32(n)
			if st.recv.buffered() > 0 {
				n += st.recv.read(p[n:])
			}
			return n, st.creditAndUnlock(n)
		case st.deadlinePassedLocked(st.readDeadlineLocked()):
			// As net.Conn: past the deadline, even buffered data waits.
			st.readBuf = nil
			return 0, errDeadline
		case st.recv.buffered() > 0:
			st.readBuf = nil
			n := st.recv.read(p)
			return n, st.creditAndUnlock(n)
		case st.recvEnd:
			st.readBuf = nil
			return 0, io.EOF
		case st.err != nil:
			st.readBuf = nil
			if st.eofAfter {
				return 0, io.EOF
			}
			return 0, st.err
		case len(p) == 0:
			return 0, nil
		}
		// Offer p to the reader goroutine: the next payload goes straight
		// into it, without a copy through the buffer. It takes the offer
		// only while no read deadline is set, since once it starts reading
		// a payload into p, p stays its own until the payload is in.
		st.readBuf = p
		st.cond.Wait()
	}
}

// unlockAfterRead unlocks the stream and, if the Read emptied a forgotten
// stream that still held its place (see Session.forget), gives it back.
func (st *Stream) unlockAfterRead() {
	release := st.holdsPlace && st.recv.buffered() == 0
	if release {
		st.holdsPlace = false
	}
	st.mu.Unlock()
	if release {
		st.sess.releaseHeldPlace(st)
	}
}

func (st *Stream) endRead() {
	st.reading = false
	st.cond.Broadcast() // a Read waiting for its turn
}

// creditAndUnlock sends the WINDOW_UPDATE that reading n octets earned, if
// any, without holding the stream's lock while queueing it. It returns with
// the lock held again, for Read's deferred unlock.
func (st *Stream) creditAndUnlock(n int) error {
	inc := st.creditLocked(n)
	if inc == 0 {
		return nil
	}
	st.mu.Unlock()
	var b [frame.HeaderSize + 4]byte
	st.sess.w.queueControl(frame.AppendWindowUpdate(b[:0], st.id, inc))
	st.mu.Lock()
	return nil
}

// Write sends p and returns once all of it is on the wire (or written to the
// connection's buffers): the writer takes it from p without copying. It
// blocks while the peer's window is closed, until the peer reads or the write
// deadline passes; then it returns how much was written and
// os.ErrDeadlineExceeded. Concurrent Writes do not interleave. The count
// never includes octets the connection failed to take: when it fails, Write
// returns an error matching ErrSessionClosed.
//
// A stream with a write deadline set before the Write has its frames copied
// as the session takes them, and written by the session's writer goroutine,
// so that the deadline holds even while the connection itself is stuck (a
// peer that stopped reading): the Write then returns at the deadline,
// counting what the session took, which still goes out in order. Without a
// deadline, a Write may write its frames on its own goroutine, straight from
// p, and returns only once the connection took them.
func (st *Stream) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.writing || !st.accepted {
		if err := st.writeErrLocked(); err != nil {
			return 0, err
		}
		// Another Write is in progress, or the handler has not accepted
		// this stream yet (SPEC 6.2: no DATA before ACCEPT).
		if err := st.waitLocked(st.writeDeadlineLocked()); err != nil {
			return 0, err
		}
	}
	if err := st.writeErrLocked(); err != nil {
		return 0, err
	}
	st.writing = true
	n, err := st.writeLocked(p)
	st.writing, st.lost = false, false
	st.cond.Broadcast() // a Write waiting for its turn
	if st.endQueued {
		st.mu.Unlock()
		st.sendEnd() // Close came during the Write: END_STREAM goes now
		st.mu.Lock()
	}
	return n, err
}

func (st *Stream) writeErrLocked() error {
	switch {
	case st.err != nil:
		return st.err
	case st.closedWrite:
		return fmt.Errorf("httpstream: write on stream %d after Close: %w", st.id, net.ErrClosed)
	}
	return nil
}

// writeLocked hands p to the writer chunk by chunk, each chunk as large as
// the send window allows, and waits until each is written.
//
// Deadlines and the zero-copy path: the writer normally writes straight
// from p, so the Write cannot return while a frame that points into p is
// being written, however long the connection takes. A stream with a write
// deadline therefore has its frames copied as the writer takes them, and
// never writes them on the Write's own goroutine: at the deadline the Write
// returns at once, counting what the writer took (it goes out, as if in
// the kernel's buffer), and the writer takes no more. Writes without a
// deadline, the bulk path, stay zero-copy.
func (st *Stream) writeLocked(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		for st.sendWindow <= 0 {
			if st.err != nil {
				return n, st.err
			}
			if err := st.waitLocked(st.writeDeadlineLocked()); err != nil {
				return n, err
			}
		}
		if st.err != nil {
			return n, st.err
		}
		if st.deadlinePassedLocked(st.writeDeadlineLocked()) {
			return n, errDeadline // as net.Conn, even when the window has room
		}
		k := int(min(int64(len(p)), st.sendWindow))
		st.sendWindow -= int64(k)
		st.pending = p[:k]
		st.mu.Unlock()
		err := st.sess.w.submit(st)
		st.mu.Lock()
		if err != nil {
			st.pending = nil
			return n, err
		}
		for len(st.pending) > 0 || st.inFlight > 0 || st.copies > 0 {
			if st.lost {
				// A batch holding part of the chunk failed: none of the
				// chunk counts, since the caller cannot know which part
				// went out.
				st.pending = nil
				return n, st.lostErrLocked()
			}
			if st.inFlight == 0 {
				// No frame being written points into p, so the rest can
				// be taken back safely if we must stop.
				stop := st.err
				if stop == nil && st.deadlinePassedLocked(st.writeDeadlineLocked()) {
					stop = errDeadline
				}
				if stop == nil && st.dropped && len(st.pending) > 0 {
					// The writer dropped the stream at a deadline that has
					// since moved: hand the rest back to it.
					st.dropped = false
					st.mu.Unlock()
					err := st.sess.w.submit(st)
					st.mu.Lock()
					if err != nil {
						st.pending = nil
						return n, err
					}
					continue
				}
				if stop != nil {
					unsent := len(st.pending)
					st.pending = nil
					st.sendWindow += int64(unsent)
					taken := k - unsent
					if stop != errDeadline {
						// Copies still in flight go out only if the
						// session lives: they are not counted.
						taken -= min(st.copiedN, taken)
					}
					return n + taken, stop
				}
			}
			st.cond.Wait()
		}
		if st.lost {
			return n, st.lostErrLocked()
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close half-closes the stream: the peer reads everything written before,
// then io.EOF. This side may still read. Writes after Close fail. Close is
// idempotent and waits neither for the peer nor for the connection: it
// queues END_STREAM and returns. A stream keeps its place among the peer's
// MaxConcurrentStreams until both sides have closed it (or it was reset)
// and this side has read all its data: unread data holds the place.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.closedWrite || st.err != nil {
		st.mu.Unlock()
		return nil
	}
	st.closedWrite = true
	st.cond.Broadcast() // a Write waiting for its turn now fails
	// A Write in progress sends END_STREAM when it ends; a stream not yet
	// accepted sends it once accepted.
	now := st.accepted && !st.writing
	st.endQueued = !now
	st.mu.Unlock()
	if now {
		st.sendEnd()
	}
	return nil
}

// sendEnd queues END_STREAM (an empty DATA frame) with the control frames,
// once no Write is in progress. It never writes on the calling goroutine,
// and, queued in order with control frames, it cannot be overtaken by an
// OPEN queued later (so the peer frees the stream's place first) nor lost
// when the session closes next (the final GOAWAY is queued after it).
func (st *Stream) sendEnd() {
	st.mu.Lock()
	if st.sentEnd || st.err != nil {
		st.mu.Unlock()
		return
	}
	st.sentEnd, st.endQueued = true, false
	st.counters.framesSent++ // an empty DATA frame
	done := st.recvEnd
	st.mu.Unlock()
	end := frame.AppendData(make([]byte, 0, frame.HeaderSize), st.id, frame.FlagEndStream, nil)
	if done {
		st.sess.forgetThenQueue(st, end) // closed by both sides (SPEC 6.2)
		return
	}
	st.sess.w.queueControl(end)
}

// CloseWrite half-closes the stream, as Close does. It is there for code
// that expects the method of *net.TCPConn.
func (st *Stream) CloseWrite() error { return st.Close() }

// Reset ends both directions at once and tells the peer (RESET, code
// CANCEL). Here, data not yet read is dropped and later Reads and Writes
// fail with an error matching ErrStreamReset. The peer first reads what was
// sent before the reset, then io.EOF, and its Writes fail with
// ErrStreamReset; its EndReason says that the stream was reset.
func (st *Stream) Reset() error {
	st.resetWith(frame.CodeCancel, "", st.sess.w.queueControl)
	return nil
}

// resetWith resets the stream from this side with code and reason, and
// sends the RESET with queue: the writer's queueControl, or its queueAnswer
// for a reset that answers the peer's broken frame.
func (st *Stream) resetWith(code frame.ErrCode, reason string, queue func([]byte)) {
	st.mu.Lock()
	if st.err != nil {
		// Ended already (by the peer, say): still drop what is unread and
		// give back a place that data held.
		st.discard = true
		st.recv.drop()
		st.readN = 0
		release := st.holdsPlace
		st.holdsPlace = false
		st.cond.Broadcast()
		st.mu.Unlock()
		if release {
			st.sess.releaseHeldPlace(st)
		}
		return
	}
	done := st.sentEnd && st.recvEnd // the peer has forgotten it: nothing to send
	st.failLocked(&resetError{streamID: st.id, code: code}, true)
	release := st.holdsPlace
	st.holdsPlace = false
	st.mu.Unlock()
	if release {
		st.sess.releaseHeldPlace(st)
	}
	// Forgotten first: once the peer has the RESET it may open another
	// stream at once, and its place must be free by then.
	st.sess.forget(st)
	if !done {
		var b [frame.HeaderSize + 4 + frame.MaxReasonBytes]byte
		queue(frame.AppendReset(b[:0], st.id, code, reason))
		st.sess.counters.resetsSent.Add(1)
	}
	st.sess.touch()
}

// resetByPeer applies the peer's RESET (SPEC 4.6): what arrived before it
// stays readable, then io.EOF.
func (st *Stream) resetByPeer(code frame.ErrCode, reason string) {
	st.mu.Lock()
	if st.err == nil {
		st.failLocked(&resetError{streamID: st.id, byPeer: true, code: code, reason: reason}, false)
		st.eofAfter = true
	}
	st.mu.Unlock()
	st.sess.forget(st)
}

// endWithSession fails the stream because its session ended. With discard
// (this side closed it), buffered data is dropped. Otherwise it stays
// readable, followed by io.EOF if the peer had half-closed or ended the
// session on purpose (clean), else by err (SPEC 8.3).
func (st *Stream) endWithSession(err error, discard, clean bool) {
	st.mu.Lock()
	if st.err == nil {
		st.failLocked(&resetError{streamID: st.id, cause: err}, discard)
		st.eofAfter = clean && !discard
	}
	st.mu.Unlock()
}

// EndReason tells how the stream's receive direction ended, for a caller
// whose Read returned io.EOF: nil if the peer half-closed it (Close), so
// everything it wrote has arrived; an error matching ErrStreamReset if it
// was reset (by the peer: the error carries the peer's code and reason); an
// error matching ErrSessionClosed if the session ended first. It returns
// nil while the stream is open.
func (st *Stream) EndReason() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.recvEnd {
		return nil
	}
	return st.err
}

// failLocked ends the stream with err and wakes everyone waiting on it.
func (st *Stream) failLocked(err error, discard bool) {
	st.err = err
	st.discard = discard
	if discard {
		st.recv.drop()
		st.readN = 0
	}
	st.endQueued = false // a Write still waiting takes its pending slice back
	if st.dl != nil {
		stopTimer(st.dl.read.timer)
		stopTimer(st.dl.write.timer)
	}
	st.cond.Broadcast()
}

// waitAccepted waits for the peer's ACCEPT of a stream this side opened.
func (st *Stream) waitAccepted(ctx context.Context) error {
	stop := context.AfterFunc(ctx, st.wake)
	defer stop()
	st.mu.Lock()
	defer st.mu.Unlock()
	for !st.accepted {
		switch {
		case st.openErr != nil:
			return st.openErr
		case st.err != nil:
			return st.err
		case ctx.Err() != nil:
			return errOpenCanceled
		}
		st.cond.Wait()
	}
	return nil
}

var errOpenCanceled = errors.New("httpstream: stopped waiting for ACCEPT")

// refused applies the peer's REFUSE, or a GOAWAY that covers the stream.
func (st *Stream) refused(err error) {
	st.mu.Lock()
	st.openErr = err
	st.cond.Broadcast()
	st.mu.Unlock()
	st.sess.forget(st)
}

// frameWritten is called by the writer once one of the stream's frames is
// on the wire, or, with ok false, failed to get there.
func (st *Stream) frameWritten(copied bool, size int, ok bool) {
	st.mu.Lock()
	if copied {
		st.copies--
		st.copiedN -= size
	} else {
		st.inFlight--
	}
	st.lost = st.lost || !ok
	if st.inFlight == 0 && st.copies == 0 || !ok {
		// Wake the Write whether or not data is pending: with nothing in
		// flight it may take the rest back (reset, deadline).
		st.cond.Broadcast()
	}
	st.mu.Unlock()
}

// writtenOut reports whether a Write flushing on its own goroutine can stop:
// nothing of it is in flight, and either nothing is pending or the Write is
// about to give up the rest (reset, session end, deadline).
func (st *Stream) writtenOut() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.inFlight == 0 && st.copies == 0 && (len(st.pending) == 0 || st.stopSendingLocked())
}

// copyFramesLocked reports whether the writer must copy the frames it takes
// from the stream, rather than write from the Write's slice: the stream has
// a write deadline (see writeLocked).
func (st *Stream) copyFramesLocked() bool {
	return !st.writeDeadlineLocked().IsZero()
}

// stopSendingLocked reports whether the writer must take no more of the
// stream's pending data: the stream ended, or its write deadline passed (the
// Write then takes the rest back and reports how much went out).
func (st *Stream) stopSendingLocked() bool {
	return st.err != nil || st.deadlinePassedLocked(st.writeDeadlineLocked())
}

func (st *Stream) wake() {
	st.mu.Lock()
	st.cond.Broadcast()
	st.mu.Unlock()
}

// SetDeadline sets both the read and the write deadline, as net.Conn does.
func (st *Stream) SetDeadline(t time.Time) error {
	st.SetReadDeadline(t)
	st.SetWriteDeadline(t)
	return nil
}

// SetReadDeadline makes a Read blocked now or later fail with
// os.ErrDeadlineExceeded once t has passed. The zero time means none.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	dl := st.deadlinesLocked()
	dl.read.set(t, dl.wake)
	st.cond.Broadcast() // a waiter re-checks: the deadline may have moved into the past
	return nil
}

// SetWriteDeadline makes a Write blocked now or later fail with
// os.ErrDeadlineExceeded once t has passed; a Write that fails so may have
// written part of its data, as its count says. The zero time means none.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	dl := st.deadlinesLocked()
	dl.write.set(t, dl.wake)
	st.cond.Broadcast()
	return nil
}

func (st *Stream) deadlinesLocked() *deadlines {
	if st.dl == nil {
		st.dl = &deadlines{wake: st.wake}
	}
	return st.dl
}

func (st *Stream) readDeadlineLocked() time.Time {
	if st.dl == nil {
		return time.Time{}
	}
	return st.dl.read.at
}

func (st *Stream) writeDeadlineLocked() time.Time {
	if st.dl == nil {
		return time.Time{}
	}
	return st.dl.write.at
}

func (st *Stream) deadlinePassedLocked(t time.Time) bool {
	return !t.IsZero() && !time.Now().Before(t)
}

// waitLocked waits for a broadcast, or fails once deadline has passed. The
// deadline's timer broadcasts when it fires.
func (st *Stream) waitLocked(deadline time.Time) error {
	if st.deadlinePassedLocked(deadline) {
		return errDeadline
	}
	st.cond.Wait()
	return nil
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (st *Stream) lostErrLocked() error {
	if st.err != nil {
		return st.err
	}
	if err := st.sess.w.err(); err != nil {
		return &closedError{cause: &connError{op: "writing", err: err}}
	}
	return &closedError{cause: errors.New("the connection failed")}
}
