package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"

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
		err := s.runHandler(st, replySent)
		s.inHandler.Store(false)
		if err != nil {
			st.mu.Lock()
			reset := st.err != nil // by the peer, or the handler, meanwhile
			if !reset {
				st.failLocked(&refusedError{streamID: st.id, code: frame.CodeRefused, reason: err.Error()}, true)
			}
			st.mu.Unlock()
			if !reset { // SPEC 6.2: nothing more is sent on a reset stream
				// An answer to the peer's OPEN: capped (SPEC 10.2).
				s.w.queueAnswer(frame.AppendRefuse(nil, st.id, frame.CodeRefused, err.Error()))
				s.counters.refusalsSent.Add(1)
			}
			s.forget(st)
			continue
		}
		st.accept()
		close(replySent)
	}
}

// runHandler runs the handler for st. A handler that panics does not take
// the process down, as with net/http's handlers: the panic is logged (at
// error level, with the stack) and the stream refused, and the session
// carries on.
func (s *Session) runHandler(st *Stream, replySent <-chan struct{}) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("httpstream: NewStreamHandler panicked; the stream is refused", "stream", st.id, "panic", p, "stack", string(debug.Stack()))
			// The peer learns that the handler failed, not how: the
			// panic's text may hold internals (net/http sends none).
			err = errHandlerPanicked
		}
	}()
	return s.handler(st, replySent)
}

// Accept waits for the next stream the peer opens, accepts it (sends
// ACCEPT) and returns it, for a session whose Config.AcceptStreams is set.
// Streams come in the order they were opened; concurrent Accepts each get
// their own. It fails when ctx ends, or with an error matching
// ErrSessionClosed once the session has ended, and at once on a session
// that runs a handler (or refuses streams) instead.
func (s *Session) Accept(ctx context.Context) (*Stream, error) {
	if !s.cfg.AcceptStreams {
		return nil, errNotAccepting
	}
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		if st := s.nextToAccept(); st != nil {
			s.wakeAcceptLocked() // another Accept may take the next one
			st.accept()
			st.mu.Lock()
			ok := st.accepted
			st.mu.Unlock()
			if ok { // not reset while it waited
				return st, nil
			}
			continue
		}
		select {
		case <-s.acceptReady:
		case <-s.closed:
			return nil, s.closedErr()
		case <-ctx.Done():
			return nil, fmt.Errorf("httpstream: Accept: %w", ctx.Err())
		}
	}
}

var errHandlerPanicked = errors.New("the stream handler failed")

var errNotAccepting = errors.New("httpstream: Accept needs Config.AcceptStreams (with a nil NewStreamHandler); this session gives streams to its handler, or refuses them")

// wakeAcceptLocked tells one waiting Accept (or the accept loop) that a
// stream may be waiting. The channel holds one wake-up, which is enough:
// whoever wakes takes every stream there is, one at a time, waking the
// next.
func (s *Session) wakeAcceptLocked() {
	select {
	case s.acceptReady <- struct{}{}:
	default:
	}
}

// Listener returns a net.Listener whose Accept returns the streams the
// peer opens, for code written against listeners (an http.Server serving
// streams, say). It needs Config.AcceptStreams, as Session.Accept does.
// Closing the Listener closes the session.
func (s *Session) Listener() net.Listener { return sessionListener{s} }

type sessionListener struct{ s *Session }

// Accept waits for the next stream, as Session.Accept with no deadline.
func (l sessionListener) Accept() (net.Conn, error) {
	st, err := l.s.Accept(context.Background())
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Close closes the session.
func (l sessionListener) Close() error { return l.s.Close() }

// Addr returns the session connection's local address.
func (l sessionListener) Addr() net.Addr { return l.s.LocalAddr() }

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
	s.wakeAcceptLocked()
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
	st.sess.counters.accepted.Add(1) // counted before the peer can know
	var b [frame.HeaderSize]byte
	st.sess.w.queueAnswer(frame.AppendAccept(b[:0], st.id))
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
