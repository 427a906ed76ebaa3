package mux

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// readLoop is the reader goroutine: it parses frames and dispatches them,
// and never waits on the application. It ends when the connection fails or
// is closed, ending the session with the reason.
func (s *Session) readLoop() {
	defer s.wg.Done()
	defer close(s.readDone)
	err := s.readFrames()
	var se *frame.SessionError
	switch {
	case errors.As(err, &se):
		// SPEC 9.1: a session error: GOAWAY with the code and reason.
		s.log.Debug("httpstream: peer broke the protocol", "code", se.Code.String(), "reason", se.Reason)
		s.closeWith(&protocolError{byPeer: true, err: se}, se.Code, se.Reason)
		// Read on until the peer closes (or finishClose's deadline): a
		// socket closed with unread octets sends a TCP reset, which can
		// make the peer's kernel drop the GOAWAY that says what was wrong.
		io.Copy(io.Discard, s.conn)
	case errors.Is(err, frame.ErrBadPreface), errors.Is(err, frame.ErrVersionMismatch):
		// SPEC 2.2: the peer does not speak this protocol: no GOAWAY,
		// but the preface and SETTINGS already queued go out first.
		s.closeAfterFlush(err)
	case err == nil:
		// The session ended elsewhere first.
	case errors.As(err, new(*goAwayError)):
		s.closeWith(err, frame.CodeNoError, "") // the peer's closing GOAWAY
	case errors.Is(err, io.EOF):
		s.closeWith(errors.New("the peer closed the connection without GOAWAY"), frame.CodeNoError, "")
	case errors.Is(err, net.ErrClosed):
		s.closeWith(errors.New("the connection was closed"), frame.CodeNoError, "")
	default:
		s.closeWith(&connError{op: "reading", err: err}, frame.CodeNoError, "")
	}
}

// frameHandlers dispatches every frame type but DATA, which readFrames
// handles itself to read payloads straight into stream buffers.
var frameHandlers = [...]func(*Session, *frame.Frame) error{
	frame.FrameOpen:         (*Session).handleOpen,
	frame.FrameAccept:       (*Session).handleAccept,
	frame.FrameRefuse:       (*Session).handleRefuse,
	frame.FrameWindowUpdate: (*Session).handleWindowUpdate,
	frame.FrameReset:        (*Session).handleReset,
	frame.FramePing:         (*Session).handlePing,
	frame.FrameGoAway:       (*Session).handleGoAway,
	frame.FrameSettings:     (*Session).handleSettings,
}

func (s *Session) readFrames() error {
	if err := s.fr.ReadPreface(); err != nil {
		return err
	}
	settings := false
	for {
		h, err := s.fr.ReadFrameHeader()
		if err != nil {
			return err
		}
		if s.isClosed() {
			// Frames still in flight after the end are not acted on, but
			// read until the peer closes too (see finishClose).
			continue
		}
		if !h.Type.Known() {
			// SPEC 3.4: ignored, the keepalive included (a peer that sends
			// only these still gets PINGs it must answer); the next header
			// read skips the payload.
			continue
		}
		s.counters.framesReceived.Add(1)
		// SPEC 2.3: SETTINGS first, and only once.
		if !settings && h.Type != frame.FrameSettings {
			return sessionErrorf(frame.CodeProtocolError, "the first frame is %v; it must be SETTINGS", h.Type)
		}
		if settings && h.Type == frame.FrameSettings {
			return sessionErrorf(frame.CodeProtocolError, "a second SETTINGS frame")
		}
		settings = true
		if h.Type == frame.FrameData {
			err = s.handleData(h)
		} else {
			var f *frame.Frame
			f, err = s.fr.ReadPayload()
			if s.trace && f != nil {
				s.traceFrame("received", frame.AppendFrameHeader(nil, f.FrameHeader), frameAttrs(f)...)
			}
			if err == nil {
				err = frameHandlers[h.Type](s, f)
			} else if streamErr := (*frame.StreamError)(nil); errors.As(err, &streamErr) {
				// Only here, on the error path: errors.As moves
				// streamErr to the heap, an allocation per frame if
				// it were declared for every frame.
				err = s.handleOpenError(f, streamErr)
			}
			if err == nil {
				err = s.w.waitForRoom()
			}
		}
		if err != nil {
			return err
		}
	}
}

func sessionErrorf(code frame.ErrCode, format string, args ...any) error {
	return &frame.SessionError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// peerParity reports whether id has the parity of streams the peer opens.
func (s *Session) peerParity(id uint32) bool { return (id%2 == 1) != s.client }

// handleData delivers a DATA payload straight from the connection into the
// stream: into the slice of a Read waiting with an empty buffer when there is
// one (no copy through a buffer), else into the stream's buffer (SPEC 4.1,
// 6.3, 7.1).
func (s *Session) handleData(h frame.FrameHeader) error {
	st := s.lookup(h.StreamID)
	if st == nil {
		if s.isIdle(h.StreamID) {
			return sessionErrorf(frame.CodeProtocolError, "DATA on stream %d, which was never opened", h.StreamID)
		}
		return nil // SPEC 6.4: a closed stream; the payload is skipped
	}
	end := h.Flags.Has(frame.FlagEndStream)
	n := int(h.Length)
	st.mu.Lock()
	if st.lastDirect && st.readBuf == nil && st.recv.buffered() == 0 {
		// The stream's Read took the last payload directly and is
		// probably about to ask for the next: let it run first, so this
		// payload too skips the buffer.
		st.mu.Unlock()
		runtime.Gosched()
		st.mu.Lock()
	}
	switch {
	case !st.peerMaySend:
		st.mu.Unlock()
		return sessionErrorf(frame.CodeProtocolError, "DATA on stream %d before ACCEPT", h.StreamID)
	case st.recvEnd:
		st.mu.Unlock()
		// SPEC 6.3: half-closed (remote): a stream error.
		st.resetWith(frame.CodeStreamClosed, "DATA after END_STREAM", s.w.queueAnswer)
		return nil
	case h.Length > st.recv.avail:
		avail := st.recv.avail
		st.mu.Unlock()
		// SPEC 7.1: past the window is a session error.
		return sessionErrorf(frame.CodeFlowControlError, "DATA of %d octets on stream %d, whose window has %d left", h.Length, h.StreamID, avail)
	}
	st.recv.avail -= h.Length
	if s.trace {
		s.traceFrame("received", frame.AppendFrameHeader(nil, h), slog.Int64("window", int64(st.recv.avail)))
	}
	st.counters.framesReceived++
	st.counters.dataReceived += uint64(n)
	var direct []byte
	var segs [][]byte
	st.lastDirect = false
	if n > 0 && !st.discard {
		if st.readBuf != nil && st.recv.buffered() == 0 && st.readDeadlineLocked().IsZero() {
			direct = st.readBuf[:min(n, len(st.readBuf))]
			st.readBuf = nil
			st.filling, st.lastDirect = true, true
		}
		if rest := n - len(direct); rest > 0 {
			segs = st.recv.reserve(rest)
		}
	}
	st.mu.Unlock()

	// Payload octets not read here (a reset stream's) are skipped by the
	// next ReadFrameHeader.
	err := readFull(s.fr, direct)
	for _, seg := range segs {
		if err == nil {
			err = readFull(s.fr, seg)
		}
	}

	st.mu.Lock()
	if direct != nil {
		st.filling = false
		if err == nil && !st.discard {
			st.readN = len(direct)
		}
	}
	if segs != nil {
		st.recv.commit(err == nil && !st.discard)
	}
	if err == nil {
		st.recvEnd = st.recvEnd || end
	}
	var start uint32
	var now int64
	if err == nil && n > 0 {
		start = st.startLocked()
		now = s.monoNow()
		st.tuneLocked(n, now)
	}
	forget := err == nil && end && st.sentEnd
	st.cond.Broadcast()
	st.mu.Unlock()
	if err != nil {
		return err
	}
	s.counters.dataReceived.Add(uint64(n))
	if now != 0 {
		s.probeRTT(now)
	}
	if start > 0 {
		var b [frame.HeaderSize + 4]byte
		s.w.queueAnswer(frame.AppendWindowUpdate(b[:0], st.id, start))
	}
	if forget {
		s.forget(st)
	}
	s.touch()
	if direct != nil {
		// Let the woken Read run now, on this thread, and ask for the
		// next payload before this goroutine reads it.
		runtime.Gosched()
	}
	return nil
}

func readFull(r io.Reader, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, err := io.ReadFull(r, p)
	return err
}

// handleOpen takes a stream the peer opens (SPEC 4.2, 6.1) and queues it
// for the handler, or refuses it at once.
func (s *Session) handleOpen(f *frame.Frame) error {
	id := f.StreamID
	if err := s.checkNewPeerID(id); err != nil {
		return err
	}
	s.touch()
	s.mu.Lock()
	reason, code := "", frame.CodeNoError
	switch {
	case s.err != nil:
		s.mu.Unlock()
		return nil // the session has ended: nobody will serve it
	case s.goAwaySent:
		code, reason = frame.CodeGoingAway, "the session is shutting down"
	case s.handler == nil && !s.cfg.AcceptStreams:
		code, reason = frame.CodeRefused, "this side accepts no streams (no handler)"
	case s.peerStreams >= s.cfg.MaxConcurrentStreams:
		code, reason = frame.CodeStreamLimit, fmt.Sprintf("too many streams: %d open, the limit is %d", s.peerStreams, s.cfg.MaxConcurrentStreams)
		if s.heldPlaces > 0 {
			reason += fmt.Sprintf(" (%d of them closed by both sides, but holding data this side's application has not read)", s.heldPlaces)
		}
	}
	if code != frame.CodeNoError {
		s.mu.Unlock()
		return s.refuse(id, code, reason)
	}
	if waiting := s.acceptWaiting; waiting >= s.cfg.AcceptBacklog {
		s.mu.Unlock()
		return s.refuse(id, frame.CodeStreamLimit, fmt.Sprintf("the accept backlog is full: %d streams wait for the handler", waiting))
	}
	// SPEC 10.3: the headers stay with the stream while it lives, so they
	// count in the session's budget.
	cost := headerCost(f.Headers)
	if !s.reserveBudget(cost) {
		s.mu.Unlock()
		return s.refuse(id, frame.CodeStreamLimit, fmt.Sprintf("the session's receive budget (MaxSessionWindow %d) is spent: the windows and headers of its streams hold it", s.cfg.MaxSessionWindow))
	}
	st := newStream(s, id, f.Headers, false)
	st.headerCost = cost
	s.streams[id] = st
	s.peerStreams++
	s.enqueueAcceptLocked(st)
	s.mu.Unlock()
	return nil
}

// headerCost is what decoded headers take in memory, about: their octets,
// plus a map entry per name and a string header per value.
func headerCost(h http.Header) uint32 {
	n := 0
	for name, values := range h {
		n += len(name) + 64 + 16*len(values)
		for _, v := range values {
			n += len(v)
		}
	}
	return uint32(n)
}

// handleOpenError refuses a stream whose OPEN carried a bad header block:
// a stream error (SPEC 4.2), after the ID rules that keep the session sane.
func (s *Session) handleOpenError(f *frame.Frame, e *frame.StreamError) error {
	if err := s.checkNewPeerID(e.StreamID); err != nil {
		return err
	}
	return s.refuse(e.StreamID, e.Code, e.Reason)
}

// checkNewPeerID applies SPEC 6.1 to the ID of a peer's OPEN, and records it.
func (s *Session) checkNewPeerID(id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.peerParity(id) {
		return sessionErrorf(frame.CodeProtocolError, "OPEN of stream %d, an ID of this side's parity", id)
	}
	if id <= s.lastPeerID {
		return sessionErrorf(frame.CodeProtocolError, "OPEN of stream %d after stream %d: IDs must increase", id, s.lastPeerID)
	}
	s.lastPeerID = id
	return nil
}

// refuse answers an OPEN with REFUSE.
func (s *Session) refuse(id uint32, code frame.ErrCode, reason string) error {
	s.counters.refusalsSent.Add(1)
	var b [frame.HeaderSize + 4 + frame.MaxReasonBytes]byte
	s.w.queueAnswer(frame.AppendRefuse(b[:0], id, code, reason))
	return nil
}

// streamFor finds the stream a control frame is for. nil with a nil error
// means a closed stream: the frame is ignored (SPEC 6.4).
func (s *Session) streamFor(f *frame.Frame) (*Stream, error) {
	if st := s.lookup(f.StreamID); st != nil {
		return st, nil
	}
	if s.isIdle(f.StreamID) {
		return nil, sessionErrorf(frame.CodeProtocolError, "%v on stream %d, which was never opened", f.Type, f.StreamID)
	}
	return nil, nil
}

// handleAccept: the peer accepted a stream this side opened (SPEC 4.3).
func (s *Session) handleAccept(f *frame.Frame) error {
	st, err := s.streamFor(f)
	if st == nil {
		return err
	}
	st.mu.Lock()
	if !st.local || st.accepted {
		st.mu.Unlock()
		return sessionErrorf(frame.CodeProtocolError, "ACCEPT on stream %d, which is not waiting for one", f.StreamID)
	}
	st.accepted, st.peerMaySend = true, true
	st.cond.Broadcast()
	st.mu.Unlock()
	return nil
}

// handleRefuse: the peer declined a stream this side opened (SPEC 4.4).
func (s *Session) handleRefuse(f *frame.Frame) error {
	st, err := s.streamFor(f)
	if st == nil {
		return err
	}
	st.mu.Lock()
	waiting := st.local && !st.accepted
	st.mu.Unlock()
	if !waiting {
		return sessionErrorf(frame.CodeProtocolError, "REFUSE on stream %d, which is not waiting for an answer", f.StreamID)
	}
	s.counters.refusalsRecv.Add(1)
	st.refused(&refusedError{streamID: st.id, code: f.Code, reason: f.Reason})
	return nil
}

// handleWindowUpdate adds credit to a stream's send window (SPEC 4.5, 7.1).
func (s *Session) handleWindowUpdate(f *frame.Frame) error {
	st, err := s.streamFor(f)
	if st == nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// The window as the peer sees it includes what a Write has reserved
	// but the writer has not taken yet.
	if st.sendWindow+int64(len(st.pending))+int64(f.Increment) > frame.MaxWindow {
		return sessionErrorf(frame.CodeFlowControlError, "WINDOW_UPDATE of %d on stream %d takes its window past 2^31-1", f.Increment, f.StreamID)
	}
	st.sendWindow += int64(f.Increment)
	st.cond.Broadcast()
	return nil
}

// handleReset ends a stream at the peer's request (SPEC 4.6).
func (s *Session) handleReset(f *frame.Frame) error {
	s.counters.resetsRecv.Add(1)
	st, err := s.streamFor(f)
	if st == nil {
		return err
	}
	s.touch()
	st.resetByPeer(f.Code, f.Reason)
	return nil
}

// handlePing answers PINGs and matches ACKs to the pings this side sent
// (SPEC 4.7).
func (s *Session) handlePing(f *frame.Frame) error {
	if !f.Flags.Has(frame.FlagAck) {
		var b [frame.HeaderSize + 8]byte
		s.w.queueAnswer(frame.AppendPing(b[:0], frame.FlagAck, f.PingData))
		return nil
	}
	var id uint64
	for _, c := range f.PingData {
		id = id<<8 | uint64(c)
	}
	id ^= s.pingKey
	s.mu.Lock()
	p := s.pings[id]
	if p == nil {
		s.mu.Unlock()
		return nil // SPEC 4.7: an ACK for no outstanding PING is ignored
	}
	delete(s.pings, id)
	rtt := max(time.Since(p.sent), 1) // 0 would read as nothing measured
	now := s.monoNow()
	s.noteRTTLocked(rtt, now)
	if p.flow {
		s.flowProbeAnsweredLocked(now)
	}
	if p == s.keepalivePing {
		s.keepalivePing = nil
	}
	if p.probe && s.rttProbes < rttProbes && s.err == nil {
		// The first round trips of a session include its start-up; a
		// few more, right after, give the idle round-trip time.
		s.rttProbes++
		s.sendPingLocked(nil).probe = true
	}
	s.mu.Unlock()
	s.counters.noteRTT(rtt)
	if p.done != nil {
		p.done <- rtt
	}
	return nil
}

// handleGoAway applies the peer's GOAWAY (SPEC 4.8, 8.2, 8.3).
func (s *Session) handleGoAway(f *frame.Frame) error {
	last := f.LastStreamID
	s.mu.Lock()
	if last != 0 && (s.peerParity(last) || s.nextID != 0 && last >= s.nextID) {
		s.mu.Unlock()
		return sessionErrorf(frame.CodeProtocolError, "GOAWAY with last stream ID %d, which this side never opened", last)
	}
	if f.Code != frame.CodeNoError {
		s.mu.Unlock()
		return &goAwayError{code: f.Code, reason: f.Reason} // ends reading: the peer closes
	}
	if s.goAwayRecv && last > s.goAwayLastID {
		last = s.goAwayLastID // SPEC 8.2: it must not grow; keep the smaller
	}
	s.goAwayRecv, s.goAwayLastID = true, last
	var refused []*Stream
	for id, st := range s.streams {
		if id > last && !s.peerParity(id) {
			refused = append(refused, st)
		}
	}
	s.mu.Unlock()
	for _, st := range refused {
		st.mu.Lock()
		opening := !st.accepted
		st.mu.Unlock()
		if opening {
			st.refused(&refusedError{streamID: st.id, code: frame.CodeGoingAway})
		}
	}
	return nil
}

// handleSettings applies the peer's limits (SPEC 4.9).
func (s *Session) handleSettings(f *frame.Frame) error {
	s.mu.Lock()
	for _, set := range f.Settings {
		switch set.ID {
		case frame.SettingMaxFrameSize:
			s.peer.maxFrameSize = set.Value
		case frame.SettingInitialStreamWindow:
			s.peer.initialWindow = set.Value
		case frame.SettingMaxHeaderBytes:
			s.peer.maxHeaderBytes = set.Value
		}
		// MAX_CONCURRENT_STREAMS is advisory (SPEC 4.9): the peer
		// enforces it with REFUSE, which OpenStream reports.
	}
	s.w.peerMaxFrame.Store(s.peer.maxFrameSize)
	s.mu.Unlock()
	close(s.settingsRecv)
	return nil
}
