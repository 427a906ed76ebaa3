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
	for {
		var st *Stream
		select {
		case st = <-s.acceptQ:
		case <-s.closed:
			return
		}
		st.mu.Lock()
		gone := st.err != nil // reset by the peer while it waited
		st.mu.Unlock()
		if gone {
			continue
		}
		replySent := make(chan struct{})
		if err := s.handler(st, replySent); err != nil {
			st.mu.Lock()
			if st.err == nil {
				st.failLocked(&refusedError{streamID: st.id, code: frame.CodeRefused, reason: err.Error()}, true)
			}
			st.mu.Unlock()
			s.w.queueControl(frame.AppendRefuse(nil, st.id, frame.CodeRefused, err.Error()))
			s.forget(st)
			continue
		}
		st.accept()
		close(replySent)
	}
}

// accept sends ACCEPT and lets DATA flow both ways, in an order that keeps
// SPEC 6.2 on both sides: the peer may answer the ACCEPT with DATA at once,
// so its DATA is allowed before the ACCEPT is queued; and this side's DATA
// is allowed only after, so (control frames going first) the peer never
// sees DATA before ACCEPT.
func (st *Stream) accept() {
	st.mu.Lock()
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
		st.sess.w.submit(st) // Close was called before the accept
	}
}
