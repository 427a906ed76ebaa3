package mux

import (
	"math"
	"time"
)

// Window auto-tuning (SPEC 7.3). A receive window larger than the path's
// bandwidth-delay product does not make a stream faster: the surplus waits
// in a queue on the path (a router's buffer, a socket buffer), and every
// other stream of the session, sharing the connection, waits behind it: a
// keystroke behind a download. So the receiver sizes each window from what
// it measures:
//
//   - the stream's delivery rate: octets arrived per round, a round being
//     about one round trip (at least a millisecond);
//   - the queue on the path: the smallest round trip of the PINGs sent
//     while data flows (about four a round trip) over the last half to
//     whole round trip, less the smallest round trip of all (minRTT). A
//     PING's answer comes back behind the data the peer sent before it, so
//     it waits in the same queue; the smallest of a few filters out the
//     bursts and late timers that one sample may have met.
//
// Each stream has a queue target t (queueTargetFor): while other, light
// streams of the session receive data, an eighth of minRTT within 200 µs
// and 3 ms (or Config.QueueTarget), but at least one frame's time at the
// stream's rate; otherwise, eight times that, at least half of minRTT,
// since nobody waits behind its queue. A light stream is one that received
// less than a quarter of its window in its last round, or has not measured
// a round yet: an interactive one, which the queue would delay. Bulk
// streams beside each other (16 downloads at once) are each as if alone:
// they wait behind each other's data anyway, and on a busy machine their
// readers need the larger windows. need = rate × (minRTT + t) is
// the window that carries the measured rate with a queue of t. Each round:
//
//   - at the start, until the queue passes 3/4 t, the window grows to
//     1.25 × need, never shrinking: a window-limited stream's rate, and so
//     its window, grows by a quarter a round, like TCP's slow start but
//     stopping at a queue instead of a loss;
//   - after that, below t/2 of queue it grows to need (no further: a step
//     past it would be a queue spike), between t/2 and t it holds, and above
//     t it shrinks to need;
//   - it never grows while the application has more than a quarter of the
//     window unread: the reader, not the window, limits that stream.
//
// The queue then stays between t/2 and t: a bulk stream fills the link and
// the streams beside it wait behind about t, where TCP's loss-based control
// fills the whole buffer. It is delay-based congestion control (TCP Vegas,
// LEDBAT) done by flow control alone; the peer needs nothing but to answer
// PINGs promptly, as it must (SPEC 4.7).
//
// A heavy stream's credit goes back in small steps (creditQuantum), an
// eighth of t's worth of the rate or a millisecond's, so that the sender's
// bursts, each as long as the credit that released it, stay well below t
// on the path; a light one's in halves of its window. Windows
// stay below MaxStreamWindow and above InitialStreamWindow, or above
// min(InitialStreamWindow, 64 KiB) while a light stream waits behind them.
//
// minRTT is the minimum over the last one or two rttEpochs, not over the
// session's life: a path whose base round trip grew would otherwise read
// as a standing queue and shrink windows until the stream crawled. At the
// start of each epoch every stream drains its queue for a round (its window
// at three quarters of rate × minRTT) so that the next PINGs see the path
// empty and the minimum stays true.

// Queue targets (queueTargetFor).
const (
	minQueueTarget = 200 * time.Microsecond
	maxQueueTarget = 3 * time.Millisecond
	aloneFactor    = 8
)

// rttEpoch is how long a smallest round trip is trusted.
const rttEpoch = 10 * time.Second

// minTunedWindow is the smallest window auto-tuning shrinks a stream to
// while a light stream waits behind it (or InitialStreamWindow, if
// smaller): on a slow path the default initial window is several
// bandwidth-delay products, 130 ms of queue at 2 MB/s. Two frames of the
// default size. A stream alone keeps at least InitialStreamWindow: on a
// busy machine the round trip its PINGs measure is mostly the scheduler's,
// not a queue, and shrinking further would only slow it.
const minTunedWindow = 64 << 10

// minCreditTime is the least credit creditQuantum returns at once, as time
// at the stream's rate.
const minCreditTime = time.Millisecond

// minProbeGap spaces the PINGs that measure the queue while data flows
// (probeRTT) on a fast path, loopback say: at most one a millisecond.
const minProbeGap = time.Millisecond

// maxFlowProbes bounds the queue probes outstanding at once: a peer that
// answers late (or never) holds a few entries, not more.
const maxFlowProbes = 8

// queueTargetFor returns the queue a stream may build on the path, in ns,
// given the smallest round trip, whether the stream is alone (no other,
// light stream of the session received data within othersHorizon), and
// how long one of the largest frames takes at the stream's rate. configured is
// Config.QueueTarget: 0 for the automatic target, negative to treat every
// stream as alone.
func queueTargetFor(minRTT int64, alone bool, configured time.Duration, frameTime int64) int64 {
	t := int64(configured)
	if t <= 0 {
		alone = alone || t < 0
		t = min(max(minRTT/8, int64(minQueueTarget)), int64(maxQueueTarget))
	}
	// A frame goes out whole: at a low rate, a frame's time is the queue's
	// jitter, and a target below it can be neither measured nor met.
	t = max(t, frameTime)
	if alone {
		t = max(t*aloneFactor, minRTT/2)
	}
	return t
}

// targetWindow returns the window a stream should have after a round in
// which it received rate octets a second, given its current window, the
// smallest round trip minRTT, the recent one rtt, and its queue target, all
// in ns (see above). drain asks for the epoch's drain round; steady says
// the start is over. 0 means no change: nothing measured yet. The caller
// clamps the result to the configured bounds.
func targetWindow(window uint32, rate, minRTT, rtt, target int64, drain, steady bool) uint32 {
	if minRTT <= 0 || rate <= 0 {
		return 0
	}
	bytes := func(ns int64) float64 { return float64(rate) * float64(ns) / 1e9 }
	need := bytes(minRTT + target)
	w := float64(window)
	queue := rtt - minRTT
	var want float64
	switch {
	case drain:
		want = bytes(minRTT) * 3 / 4
	case !steady:
		want = max(w, need*5/4)
	case queue < target/2:
		want = max(w, need)
	case queue <= target:
		return window
	default:
		want = min(w, need)
	}
	return uint32(min(want, math.MaxUint32))
}

// tuneLocked counts n octets of DATA that arrived now (monoNow) on the
// stream and, at the end of a round, sets the window auto-tuning aims at,
// which credits then move the window to (creditLocked). Called by the
// reader goroutine with the stream's lock held.
func (st *Stream) tuneLocked(n int, now int64) {
	b := &st.recv
	s := st.sess
	if !b.heavy {
		s.noteLightData(st, now)
	}
	if !b.started || s.cfg.MaxStreamWindow <= s.cfg.InitialStreamWindow {
		return
	}
	round := max(s.counters.srtt.Load(), int64(minProbeGap))
	if b.roundStart == 0 || now-b.roundStart > 4*round {
		// The first data, or the first after a pause: a round that
		// spanned the pause would measure the sender's silence. After a
		// long one the stream counts as light again (keystrokes after a
		// burst of output); a bulk stream whose reader is slow pauses
		// briefly and stays heavy.
		if now-b.roundStart > int64(lightPause) {
			b.heavy = false
		}
		b.roundStart, b.roundBytes, b.steady, b.rounds = now, int64(n), false, 0
		return
	}
	b.roundBytes += int64(n)
	if now-b.roundStart < round {
		return
	}
	rate := int64(float64(b.roundBytes) * 1e9 / float64(now-b.roundStart))
	b.heavy = b.roundBytes*4 >= int64(b.window)
	b.roundStart, b.roundBytes = now, 0
	if b.rounds++; b.rounds == 1 {
		// The first round after a start carries the window the sender
		// had in hand, sent at once: the path's rate, not yet the pace
		// the reader's credit allows.
		return
	}
	b.rate = rate
	m, r := s.minRTT.Load(), s.recentRTT.Load()
	light := s.lastOtherLightData(st)
	alone := light == 0 || now-light > int64(othersHorizon)
	frameTime := int64(s.cfg.MaxFrameSize) * 1e9 / max(b.rate, 1)
	b.target = queueTargetFor(m, alone, s.cfg.QueueTarget, frameTime)
	want := targetWindow(b.window, b.rate, m, r, b.target, now < s.drainUntil.Load(), b.steady)
	if want > b.window && b.n > int(b.window/4) {
		// The application is behind: a larger window would hold more
		// unread data, not move it faster (SPEC 7.3).
		want = b.window
	}
	b.steady = b.steady || (r-m)*4 > b.target*3
	if want != 0 {
		floor := s.cfg.InitialStreamWindow
		if !alone {
			floor = min(floor, minTunedWindow)
		}
		b.want = min(max(want, floor), s.cfg.MaxStreamWindow)
	}
}

// creditQuantum is how many read octets the stream's receiver holds back
// before crediting them: half the window (SPEC 7.2), or, on a heavy stream
// whose rate is known, an eighth of its queue target's worth of that rate,
// but at least a millisecond's worth and at least one block: the sender's
// bursts, each as long as the credit that released it, stay well below the
// target on a slow path, and a fast one (loopback, where the target is
// 200 µs) does not spend itself on WINDOW_UPDATEs. A light stream whose
// window auto-tuning has not grown (past initial) keeps half the window:
// it uses less than a quarter of it a round, so the sender never waits for
// that credit, and each WINDOW_UPDATE spared is a frame that does not hold
// up its next message (an echo's reply waits behind the writer that sends
// it). A grown window that reads as light has a slow reader, not small
// messages: half of it at once would be a burst of megabytes.
func (b *recvBuffer) creditQuantum(initial uint32) uint32 {
	q := b.window / 2
	if b.rate > 0 && (b.heavy || b.window > initial) {
		burst := max(int64(blockSize), int64(float64(b.rate)*float64(max(b.target/8, int64(minCreditTime)))/1e9))
		q = uint32(min(int64(q), burst))
	}
	return max(q, 1)
}

// shrinkLocked takes cut octets off the stream's window, which the caller
// withheld from a credit, and gives them back to the session's budget.
func (st *Stream) shrinkLocked(cut uint32) {
	b := &st.recv
	b.window -= cut
	b.growth -= cut
	st.sess.budgetUsed.Add(-int64(cut))
}

// noteRTTLocked folds a PING round trip into the smallest round trip of the
// last one or two epochs and, when an epoch ends, opens a drain round (see
// above); and into the recent round trip, the smallest of the last half to
// whole round trip. A single sample says little: its PING may have waited
// behind a burst that the path sends at once, or behind a late timer. The
// smallest of the few probes of a round (probeRTT) says whether a queue
// stood throughout. Called with the session's lock held.
func (s *Session) noteRTTLocked(rtt time.Duration, now int64) {
	ns := int64(rtt)
	srtt := max(s.counters.srtt.Load(), ns)
	m, newEpoch := s.rttMin.add(ns, now, int64(rttEpoch))
	if newEpoch {
		// Two round trips: one for the smaller windows' credit to reach
		// the sender and its data to come, one to measure.
		s.drainUntil.Store(now + 2*srtt)
	}
	s.minRTT.Store(m)
	r, _ := s.recentMin.add(ns, now, srtt/2)
	s.recentRTT.Store(r)
}

// windowedMin is the minimum of samples over the last one or two windows of
// a length: cheap, and it forgets an old minimum within two windows.
type windowedMin struct {
	start     int64 // monoNow when the current window began; 0: no sample yet
	cur, prev int64 // minimum of the current window, and of the one before (0: none)
}

// add folds sample v, taken at now, in and returns the minimum, and whether
// v began a new window. A window with no sample ends the one before it too:
// a minimum more than two windows old is stale.
func (w *windowedMin) add(v, now, length int64) (int64, bool) {
	rolled := false
	switch {
	case w.start == 0:
		w.start, w.cur = now, v
	case now-w.start >= length:
		prev := w.cur
		if now-w.start >= 2*length {
			prev = 0
		}
		w.start, w.prev, w.cur = now, prev, v
		rolled = true
	default:
		w.cur = min(w.cur, v)
	}
	if w.prev > 0 {
		return min(w.cur, w.prev), rolled
	}
	return w.cur, rolled
}

// probeRTT sends a PING to measure the queue while data arrives: about
// four a round trip, at most one every minProbeGap, at most maxFlowProbes
// outstanding. Called by the reader goroutine; one atomic load when it is
// not time.
func (s *Session) probeRTT(now int64) {
	if now < s.nextProbe.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || now < s.nextProbe.Load() {
		return
	}
	if s.flowProbes >= maxFlowProbes {
		s.expireFlowProbesLocked()
	}
	if s.flowProbes >= maxFlowProbes {
		// Until an answer comes, or the oldest can be given up.
		s.nextProbe.Store(now + int64(s.flowProbeLimit())/4)
		return
	}
	s.flowProbes++
	s.nextProbe.Store(now + max(int64(minProbeGap), s.counters.srtt.Load()/4))
	s.sendPingLocked(nil).flow = true
}

// expireFlowProbesLocked forgets the queue probes unanswered for longer
// than four round trips, or a second: a peer that lost or merged answers
// (against SPEC 4.7) would otherwise stop the probing, and freeze the
// queue estimate, for the rest of the session. A late answer is then
// ignored as an unknown one. Few entries: at most maxFlowProbes are
// outstanding, plus the keepalive's and Ping's.
func (s *Session) expireFlowProbesLocked() {
	limit := s.flowProbeLimit()
	for id, p := range s.pings {
		if p.flow && time.Since(p.sent) > limit {
			delete(s.pings, id)
			s.flowProbes--
		}
	}
}

// flowProbeLimit is how long a queue probe waits for its answer.
func (s *Session) flowProbeLimit() time.Duration {
	return max(4*time.Duration(s.counters.srtt.Load()), time.Second)
}

// flowProbeAnsweredLocked counts an answered queue probe.
func (s *Session) flowProbeAnsweredLocked(now int64) {
	if s.flowProbes == maxFlowProbes {
		s.nextProbe.Store(now) // probing waited for this answer
	}
	s.flowProbes--
}

// monoNow returns the time since the session started, in ns, at least 1:
// the monotonic clock, which a step of the wall clock does not move, so
// that rounds, epochs and probe times stay in order.
func (s *Session) monoNow() int64 { return int64(time.Since(s.born)) + 1 }

// lightPause is the pause after which a heavy stream counts as light again.
const lightPause = 100 * time.Millisecond

// othersHorizon: a light stream that received data this recently is one
// that a queue on the path would delay.
const othersHorizon = time.Second

// dataMark is when a stream last received DATA.
type dataMark struct {
	st *Stream
	at int64
}

// noteLightData records DATA arriving now on st, a light stream: one that
// received less than a quarter of its window in its last round (an
// interactive stream), or that has not measured a round since it started
// or paused. Reader goroutine only.
func (s *Session) noteLightData(st *Stream, now int64) {
	if s.lastLight[0].st != st {
		s.lastLight[1] = s.lastLight[0]
	}
	s.lastLight[0] = dataMark{st, now}
}

// lastOtherLightData returns when a stream other than st that is still
// light last received DATA; 0 if none did. A stream that turned out heavy
// (a bulk stream's first rounds are light) no longer counts. Reader
// goroutine only, which is also the only writer of recv.heavy.
func (s *Session) lastOtherLightData(st *Stream) int64 {
	for _, m := range s.lastLight {
		if m.st != nil && m.st != st && !m.st.recv.heavy {
			return m.at
		}
	}
	return 0
}
