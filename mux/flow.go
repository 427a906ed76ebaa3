package mux

import (
	"math/bits"
	"sync"
	"time"
)

// recvBuffer holds the data that arrived on a stream and was not read yet,
// and the stream's receive window (SPEC 7). The buffer is a ring taken from
// a pool when data arrives and given back when it drains, so an idle stream
// holds no buffer. Guarded by the stream's mu, except that the reader
// goroutine fills a reserved region outside the lock (see reserve).
type recvBuffer struct {
	chunk     *chunk
	head, n   int  // ring position of the first unread octet, unread octets
	receiving bool // the reader goroutine is filling a reserved region

	avail      uint32 // octets the peer may still send: the window left
	window     uint32 // the window's current size
	unacked    uint32 // octets read but not yet credited to the peer
	growth     uint32 // window added by auto-tuning (counted in the session's total)
	lastCredit int64  // UnixNano of the last credit, for auto-tuning
}

func (b *recvBuffer) init(window uint32) {
	b.avail, b.window = window, window
}

func (b *recvBuffer) buffered() int { return b.n }

// reserve returns where the next n octets go (two slices when the region
// wraps around the ring), growing the ring if needed. The caller fills them
// without the lock, then calls commit. Only the reader goroutine calls it,
// and Read never touches octets past head+n, so the region is its own.
func (b *recvBuffer) reserve(n int) (first, second []byte) {
	if b.n == 0 {
		b.head = 0 // keep the region contiguous when the ring is empty
	}
	if b.chunk == nil {
		// Room for a few frames, so a reader that falls a little behind
		// does not make the ring grow (and copy) at once.
		b.chunk = getChunk(min(max(4*n, minChunk), int(b.window)))
	} else if size := len(b.chunk.b); size-b.n < n {
		bigger := getChunk(max(b.n+n, 2*size))
		b.copyOut(bigger.b)
		putChunk(b.chunk)
		b.chunk, b.head = bigger, 0
	}
	buf := b.chunk.b
	tail := (b.head + b.n) & (len(buf) - 1)
	b.receiving = true
	if tail+n <= len(buf) {
		return buf[tail : tail+n], nil
	}
	return buf[tail:], buf[:n-(len(buf)-tail)]
}

// commit makes n reserved octets readable.
func (b *recvBuffer) commit(n int) {
	b.receiving = false
	b.n += n
	b.releaseIfEmpty()
}

// read copies buffered octets into p and counts them for crediting.
func (b *recvBuffer) read(p []byte) int {
	n := b.copyOut(p)
	size := len(b.chunk.b)
	b.head = (b.head + n) & (size - 1)
	b.n -= n
	b.unacked += uint32(n)
	b.releaseIfEmpty()
	return n
}

// copyOut copies from the unread octets into p, without consuming them.
func (b *recvBuffer) copyOut(p []byte) int {
	if b.n == 0 {
		return 0
	}
	buf := b.chunk.b
	first := min(b.n, len(buf)-b.head)
	c := copy(p, buf[b.head:b.head+first])
	if c == first && c < b.n {
		c += copy(p[c:], buf[:b.n-first])
	}
	return c
}

// drop discards unread octets (RESET, SPEC 4.6).
func (b *recvBuffer) drop() {
	b.n = 0
	b.releaseIfEmpty()
}

func (b *recvBuffer) releaseIfEmpty() {
	if b.n == 0 && !b.receiving && b.chunk != nil {
		putChunk(b.chunk)
		b.chunk = nil
	}
}

// growFactor: a window grows when half of it was read within this many
// round trips, which settles windows near 2*growFactor times the
// bandwidth-delay product: enough to keep the sender busy, not so much that
// one stream's data queues for long in front of another's.
const growFactor = 2

// defaultRTT stands in for the round-trip time until a PING measured it.
const defaultRTT = 20 * time.Millisecond

// creditLocked counts n octets the application read and, once half the
// window is read, returns the increment of the WINDOW_UPDATE to send (SPEC
// 7.2). It grows the window, doubling it, when the last half-window was read
// in less than two round trips: then the window, not the reader, is what
// limits the stream (SPEC 7.3).
func (st *Stream) creditLocked(n int) uint32 {
	b := &st.recv
	if n == 0 || st.recvEnd || st.err != nil || b.unacked < b.window/2 {
		return 0
	}
	s := st.sess
	var grow uint32
	if b.window < s.cfg.MaxStreamWindow {
		now := time.Now().UnixNano()
		rtt := s.minRTT.Load()
		if rtt == 0 {
			rtt = int64(defaultRTT)
		}
		if b.lastCredit != 0 && now-b.lastCredit < growFactor*rtt {
			g := min(b.window, s.cfg.MaxStreamWindow-b.window)
			if s.windowGrowth.Add(int64(g)) <= int64(s.cfg.MaxSessionWindow) {
				grow = g
			} else {
				s.windowGrowth.Add(-int64(g))
			}
		}
		b.lastCredit = now
	}
	inc := b.unacked + grow
	b.unacked = 0
	b.window += grow
	b.growth += grow
	b.avail += inc
	return inc
}

// releaseGrowth returns the stream's auto-tuning growth, for the session to
// take off its total when the stream is forgotten.
func (st *Stream) releaseGrowth() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	g := st.recv.growth
	st.recv.growth = 0
	return int64(g)
}

// chunk is a pooled ring buffer. Sizes are powers of two, at least
// minChunk; one pool per size.
type chunk struct{ b []byte }

const (
	minChunkShift = 12 // 4 KiB
	minChunk      = 1 << minChunkShift
)

var chunkPools [32]sync.Pool

func chunkClass(n int) int {
	return max(minChunkShift, bits.Len(uint(n-1)))
}

func getChunk(n int) *chunk {
	class := chunkClass(n)
	if c, ok := chunkPools[class].Get().(*chunk); ok {
		return c
	}
	return &chunk{b: make([]byte, 1<<class)}
}

func putChunk(c *chunk) {
	chunkPools[chunkClass(len(c.b))].Put(c)
}
