package mux

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// SessionStats is a snapshot of a session's counters, for operators: what
// went each way, how streams fared, and why the session ended. The counters
// are atomics kept as the session works, so Stats is cheap enough to call
// on every request.
type SessionStats struct {
	FramesSent, FramesReceived uint64 // every frame, control frames included
	DataSent, DataReceived     uint64 // DATA payload octets

	StreamsOpened    uint64 // streams this side opened (OPEN sent)
	StreamsAccepted  uint64 // streams the peer opened that this side accepted
	RefusalsSent     uint64 // streams the peer opened that this side refused
	RefusalsReceived uint64 // streams this side opened that the peer refused
	ResetsSent       uint64
	ResetsReceived   uint64
	ActiveStreams    int // streams the session tracks now (as NumStreams)

	// RTT is the smoothed round-trip time of the session's PINGs, MinRTT
	// the smallest seen; both 0 until a PING was answered.
	RTT, MinRTT time.Duration
	// QueuedControl is how many control frames wait to be written.
	QueuedControl int
	// BudgetUsed is how much of MaxSessionWindow the streams hold now.
	BudgetUsed int64
	// Err is why the session ended (as Err), nil while it runs.
	Err error
}

// StreamStats is a snapshot of one stream's counters.
type StreamStats struct {
	FramesSent, FramesReceived uint64 // DATA frames
	DataSent, DataReceived     uint64 // DATA payload octets

	// RecvWindow is what the peer may still send now; RecvWindowPeak the
	// largest the window has been (auto-tuning grows and shrinks it, SPEC
	// 7.3).
	RecvWindow, RecvWindowPeak uint32
	// Buffered is what arrived and the application has not read yet.
	Buffered int
	// SendWindow is what this side may still send before the peer reads.
	SendWindow int64
}

// sessionCounters are the session's atomics behind SessionStats.
type sessionCounters struct {
	framesSent, framesReceived atomic.Uint64
	dataSent, dataReceived     atomic.Uint64
	opened, accepted           atomic.Uint64
	refusalsSent, refusalsRecv atomic.Uint64
	resetsSent, resetsRecv     atomic.Uint64
	srtt                       atomic.Int64 // smoothed PING round trip, ns
}

// streamCounters are a stream's counters behind StreamStats, guarded by
// the stream's mu, which the data path holds anyway where they change.
type streamCounters struct {
	framesSent, framesReceived uint64
	dataSent, dataReceived     uint64
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() SessionStats {
	c := &s.counters
	st := SessionStats{
		FramesSent:       c.framesSent.Load(),
		FramesReceived:   c.framesReceived.Load(),
		DataSent:         c.dataSent.Load(),
		DataReceived:     c.dataReceived.Load(),
		StreamsOpened:    c.opened.Load(),
		StreamsAccepted:  c.accepted.Load(),
		RefusalsSent:     c.refusalsSent.Load(),
		RefusalsReceived: c.refusalsRecv.Load(),
		ResetsSent:       c.resetsSent.Load(),
		ResetsReceived:   c.resetsRecv.Load(),
		RTT:              time.Duration(c.srtt.Load()),
		MinRTT:           time.Duration(s.minRTT.Load()),
		BudgetUsed:       s.budgetUsed.Load(),
	}
	s.mu.Lock()
	st.ActiveStreams = len(s.streams)
	st.Err = s.err
	s.mu.Unlock()
	st.QueuedControl = s.w.queued()
	return st
}

// Err returns why the session ended: an error matching ErrSessionClosed
// whose text gives the first cause (this side's Close, the peer's GOAWAY, a
// failed connection, a timeout). It returns nil while the session runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stats returns a snapshot of the stream's counters.
func (st *Stream) Stats() StreamStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	return StreamStats{
		FramesSent:     st.counters.framesSent,
		FramesReceived: st.counters.framesReceived,
		DataSent:       st.counters.dataSent,
		DataReceived:   st.counters.dataReceived,
		RecvWindow:     st.recv.avail,
		RecvWindowPeak: st.recv.peak,
		Buffered:       st.recv.buffered(),
		SendWindow:     st.sendWindow,
	}
}

// noteRTT folds one PING round trip into the smoothed RTT, as TCP does
// (RFC 6298: 7/8 of the old estimate, 1/8 of the sample).
func (c *sessionCounters) noteRTT(rtt time.Duration) {
	old := c.srtt.Load()
	if old == 0 {
		c.srtt.Store(int64(rtt))
		return
	}
	c.srtt.Store(old - old/8 + int64(rtt)/8)
}

// LevelTrace is the slog level of the frame trace: a Config.Logger that
// enables it gets a record for every frame sent (queued for the wire) and
// received, with its type, stream, flags and length, and the window left
// for DATA. It is below slog.LevelDebug, so a debug logger stays quiet, and
// the trace costs nothing when the Logger does not enable it (the session
// asks once, at its start).
const LevelTrace = slog.LevelDebug - 4

// traceFrame logs the frame whose encoding starts b (a preface in front of
// it is skipped).
func (s *Session) traceFrame(dir string, b []byte, attrs ...slog.Attr) {
	if len(b) >= len(frame.Preface) && string(b[:len(frame.Preface)]) == frame.Preface {
		b = b[len(frame.Preface):]
	}
	if len(b) < frame.HeaderSize {
		return
	}
	h := frame.FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     frame.FrameType(b[3]),
		Flags:    frame.Flags(b[4]),
		StreamID: uint32(b[5])<<24 | uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8]),
	}
	all := append([]slog.Attr{
		slog.String("type", h.Type.String()),
		slog.Uint64("stream", uint64(h.StreamID)),
		slog.Uint64("flags", uint64(h.Flags)),
		slog.Uint64("length", uint64(h.Length)),
		slog.Bool("client", s.client),
	}, attrs...)
	s.log.LogAttrs(context.Background(), LevelTrace, "httpstream: frame "+dir, all...)
}

// frameAttrs are the fields of a received control frame worth tracing.
func frameAttrs(f *frame.Frame) []slog.Attr {
	switch f.Type {
	case frame.FrameWindowUpdate:
		return []slog.Attr{slog.Uint64("increment", uint64(f.Increment))}
	case frame.FrameReset, frame.FrameRefuse:
		return []slog.Attr{slog.String("code", f.Code.String()), slog.String("reason", strconv.Quote(f.Reason))}
	case frame.FrameGoAway:
		return []slog.Attr{slog.Uint64("last_stream", uint64(f.LastStreamID)), slog.String("code", f.Code.String()), slog.String("reason", strconv.Quote(f.Reason))}
	}
	return nil
}
