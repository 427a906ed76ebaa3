package mux

// Attack tests (see attackharness_test.go) of floods: PINGs, WINDOW_UPDATEs,
// streams opened and reset at once, and OPENs past MaxConcurrentStreams or
// AcceptBacklog. Each flood ends in a GOAWAY whose code names it, or is
// refused or absorbed, within the documented memory bound, while the well-
// behaved session carries on.

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

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
	h, p, g := atkHandshaken(t, cfg)
	p.forward.Store(false) // counted, not kept
	const pairs, batch = 100_000, 500
	buf := make([]byte, 0, batch*64)

	// The handlers' goroutines are the test's: how many of those are
	// still finishing depends on the scheduler, and so on the machine's
	// load. The sessions' own goroutines are what the library answers for.
	others := func() int { return runtime.NumGoroutine() - int(h.running.Load()) }
	var peakStreams int
	heap := atkHeapStart()
	before, peakOwn := others(), 0
	stopWatch := heap.watch(t, 20*time.Millisecond, func() {
		peakStreams = max(peakStreams, p.srv.NumStreams())
		peakOwn = max(peakOwn, others())
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
	t.Logf("%d open+reset pairs in %v; the server answered %d ACCEPT, %d REFUSE (%d STREAM_LIMIT), %d RESET; peak streams tracked %d; peak goroutines %d in all, %d besides the handlers' (%d before)",
		pairs, elapsed.Round(time.Millisecond), p.counts[frame.FrameAccept].Load(), p.counts[frame.FrameRefuse].Load(),
		p.refusals[frame.CodeStreamLimit].Load(), p.counts[frame.FrameReset].Load(), peakStreams, heap.goroutine, peakOwn, before)
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
	// Goroutines: streams have none of their own, so the sessions run
	// what they ran before the attack. The slack covers handlers'
	// goroutines between their count going down and their exit, and the
	// tests' helpers (the watcher, the well-behaved session's traffic).
	if limit := before + cfg.MaxConcurrentStreams + cfg.AcceptBacklog; peakOwn > limit {
		t.Errorf("peak of %d goroutines besides the handlers', more than %d: goroutines grow with the streams of an attacker", peakOwn, limit)
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
