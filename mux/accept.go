package mux

import (
	"github.com/httpstream-go/httpstream/frame"
)

// acceptLoop runs the handler for each stream the peer opens, one at a time
// in open order, as Kubernetes does; a handler that wants concurrency hands
// the stream to a goroutine. It runs apart from the reader so that a slow
// handler delays neither data nor pings. It ends when the session closes,
// once the handler in progress (if any) returns.
func (s *Session) acceptLoop() {
	defer close(s.acceptDone)
	for {
		st := s.nextToAccept()
		if st == nil {
			select {
			case <-s.acceptReady:
				continue
			case <-s.closed:
				return
			}
		}
		// inHandler is set before the check, so that Close, which has
		// failed every stream first, sees either a handler it must not
		// wait for or a loop that calls no more handlers.
		s.inHandler.Store(true)
		st.mu.Lock()
		gone := st.err != nil // the session ended while it waited
		st.mu.Unlock()
		if gone {
			s.inHandler.Store(false)
			continue
		}
		replySent := make(chan struct{})
		err := s.handler(st, replySent)
		s.inHandler.Store(false)
		if err != nil {
			st.mu.Lock()
			reset := st.err != nil // by the peer, or the handler, meanwhile
			if !reset {
				st.failLocked(&refusedError{streamID: st.id, code: frame.CodeRefused, reason: err.Error()}, true)
			}
			st.mu.Unlock()
			if !reset { // SPEC 6.2: nothing more is sent on a reset stream
				s.w.queueControl(frame.AppendRefuse(nil, st.id, frame.CodeRefused, err.Error()))
			}
			s.forget(st)
			continue
		}
		st.accept()
		close(replySent)
	}
}

// enqueueAcceptLocked queues a stream the peer opened for the handler.
// Streams reset while they wait stay in the queue, dead, but no longer
// count (forget takes them off acceptWaiting); the queue is compacted when
// dead entries make up most of it, so it stays within a few times the
// backlog whatever the peer does.
func (s *Session) enqueueAcceptLocked(st *Stream) {
	if len(s.acceptQueue) >= 2*s.cfg.AcceptBacklog+16 {
		live := s.acceptQueue[:0]
		for _, q := range s.acceptQueue {
			if q.queued {
				live = append(live, q)
			}
		}
		clear(s.acceptQueue[len(live):])
		s.acceptQueue = live
	}
	st.queued = true
	s.acceptQueue = append(s.acceptQueue, st)
	s.acceptWaiting++
	select {
	case s.acceptReady <- struct{}{}:
	default:
	}
}

// nextToAccept takes the oldest stream still waiting for the handler, or
// returns nil when none is.
func (s *Session) nextToAccept() *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.acceptQueue) > 0 {
		st := s.acceptQueue[0]
		s.acceptQueue[0] = nil
		s.acceptQueue = s.acceptQueue[1:]
		if st.queued { // not reset while it waited
			st.queued = false
			s.acceptWaiting--
			return st
		}
	}
	s.acceptQueue = nil // let the backing array go
	return nil
}

// waitAcceptLoop waits for the accept loop to end after the session closed,
// unless it is inside a handler, which may run as long as it likes.
func (s *Session) waitAcceptLoop() {
	if !s.inHandler.Load() {
		<-s.acceptDone
	}
}

// accept sends ACCEPT and lets DATA flow both ways, in an order that keeps
// SPEC 6.2 on both sides: the peer may answer the ACCEPT with DATA at once,
// so its DATA is allowed before the ACCEPT is queued; and this side's DATA
// is allowed only after, so (control frames going first) the peer never
// sees DATA before ACCEPT.
func (st *Stream) accept() {
	st.mu.Lock()
	if st.err != nil {
		// Reset while the handler ran, by the peer or the handler: SPEC
		// 6.2, nothing more is sent on it.
		st.mu.Unlock()
		return
	}
	st.peerMaySend = true
	st.mu.Unlock()
	var b [frame.HeaderSize]byte
	st.sess.w.queueControl(frame.AppendAccept(b[:0], st.id))
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return
	}
	st.accepted = true
	endNow := st.endQueued && !st.writing
	st.cond.Broadcast()
	st.mu.Unlock()
	st.sess.touch()
	if endNow {
		st.sendEnd() // Close was called before the accept
	}
}
