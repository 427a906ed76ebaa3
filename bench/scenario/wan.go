package scenario

import (
	"context"
	"fmt"
	"io"
	"time"
)

// The wan scenarios: bulk, bulk-N and interactive over an emulated link
// (link.go), o.Link, made afresh for every pair. Each moves data for
// o.WANDuration and leaves its first o.WANWarmup out of the numbers: on a
// 40 ms link, windows take a few round trips to grow and the link's queue
// a few more to fill, and a run that counted them would measure the start.

// WANBulk is bulk over the emulated link: one stream, o.WriteSize writes,
// for o.WANDuration. Metric: "MB/s" after the warm-up, as the receiver saw
// it.
func WANBulk(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	w, err := OverLink(tr, o.Link)
	if err != nil {
		return nil, err
	}
	return bulkN(ctx, w, o, 1, 1, o.WANDuration, o.WANWarmup)
}

// WANBulkN is bulk-N over the emulated link: o.Streams streams at once for
// o.WANDuration. Metric: "MB/s", their aggregate after the warm-up.
func WANBulkN(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	w, err := OverLink(tr, o.Link)
	if err != nil {
		return nil, err
	}
	return bulkN(ctx, w, o, o.Streams, 1, o.WANDuration, o.WANWarmup)
}

// WANInteractive is interactive over the emulated link: while one stream
// sends bulk, another sends an o.EchoSize echo every o.WANEchoEvery for
// o.WANDuration, without waiting for the previous one to come back (on a
// 40 ms link a keystroke does not wait for the echo of the last). Metrics,
// over the echoes sent after the warm-up: "p99-added-ms" and
// "p50-added-ms", the echo's time minus the link's round trip (the wait
// behind the bulk stream, in the link's queue and the endpoints'), the
// distribution in microseconds (the round trip included), and
// "bulk-MB/s", the bulk stream's rate meanwhile.
func WANInteractive(ctx context.Context, tr Transport, o Options) (map[string]float64, error) {
	w, err := OverLink(tr, o.Link)
	if err != nil {
		return nil, err
	}
	ec, bulk, done, err := echoBesideBulk(ctx, w, o)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := pacedEchoes(ec, o, bulk)
	bulk.stop()
	if err != nil {
		return nil, stuck(ctx, err)
	}
	m := latencyMetrics(r.samples, map[string]float64{"bulk-MB/s": mbps(r.bulkBytes, r.bulkTime)})
	rtt := float64(o.Link.RTT()) / float64(time.Microsecond)
	for _, q := range []float64{50, 99} {
		m[fmt.Sprintf("p%g-added-ms", q)] = (m[LatencyMetric(q)] - rtt) / 1000
	}
	return m, nil
}

// echoes is what pacedEchoes measured after the warm-up.
type echoes struct {
	samples   []time.Duration // round trips
	bulkBytes int64           // what the bulk stream moved meanwhile
	bulkTime  time.Duration   // in this long
}

// pacedEchoes sends an o.EchoSize message on c every o.WANEchoEvery for
// o.WANDuration, each when its time comes, and times each echo from its
// send; it keeps the echoes sent after o.WANWarmup, and what bulk moved
// from then until the last send.
func pacedEchoes(c Stream, o Options, bulk *bulkLoad) (echoes, error) {
	// Send times go to the receiving goroutine in send order, which is the
	// order of the echoes. The channel holds every send, so the sender
	// never waits on it.
	type sent struct {
		at      time.Time
		counted bool // sent after the warm-up
	}
	sends := make(chan sent, int(o.WANDuration/o.WANEchoEvery)+2)
	type received struct {
		samples []time.Duration
		err     error
	}
	got := make(chan received, 1)
	go func() { // the receiver: ends after the last echo, or when c fails
		back := make([]byte, o.EchoSize)
		var samples []time.Duration
		for s := range sends {
			if _, err := io.ReadFull(c, back); err != nil {
				got <- received{err: fmt.Errorf("echo read %d: %w", len(samples), err)}
				return
			}
			if s.counted {
				samples = append(samples, time.Since(s.at))
			}
		}
		got <- received{samples: samples}
	}()

	var r echoes
	var warmAt time.Time
	var movedAtWarm int64
	msg := make([]byte, o.EchoSize)
	start := time.Now()
	next := start
	for i := 0; ; i++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d) // pacing the workload, not waiting for a state
		}
		now := time.Now()
		if now.Sub(start) >= o.WANDuration {
			break
		}
		counted := now.Sub(start) >= o.WANWarmup
		if counted && warmAt.IsZero() {
			warmAt, movedAtWarm = now, bulk.moved.Load()
		}
		sends <- sent{now, counted}
		if _, err := c.Write(msg); err != nil {
			close(sends)
			// The receiver ends when the scenario closes the pair.
			return echoes{}, fmt.Errorf("echo write %d: %w", i, err)
		}
		// A send held up (by a window, say) is not followed by a burst.
		if next = next.Add(o.WANEchoEvery); next.Before(time.Now()) {
			next = time.Now()
		}
	}
	if !warmAt.IsZero() {
		r.bulkBytes, r.bulkTime = bulk.moved.Load()-movedAtWarm, time.Since(warmAt)
	}
	close(sends)
	g := <-got
	if g.err != nil {
		return echoes{}, g.err
	}
	if len(g.samples) == 0 {
		return echoes{}, fmt.Errorf("no echo sent after the warm-up of %s", o.WANWarmup)
	}
	r.samples = g.samples
	return r, nil
}
