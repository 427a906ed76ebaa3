package mux

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// simLink returns the two ends of a connection across an emulated path, for
// use inside a synctest bubble, where its timing is exact: each direction
// has a one-way delay, a rate, and a bottleneck queue of at most buffer
// octets, past which the sender waits (backpressure, no loss), as on
// bench/scenario's link but on the bubble's clock. wait returns once both
// directions ended, after both ends were closed.
func simLink(delay time.Duration, rate float64, buffer int) (a, b net.Conn, wait func()) {
	a, ra := net.Pipe()
	rb, b := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() { simPath(ra, rb, delay, rate, buffer) })
	wg.Go(func() { simPath(rb, ra, delay, rate, buffer) })
	return a, b, wg.Wait
}

// simPath carries src's octets to dst: they leave the bottleneck at the
// rate, in arrival order, and reach dst delay later. It ends when src
// fails, after delivering what it read, and then closes dst.
func simPath(src, dst net.Conn, delay time.Duration, rate float64, buffer int) {
	type chunk struct {
		b      []byte
		arrive time.Time
	}
	q := make(chan chunk, 1<<16)
	var deliver sync.WaitGroup
	defer deliver.Wait()
	deliver.Go(func() {
		defer dst.Close()
		for c := range q {
			time.Sleep(time.Until(c.arrive))
			if _, err := dst.Write(c.b); err != nil {
				for range q { // drain, so the reading side never blocks
				}
				return
			}
		}
	})
	perByte := time.Duration(1e9 / rate)
	free := time.Now() // when the bottleneck will have sent all it holds
	for {
		b := make([]byte, 16<<10) // what a receive offload hands over at once, at most
		n, err := src.Read(b)
		if err != nil {
			close(q)
			return
		}
		now := time.Now()
		if wait := free.Sub(now) - time.Duration(buffer)*perByte; wait > 0 {
			time.Sleep(wait) // the queue is full: the sender waits
			now = time.Now()
		}
		if free.Before(now) {
			free = now
		}
		free = free.Add(time.Duration(n) * perByte)
		q <- chunk{b[:n], free.Add(delay)}
	}
}

// tuneRun is what runTuned measured.
type tuneRun struct {
	rate  float64         // the bulk stream's octets a second after the warm-up
	added []time.Duration // each echo's time beyond the path's round trip, sorted
}

// runTuned sends bulk from client to server on one stream for total (fake)
// time and a 64-octet echo every 10 ms on another, over a path of rtt,
// rate and a queue of one bandwidth-delay product, and measures what
// happens after warm.
func runTuned(t *testing.T, cfg *Config, rtt time.Duration, rate float64, total, warm time.Duration) tuneRun {
	bdp := int(rate * rtt.Seconds())
	a, b, wait := simLink(rtt/2, rate, bdp)
	cli, srv, accepted := sessionsOver(t, a, b, cfg)
	bulk, err := cli.OpenStream(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bulkPeer := <-accepted
	echo, err := cli.OpenStream(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	echoPeer := <-accepted
	go io.Copy(echoPeer, echoPeer)

	start := time.Now()
	go func() {
		buf := make([]byte, 64<<10)
		for time.Since(start) < total {
			if _, err := bulk.Write(buf); err != nil {
				return
			}
		}
		bulk.Close()
	}()
	got := make(chan int64)
	go func() {
		var n int64
		buf := make([]byte, 64<<10)
		for {
			k, err := bulkPeer.Read(buf)
			if time.Since(start) >= warm {
				n += int64(k)
			}
			if err != nil {
				got <- n
				return
			}
		}
	}()

	var r tuneRun
	msg := make([]byte, 64)
	for time.Since(start) < total-rtt {
		sent := time.Now()
		if _, err := echo.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(echo, msg); err != nil {
			t.Fatal(err)
		}
		if sent.Sub(start) >= warm {
			r.added = append(r.added, time.Since(sent)-rtt)
		}
		time.Sleep(10*time.Millisecond - time.Since(sent)%(10*time.Millisecond))
	}
	echo.Close()
	r.rate = float64(<-got) / (time.Since(start) - warm).Seconds()
	slices.Sort(r.added)
	cli.Close()
	srv.Close()
	wait()
	return r
}

func TestAutoTuningFillsThePathWithoutFillingItsQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 40 MB through an emulated path")
	}
	for _, path := range []struct {
		rtt     time.Duration
		rate    float64 // octets a second
		initial uint32  // InitialStreamWindow, the smallest window auto-tuning keeps
	}{
		{40 * time.Millisecond, 10e6, 0}, // the queue target is a frame's time, 3.3 ms
		{4 * time.Millisecond, 20e6, 0},  // the queue target is a frame's time, 1.6 ms
		// A slow path, whose bandwidth-delay product, 100 KB, is below
		// the default initial window, 256 KiB (130 ms at 2 MB/s): a user
		// lowers it. A frame takes 16 ms.
		{50 * time.Millisecond, 2e6, 64 << 10},
	} {
		t.Run(fmt.Sprintf("%v, %g MB/s", path.rtt, path.rate/1e6), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := &Config{KeepAliveInterval: -1, InitialStreamWindow: path.initial}
				r := runTuned(t, cfg, path.rtt, path.rate, 4*time.Second, time.Second)
				p99 := r.added[len(r.added)*99/100]
				t.Logf("bulk at %.2f MB/s; echo adds %v at p50, %v at p99, %v at most",
					r.rate/1e6, r.added[len(r.added)/2], p99, r.added[len(r.added)-1])
				if r.rate < 0.9*path.rate {
					t.Errorf("the bulk stream moved %.2f MB/s, want at least 90%% of the path's %g MB/s", r.rate/1e6, path.rate/1e6)
				}
				// The echo waits behind the queue target, the octets in
				// flight ahead of it (a link's chunk), and the noise.
				target := time.Duration(queueTargetFor(int64(path.rtt), false, 0, int64(DefaultMaxFrameSize*1e9/path.rate)))
				if limit := 2*target + 16<<10*time.Second/time.Duration(path.rate); p99 > limit {
					t.Errorf("an echo beside the bulk stream waited %v at p99 beyond the round trip, want at most %v", p99, limit)
				}
			})
		})
	}
}

func TestWithoutAutoTuningABigWindowFillsTheQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 40 MB through an emulated path")
	}
	// The same run with a fixed window of four bandwidth-delay products,
	// as a receiver that grants whatever its reader keeps up with would:
	// the bulk stream keeps the queue full, and the echo waits behind it.
	// This is what the test above guards against, shown to be measurable.
	const rtt, rate = 40 * time.Millisecond, 10e6
	synctest.Test(t, func(t *testing.T) {
		cfg := &Config{KeepAliveInterval: -1, InitialStreamWindow: 1600 << 10, MaxStreamWindow: 1600 << 10}
		r := runTuned(t, cfg, rtt, rate, 3*time.Second, time.Second)
		t.Logf("fixed window: bulk at %.2f MB/s; echo adds %v at p50", r.rate/1e6, r.added[len(r.added)/2])
		if med := r.added[len(r.added)/2]; med < 10*time.Millisecond {
			t.Errorf("with a window past the path's capacity the echo added only %v at p50, want the queue's %v or near", med, rtt)
		}
	})
}

func TestTargetWindow(t *testing.T) {
	const (
		ms   = int64(time.Millisecond)
		rate = 50e6 // octets a second
		m    = 40 * ms
		tgt  = 3 * ms
	)
	need := uint32(rate * float64(m+tgt) / 1e9) // 2.15 MB
	for _, tt := range []struct {
		name          string
		window        uint32
		rtt           int64
		drain, steady bool
		want          uint32
	}{
		{"at the start, a quarter past what the rate needs", 1 << 20, m, false, false, need * 5 / 4},
		{"at the start, never less than now", 4 << 20, m, false, false, 4 << 20},
		{"little queue: up to what the rate needs", 1 << 20, m + tgt/4, false, true, need},
		{"little queue: a window past it stays", 3 << 20, m + tgt/4, false, true, 3 << 20},
		{"queue within the target: hold", 3 << 20, m + tgt*3/4, false, true, 3 << 20},
		{"queue past the target: down to what the rate needs", 3 << 20, m + 2*tgt, false, true, need},
		{"queue past the target, window below the need: hold", 1 << 20, m + 2*tgt, false, true, 1 << 20},
		{"drain: three quarters of the rate's bandwidth-delay product", 3 << 20, m + 2*tgt, true, true, uint32(rate * float64(m) / 1e9 * 3 / 4)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := targetWindow(tt.window, rate, m, tt.rtt, tgt, tt.drain, tt.steady)
			if diff := int64(got) - int64(tt.want); diff < -1 || diff > 1 {
				t.Errorf("targetWindow = %d, want %d", got, tt.want)
			}
		})
	}
	if got := targetWindow(1<<20, rate, 0, m, tgt, false, true); got != 0 {
		t.Errorf("with no round trip measured: %d, want 0 (no change)", got)
	}
	if got := targetWindow(1<<20, 0, m, m, tgt, false, true); got != 0 {
		t.Errorf("with no rate measured: %d, want 0 (no change)", got)
	}
}

func TestQueueTargetFor(t *testing.T) {
	const us, ms = time.Microsecond, time.Millisecond
	for _, tt := range []struct {
		minRTT     time.Duration
		alone      bool
		configured time.Duration
		frame      time.Duration
		want       time.Duration
	}{
		{40 * ms, false, 0, 0, 3 * ms},          // an eighth of 40 ms is past the ceiling
		{8 * ms, false, 0, 0, ms},               // an eighth
		{50 * us, false, 0, 0, 200 * us},        // loopback: the floor
		{50 * us, true, 0, 0, 1600 * us},        // alone: eight times
		{40 * ms, true, 0, 0, 24 * ms},          // alone: eight times beats half the round trip
		{100 * ms, true, 0, 0, 50 * ms},         // alone: half the round trip beats eight times
		{40 * ms, false, 500 * us, 0, 500 * us}, // configured
		{40 * ms, true, 500 * us, 0, 20 * ms},   // configured, alone
		{40 * ms, false, -1, 0, 24 * ms},        // negative: as if alone
		{40 * ms, false, 0, 5 * ms, 5 * ms},     // a frame's time
		{40 * ms, true, 0, 5 * ms, 40 * ms},     // a frame's time, alone
	} {
		got := time.Duration(queueTargetFor(int64(tt.minRTT), tt.alone, tt.configured, int64(tt.frame)))
		if got != tt.want {
			t.Errorf("queueTargetFor(%v, alone %v, configured %v) = %v, want %v", tt.minRTT, tt.alone, tt.configured, got, tt.want)
		}
	}
}

// probesTo runs a peer that sends a chunk of DATA every millisecond for
// 2.5 s and never answers PINGs, and returns the most PINGs outstanding at
// once, the PINGs sent and the WINDOW_UPDATEs.
func probesTo(t *testing.T, cfg *Config, chunk int) (most, sent, updates int) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan *Stream, 1)
		s, p := newRawPeer(t, false, func(st *Stream) { got <- st }, cfg)
		counted := make(chan [2]int, 1)
		go func() {
			var n [2]int
			for {
				f, err := p.fr.ReadFrame()
				if err != nil {
					counted <- n
					return
				}
				switch {
				case f.Type == frame.FramePing && !f.Flags.Has(frame.FlagAck):
					n[0]++
				case f.Type == frame.FrameWindowUpdate:
					n[1]++
				}
			}
		}()
		open, err := frame.AppendOpen(nil, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.send(open)
		st := <-got
		go io.Copy(io.Discard, st)
		data := frame.AppendData(nil, 1, 0, make([]byte, chunk))
		for range 2500 { // within the window the reader's credit keeps open
			p.send(data)
			time.Sleep(time.Millisecond)
			s.mu.Lock()
			most = max(most, len(s.pings))
			s.mu.Unlock()
		}
		p.conn.Close()
		s.Close()
		n := <-counted
		sent, updates = n[0], n[1]
	})
	return most, sent, updates
}

func TestQueueProbesStayFewWhenThePeerNeverAnswers(t *testing.T) {
	// A peer that sends data and never answers PINGs: the session probes
	// the queue while data arrives, keeps at most maxFlowProbes of them
	// outstanding, and gives up those unanswered for a second, so that
	// probing goes on (a peer that lost answers) without piling up.
	most, n, _ := probesTo(t, &Config{KeepAliveInterval: -1}, 1<<10)
	// The first PING, sent at the start, stays outstanding too.
	if most > maxFlowProbes+1 {
		t.Errorf("%d PINGs outstanding at once to a peer that answers none: want at most %d", most, maxFlowProbes+1)
	}
	// A batch, then a batch each time the last is given up: 1 s.
	if n < 2*maxFlowProbes || n > 4*maxFlowProbes {
		t.Errorf("%d PINGs sent in 2.5 s to a peer that answers none: want %d to %d", n, 2*maxFlowProbes, 4*maxFlowProbes)
	}
}

func TestLightStreamsCreditInHalvesOfTheWindow(t *testing.T) {
	// 1 KiB a millisecond against a 256 KiB window: a light stream, whose
	// window never limits it. Its credit goes back in halves of the
	// window, not in the small steps that pace a bulk stream: each
	// WINDOW_UPDATE is a frame its next message could wait behind.
	_, _, updates := probesTo(t, &Config{KeepAliveInterval: -1}, 1<<10)
	const data, half = 2500 << 10, DefaultInitialStreamWindow / 2
	if most := data/half + 2; updates > most { // and the one at the start
		t.Errorf("%d WINDOW_UPDATEs for a light stream's 2.5 MiB: want at most %d, one per half window", updates, most)
	}
}

func TestWindowedMinForgetsOldMinima(t *testing.T) {
	var w windowedMin
	for _, step := range []struct {
		v, now   int64
		want     int64
		newEpoch bool
	}{
		{50, 1, 50, false},   // the first sample
		{40, 5, 40, false},   // same window
		{60, 12, 40, true},   // a new window keeps the last one's minimum
		{70, 25, 60, true},   // and the one after forgets it
		{80, 100, 80, true},  // a gap of windows forgets everything
		{90, 105, 80, false}, // same window
	} {
		got, rolled := w.add(step.v, step.now, 10)
		if got != step.want || rolled != step.newEpoch {
			t.Errorf("add(%d at %d) = %d, %v; want %d, %v", step.v, step.now, got, rolled, step.want, step.newEpoch)
		}
	}
}
