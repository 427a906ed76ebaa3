package upgrade

import (
	"context"
	"fmt"
	"net"
	"time"
)

// aLongTimeAgo is a deadline that has certainly passed; setting it makes
// every blocked Read and Write on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// contextGuard makes blocking I/O on one connection give up as soon as a
// context ends. net.Conn has no other way to interrupt a Read or Write in
// progress than moving its deadline, so that is what the guard does; the
// connection is then unusable, which is fine because a canceled handshake
// closes it.
type contextGuard struct {
	ctx       context.Context
	stopWatch func() bool // from context.AfterFunc, which owns the goroutine that moves the deadline
}

// watchContext starts guarding conn with ctx. The caller must call stop.
func watchContext(ctx context.Context, conn net.Conn) *contextGuard {
	return &contextGuard{
		ctx:       ctx,
		stopWatch: context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) }),
	}
}

// stop ends the watch and reports whether the context ended first, in which
// case the connection's deadline may have been moved and the connection must
// not be used any more.
func (g *contextGuard) stop() (canceled bool) {
	return !g.stopWatch() && g.ctx.Err() != nil
}

// explain turns err, from I/O that the guard may have cut short, into an
// error saying what was being done and, if the context ended, that the
// context is why: the I/O error itself would only say "i/o timeout".
func (g *contextGuard) explain(what string, err error) error {
	return explain(g.ctx, what, err)
}

// explain wraps err from a step that ctx bounds. If ctx ended, the context's
// cause replaces err, so that errors.Is(err, context.Canceled) holds and the
// text says "canceled": dialers, TLS and deadline-interrupted I/O report
// cancellation in varied words, or as a mere timeout.
func explain(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// withContext runs one handshake step, f, that does blocking I/O on conn,
// and makes it return as soon as ctx ends. The error names the step; if ctx
// ended, it wraps the context's cause (so errors.Is(err, context.Canceled)
// holds) even when f happened to finish first, because the connection's
// deadline may already have been moved.
func withContext(ctx context.Context, conn net.Conn, what string, f func() error) error {
	g := watchContext(ctx, conn)
	err := f()
	if g.stop() {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	if err != nil {
		return explain(ctx, what, err)
	}
	return nil
}
