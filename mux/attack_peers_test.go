package mux

// Attack tests (see attackharness_test.go) of peers that hold resources by
// doing little: slowloris (a peer that sends nothing, or stops after the
// preface or SETTINGS), a peer that never reads while the server writes, and
// one that fills every window it is granted while the application reads none.
// Keepalive or the documented bounds end or cap each.

import (
	"net/http"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

func TestAttackSlowloris(t *testing.T) {
	for _, tt := range []struct {
		name  string
		sends []byte
	}{
		{"nothing at all", nil},
		{"the preface, then nothing", []byte(frame.Preface)},
		{"the preface and SETTINGS, then nothing", frame.AppendSettings([]byte(frame.Preface), atkSettings...)},
	} {
		t.Run(tt.name+": keepalive TIMEOUT", func(t *testing.T) {
			cfg := atkKeepAliveConfig()
			_, p, g := atkNewTest(t, cfg, 0, nil)
			heap := atkHeapStart()
			if tt.sends != nil {
				p.mustWrite(t, tt.sends)
			}
			p.readHello(t)
			p.start(false) // reads, answers nothing
			stopGood := g.during(t)
			p.expectGoAway(t, frame.CodeTimeout, atkKeepAliveBound(cfg))
			took := time.Since(p.dialed)
			stopGood()
			t.Logf("GOAWAY TIMEOUT %v after the connection (KeepAliveTimeout %v)", took.Round(time.Millisecond), cfg.KeepAliveTimeout)
			if took < cfg.KeepAliveTimeout {
				t.Errorf("the session ended after %v, before KeepAliveTimeout %v", took, cfg.KeepAliveTimeout)
			}
			atkKeepAliveEnded(t, p.srv)
			heap.check(t, atkBound(cfg, atkPingAck), "a silent peer")
			// The well-behaved session outlived several keepalive
			// timeouts: it answered the server's pings.
			g.check(t, "after the attack")
		})
	}
}

func TestAttackPeerThatNeverReads(t *testing.T) {
	// The attacker grants the largest window, opens a stream whose handler
	// writes without end, and never reads. Small socket buffers make the
	// server's writes block soon.
	cfg := atkConfig()
	h, p, g := atkNewTestSmallBuffers(t, cfg)
	p.mustWrite(t, frame.AppendSettings([]byte(frame.Preface),
		frame.Setting{ID: frame.SettingInitialStreamWindow, Value: frame.MaxWindow}))
	p.readHello(t) // and never read again
	heap := atkHeapStart()
	stopWatch := heap.watchControlQueue(t, p.srv)
	stopGood := g.during(t)
	p.open(t, http.Header{"Mode": {"flood"}})

	// The server's writes block on TCP: what the handler got written stops
	// growing (polled; there is no signal for "blocked").
	var last int64 = -1
	stable := 0
	atkPoll(t, atkWait, "the handler's writes to block", func() bool {
		n := h.flooded.Load()
		if n > 0 && n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		return stable >= 25 // 50 ms without progress
	})
	heap.sample()
	t.Logf("the handler wrote %d KiB before its writes blocked", last>>10)
	if p.srv.isClosed() {
		t.Fatalf("the session ended before the pings: %v", p.srv.closedErr())
	}

	// Now PINGs: their ACKs cannot be written, so they queue, up to the
	// cap (SPEC 10.2).
	sent := p.floodPings(atkPings(256, [4]byte{9, 9, 9, 9}))
	err := atkSessionError(t, p.srv, frame.CodeEnhanceYourCalm)
	stopGood()
	peakQueued := stopWatch()
	t.Logf("%d PINGs sent, then %v (peak control queue seen: %d frames)", sent, err, peakQueued)
	if peakQueued > maxQueuedControl {
		t.Errorf("%d control frames queued, past the cap %d", peakQueued, maxQueuedControl)
	}
	if flooded := h.flooded.Load(); flooded > last+(1<<20) {
		t.Errorf("the handler wrote %d octets in all, %d before the pings: writes to a peer that does not read did not stay blocked", flooded, last)
	}
	heap.check(t, atkBound(cfg, atkPingAck), "a peer that never reads")
	g.check(t, "after the attack")
}

// A peer that opens every stream it may and fills every window it is
// granted, while the application reads none of them, makes the session hold
// no more than the documented bound, which no longer scales with
// InitialStreamWindow: every stream has its floor, and what is granted past
// it (and the headers) comes out of MaxSessionWindow (SPEC 7.4, 10.3). The
// session, and a new stream on it, carry on.
func TestAttackEveryWindowFilledAndNeverRead(t *testing.T) {
	cfg := atkConfig()
	cfg.MaxConcurrentStreams = 400
	cfg.AcceptBacklog = 400
	_, p, g := atkHandshaken(t, cfg)
	heap := atkHeapStart()
	streams := cfg.MaxConcurrentStreams - 1 // one place left for the stream that proves the session lives
	first := p.nextID
	p.mustWrite(t, p.openFrames(streams, http.Header{"Mode": {"hold"}}))
	ids := make([]uint32, streams)
	for i := range ids {
		ids[i] = first + 2*uint32(i)
		p.awaitFrame(t, frame.FrameAccept, ids[i])
	}
	// Twice over: the first DATA on a stream raises its window from the
	// floor while the budget lasts, and the second pass fills that too.
	sent := int64(0)
	chunk := make([]byte, cfg.MaxFrameSize)
	for range 2 {
		for _, id := range ids {
			for {
				p.mu.Lock()
				n := min(p.win[id], int64(len(chunk)))
				p.win[id] -= n
				p.mu.Unlock()
				if n == 0 {
					break
				}
				p.mustWrite(t, frame.AppendData(nil, id, 0, chunk[:n]))
				sent += n
			}
		}
		p.roundTrip(t) // every WINDOW_UPDATE the DATA earned has arrived
		heap.sample()
	}
	floor := int64(cfg.streamWindowFloor())
	if min := int64(streams) * floor; sent < min {
		t.Fatalf("the attacker could send %d octets, want at least the floor of every stream (%d)", sent, min)
	}
	if max := int64(streams)*floor + int64(cfg.MaxSessionWindow); sent > max {
		t.Fatalf("the attacker could send %d octets, more than the floors and the budget (%d)", sent, max)
	}
	t.Logf("%d streams took %d KiB: %d KiB past their floors", streams, sent>>10, (sent-int64(streams)*floor)>>10)
	heap.check(t, atkBound(cfg, atkWindowUpdate), "every window filled, none read")
	p.echoStream(t, "a new stream still has a window")
	g.check(t, "after the attack")
}
