package mux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

// Session is one end of a multiplexed connection: it implements
// httpstream.Connection. All methods are safe for concurrent use.
type Session struct {
	conn    net.Conn
	cfg     Config // resolved: every field valid, durations 0 when off
	client  bool
	handler httpstream.NewStreamHandler
	log     *slog.Logger
	trace   bool          // the Logger takes LevelTrace: every frame is logged
	fr      *frame.Reader // owned by the reader goroutine
	w       writer

	mu            sync.Mutex // guards the fields below, up to the blank line
	streams       map[uint32]*Stream
	nextID        uint32 // next ID this side opens; 0 once exhausted
	lastPeerID    uint32 // highest ID the peer opened (SPEC 6.1)
	peerStreams   int    // live streams the peer opened
	heldPlaces    int    // of peerStreams: closed by both sides, held by unread data
	peer          peerSettings
	goAwaySent    bool   // this side sent GOAWAY NO_ERROR: no new streams either way
	goAwayRecv    bool   // the peer sent GOAWAY NO_ERROR
	goAwayLastID  uint32 // the peer's last stream ID, when goAwayRecv
	err           error  // sticky *closedError once the session ends
	pings         map[uint64]*pendingPing
	pingSeq       uint64
	pingKey       uint64        // PING data is pingSeq^pingKey: a peer cannot answer PINGs it did not read
	drained       chan struct{} // closed when a shutting-down session has no streams left
	keepalivePing *pendingPing  // the monitor's outstanding ping, if any
	acceptQueue   []*Stream     // peer-opened streams for the handler, in open order; may hold reset ones
	acceptWaiting int           // streams in acceptQueue still alive: the backlog
	rttProbes     int           // round-trip probes sent after the first
	rttMin        windowedMin   // PING round trips over rttEpoch windows: minRTT (tune.go)
	recentMin     windowedMin   // and over half-round-trip windows: recentRTT
	flowProbes    int           // queue probes outstanding (tune.go)

	settingsRecv chan struct{} // closed when the peer's SETTINGS arrived
	closed       chan bool     // closed when the session ends (CloseChan)
	connClosed   chan struct{} // closed once conn.Close returned
	readDone     chan struct{} // closed when the reader goroutine has ended
	acceptReady  chan struct{} // wakes the accept loop when acceptQueue fills
	acceptDone   chan struct{} // closed when the accept loop has ended
	inHandler    atomic.Bool   // the accept loop is (about to be) inside the handler

	budgetUsed   atomic.Int64    // of MaxSessionWindow: window granted past the floor, and header blocks held, over live streams
	minRTT       atomic.Int64    // smallest PING round trip of the last epoch or two, in ns; 0 until measured (tune.go)
	recentRTT    atomic.Int64    // the smallest PING round trip of the last one or so, ns (tune.go)
	drainUntil   atomic.Int64    // monoNow: auto-tuning's drain round lasts until then
	nextProbe    atomic.Int64    // monoNow: the earliest the reader sends the next queue probe
	counters     sessionCounters // for Stats; counters.framesReceived also feeds the keepalive
	idleTimeout  atomic.Int64    // ns; 0: none
	lastActivity atomic.Int64    // UnixNano of the last stream activity, while idleTimeout > 0
	idleChanged  chan struct{}

	lastLight [2]dataMark // the reader goroutine's: the last two light streams that received DATA, newest first (tune.go)

	born time.Time // when the session started: monoNow's origin

	wg sync.WaitGroup // the reader, writer, monitor and closing goroutines
}

// peerSettings are the limits the peer advertised (SPEC 4.9).
type peerSettings struct {
	maxFrameSize   uint32
	initialWindow  uint32
	maxHeaderBytes uint32
}

type pendingPing struct {
	sent  time.Time
	done  chan time.Duration // nil for keepalive pings; buffered
	probe bool               // one of the session's first, round-trip probes
	flow  bool               // a probe of the queue while data flows (tune.go)
}

// rttProbes is how many PINGs follow the first one, one after the other's
// answer, to measure the idle round-trip time for window auto-tuning.
const rttProbes = 3

// Client starts the client end of a session on conn: the side that sent the
// HTTP request of an upgrade, which opens odd-numbered streams. handler runs
// for each stream the peer opens; nil refuses them all. A nil cfg means
// DefaultConfig(). Client returns at once; it fails only on an invalid
// Config. The session owns conn from now on and closes it when it ends.
func Client(conn net.Conn, handler httpstream.NewStreamHandler, cfg *Config) (*Session, error) {
	return newSession(conn, handler, cfg, true)
}

// Server starts the server end of a session on conn: the side that answered
// an upgrade, which opens even-numbered streams. See Client.
func Server(conn net.Conn, handler httpstream.NewStreamHandler, cfg *Config) (*Session, error) {
	return newSession(conn, handler, cfg, false)
}

func newSession(conn net.Conn, handler httpstream.NewStreamHandler, cfg *Config, client bool) (*Session, error) {
	if conn == nil {
		return nil, errors.New("mux: nil net.Conn")
	}
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if c.AcceptStreams && handler != nil {
		return nil, errors.New("mux: Config.AcceptStreams and a NewStreamHandler exclude each other: pass a nil handler to take streams with Session.Accept")
	}
	s := &Session{
		born:    time.Now(),
		conn:    conn,
		cfg:     c,
		client:  client,
		handler: handler,
		log:     c.Logger,
		trace:   c.Logger.Enabled(context.Background(), LevelTrace),
		fr: frame.NewReader(conn, frame.Limits{
			MaxFrameSize:   uint32(c.MaxFrameSize),
			MaxHeaderBytes: uint32(c.MaxHeaderBytes),
		}),
		streams:      make(map[uint32]*Stream),
		nextID:       2,
		pings:        make(map[uint64]*pendingPing),
		settingsRecv: make(chan struct{}),
		closed:       make(chan bool),
		connClosed:   make(chan struct{}),
		readDone:     make(chan struct{}),
		acceptReady:  make(chan struct{}, 1),
		acceptDone:   make(chan struct{}),
		pingKey:      rand.Uint64(),
		idleChanged:  make(chan struct{}, 1),
	}
	if client {
		s.nextID = 1
	}
	// SPEC 4.9: until the peer's SETTINGS arrive, its limits are the
	// protocol defaults. Nothing that depends on them is sent before.
	s.peer = peerSettings{
		maxFrameSize:   frame.DefaultMaxFrameSize,
		initialWindow:  frame.DefaultInitialStreamWindow,
		maxHeaderBytes: frame.DefaultMaxHeaderBytes,
	}
	if c.IdleTimeout > 0 {
		s.idleTimeout.Store(int64(c.IdleTimeout))
		s.lastActivity.Store(time.Now().UnixNano())
	}
	if c.UnsentLimit > 0 {
		limitUnsent(conn, c.UnsentLimit)
	}
	s.w.init(s)
	// SPEC 2.2, 2.3: the preface, then SETTINGS, before anything else. A
	// first PING measures the round trip for window auto-tuning and, with
	// keepalive on, catches a peer that never answers.
	s.w.queueControl(frame.AppendSettings([]byte(frame.Preface),
		frame.Setting{ID: frame.SettingMaxFrameSize, Value: uint32(c.MaxFrameSize)},
		frame.Setting{ID: frame.SettingInitialStreamWindow, Value: c.streamWindowFloor()},
		frame.Setting{ID: frame.SettingMaxHeaderBytes, Value: uint32(c.MaxHeaderBytes)},
		frame.Setting{ID: frame.SettingMaxConcurrentStreams, Value: uint32(c.MaxConcurrentStreams)},
	))
	s.mu.Lock()
	s.keepalivePing = s.sendPingLocked(nil)
	s.keepalivePing.probe = true
	s.mu.Unlock()

	s.wg.Add(3)
	go s.w.run()    // ends when the session closes
	go s.readLoop() // ends when the connection is closed
	go s.monitor()  // ends when the session closes
	if c.AcceptStreams {
		close(s.acceptDone) // Session.Accept takes the streams: no loop
	} else {
		go s.acceptLoop() // ends when the session closes, after the handler in progress returns
	}
	return s, nil
}

// CreateStream opens a stream carrying headers and waits, at most
// Config.StreamOpenTimeout, for the peer to accept it. It is OpenStream with
// a background context, for httpstream.Connection.
func (s *Session) CreateStream(headers http.Header) (httpstream.Stream, error) {
	st, err := s.OpenStream(context.Background(), headers)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenStream opens a stream carrying headers and returns once the peer's
// handler has accepted it. A refusal is an error matching ErrStreamRefused
// that carries the peer's reason. If the peer does not answer within
// Config.StreamOpenTimeout, or ctx ends first, the half-open stream is reset
// and the error is a net.Error with Timeout() true.
func (s *Session) OpenStream(ctx context.Context, headers http.Header) (*Stream, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	if t := s.cfg.StreamOpenTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t, errOpenTimeout)
		defer cancel()
	}
	block, err := frame.AppendHeaderBlock(make([]byte, frame.HeaderSize, 128), headers)
	if err != nil {
		return nil, fmt.Errorf("httpstream: cannot send these headers: %w", err)
	}
	// SPEC 2.3: no OPEN before the peer's SETTINGS, which give the header
	// limit. They come first from the peer, so this wait is short.
	select {
	case <-s.settingsRecv:
	case <-s.closed:
		return nil, s.closedErr()
	case <-ctx.Done():
		return nil, &openTimeoutError{waited: time.Since(start), cause: openCause(ctx)}
	}

	st, err := s.openLocal(block, headers)
	if err != nil {
		return nil, err
	}
	if err := st.waitAccepted(ctx); err != nil {
		if err == errOpenCanceled {
			st.resetWith(frame.CodeCancel, "the opener stopped waiting for ACCEPT", s.w.queueControl)
			return nil, &openTimeoutError{streamID: st.id, waited: time.Since(start), cause: openCause(ctx)}
		}
		return nil, err
	}
	return st, nil
}

var errOpenTimeout = fmt.Errorf("Config.StreamOpenTimeout passed: %w", errDeadline)

func openCause(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return ctx.Err()
}

// openLocal allocates the next stream ID and queues the OPEN, atomically, so
// that OPENs go out in ID order (SPEC 6.1).
func (s *Session) openLocal(block []byte, headers http.Header) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return nil, s.err
	case s.goAwaySent:
		return nil, &closedError{cause: errShutdown}
	case s.goAwayRecv:
		return nil, &refusedError{code: frame.CodeGoingAway}
	case s.nextID == 0:
		return nil, errors.New("httpstream: this session has used all its stream IDs; open a new session")
	}
	n := len(block) - frame.HeaderSize
	if uint32(n) > s.peer.maxHeaderBytes {
		return nil, fmt.Errorf("httpstream: the headers encode to %d octets, more than the peer accepts (MAX_HEADER_BYTES %d)", n, s.peer.maxHeaderBytes)
	}
	id := s.nextID
	s.nextID += 2
	if s.nextID < id { // wrapped: SPEC 6.1, no more IDs
		s.nextID = 0
	}
	st := newStream(s, id, headers, true)
	s.streams[id] = st
	s.counters.opened.Add(1)
	frame.AppendFrameHeader(block[:0], frame.FrameHeader{Length: uint32(n), Type: frame.FrameOpen, StreamID: id})
	s.w.queueControl(block)
	s.touch()
	return st, nil
}

// Close ends the session: it tells the peer with GOAWAY, resets every
// stream, closes the connection and CloseChan, and makes every blocked and
// later call fail with an error matching ErrSessionClosed. It is idempotent,
// safe from any goroutine, and returns once the session's own goroutines
// have ended (except a handler still running). It lingers so that what was
// written reaches the peer: it sends its end of the connection and reads
// until the peer closes too, for up to 1 s against a peer that does not
// read or does not close (SPEC 8.3).
func (s *Session) Close() error {
	s.closeWith(errClosedLocally, frame.CodeSessionClosed, "closed by the application")
	s.wg.Wait()
	s.waitAcceptLoop()
	return nil
}

// Shutdown ends the session gracefully: it sends GOAWAY so the peer opens no
// new streams, refuses new streams from both sides, waits until the streams
// already open are done (closed by both sides or reset), then closes. If ctx
// ends first, it closes at once (resetting the streams left) and returns
// ctx's error.
func (s *Session) Shutdown(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	if !s.goAwaySent {
		s.goAwaySent = true
		s.drained = make(chan struct{})
		s.w.queueControl(frame.AppendGoAway(nil, s.lastPeerID, frame.CodeNoError, "shutting down"))
	}
	if len(s.streams) == 0 {
		s.closeDrainedLocked()
	}
	drained := s.drained
	s.mu.Unlock()

	var err error
	select {
	case <-drained:
	case <-s.closed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.closeWith(errShutdown, frame.CodeSessionClosed, "shut down by the application")
	s.wg.Wait()
	s.waitAcceptLoop()
	return err
}

func (s *Session) closeDrainedLocked() {
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}

// CloseChan returns a channel that is closed when the session ends, for
// whatever reason.
func (s *Session) CloseChan() <-chan bool { return s.closed }

// SetIdleTimeout makes the session close itself after d without stream
// activity (opens, data, half-closes, resets, either direction); pings and
// window updates do not count. 0 (or less) disables it. It may be called at
// any time; the idle period starts anew.
func (s *Session) SetIdleTimeout(d time.Duration) {
	s.lastActivity.Store(time.Now().UnixNano())
	s.idleTimeout.Store(int64(max(d, 0)))
	select {
	case s.idleChanged <- struct{}{}:
	default:
	}
}

// RemoveStreams does nothing: it is bookkeeping in Kubernetes, whose
// connection keeps a map of streams to reset when it closes, and its
// kubelet calls it on streams still in use. Here streams that both sides
// closed, or that were reset, are forgotten by the session by itself, and
// Close resets the others; so the given streams are left exactly as they
// are.
func (s *Session) RemoveStreams(streams ...httpstream.Stream) {}

// NumStreams returns how many streams the session tracks: opening or open
// in at least one direction.
func (s *Session) NumStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Ping sends a PING and returns the round-trip time once the answer arrives.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	done := make(chan time.Duration, 1)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return 0, s.err
	}
	p := s.sendPingLocked(done)
	s.mu.Unlock()
	select {
	case rtt, ok := <-done:
		if !ok {
			return 0, s.closedErr()
		}
		return rtt, nil
	case <-s.closed:
		return 0, s.closedErr()
	case <-ctx.Done():
		s.mu.Lock()
		for id, q := range s.pings {
			if q == p {
				delete(s.pings, id)
			}
		}
		s.mu.Unlock()
		return 0, fmt.Errorf("httpstream: ping not answered: %w", ctx.Err())
	}
}

func (s *Session) sendPingLocked(done chan time.Duration) *pendingPing {
	s.pingSeq++
	p := &pendingPing{sent: time.Now(), done: done}
	s.pings[s.pingSeq] = p
	var data [8]byte
	putUint64(data[:], s.pingSeq^s.pingKey)
	s.w.queueControl(frame.AppendPing(nil, 0, data))
	return p
}

// LocalAddr returns the local address of the session's connection.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the remote address of the session's connection.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

func (s *Session) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// closedErr returns the sticky error, for calls after the end.
func (s *Session) closedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return &closedError{cause: errClosedLocally}
	}
	return s.err
}

// touch records stream activity for the idle timeout. It costs a clock read
// only while an idle timeout is set.
func (s *Session) touch() {
	if s.idleTimeout.Load() > 0 {
		s.lastActivity.Store(time.Now().UnixNano())
	}
}

// closeWith ends the session with cause, once. Unless code is
// frame.CodeNoError (used when the peer already closed, or the connection
// broke), it queues GOAWAY(code, reason) and gives the writer a bounded time
// to send it before closing the connection. It does not wait for the
// session's goroutines: the reader and writer call it too.
func (s *Session) closeWith(cause error, code frame.ErrCode, reason string) {
	var goAway []byte
	if code != frame.CodeNoError {
		goAway = frame.AppendGoAway(nil, s.lastPeerIDNow(), code, reason)
	}
	s.end(cause, goAway, goAway != nil)
}

// closeAfterFlush ends the session with cause, with no GOAWAY, once what is
// already queued has gone out (within the same bound): for a peer that does
// not speak the protocol, which still gets the preface and SETTINGS that
// tell it which version this side speaks (SPEC 2.2).
func (s *Session) closeAfterFlush(cause error) { s.end(cause, nil, true) }

func (s *Session) lastPeerIDNow() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastPeerID
}

// end ends the session with cause, once: it queues goAway (if any), seals
// the writer, fails the streams, and closes the connection, after giving
// the writer a bounded time to send what is queued if flush is set.
func (s *Session) end(cause error, goAway []byte, flush bool) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = &closedError{cause: cause}
	streams := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	clear(s.streams)
	for _, p := range s.pings {
		if p.done != nil {
			close(p.done)
		}
	}
	clear(s.pings)
	if goAway != nil {
		s.w.queueFinal(goAway)
	}
	s.w.seal() // nothing but what is queued goes out from now on
	s.mu.Unlock()

	s.log.Debug("httpstream: session closed", "cause", cause.Error(), "client", s.client)
	// When this side closes, later Reads fail at once, as Close promises;
	// when the peer or the connection ends the session, what had arrived
	// stays readable, then io.EOF if the peer closed on purpose (SPEC 8.3).
	local := cause == errClosedLocally || cause == errShutdown
	clean := isPeerClose(cause)
	for _, st := range streams {
		st.endWithSession(s.err, local, clean)
	}
	close(s.closed)
	// The reader is still running (it ends only once the connection is
	// closed), so the WaitGroup cannot be at zero here.
	s.wg.Add(1)
	go s.finishClose(flush) // ends once the connection is closed
}

// finishClose gives the writer closeFlushTimeout to send the final GOAWAY,
// then closes the connection, which ends the reader and any blocked write.
//
// Where the connection can half-close (TCP, TLS), it first sends its end
// and reads until the peer closes too, within the same bound: a socket
// closed while the peer still sends (a WINDOW_UPDATE for data it just read,
// a PING) answers with a TCP reset, and the reset makes the peer's kernel
// discard what it had received and not yet handed over: the last data of
// our streams, and the GOAWAY that says why (SPEC 8.3).
func (s *Session) finishClose(flush bool) {
	if flush {
		deadline := time.Now().Add(closeFlushTimeout)
		s.conn.SetWriteDeadline(deadline)
		t := time.NewTimer(closeFlushTimeout)
		sent := false
		select {
		case <-s.w.flushed:
			sent = s.w.err() == nil
		case <-t.C:
		}
		if cw, ok := s.conn.(interface{ CloseWrite() error }); ok && sent && cw.CloseWrite() == nil {
			s.conn.SetReadDeadline(deadline)
			select {
			case <-s.readDone: // the peer closed its end, or reading failed
			case <-t.C:
			}
		}
		t.Stop()
	}
	s.conn.Close()
	close(s.connClosed)
	s.wg.Done()
}

// closeFlushTimeout bounds how long a closing session waits to send its
// GOAWAY to a peer that does not read.
const closeFlushTimeout = time.Second

// forget drops a stream that is done (both sides closed, reset, refused)
// from the session's table (SPEC 6.2), so it costs nothing more.
func (s *Session) forget(st *Stream) { s.forgetThenQueue(st, nil) }

// forgetThenQueue forgets st and then queues its last frame (last, if not
// nil) under the same lock. The peer learns that the stream is done from
// that frame, and may open another at once: by then the stream's place is
// free, and a concurrent Close or Shutdown cannot seal the writer between
// the two, so the frame is not lost.
func (s *Session) forgetThenQueue(st *Stream, last []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last != nil {
		defer s.w.queueControl(last) // after the place is released, still under s.mu
	}
	if s.streams[st.id] != st {
		return
	}
	delete(s.streams, st.id)
	if st.queued {
		// Reset while waiting for the handler: it no longer counts against
		// the backlog (SPEC 10.5: an open reset at once costs nothing), and
		// its headers need not wait for the queue to be compacted.
		st.queued = false
		s.acceptWaiting--
		st.headers = nil
	}
	// A stream closed by both sides may still hold data its application
	// has not read: until it has, the stream keeps its place in the limits
	// that bound memory (SPEC 10.3), or a peer could open, fill and close
	// streams without end. Read (or Reset) gives the place back.
	st.mu.Lock()
	holding := st.recv.buffered() > 0 && !st.discard
	st.holdsPlace = holding
	st.mu.Unlock()
	if holding {
		if !st.local {
			s.heldPlaces++
		}
	} else {
		s.releasePlaceLocked(st)
	}
	if s.goAwaySent && len(s.streams) == 0 {
		s.closeDrainedLocked()
	}
}

// releasePlaceLocked gives back what a forgotten stream counted against:
// its place among the peer's streams, and its share of the session's
// budget (its window past the floor, its header block).
func (s *Session) releasePlaceLocked(st *Stream) {
	if !st.local {
		s.peerStreams--
	}
	if g := st.releaseGrowth() + int64(st.headerCost); g > 0 {
		st.headerCost = 0
		s.budgetUsed.Add(-g)
	}
}

// reserveBudget takes n octets of the session's receive budget, all or
// none, and reports whether it did.
func (s *Session) reserveBudget(n uint32) bool {
	for {
		used := s.budgetUsed.Load()
		if used+int64(n) > int64(s.cfg.MaxSessionWindow) {
			return false
		}
		if s.budgetUsed.CompareAndSwap(used, used+int64(n)) {
			return true
		}
	}
}

// takeBudget takes up to want octets of the session's receive budget for
// windows, as many as are left, and returns how many it took. Windows may
// take no more than three quarters of MaxSessionWindow, so that the headers
// of new streams always find room (reserveBudget): a peer's OPEN is never
// refused because other streams' windows grew.
func (s *Session) takeBudget(want uint32) uint32 {
	for {
		used := s.budgetUsed.Load()
		g := min(int64(want), int64(s.cfg.MaxSessionWindow)/4*3-used)
		if g <= 0 {
			return 0
		}
		if s.budgetUsed.CompareAndSwap(used, used+g) {
			return uint32(g)
		}
	}
}

// releaseHeldPlace is called, without locks, once a forgotten stream that
// still held data has been read dry or reset.
func (s *Session) releaseHeldPlace(st *Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		if !st.local {
			s.heldPlaces--
		}
		s.releasePlaceLocked(st)
	}
}

// isIdle reports whether no stream with this ID was ever opened (SPEC 6.1):
// frames for such IDs are protocol errors, unlike frames for closed streams.
func (s *Session) isIdle(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (id%2 == 1) == s.client { // this side's parity
		return s.nextID != 0 && id >= s.nextID
	}
	return id > s.lastPeerID
}

func (s *Session) lookup(id uint32) *Stream {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	return st
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}
