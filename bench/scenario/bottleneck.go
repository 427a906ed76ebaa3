package scenario

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The relay's data path (see link.go for the whole): per direction of a
// connection, a flow of two goroutines. The reader reads big chunks from
// the sending end's socket once the bottleneck has room for one, and gives
// each the time it reaches the far end; the writer writes each chunk to
// the receiving end at that time.
//
// The bottleneck is a virtual clock rather than a ticking token bucket:
// it keeps the time at which it will have sent everything admitted (free),
// so the bytes queued are (free - now) × rate, computed when needed. A
// chunk is admitted when it fits in the buffer, leaves at free + its size
// / rate, and arrives one delay later. Every wait is for an absolute time
// on the link's clock, so a timer that fires late (Go's often do: by up to
// a millisecond when the process is idle, by far more on a busy machine)
// delays that one chunk, never the ones after it, and the rate holds on
// average; a writer
// that wakes late writes every chunk then due, one after the other,
// without another timer. Timer wake-ups: at most two per chunk (reader
// waiting for room, writer waiting for release), each chunk up to
// chunkSize, so about 1,500 a second at 50 MB/s.
//
// Memory: chunks come from a free list per link and go back to it once
// written, so a flow in its steady state allocates nothing. A flow holds
// at most bottleneck.limit bytes (the queue, the delay, and the far end's
// receive buffer), and at most four times as many chunks as that takes
// full ones (reads of a slow sender come back short), so one whose
// receiver stops reading stalls its sender, through the relay's socket,
// instead of growing.

const (
	// chunkSize is the relay's read size, and its unit of memory.
	chunkSize = 64 << 10
	// relayReadBuffer is the socket receive buffer of the relay's ends,
	// small so that what waits for the bottleneck waits in its queue, not
	// in a kernel buffer the link does not count: about one chunk.
	relayReadBuffer = chunkSize
)

// bottleneck is one direction of a link, shared by every connection across
// it.
type bottleneck struct {
	delay     time.Duration
	nsPerByte float64       // the rate, as the time one byte takes
	queue     time.Duration // the buffer, as the time the rate takes to send it
	// limit is what a flow through it may hold: the queue, what the delay
	// holds at the rate, and one bandwidth-delay product more for what has
	// arrived and the far end has not read yet. A real receiver's socket
	// buffer is that large, auto-tuned to the round trip; the endpoint's
	// own, over loopback, stays small. Without it, a receiver that paused
	// a few milliseconds (a busy machine) would stall the link.
	limit int64

	mu   sync.Mutex    // guards free
	free time.Duration // on the link's clock: when everything admitted will have left
}

func newBottleneck(p Path, rtt time.Duration) *bottleneck {
	nsPerByte := 1e9 / p.Rate
	return &bottleneck{
		delay:     p.Delay,
		nsPerByte: nsPerByte,
		queue:     time.Duration(float64(p.Buffer) * nsPerByte),
		limit:     p.Buffer + int64(p.Rate*(p.Delay+rtt).Seconds()) + 4*chunkSize,
	}
}

// waitRoom waits until n more bytes would fit in the queue; false if the
// link closed first.
func (b *bottleneck) waitRoom(l *Link, timer *time.Timer, n int) bool {
	for {
		b.mu.Lock()
		over := b.overLocked(l.now(), n)
		b.mu.Unlock()
		if over <= 0 {
			return true
		}
		if !l.sleepFor(timer, over) {
			return false
		}
	}
}

// overLocked returns how long the queue must drain before n more bytes fit
// at now, 0 if they fit. A chunk larger than the whole buffer fits an
// empty queue.
func (b *bottleneck) overLocked(now time.Duration, n int) time.Duration {
	start := max(b.free, now)
	if start == now {
		return 0
	}
	return max(start+time.Duration(float64(n)*b.nsPerByte)-now-b.queue, 0)
}

// admit waits until n bytes fit in the queue, queues them, and returns
// when they reach the far end, on the link's clock; false if the link
// closed first.
func (b *bottleneck) admit(l *Link, timer *time.Timer, n int) (time.Duration, bool) {
	for {
		b.mu.Lock()
		now := l.now()
		over := b.overLocked(now, n)
		if over <= 0 {
			b.free = max(b.free, now) + time.Duration(float64(n)*b.nsPerByte)
			arrival := b.free + b.delay
			b.mu.Unlock()
			return arrival, true
		}
		b.mu.Unlock()
		if !l.sleepFor(timer, over) {
			return 0, false
		}
	}
}

// queued returns how long the bottleneck takes to send what it holds: the
// queueing delay a byte admitted now would see.
func (b *bottleneck) queued(now time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.free-now, 0)
}

// newIdleTimer returns a stopped timer, for sleepFor.
func newIdleTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// sleepFor waits d on timer; false if the link closed first.
func (l *Link) sleepFor(timer *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return true
	case <-l.done:
		timer.Stop()
		return false
	}
}

// chunk is a piece of one flow on its way across the link.
type chunk struct {
	buf     []byte        // chunkSize bytes
	n       int           // bytes of buf in use; 0 marks the end of the flow
	err     error         // at the end: io.EOF for a half-close, else what ended the read
	arrival time.Duration // on the link's clock: when it reaches the far end
}

// chunkPool is a link's free list of chunks; it grows to the most chunks
// in flight at once and allocates nothing after that.
type chunkPool struct {
	mu   sync.Mutex // guards free
	free []*chunk
}

func (p *chunkPool) get() *chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		return c
	}
	return &chunk{buf: make([]byte, chunkSize)}
}

func (p *chunkPool) put(c *chunk) {
	c.n, c.err = 0, nil
	p.mu.Lock()
	p.free = append(p.free, c)
	p.mu.Unlock()
}

// flow carries one direction of one relayed connection: readLoop reads src
// into chunks and queues them, writeLoop writes them to dst when they
// arrive. Both are started by Link.relay and end when the connection or
// the link does.
type flow struct {
	rc       *relayedConn
	neck     *bottleneck
	src, dst *net.TCPConn
	queue    chan *chunk   // admitted chunks in arrival order, from readLoop to writeLoop
	room     chan struct{} // capacity 1: writeLoop freed some of held
	held     atomic.Int64  // bytes readLoop read and writeLoop has not written (or dropped)
}

func newFlow(rc *relayedConn, neck *bottleneck, src, dst *net.TCPConn) *flow {
	src.SetReadBuffer(relayReadBuffer) // best effort: a larger buffer only hides some queue
	return &flow{
		rc: rc, neck: neck, src: src, dst: dst,
		// Full chunks would need limit/chunkSize places; short reads
		// make more, up to this bound, past which readLoop waits to
		// queue (and the socket fills, so the next reads are longer).
		queue: make(chan *chunk, 4*(neck.limit/chunkSize+1)),
		room:  make(chan struct{}, 1),
	}
}

// readLoop reads src while the flow and the bottleneck have room, and
// queues what it read with its arrival time; at the end of src it queues
// a chunk of 0 bytes that carries the error.
func (f *flow) readLoop() {
	l := f.rc.link
	defer l.wg.Done()
	timer := newIdleTimer()
	for {
		// Room first, then the read: data waits for the bottleneck in the
		// sender's socket (where TCP_NOTSENT_LOWAT and flow control see
		// it), not in the relay.
		if !f.waitHeld() || !f.neck.waitRoom(l, timer, chunkSize) {
			return
		}
		c := l.chunks.get()
		n, err := f.src.Read(c.buf)
		if n > 0 {
			c.n = n
			f.held.Add(int64(n))
			if !f.send(c, timer) {
				return
			}
			if err == nil {
				continue
			}
			c = l.chunks.get()
		}
		if err == nil {
			l.chunks.put(c)
			continue
		}
		c.err = err
		f.send(c, timer)
		return
	}
}

// waitHeld waits until the flow may take another chunk; false if the link
// closed first.
func (f *flow) waitHeld() bool {
	for f.held.Load()+chunkSize > f.neck.limit {
		select {
		case <-f.room:
		case <-f.rc.link.done:
			return false
		}
	}
	return true
}

// giveBack returns a chunk to the pool, its bytes no longer held, and
// tells readLoop.
func (f *flow) giveBack(c *chunk) {
	f.held.Add(-int64(c.n))
	f.rc.link.chunks.put(c)
	select {
	case f.room <- struct{}{}:
	default:
	}
}

// send admits c to the bottleneck and queues it for writeLoop; false if
// the link closed first.
func (f *flow) send(c *chunk, timer *time.Timer) bool {
	l := f.rc.link
	arrival, ok := f.neck.admit(l, timer, c.n)
	if !ok {
		return false
	}
	c.arrival = arrival
	select {
	case f.queue <- c:
		return true
	case <-l.done:
		return false
	}
}

// writeLoop writes each chunk to dst when it arrives; at the end of src it
// half-closes dst (or, after an error, closes the connection) and ends. A
// failed write closes the connection, which ends readLoop's read; the
// chunks still queued are given back until its end marker comes.
func (f *flow) writeLoop() {
	l := f.rc.link
	defer l.wg.Done()
	timer := newIdleTimer()
	failed := false
	for {
		var c *chunk
		select {
		case c = <-f.queue:
		case <-l.done:
			return
		}
		if !failed && !l.sleepFor(timer, c.arrival-l.now()) {
			return
		}
		if c.n == 0 {
			if !failed && c.err == io.EOF {
				f.dst.CloseWrite()
			} else {
				f.rc.abort()
			}
			f.giveBack(c)
			f.rc.flowDone()
			return
		}
		if !failed {
			if _, err := f.dst.Write(c.buf[:c.n]); err != nil {
				failed = true
				f.rc.abort()
			}
		}
		f.giveBack(c)
	}
}
