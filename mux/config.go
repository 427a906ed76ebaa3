package mux

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

// Config tunes a session. A zero field takes its default (see DefaultConfig);
// a negative duration turns that timer off. Both peers advertise their
// limits to each other at the start (SPEC 4.9), so the two sides may use
// different Configs.
//
// Memory. The stream data a peer can make one session buffer is at most the
// sum of the receive windows of the session's streams: a peer that sends
// past a window ends the session. So that this sum does not scale with the
// number of streams (SPEC 7.4, 10.3), every stream starts with a small
// window, its floor: min(InitialStreamWindow, 16 KiB), the value advertised
// to the peer. Once a stream has received 4 KiB, its window rises to
// InitialStreamWindow, and auto-tuning grows it further while this side's
// application reads fast, both out of one budget per session,
// MaxSessionWindow, which also holds the headers of the streams the peer
// opened (an OPEN past it is refused with STREAM_LIMIT). When the budget is
// spent, windows stay where they are, new streams at their floor, until
// streams end and give theirs back: no stream is ever left without a
// window, so one whose reader stopped never stalls another. A stream's
// unread data sits in 16 KiB blocks taken as it arrives and given back as
// it is read (an idle stream holds none); a stream at its floor holds one
// block at most, and the budget counts two more for a stream past it. The
// most a peer can make the session hold is therefore about
//
//	MaxConcurrentStreams × 17 KiB + MaxSessionWindow
//	  + 4,096 queued control frames (SPEC 10.2)
//
// plus 17 KiB for each stream this side opened (their growth is in the
// budget too). With the defaults that is 8,192 × 17 KiB + 64 MiB + about
// 4 MiB ≈ 204 MiB, in the worst case only: a peer that opens every stream
// it may and fills every window while this side's application reads none of
// them. An idle stream costs about 1 KiB. A peer alone, whatever it sends,
// cannot make a window grow past InitialStreamWindow: growth needs this
// side's application to read. (The peer does set the pace it must read at,
// through the round-trip time its PING answers show; MaxSessionWindow
// bounds the result.)
type Config struct {
	// MaxFrameSize is the largest DATA payload this side accepts in one
	// frame (SPEC 4.9 MAX_FRAME_SIZE), 1 KiB to 16 MiB-1. Default 32 KiB.
	MaxFrameSize int
	// InitialStreamWindow is the receive window a stream has once data
	// flows on it: what the peer may send before this side's application
	// reads. It starts at its floor, min(InitialStreamWindow, 16 KiB), and
	// rises to InitialStreamWindow once 4 KiB of DATA arrived, as far as
	// MaxSessionWindow allows (see Memory above). It is also the smallest
	// window auto-tuning shrinks a stream to, or 64 KiB if smaller while an
	// interactive stream waits behind it (SPEC 7.3): on a path slower than
	// this per round trip (256 KiB is 130 ms at 2 MB/s), lower it, or a
	// bulk stream's data queues that long in front of the others' whenever
	// the path is shared with more than one. Default 256 KiB; at most
	// 2^31-1.
	InitialStreamWindow uint32
	// MaxStreamWindow is the ceiling for window auto-tuning, which sizes a
	// stream's window from its measured rate and round trip, so that one
	// stream on a fast, long link is not limited by a small window, and
	// the queue it builds on the path stays near QueueTarget (SPEC 7.3).
	// Default 16 MiB. A value at or below InitialStreamWindow means no
	// auto-tuning.
	MaxStreamWindow uint32
	// QueueTarget is the queue on the path that auto-tuning lets a stream
	// build while light streams of the session (interactive ones, which
	// get less than a quarter of their window a round trip) receive data:
	// about how long their frames wait behind its. Zero, the default: an
	// eighth of the smallest round trip, within 200 µs and 3 ms, and at
	// least one MaxFrameSize frame's time at the stream's rate. Otherwise a
	// stream may build eight times its target, or half a round trip if
	// more: nobody waits behind it but other bulk streams. Smaller means less latency for interactive streams
	// beside a bulk one and, once below what the path's jitter needs, less
	// throughput for the bulk one. Negative: every stream is sized as if
	// alone.
	QueueTarget time.Duration
	// MaxSessionWindow is the session's receive budget: the windows of its
	// streams past their floor, summed, plus the headers of the streams the
	// peer opened. Windows take at most three quarters of it, so that the
	// headers of new streams always have room. It bounds the memory a
	// session can be made to hold (see the formula above). Default 64 MiB.
	MaxSessionWindow uint32
	// MaxConcurrentStreams is how many streams the peer may have open at
	// once; more are refused with STREAM_LIMIT (SPEC 10.2). A stream counts
	// until it was reset, or both sides closed it and this side's
	// application read all its data. Default 8,192: a kubectl port-forward
	// uses two streams per forwarded connection.
	MaxConcurrentStreams int
	// AcceptBacklog is how many peer-opened streams may wait for the
	// handler; more are refused with STREAM_LIMIT. Default 1,024, so that a
	// burst of opens (a port-forward of hundreds of connections at once)
	// waits for a handler that is briefly busy rather than fail.
	AcceptBacklog int
	// MaxHeaderBytes is the largest header block accepted when the peer
	// opens a stream (SPEC 4.9 MAX_HEADER_BYTES); a larger one ends the
	// session. Default 16 KiB; at most 16 MiB-1.
	MaxHeaderBytes int
	// KeepAliveInterval is the ping period while nothing arrives from the
	// peer. Default 30s; negative: no pings (the session still answers the
	// peer's).
	KeepAliveInterval time.Duration
	// KeepAliveTimeout closes the session when a keepalive ping goes
	// unanswered this long. Default 30s; negative: never.
	KeepAliveTimeout time.Duration
	// IdleTimeout closes the session after this long without stream
	// activity (opens, data, half-closes, resets, in either direction).
	// Pings and window updates are not activity. The close is on purpose
	// (GOAWAY SESSION_CLOSED): the peer's streams end with io.EOF, as
	// Kubernetes' do. Default: none. Session.SetIdleTimeout changes it at
	// any time.
	IdleTimeout time.Duration
	// StreamOpenTimeout bounds how long CreateStream and OpenStream wait for
	// the peer to accept or refuse. Default 30s; negative: wait for the
	// context only.
	StreamOpenTimeout time.Duration
	// UnsentLimit caps, on TCP connections, the octets the kernel keeps
	// queued but not yet sent (TCP_NOTSENT_LOWAT, where the platform has
	// it), so that a small frame of one stream does not queue behind
	// megabytes of another's. Default 128 KiB; negative: leave the socket
	// as it is.
	UnsentLimit int
	// AcceptStreams makes the streams the peer opens wait, in open order
	// and within AcceptBacklog, for Session.Accept (or its Listener)
	// instead of going to a NewStreamHandler, which must then be nil. A
	// stream is accepted (ACCEPT sent) when Accept returns it; one nobody
	// accepts in time fails at the peer with its StreamOpenTimeout.
	// Default false: a nil handler refuses every stream.
	AcceptStreams bool
	// Logger receives debug records about session ends and protocol
	// errors, an error record (with the stack) when a NewStreamHandler
	// panics, and, at LevelTrace, every frame sent and received. nil:
	// silent.
	Logger *slog.Logger
}

// Defaults of Config. They are constants, not variables, so that no caller
// can change another's defaults.
const (
	DefaultMaxFrameSize         = 32 << 10
	DefaultInitialStreamWindow  = 256 << 10
	DefaultMaxStreamWindow      = 16 << 20
	DefaultMaxSessionWindow     = 64 << 20
	DefaultMaxConcurrentStreams = 8192
	DefaultAcceptBacklog        = 1024
	DefaultMaxHeaderBytes       = 16 << 10
	DefaultKeepAliveInterval    = 30 * time.Second
	DefaultKeepAliveTimeout     = 30 * time.Second
	DefaultStreamOpenTimeout    = 30 * time.Second
	DefaultUnsentLimit          = 128 << 10
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		MaxFrameSize:         DefaultMaxFrameSize,
		InitialStreamWindow:  DefaultInitialStreamWindow,
		MaxStreamWindow:      DefaultMaxStreamWindow,
		MaxSessionWindow:     DefaultMaxSessionWindow,
		MaxConcurrentStreams: DefaultMaxConcurrentStreams,
		AcceptBacklog:        DefaultAcceptBacklog,
		MaxHeaderBytes:       DefaultMaxHeaderBytes,
		KeepAliveInterval:    DefaultKeepAliveInterval,
		KeepAliveTimeout:     DefaultKeepAliveTimeout,
		StreamOpenTimeout:    DefaultStreamOpenTimeout,
		UnsentLimit:          DefaultUnsentLimit,
	}
}

// streamWindowFloor is the window every stream starts with, the one
// advertised as INITIAL_STREAM_WINDOW: small, so that the streams a peer may
// open cost little memory each however many there are. A stream's window
// rises to InitialStreamWindow, and grows past it, out of the session's
// budget (MaxSessionWindow) once data flows (SPEC 7.4, startAfter).
func (c *Config) streamWindowFloor() uint32 {
	return min(c.InitialStreamWindow, maxStreamWindowFloor)
}

// maxStreamWindowFloor is one receive block: a stream holding no more than
// its floor holds at most two blocks, however it is read.
const maxStreamWindowFloor = blockSize

// resolve fills in defaults and checks ranges, so the session can trust
// every field. Durations come out as 0 for "off".
func (c *Config) resolve() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	d := DefaultConfig()
	orDefault(&r.MaxFrameSize, d.MaxFrameSize)
	orDefault(&r.InitialStreamWindow, d.InitialStreamWindow)
	orDefault(&r.MaxStreamWindow, d.MaxStreamWindow)
	orDefault(&r.MaxSessionWindow, d.MaxSessionWindow)
	orDefault(&r.MaxConcurrentStreams, d.MaxConcurrentStreams)
	orDefault(&r.AcceptBacklog, d.AcceptBacklog)
	orDefault(&r.MaxHeaderBytes, d.MaxHeaderBytes)
	r.KeepAliveInterval = defaultOrOff(r.KeepAliveInterval, d.KeepAliveInterval)
	r.KeepAliveTimeout = defaultOrOff(r.KeepAliveTimeout, d.KeepAliveTimeout)
	r.StreamOpenTimeout = defaultOrOff(r.StreamOpenTimeout, d.StreamOpenTimeout)
	r.UnsentLimit = defaultOrOff(r.UnsentLimit, d.UnsentLimit)
	r.IdleTimeout = max(r.IdleTimeout, 0)
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}

	switch {
	case r.MaxFrameSize < frame.MinMaxFrameSize || r.MaxFrameSize > frame.MaxLength:
		return r, fmt.Errorf("mux: Config.MaxFrameSize %d is outside [%d, %d]", r.MaxFrameSize, frame.MinMaxFrameSize, frame.MaxLength)
	case r.InitialStreamWindow > frame.MaxWindow:
		return r, fmt.Errorf("mux: Config.InitialStreamWindow %d is above the protocol's maximum window %d", r.InitialStreamWindow, frame.MaxWindow)
	case r.MaxConcurrentStreams < 0:
		return r, fmt.Errorf("mux: Config.MaxConcurrentStreams %d is negative", r.MaxConcurrentStreams)
	case r.AcceptBacklog < 0:
		return r, fmt.Errorf("mux: Config.AcceptBacklog %d is negative", r.AcceptBacklog)
	case r.MaxHeaderBytes < 0 || r.MaxHeaderBytes > frame.MaxLength:
		return r, fmt.Errorf("mux: Config.MaxHeaderBytes %d is outside [0, %d]", r.MaxHeaderBytes, frame.MaxLength)
	}
	r.MaxStreamWindow = min(max(r.MaxStreamWindow, r.InitialStreamWindow), frame.MaxWindow)
	return r, nil
}

// orDefault replaces a zero field with its default.
func orDefault[T int | uint32](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// defaultOrOff maps zero to the default and a negative value to 0, which
// the session reads as "off".
func defaultOrOff[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
