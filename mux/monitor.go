package mux

import (
	"fmt"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// monitor is the session's one timer goroutine: keepalive pings while
// nothing arrives, the keepalive timeout, and the idle timeout. Streams have
// no goroutines or tickers of their own. It ends when the session closes.
func (s *Session) monitor() {
	defer s.wg.Done()
	interval, timeout := s.cfg.KeepAliveInterval, s.cfg.KeepAliveTimeout
	start := time.Now()
	nextPing := start.Add(interval)
	lastFrames := uint64(0)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		wake := now.Add(time.Hour)
		// Keepalive: one ping when a whole interval passed with nothing
		// read, and a deadline for its answer.
		if interval > 0 {
			if !now.Before(nextPing) {
				frames := s.counters.framesReceived.Load()
				s.mu.Lock()
				if frames == lastFrames && s.keepalivePing == nil && s.err == nil {
					s.keepalivePing = s.sendPingLocked(nil)
				}
				s.mu.Unlock()
				lastFrames = frames
				nextPing = now.Add(interval)
			}
			wake = earlier(wake, nextPing)
		}
		if timeout > 0 && interval > 0 {
			s.mu.Lock()
			p := s.keepalivePing
			s.mu.Unlock()
			if p != nil {
				if due := p.sent.Add(timeout); !now.Before(due) {
					s.closeWith(fmt.Errorf("keepalive timeout: the peer did not answer a ping within %v", timeout), frame.CodeTimeout, "keepalive timeout")
					return
				} else {
					wake = earlier(wake, due)
				}
			}
		}
		// Idle timeout: stream activity only (SPEC 8.1).
		if idle := time.Duration(s.idleTimeout.Load()); idle > 0 {
			due := time.Unix(0, s.lastActivity.Load()).Add(idle)
			if !now.Before(due) {
				// A close on purpose, like Close (SPEC 9.2): the peer's
				// streams end with io.EOF, as Kubernetes' do.
				s.closeWith(fmt.Errorf("idle timeout: no stream activity for %v", idle), frame.CodeSessionClosed, "idle timeout")
				return
			}
			wake = earlier(wake, due)
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-timer.C:
		case <-s.idleChanged:
		case <-s.w.overflow:
			s.closeWith(&protocolError{byPeer: true, err: errControlFlood}, errControlFlood.Code, errControlFlood.Reason)
			return
		case <-s.closed:
			return
		}
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
