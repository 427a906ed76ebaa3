// Package mux is the engine of httpstream: it runs many bidirectional,
// flow-controlled streams over one net.Conn, speaking the protocol of
// frame/SPEC.md. Package upgrade binds it to an HTTP/1.1 upgrade; it works
// as well over any reliable, ordered connection (TCP, TLS, net.Pipe).
//
// A Session has three goroutines of its own, each ended by the session's
// close: a reader that only parses frames and dispatches them (it never waits
// on the application), a writer that owns the connection for writes, and a
// monitor for the keepalive and idle timers. A fourth, the accept loop, runs
// the NewStreamHandler for each stream the peer opens, one at a time in open
// order, so a slow handler delays neither other streams' data nor pings.
//
// Writes go out without copying: Stream.Write hands its slice to the writer
// and returns once the bytes are on the wire. When the connection is free, the
// writing goroutine writes its frames itself instead of waking the writer,
// and several queued frames go out in one writev. The one exception is a
// stream with a write deadline: its frames are copied and left to the
// writer goroutine, because a goroutine inside conn.Write cannot return at a
// deadline. Control frames (ping answers, window updates, accepts, resets,
// and END_STREAM, so that a half-close keeps its order with the opens after
// it) go ahead of data, and data of different streams is interleaved frame
// by frame, so a bulk stream cannot starve an interactive one.
//
// Every stream has its own receive window, credited as the application
// reads, so a stream whose reader stops never stalls another (no head-of-line
// blocking), and a peer can make a session buffer no more than Config's
// documented bound.
//
// Window sizes come from measurement (SPEC 7.3, tune.go): each stream's
// delivery rate, and the queue on the path, read from PINGs sent while data
// flows, whose answers wait behind the data sent before them. A window is
// kept near rate × (smallest round trip + a queue target): enough to fill
// the link, not enough to fill its buffer, so that a keystroke on one
// stream does not wait a whole extra round trip behind a download on
// another, as it would behind TCP's loss-based control. The target is an
// eighth of the round trip, within 200 µs and 3 ms, while an interactive
// stream (one that gets less than a quarter of its window a round trip)
// receives data (Config.QueueTarget), and eight times that (or half the
// round trip, if more) otherwise. On an emulated 40 ms, 50 MB/s link with
// a 2 MB buffer the bulk stream keeps 92-99% of the rate and an echo
// beside it waits 4.5-5 ms at p99, where TCP's waits 42 ms; a small window
// (yamux's 256 KiB) gets the short wait only by leaving the link mostly
// idle.
//
// Lock order: Session.mu, then writer.mu, then Stream.mu. A goroutine never
// holds Stream.mu while taking writer.mu or Session.mu.
package mux
