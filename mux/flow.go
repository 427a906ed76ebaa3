package mux

import "sync"

// recvBuffer holds the data that arrived on a stream and was not read yet,
// and the stream's receive window (SPEC 7). The data sits in a queue of
// fixed-size blocks taken from a pool as data arrives and given back as it
// is read: an idle stream holds none, a busy one holds at most its window
// plus two partly used blocks, and growing never copies. Guarded by the
// stream's mu, except that the reader goroutine fills a reserved region
// outside the lock (see reserve).
type recvBuffer struct {
	blocks    []*block // unread octets start at blocks[0].b[head], n of them
	head      int      // first unread octet in blocks[0]
	tail      int      // end of the committed octets in the last block
	n         int      // unread (committed) octets
	receiving bool     // the reader goroutine is filling a reserved region
	resv      struct { // the region handed out by reserve
		n, tail, added int // its size; the tail once committed; blocks appended for it
	}
	segs [][]byte // reserve's result, reused

	avail   uint32 // octets the peer may still send: the window left
	window  uint32 // the window's current size
	unacked uint32 // octets read but not yet credited to the peer
	growth  uint32 // window added past the floor (counted in the session's budget)
	peak    uint32 // the largest the window has been
	started bool   // startAfter octets arrived: the window was raised from the floor

	// Auto-tuning (tune.go), updated as DATA arrives.
	want       uint32 // the window size to move to; 0: no aim yet
	rate       int64  // octets a second arrived in the last round
	roundStart int64  // monoNow when the round began; 0: none yet
	roundBytes int64  // octets arrived in the round so far
	rounds     int    // rounds since the start or the last pause
	steady     bool   // a queue was seen: the window grows slowly now
	heavy      bool   // the last round brought a quarter of the window or more: not an interactive stream
	target     int64  // the queue aimed at, ns
}

func (b *recvBuffer) init(window uint32) {
	b.avail, b.window, b.peak = window, window, window
}

func (b *recvBuffer) buffered() int { return b.n }

// reserve returns where the next n octets go: the free end of the last
// block, then new blocks. The caller fills the slices without the lock, then
// calls commit. Only the reader goroutine calls it, and Read never touches
// octets past the n committed ones, nor releases a block that holds any of
// the region, so the region is the reader's own until commit.
func (b *recvBuffer) reserve(n int) [][]byte {
	b.segs = b.segs[:0]
	b.resv.n, b.resv.added = n, 0
	if len(b.blocks) == 1 && b.head > 0 && b.tail+n > blockSize && b.n+n <= blockSize {
		// Everything fits in the one block once the unread octets move to
		// its front: so a stream at its floor (SPEC 7.4) never holds more
		// than one block, however it is read.
		copy(b.blocks[0].b[:], b.blocks[0].b[b.head:b.tail])
		b.head, b.tail = 0, b.n
	}
	t := b.tail
	if len(b.blocks) == 0 {
		t = blockSize // no room: start a block
	}
	for n > 0 {
		if t == blockSize {
			b.blocks = append(b.blocks, getBlock())
			b.resv.added++
			t = 0
		}
		k := min(n, blockSize-t)
		b.segs = append(b.segs, b.blocks[len(b.blocks)-1].b[t:t+k])
		t += k
		n -= k
	}
	b.resv.tail = t
	b.receiving = true
	return b.segs
}

// commit makes the reserved octets readable, or, when ok is false (the read
// failed, or the stream was reset meanwhile), gives the region back.
func (b *recvBuffer) commit(ok bool) {
	b.receiving = false
	clear(b.segs)
	if ok {
		b.n += b.resv.n
		b.tail = b.resv.tail
	} else {
		// The region's own blocks are the last ones: Read may have freed
		// blocks at the front meanwhile, never one holding the region.
		keep := len(b.blocks) - b.resv.added
		for i := keep; i < len(b.blocks); i++ {
			putBlock(b.blocks[i])
			b.blocks[i] = nil
		}
		b.blocks = b.blocks[:keep]
	}
	b.releaseIfEmpty()
}

// read copies unread octets into p and counts them for crediting.
func (b *recvBuffer) read(p []byte) int {
	total := 0
	for len(p) > 0 && b.n > 0 {
		k := copy(p, b.blocks[0].b[b.head:b.head+min(blockSize-b.head, b.n)])
		p = p[k:]
		b.head += k
		b.n -= k
		total += k
		if b.head == blockSize { // used up, and before any reserved region
			putBlock(b.blocks[0])
			b.blocks[0] = nil
			b.blocks = b.blocks[1:]
			b.head = 0
		}
	}
	b.unacked += uint32(total)
	b.releaseIfEmpty()
	return total
}

// drop discards unread octets (RESET, SPEC 4.6).
func (b *recvBuffer) drop() {
	b.n = 0
	b.releaseIfEmpty()
}

func (b *recvBuffer) releaseIfEmpty() {
	if b.n > 0 || b.receiving {
		return
	}
	for i, blk := range b.blocks {
		putBlock(blk)
		b.blocks[i] = nil
	}
	b.blocks = b.blocks[:0]
	b.head, b.tail = 0, 0
}

// creditLocked counts n octets the application read and, once a quantum
// of them is read (creditQuantum; at most half the window, SPEC 7.2),
// returns the increment of the WINDOW_UPDATE to send. The increment also
// moves the window toward the size auto-tuning aims at (tune.go, SPEC 7.3):
// it adds the growth, as far as the session's budget allows, or withholds
// the shrink.
func (st *Stream) creditLocked(n int) uint32 {
	b := &st.recv
	if n == 0 || st.recvEnd || st.err != nil || b.unacked < b.creditQuantum(st.sess.cfg.InitialStreamWindow) {
		return 0
	}
	inc := b.unacked
	b.unacked = 0
	switch {
	case b.want > b.window:
		inc += st.growLocked(b.want - b.window)
	case b.want != 0 && b.want < b.window:
		cut := min(b.window-b.want, inc)
		st.shrinkLocked(cut)
		inc -= cut
	}
	b.avail += inc
	return inc
}

// startAfter is how much a stream must receive before its window rises
// from the floor: a quarter of it. Streams that carry only small messages
// (an open, a one-byte echo and a close; keystrokes; Kubernetes' resize
// and error streams) never need more than the floor, and their
// WINDOW_UPDATE would be one more frame for the writer goroutine, queued
// just as the reply to that first message is written. A bulk sender's
// first frame is usually past it already.
const startAfter = maxStreamWindowFloor / 4

// startLocked raises the window of a stream that has received startAfter
// octets from the floor every stream starts with to InitialStreamWindow, as
// far as the session's budget allows, and returns the increment to send.
// Streams that receive less keep only the floor, so idle streams cost the
// budget nothing (SPEC 7.4).
func (st *Stream) startLocked() uint32 {
	b := &st.recv
	if b.started || st.recvEnd || st.err != nil || st.counters.dataReceived < startAfter {
		return 0
	}
	b.started = true
	want := int64(st.sess.cfg.InitialStreamWindow) - int64(b.window)
	if want <= 0 {
		return 0
	}
	g := st.growLocked(uint32(want))
	b.avail += g
	return g
}

// growLocked adds up to want octets to the stream's window, as many as the
// session's budget has left, and returns how many. The first growth also
// takes blockSlack from the budget: a window past the floor can leave its
// data spread over two partly used blocks, and the bound counts them.
func (st *Stream) growLocked(want uint32) uint32 {
	b := &st.recv
	var slack uint32
	if b.growth == 0 {
		slack = blockSlack
	}
	g := st.sess.takeBudget(want + slack)
	if g <= slack {
		st.sess.budgetUsed.Add(-int64(g))
		return 0
	}
	b.growth += g // released whole when the stream is forgotten
	b.window += g - slack
	b.peak = max(b.peak, b.window)
	return g - slack
}

// blockSlack is the memory a stream's receive buffer may hold beyond its
// window: two partly used blocks, one at each end.
const blockSlack = 2 * blockSize

// releaseGrowth returns the stream's auto-tuning growth, for the session to
// take off its total when the stream is forgotten.
func (st *Stream) releaseGrowth() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	g := st.recv.growth
	st.recv.growth = 0
	return int64(g)
}

// blockSize is the unit of receive buffers: small enough that a stream with
// a few unread octets holds little, large enough that a frame spans at most
// a few blocks.
const blockSize = 16 << 10

type block struct{ b [blockSize]byte }

var blockPool = sync.Pool{New: func() any { return new(block) }}

func getBlock() *block  { return blockPool.Get().(*block) }
func putBlock(b *block) { blockPool.Put(b) }
