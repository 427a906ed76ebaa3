package scenario

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// openStreamPair makes a pair, bounded by ctx (see openPair), and one stream
// on it; done closes the pair.
func openStreamPair(ctx context.Context, tr Transport) (p Pair, c, s Stream, done func(), err error) {
	p, done, err = openPair(ctx, tr)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, s, err = streamPair(p)
	if err != nil {
		done()
		return nil, nil, nil, nil, err
	}
	return p, c, s, done, nil
}

// Bulk moves o.BulkBytes over one stream in o.WriteSize writes, and goes on
// until o.MinDuration has passed. Metric: "MB/s" (higher is better), as the
// receiver saw it.
func Bulk(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	_, c, s, done, err := openStreamPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	moved, elapsed, err := transfer(c, s, o.BulkBytes, o.WriteSize, o.MinDuration, nil)
	if err != nil {
		return nil, stuck(ctx, err)
	}
	return map[string]float64{"MB/s": mbps(moved, elapsed)}, nil
}

// BulkN moves o.BulkBytes in total over o.Streams streams at once, each
// going on until o.MinDuration has passed. Metric: "MB/s", the aggregate.
func BulkN(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	return bulkN(ctx, tr, o, o.Streams, o.BulkBytes/int64(o.Streams), o.MinDuration, 0)
}

// bulkN moves at least per bytes over each of n streams at once, each
// going on until minDur has passed. "MB/s" is the aggregate from warm after
// the start (0: from the start) until the last stream ended.
func bulkN(ctx context.Context, tr Transport, o Options, n int, per int64, minDur, warm time.Duration) (map[string]float64, error) {
	p, done, err := openPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	type pairOf struct{ c, s Stream }
	streams := make([]pairOf, n)
	for i := range streams {
		c, s, err := streamPair(p)
		if err != nil {
			return nil, err
		}
		streams[i] = pairOf{c, s}
	}
	var moved atomic.Int64 // every stream's receiver adds to it
	start := time.Now()
	errs := make(chan error, n)
	for _, sp := range streams {
		go func() {
			_, _, err := transfer(sp.c, sp.s, per, o.WriteSize, minDur, &moved)
			errs <- err
		}()
	}
	// The count at the end of the warm-up, taken by the clock: one
	// instant for all streams.
	type count struct {
		at    time.Time
		moved int64
	}
	warmed := make(chan count, 1)
	if warm > 0 {
		go func() {
			time.Sleep(warm) // pacing the measurement, not waiting for a state
			warmed <- count{time.Now(), moved.Load()}
		}()
	} else {
		warmed <- count{start, 0}
	}
	for range streams {
		if err := <-errs; err != nil {
			return nil, stuck(ctx, err)
		}
	}
	end := time.Now()
	select {
	case w := <-warmed:
		return map[string]float64{"MB/s": mbps(moved.Load()-w.moved, end.Sub(w.at))}, nil
	default:
		return nil, fmt.Errorf("the streams ended before the warm-up of %s did", warm)
	}
}

// transfer writes at least n bytes to c in size-byte writes, going on until
// minDur has passed, closes c, and reads s to io.EOF, adding what it reads
// to moved if not nil; it returns the bytes moved and the time until the
// reader saw EOF.
func transfer(c, s Stream, n int64, size int, minDur time.Duration, moved *atomic.Int64) (int64, time.Duration, error) {
	start := time.Now()
	type sent struct {
		n   int64
		err error
	}
	wres := make(chan sent, 1)
	go func() {
		buf := make([]byte, size)
		var total int64
		// time.Since costs tens of nanoseconds against the microseconds of
		// a 32 KiB write: checking it every write does not show.
		for total < n || time.Since(start) < minDur {
			k := size
			if total < n {
				k = int(min(int64(size), n-total))
			}
			if _, err := c.Write(buf[:k]); err != nil {
				wres <- sent{err: fmt.Errorf("write: %w", err)}
				return
			}
			total += int64(k)
		}
		wres <- sent{total, c.Close()}
	}()
	buf := make([]byte, size)
	var got int64
	for {
		k, err := s.Read(buf)
		got += int64(k)
		if moved != nil {
			moved.Add(int64(k))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read after %d bytes (at least %d due): %w", got, n, err)
		}
	}
	elapsed := time.Since(start)
	w := <-wres
	if w.err != nil {
		return 0, 0, w.err
	}
	if got != w.n {
		return 0, 0, fmt.Errorf("received %d bytes, sent %d", got, w.n)
	}
	s.Close()
	return got, elapsed, nil
}

// RTT times at least o.EchoRounds round trips of o.EchoSize bytes on one
// stream, and goes on until o.MinDuration has passed. Metrics: "p50-us",
// "p99-us" (lower is better) and the rest of the distribution (see
// LatencyQuantiles).
func RTT(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	_, c, s, done, err := openStreamPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	go echo(s, o.EchoSize)
	warm := min(100, o.EchoRounds)
	if _, err := pingPong(c, o.EchoSize, warm, 0); err != nil {
		return nil, stuck(ctx, err)
	}
	var samples []time.Duration
	start := time.Now()
	for len(samples) < o.EchoRounds || time.Since(start) < o.MinDuration {
		more, err := pingPong(c, o.EchoSize, max(o.EchoRounds-len(samples), 100), 0)
		if err != nil {
			return nil, stuck(ctx, err)
		}
		samples = append(samples, more...)
	}
	return latencyMetrics(samples, nil), nil
}

// latencyMetrics adds to m (a new map if nil) the distribution of samples:
// one metric per LatencyQuantiles, in microseconds.
func latencyMetrics(samples []time.Duration, m map[string]float64) map[string]float64 {
	if m == nil {
		m = map[string]float64{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	for _, q := range LatencyQuantiles {
		m[LatencyMetric(q)] = percentileSorted(sorted, q)
	}
	return m
}

// echo writes back every size-byte message read from s until an error.
func echo(s Stream, size int) {
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(s, buf); err != nil {
			s.Close()
			return
		}
		if _, err := s.Write(buf); err != nil {
			return
		}
	}
}

// pingPong sends rounds messages of size bytes on c, each after the echo of
// the previous one (and at least every apart), and returns the round trips.
func pingPong(c Stream, size, rounds int, every time.Duration) ([]time.Duration, error) {
	msg, back := make([]byte, size), make([]byte, size)
	samples := make([]time.Duration, 0, rounds)
	next := time.Now()
	for i := 0; i < rounds; i++ {
		if every > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d) // pacing the workload, not waiting for a state
			}
			next = next.Add(every)
		}
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, fmt.Errorf("echo write %d: %w", i, err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			return nil, fmt.Errorf("echo read %d: %w", i, err)
		}
		samples = append(samples, time.Since(t0))
	}
	return samples, nil
}

// pingPongFor is pingPong for a duration instead of a count: one echo every
// `every`, until d has passed, so a slow transport gets fewer samples
// rather than a longer run.
func pingPongFor(c Stream, size int, d, every time.Duration) ([]time.Duration, error) {
	var samples []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		s, err := pingPong(c, size, 1, 0)
		if err != nil {
			return nil, err
		}
		samples = append(samples, s[0])
		if wait := every - s[0]; wait > 0 {
			time.Sleep(wait) // pacing the workload, not waiting for a state
		}
	}
	return samples, nil
}

// Open runs at least o.Opens cycles, one after the other, and goes on until
// o.MinDuration has passed, of: open a stream, the server accepts it, echo
// one byte, both sides close. Metric: "opens/s".
func Open(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	p, done, err := openPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	// The client decides when to stop, so it marks the last cycle: its byte
	// is lastCycle, and the server stops after echoing it.
	const lastCycle = 0
	serr := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		for i := 0; ; i++ {
			s, err := p.Accept()
			if err != nil {
				serr <- fmt.Errorf("accept %d: %w", i, err)
				return
			}
			if _, err := io.ReadFull(s, b); err != nil {
				serr <- fmt.Errorf("server read %d: %w", i, err)
				return
			}
			if _, err := s.Write(b); err != nil {
				serr <- fmt.Errorf("server write %d: %w", i, err)
				return
			}
			s.Close()
			if b[0] == lastCycle {
				serr <- nil
				return
			}
		}
	}()
	start := time.Now()
	b := make([]byte, 1)
	cycles := 0
	for {
		last := cycles+1 >= o.Opens && time.Since(start) >= o.MinDuration
		b[0] = 1
		if last {
			b[0] = lastCycle
		}
		c, err := p.Open()
		if err != nil {
			return nil, stuck(ctx, fmt.Errorf("open %d: %w", cycles, err))
		}
		if _, err := c.Write(b); err != nil {
			return nil, stuck(ctx, fmt.Errorf("write %d: %w", cycles, err))
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return nil, stuck(ctx, fmt.Errorf("read %d: %w", cycles, err))
		}
		c.Close()
		cycles++
		if last {
			break
		}
	}
	elapsed := time.Since(start)
	if err := <-serr; err != nil {
		return nil, stuck(ctx, err)
	}
	return map[string]float64{"opens/s": float64(cycles) / elapsed.Seconds()}, nil
}

// Interactive echoes o.EchoSize bytes every o.EchoEvery on one stream while
// another stream sends bulk at full speed, for o.Interactive. Metrics:
// "p50-us", "p99-us" and the rest of the distribution of the echo (lower is
// better), and "bulk-MB/s".
func Interactive(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	ec, bulk, done, err := echoBesideBulk(ctx, tr, o)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	samples, err := pingPongFor(ec, o.EchoSize, o.Interactive, o.EchoEvery)
	elapsed := time.Since(start)
	bulk.stop()
	if err != nil {
		return nil, stuck(ctx, err)
	}
	return latencyMetrics(samples, map[string]float64{"bulk-MB/s": mbps(bulk.moved.Load(), elapsed)}), nil
}

// echoBesideBulk sets up the interactive scenarios on one pair: a stream
// whose far end echoes o.EchoSize messages, returned for the caller to time,
// beside a stream already sending bulk. done ends the pair; the caller
// stops the bulk first.
func echoBesideBulk(ctx context.Context, tr Transport, o Options) (ec Stream, bulk *bulkLoad, done func(), err error) {
	p, bc, bs, done, err := openStreamPair(ctx, tr)
	if err != nil {
		return nil, nil, nil, err
	}
	ec, es, err := streamPair(p)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	go echo(es, o.EchoSize)
	return ec, startBulk(bc, bs, o.WriteSize), done, nil
}

// bulkLoad is a stream sending as fast as it can, the load of the
// interactive scenarios.
type bulkLoad struct {
	moved atomic.Int64 // bytes the receiving end has read
	quit  chan struct{}
	wg    sync.WaitGroup // the sender and the receiver; stop waits for them
}

// startBulk starts writing size-byte writes to c and reading them from s,
// until stop.
func startBulk(c, s Stream, size int) *bulkLoad {
	b := &bulkLoad{quit: make(chan struct{})}
	b.wg.Add(2)
	go func() { // the sender, until stop; it closes c, which ends the receiver
		defer b.wg.Done()
		buf := make([]byte, size)
		for {
			select {
			case <-b.quit:
				c.Close()
				return
			default:
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	go func() { // the receiver, until io.EOF or an error
		defer b.wg.Done()
		buf := make([]byte, size)
		for {
			n, err := s.Read(buf)
			b.moved.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return b
}

// stop ends the sender and waits for the receiver to read what was sent,
// or to fail: the scenario's bound closes the pair if it never does.
func (b *bulkLoad) stop() {
	close(b.quit)
	b.wg.Wait()
}

// Mem opens o.IdleStreams streams and leaves them idle. Metrics, per stream
// and both ends together (lower is better): "heap-B/stream",
// "goroutines/stream", and "stack-B/stream" only if there are goroutines
// per stream.
func Mem(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	p, done, err := openPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	// One stream first, so that per-pair buffers are not counted.
	if _, _, err := streamPair(p); err != nil {
		return nil, err
	}
	before, gBefore := memNow()
	kept := make([]Stream, 0, 2*o.IdleStreams)
	for i := 0; i < o.IdleStreams; i++ {
		c, s, err := streamPair(p)
		if err != nil {
			return nil, stuck(ctx, fmt.Errorf("stream %d: %w", i, err))
		}
		kept = append(kept, c, s)
	}
	after, gAfter := memNow()
	n := float64(o.IdleStreams)
	m := map[string]float64{
		"heap-B/stream":     float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n,
		"goroutines/stream": float64(gAfter-gBefore) / n,
	}
	// Stacks belong to goroutines. Without goroutines per stream, what
	// StackInuse moved by is other goroutines' stacks growing or being
	// shrunk by the GC, whole 32 KiB spans at a time: it read -81.92 or
	// +197 B/stream from one run to the next, noise and not a cost.
	if gAfter-gBefore >= o.IdleStreams {
		m["stack-B/stream"] = float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	}
	runtime.KeepAlive(kept)
	return m, nil
}

func memNow() (runtime.MemStats, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms, runtime.NumGoroutine()
}

// HOL stops reading one stream while its writer keeps writing, and moves
// o.HOLBytes over a second stream, for at least o.MinDuration. Metrics: "pass" (1 if the second stream
// finished within half the time bound, else 0) and "MB/s" of the second
// stream. A transport without per-stream flow control fails it.
func HOL(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	p, stalled, unread, done, err := openStreamPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	_ = unread // never read: that is the point
	go func() {
		buf := make([]byte, o.WriteSize)
		for {
			if _, err := stalled.Write(buf); err != nil {
				return
			}
		}
	}()
	// The bound starts before the second stream opens: a transport whose
	// stalled stream blocks the whole connection may block the open too.
	bound := time.NewTimer(o.Timeout / 2)
	defer bound.Stop()
	type result struct {
		n   int64
		d   time.Duration
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, s, err := streamPair(p)
		if err != nil {
			ch <- result{err: fmt.Errorf("second stream: %w", err)}
			return
		}
		n, d, err := transfer(c, s, o.HOLBytes, o.WriteSize, o.MinDuration, nil)
		ch <- result{n, d, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, stuck(ctx, r.err)
		}
		return map[string]float64{Pass: 1, "MB/s": mbps(r.n, r.d)}, nil
	case <-bound.C:
		return map[string]float64{Pass: 0}, nil
	case <-ctx.Done():
		return map[string]float64{Pass: 0}, nil
	}
}

// Allocs moves o.AllocsBytes over one stream and counts what the process
// allocated meanwhile. Metrics: "B/MiB" and "allocs/MiB" (lower is better).
// It takes no MinDuration: it counts, and a count per MiB moved does not
// depend on how long the run took (the three runs of a report agree to the
// byte).
func Allocs(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	p, c, s, done, err := openStreamPair(ctx, tr)
	if err != nil {
		return nil, err
	}
	defer done()
	n := o.AllocsBytes
	// Warm up windows and pools with a first transfer on another stream.
	wc, ws, err := streamPair(p)
	if err != nil {
		return nil, err
	}
	if _, _, err := transfer(wc, ws, min(n, 8<<20), o.WriteSize, 0, nil); err != nil {
		return nil, stuck(ctx, err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := transfer(c, s, n, o.WriteSize, 0, nil); err != nil {
		return nil, stuck(ctx, err)
	}
	runtime.ReadMemStats(&after)
	mib := float64(n) / (1 << 20)
	return map[string]float64{
		"B/MiB":      float64(after.TotalAlloc-before.TotalAlloc) / mib,
		"allocs/MiB": float64(after.Mallocs-before.Mallocs) / mib,
	}, nil
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds() / 1e6
}

// percentileSorted returns the p-th percentile of sorted samples, in
// microseconds.
func percentileSorted(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i]) / float64(time.Microsecond)
}
