package mux_test

// Black-box tests of package mux, written from /work/shared/API.md (the
// "Package mux" section: one test per behaviour bullet), frame/SPEC.md
// (sections 6 to 8) and the doc comments. Data-flow tests run on net.Pipe,
// TCP and TLS; tests of timers and of "has not happened yet" run in a
// testing/synctest bubble on net.Pipe, where they are exact and take no real
// time.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

var (
	_ httpstream.Connection = (*mux.Session)(nil)
	_ httpstream.Stream     = (*mux.Stream)(nil)
	_ net.Conn              = (*mux.Stream)(nil)
)

// Both sides may open streams.

func TestAPIBothSidesMayOpenStreamsThatCarryHeadersAndData(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			toClient := make(chan *mux.Stream, 1)
			toServer := make(chan *mux.Stream, 1)
			cli, srv := startSessions(t, tr.dial(t), pairOptions{
				clientHandler: acceptInto(toClient),
				serverHandler: acceptInto(toServer),
			})
			sides := []struct {
				name     string
				opener   *mux.Session
				accepted chan *mux.Stream
				wantOdd  bool
			}{
				{"the client opens a stream with an odd ID", cli, toServer, true},
				{"the server opens a stream with an even ID", srv, toClient, false},
			}
			for _, side := range sides {
				t.Run(side.name, func(t *testing.T) {
					headers := http.Header{"Stream-Purpose": {side.name}, "Two-Values": {"a", "b"}}
					st := openStream(t, side.opener, headers)
					peer := recv(t, side.accepted, "the peer's handler")
					if odd := st.Identifier()%2 == 1; odd != side.wantOdd || st.Identifier() == 0 {
						t.Errorf("Identifier() = %d, want an odd one for the client's streams and an even one for the server's", st.Identifier())
					}
					if peer.Identifier() != st.Identifier() {
						t.Errorf("the peer's stream has ID %d, the opener's %d", peer.Identifier(), st.Identifier())
					}
					if !reflect.DeepEqual(peer.Headers(), headers) {
						t.Errorf("the peer got headers %v, want %v", peer.Headers(), headers)
					}
					if !reflect.DeepEqual(st.Headers(), headers) {
						t.Errorf("the opener's Headers() = %v, want %v", st.Headers(), headers)
					}
					exchange(t, st, peer, []byte("question from "+side.name), []byte("answer"))
				})
			}
		})
	}
}

// CreateStream/OpenStream return only after the peer's handler accepted.

func TestAPIOpeningReturnsOnlyAfterThePeersHandlerAccepted(t *testing.T) {
	opens := []struct {
		name string
		open func(*mux.Session) error
	}{
		{"OpenStream", func(s *mux.Session) error { _, err := s.OpenStream(context.Background(), nil); return err }},
		{"CreateStream", func(s *mux.Session) error { _, err := s.CreateStream(nil); return err }},
	}
	for _, o := range opens {
		t.Run(o.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				entered := make(chan struct{}, 1)
				release := make(chan struct{})
				var returned atomic.Bool
				handler := func(httpstream.Stream, <-chan struct{}) error {
					entered <- struct{}{}
					<-release
					returned.Store(true)
					return nil
				}
				cli, _ := startSessions(t, pipeConns(t), pairOptions{serverHandler: handler})
				done := async(func() error { return o.open(cli) })
				recv(t, entered, "the server's handler to be called")
				synctest.Wait()
				notYet(t, done, o.name+" must not return while the peer's handler is still deciding")
				close(release)
				if err := recv(t, done, o.name); err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
				if !returned.Load() {
					t.Errorf("%s returned before the peer's handler returned", o.name)
				}
			})
		})
	}
}

// Refusals: errors.Is(err, mux.ErrStreamRefused), with the peer's reason.

func TestAPIRefusedOpensFailWithErrStreamRefused(t *testing.T) {
	tests := []struct {
		name string
		// refuse sets up sessions and returns the error of the refused open.
		refuse func(t *testing.T) error
		// wantText is the peer's reason, which the error must carry.
		wantText string
	}{
		{"the handler's error refuses the stream and its text reaches the opener", refuseByHandler, "no room for tests today"},
		{"a full accept backlog refuses", refuseByFullBacklog, ""},
		{"streams past MaxConcurrentStreams are refused", refuseByStreamLimit, ""},
		{"a peer that is shutting down refuses", refuseByShutdown, ""},
		{"a client with a nil handler refuses every stream", refuseByNilHandler(true), ""},
		{"a server with a nil handler refuses every stream", refuseByNilHandler(false), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				err := tt.refuse(t)
				if !errors.Is(err, mux.ErrStreamRefused) {
					t.Fatalf("got error %v, want one matching mux.ErrStreamRefused", err)
				}
				// The API asks for the peer's reason "as text": the text is
				// the contract here, so this one test reads it.
				if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("error %q does not carry the peer's reason %q", err, tt.wantText)
				}
			})
		})
	}
}

func refuseByHandler(t *testing.T) error {
	handler := func(httpstream.Stream, <-chan struct{}) error { return errors.New("no room for tests today") }
	cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: handler})
	_, err := cli.OpenStream(testContext(t), nil)
	synctest.Wait()
	wantNumStreams(t, cli, srv, 0)
	ping(t, cli, "after a refusal, the client's") // the session lives on
	return err
}

func refuseByFullBacklog(t *testing.T) error {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls atomic.Int32
	handler := func(httpstream.Stream, <-chan struct{}) error {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	releaseOnce := sync.OnceFunc(func() { close(release) })
	cli, _ := startSessions(t, pipeConns(t), pairOptions{
		serverHandler: handler,
		serverConfig:  &mux.Config{AcceptBacklog: 1},
	})
	t.Cleanup(releaseOnce)
	open := func() error { _, err := cli.OpenStream(context.Background(), nil); return err }
	first := async(open)
	recv(t, entered, "the handler to hold the first stream")
	// The handler holds the first stream; one more may wait for it (the
	// backlog of 1), so of the next two exactly one is refused.
	second, third := async(open), async(open)
	synctest.Wait()
	var refused error
	var waiting []<-chan error
	for _, ch := range []<-chan error{second, third} {
		select {
		case err := <-ch:
			if err == nil {
				t.Errorf("an open was accepted while the handler was still busy with the first stream")
			}
			if refused != nil {
				t.Errorf("both streams were refused, want one waiting in the backlog of 1 (errors: %v; %v)", refused, err)
			}
			refused = err
		default:
			waiting = append(waiting, ch)
		}
	}
	if refused == nil {
		t.Fatal("AcceptBacklog is 1 and the handler is busy, yet two more opens were both left waiting, none refused")
	}
	releaseOnce()
	for _, ch := range append(waiting, first) {
		if err := recv(t, ch, "a backlogged open"); err != nil {
			t.Errorf("a stream that fit in the backlog: %v", err)
		}
	}
	return refused
}

func refuseByStreamLimit(t *testing.T) error {
	accepted := make(chan *mux.Stream, 4)
	cli, srv := startSessions(t, pipeConns(t), pairOptions{
		serverHandler: acceptInto(accepted),
		serverConfig:  &mux.Config{MaxConcurrentStreams: 2},
	})
	s1, p1 := openPair(t, cli, accepted)
	openPair(t, cli, accepted)
	_, refused := cli.OpenStream(testContext(t), nil)
	if refused == nil {
		t.Fatal("a third stream was accepted with MaxConcurrentStreams 2")
	}
	// Once one of the two has ended on both sides, a new stream fits again.
	exchange(t, s1, p1, nil, nil)
	synctest.Wait()
	if n := srv.NumStreams(); n != 1 {
		t.Errorf("server NumStreams() = %d after one of two streams ended, want 1", n)
	}
	if _, err := cli.OpenStream(testContext(t), nil); err != nil {
		t.Errorf("opening a stream after one ended, back under MaxConcurrentStreams: %v", err)
	}
	return refused
}

func refuseByShutdown(t *testing.T) error {
	accepted := make(chan *mux.Stream, 2)
	cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: acceptInto(accepted)})
	st, _ := openPair(t, cli, accepted) // keeps the shutdown waiting
	shutdown := async(func() error { return srv.Shutdown(context.Background()) })
	synctest.Wait() // the GOAWAY has reached the client
	_, refused := cli.OpenStream(testContext(t), nil)
	st.Reset()
	if err := recv(t, shutdown, "Shutdown once the last stream was reset"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	return refused
}

func refuseByNilHandler(clientHasNil bool) func(t *testing.T) error {
	return func(t *testing.T) error {
		opts := pairOptions{clientHandler: echoHandler, serverHandler: echoHandler}
		if clientHasNil {
			opts.clientHandler = nil
		} else {
			opts.serverHandler = nil
		}
		cli, srv := startSessions(t, pipeConns(t), opts)
		opener := cli
		if clientHasNil {
			opener = srv
		}
		_, err := opener.OpenStream(testContext(t), nil)
		return err
	}
}

// The shutting-down side answers an OPEN that crossed its GOAWAY with REFUSE
// GOING_AWAY (SPEC 8.2), seen on the wire by a hand-written client.
func TestAPIAServerThatIsShuttingDownRefusesLateOpensWithGoingAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, client, _ := rawClientWithAcceptedStream(t)

		shutdown := async(func() error { return srv.Shutdown(context.Background()) })
		goAway := client.next(frame.FrameGoAway, 0)
		if goAway.Code != frame.CodeNoError || goAway.LastStreamID != 1 {
			t.Errorf("Shutdown sent GOAWAY code %v, last stream %d; want NO_ERROR, 1", goAway.Code, goAway.LastStreamID)
		}
		client.writeOpen(nil, 3)
		if refuse := client.next(frame.FrameRefuse, 3); refuse.Code != frame.CodeGoingAway {
			t.Errorf("an OPEN after GOAWAY got REFUSE code %v, want GOING_AWAY", refuse.Code)
		}
		client.write(frame.AppendReset(nil, 1, frame.CodeCancel, "done"))
		if err := recv(t, shutdown, "Shutdown once the last stream was reset"); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		recv(t, srv.CloseChan(), "the server to close after its shutdown")
	})
}

// No answer within StreamOpenTimeout, or ctx done: a net.Error with
// Timeout() true, and the half-open stream is reset.

func TestAPIUnansweredOpensTimeOutAndResetTheHalfOpenStream(t *testing.T) {
	tests := []struct {
		name   string
		config *mux.Config
		// ctx starts the clock for the open.
		ctx         func() (context.Context, context.CancelFunc)
		wantElapsed time.Duration
	}{
		{
			name:        "StreamOpenTimeout passes",
			config:      &mux.Config{StreamOpenTimeout: 2 * time.Second},
			ctx:         func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			wantElapsed: 2 * time.Second,
		},
		{
			name:   "the context's deadline passes first",
			config: nil,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			wantElapsed: time.Second,
		},
		{
			name:   "the context is canceled",
			config: &mux.Config{StreamOpenTimeout: -1},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(1500*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantElapsed: 1500 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				entered := make(chan *mux.Stream, 1)
				release := make(chan struct{})
				// The handler holds the stream until release closes.
				handler := acceptOnRelease(entered, release)
				cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: handler, clientConfig: tt.config})
				releaseOnce := sync.OnceFunc(func() { close(release) })
				t.Cleanup(releaseOnce)

				start := time.Now()
				ctx, cancel := tt.ctx()
				defer cancel()
				st, err := cli.OpenStream(ctx, nil)
				elapsed := time.Since(start)
				if st != nil || err == nil {
					t.Fatalf("OpenStream = %v, %v; want a timeout error", st, err)
				}
				wantNetTimeout(t, err, "OpenStream with no answer")
				if elapsed < tt.wantElapsed || elapsed > tt.wantElapsed+10*time.Millisecond {
					t.Errorf("OpenStream gave up after %v, want %v", elapsed, tt.wantElapsed)
				}

				// The half-open stream is reset: the peer's handler holds a
				// stream that reads io.EOF, whose EndReason says it was
				// reset, and neither side tracks it any more.
				peer := recv(t, entered, "the server's handler")
				synctest.Wait()
				peer.SetReadDeadline(time.Now().Add(time.Second))
				if _, rerr := peer.Read(make([]byte, 1)); rerr != io.EOF {
					t.Errorf("the peer's Read of a stream whose open timed out: %v, want io.EOF", rerr)
				}
				wantErrIs(t, peer.EndReason(), mux.ErrStreamReset, "EndReason of a stream whose open timed out")
				if n := cli.NumStreams(); n != 0 {
					t.Errorf("client NumStreams() = %d after its open timed out, want 0", n)
				}
				releaseOnce() // the handler accepts the stream, too late
				synctest.Wait()
				if n := srv.NumStreams(); n != 0 {
					t.Errorf("server NumStreams() = %d after accepting a stream the opener had reset, want 0", n)
				}
				ping(t, cli, "after a timed-out open, the client's")
			})
		})
	}
}

func TestAPIOpenStreamTimesOutInRealTimeOnEveryTransport(t *testing.T) {
	const openTimeout = 100 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			release := make(chan struct{})
			handler := func(httpstream.Stream, <-chan struct{}) error { <-release; return nil }
			cli, _ := startSessions(t, tr.dial(t), pairOptions{
				serverHandler: handler,
				clientConfig:  &mux.Config{StreamOpenTimeout: openTimeout},
			})
			t.Cleanup(func() { close(release) }) // runs before the sessions close
			start := time.Now()
			_, err := cli.CreateStream(http.Header{"Waits": {"forever"}})
			wantNetTimeout(t, err, "CreateStream with a handler that never returns")
			if d := time.Since(start); d < openTimeout {
				t.Errorf("CreateStream gave up after %v, before StreamOpenTimeout (%v)", d, openTimeout)
			}
		})
	}
}

// The handler runs in open order, one at a time, never on the reader.

func TestAPIHandlerRunsForOneStreamAtATimeInOpenOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 6
		entered := make(chan *mux.Stream, n)
		release := make(chan struct{})
		cli, _ := startSessions(t, pipeConns(t), pairOptions{serverHandler: acceptOnRelease(entered, release)})
		opens := make(chan error, n)
		for range n {
			go func() { _, err := cli.OpenStream(context.Background(), nil); opens <- err }()
		}
		var prev uint32
		for i := range n {
			synctest.Wait()
			if running := len(entered); running != 1 {
				t.Fatalf("after %d streams were handled, %d handler calls are under way, want exactly 1", i, running)
			}
			st := <-entered
			if i > 0 && st.Identifier() <= prev {
				t.Errorf("the handler got stream %d after stream %d, want open (ID) order", st.Identifier(), prev)
			}
			prev = st.Identifier()
			release <- struct{}{}
		}
		for range n {
			if err := recv(t, opens, "an open"); err != nil {
				t.Errorf("OpenStream: %v", err)
			}
		}
	})
}

func TestAPIABlockedHandlerDelaysNeitherOtherStreamsNorPings(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			blocked := make(chan struct{}, 1)
			release := make(chan struct{})
			handler := func(st httpstream.Stream, replySent <-chan struct{}) error {
				if st.Headers().Get("Block-Handler") != "" {
					blocked <- struct{}{}
					<-release
					return nil
				}
				return echoHandler(st, replySent)
			}
			cli, srv := startSessions(t, tr.dial(t), pairOptions{serverHandler: handler})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce)

			echo := openStream(t, cli, nil)
			blockedOpen := async(func() error {
				st, err := cli.OpenStream(context.Background(), http.Header{"Block-Handler": {"yes"}})
				if st != nil {
					st.Reset()
				}
				return err
			})
			recv(t, blocked, "the handler to block")

			// A megabyte each way on the stream accepted before.
			wantEcho(t, echo, payload(1, 1<<20), "on an accepted stream while the handler is blocked")
			// Pings both ways.
			pingRTT(t, cli, "with the server's handler blocked, the client's")
			pingRTT(t, srv, "with its own handler blocked, the server's")

			releaseOnce()
			if err := recv(t, blockedOpen, "the blocked open"); err != nil {
				t.Errorf("the open whose handler was blocked: %v", err)
			}
		})
	}
}

// replySent is closed once the accept is queued, after the handler returned nil.

func TestAPIReplySentClosesAfterTheHandlerReturnsNil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type call struct {
			replySent           <-chan struct{}
			closedDuringHandler bool
		}
		calls := make(chan call, 1)
		handler := func(st httpstream.Stream, replySent <-chan struct{}) error {
			c := call{replySent: replySent}
			select {
			case <-replySent:
				c.closedDuringHandler = true
			default:
			}
			calls <- c
			// As Kubernetes handlers do: write once the accept is on its way.
			go func() {
				select {
				case <-replySent:
					writeAndClose(st.(*mux.Stream), []byte("hello"))
				case <-time.After(waitTimeout):
				}
			}()
			return nil
		}
		cli, _ := startSessions(t, pipeConns(t), pairOptions{serverHandler: handler})
		st := openStream(t, cli, nil)
		c := recv(t, calls, "the handler")
		if c.closedDuringHandler {
			t.Error("replySent was already closed while the handler ran, want it closed after the handler returns")
		}
		if c.replySent == nil {
			t.Fatal("the handler got a nil replySent")
		}
		recv(t, c.replySent, "replySent to close after the handler accepted")
		if got := mustReadAll(t, st, "the greeting written after replySent"); string(got) != "hello" {
			t.Errorf("read %q, want %q", got, "hello")
		}
	})
}

// Close and CloseWrite half-close.

func TestAPICloseHalfClosesSoThePeerReadsEverythingThenEOF(t *testing.T) {
	closers := []struct {
		name  string
		close func(*mux.Stream) error
	}{
		{"Close", (*mux.Stream).Close},
		{"CloseWrite", (*mux.Stream).CloseWrite},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, c := range closers {
				t.Run(c.name, func(t *testing.T) {
					checkGoroutineLeaks(t)
					_, _, st, peer := sessionsWithStream(t, tr.dial(t), pairOptions{})

					// More than a default window, so the end of stream
					// waits behind flow control.
					request := payload(2, 300<<10)
					sent := async(func() error {
						if _, err := st.Write(request); err != nil {
							return err
						}
						return c.close(st)
					})
					if got := mustReadAll(t, peer, "the request"); !bytes.Equal(got, request) {
						t.Fatalf("the peer read %d bytes before io.EOF, want the %d written before %s", len(got), len(request), c.name)
					}
					if err := recv(t, sent, "Write and "+c.name); err != nil {
						t.Fatalf("Write and %s: %v", c.name, err)
					}
					if n, err := peer.Read(make([]byte, 8)); n != 0 || err != io.EOF {
						t.Errorf("a second Read at the end of stream = %d, %v; want 0, io.EOF", n, err)
					}
					if _, err := st.Write([]byte("late")); err == nil {
						t.Errorf("Write after %s succeeded, want an error", c.name)
					}
					if err := c.close(st); err != nil {
						t.Errorf("a second %s: %v, want nil (idempotent)", c.name, err)
					}

					// The half-closed side still reads.
					reply := payload(3, 300<<10)
					replied := async(func() error { return writeAndClose(peer, reply) })
					if got := mustReadAll(t, st, "the reply"); !bytes.Equal(got, reply) {
						t.Fatalf("after %s, the opener read %d bytes, want the %d the peer wrote", c.name, len(got), len(reply))
					}
					if err := recv(t, replied, "the reply"); err != nil {
						t.Fatalf("the peer writing to a half-closed stream: %v", err)
					}
				})
			}
		})
	}
}

// Streams both sides closed, or reset, are forgotten without RemoveStreams.

func TestAPIStreamsThatEndedAreForgottenWithoutRemoveStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		accepted := make(chan *mux.Stream, 8)
		cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: acceptInto(accepted)})
		type pair struct{ local, peer *mux.Stream }
		var p [6]pair
		for i := range p {
			p[i].local, p[i].peer = openPair(t, cli, accepted)
		}
		synctest.Wait()
		wantNumStreams(t, cli, srv, 6)

		exchange(t, p[0].local, p[0].peer, []byte("q"), []byte("a")) // the opener closes first
		exchange(t, p[1].peer, p[1].local, []byte("q"), []byte("a")) // the acceptor closes first
		p[2].local.Reset()                                           // reset by the opener
		p[3].peer.Reset()                                            // reset by the acceptor
		p[4].local.Close()                                           // half-closed: still alive
		// p[5] is untouched: still alive.
		synctest.Wait()
		wantNumStreams(t, cli, srv, 2)

		p[4].peer.Close()
		mustReadAll(t, p[4].peer, "a half-closed stream")
		mustReadAll(t, p[4].local, "a half-closed stream")
		exchange(t, p[5].local, p[5].peer, nil, nil)
		synctest.Wait()
		wantNumStreams(t, cli, srv, 0)
	})
}

// RemoveStreams is bookkeeping only, as in Kubernetes, whose kubelet calls
// it on a port-forward's streams as soon as both have arrived: the streams
// carry on as if it had not been called.

func TestAPIRemoveStreamsLeavesTheStreamsAsTheyAre(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		accepted := make(chan *mux.Stream, 4)
		cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: acceptInto(accepted)})
		s1, p1 := openPair(t, cli, accepted)
		s2, p2 := openPair(t, cli, accepted)
		done, donePeer := openPair(t, cli, accepted)
		exchange(t, done, donePeer, nil, nil)

		cli.RemoveStreams(s1, done) // done ended already
		srv.RemoveStreams(p2, nil)  // nil is ignored
		cli.RemoveStreams()
		var foreign httpstream.Stream = (*mux.Stream)(nil)
		cli.RemoveStreams(foreign)
		synctest.Wait()
		wantNumStreams(t, cli, srv, 2)
		exchange(t, s1, p1, []byte("still"), []byte("works"))
		exchange(t, p2, s2, []byte("both"), []byte("ways"))
		synctest.Wait()
		wantNumStreams(t, cli, srv, 0)
	})
}

// Reset ends both directions at once on both sides.

func TestAPIResetFailsFurtherReadsAndWritesOnBothSides(t *testing.T) {
	eachSide(t, "the opener resets", "the acceptor resets", func(t *testing.T, openerResets bool) {
		synctest.Test(t, func(t *testing.T) {
			cli, srv, resetter, other := sessionsWithStream(t, pipeConns(t), pairOptions{})
			if !openerResets {
				resetter, other = other, resetter
			}
			// Each side has data the other has not read yet. The
			// resetting side drops what it had; the other side reads
			// what was sent before the reset, then io.EOF, as the
			// kubelet's port-forward errors need (API.md).
			for _, st := range []*mux.Stream{resetter, other} {
				if _, err := st.Write([]byte("sent first")); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			synctest.Wait()
			if err := resetter.Reset(); err != nil {
				t.Errorf("Reset: %v", err)
			}
			synctest.Wait()
			resetter.SetDeadline(time.Now().Add(time.Second))
			n, err := resetter.Read(make([]byte, 64))
			wantErrIs(t, err, mux.ErrStreamReset, "Read on the resetting side")
			if n != 0 {
				t.Errorf("Read on the resetting side returned %d bytes, want its unread data dropped", n)
			}
			other.SetDeadline(time.Now().Add(time.Second))
			if got, err := io.ReadAll(other); err != nil || string(got) != "sent first" {
				t.Errorf("ReadAll on the other side = %q, %v; want the data sent before the reset, then io.EOF", got, err)
			}
			wantErrIs(t, other.EndReason(), mux.ErrStreamReset, "EndReason on the other side")
			for _, side := range []struct {
				name string
				st   *mux.Stream
			}{{"resetting side", resetter}, {"other side", other}} {
				_, err = side.st.Write([]byte("x"))
				wantErrIs(t, err, mux.ErrStreamReset, "Write on the "+side.name)
			}
			resetter.Reset() // a second Reset is harmless
			other.Reset()
			synctest.Wait()
			wantNumStreams(t, cli, srv, 0)
		})
	})
}

func TestAPIResetWakesBlockedReadsAndWritesOnBothSides(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			accepted := make(chan *mux.Stream, 2)
			cli, _ := startSessions(t, tr.dial(t), pairOptions{serverHandler: acceptInto(accepted)})

			// Reads waiting on both sides of one stream.
			readers, readersPeer := openPair(t, cli, accepted)
			read := func(st *mux.Stream) func() error {
				return func() error { _, err := st.Read(make([]byte, 1)); return err }
			}
			localRead, peerRead := async(read(readers)), async(read(readersPeer))
			// Writes waiting for window on both sides of another.
			writers, writersPeer := openPair(t, cli, accepted)
			write := func(st *mux.Stream) func() error {
				return func() error { _, err := st.Write(make([]byte, 4<<20)); return err }
			}
			localWrite, peerWrite := async(write(writers)), async(write(writersPeer))

			readers.Reset()
			writers.Reset()
			wantErrIs(t, recv(t, localRead, "the resetting side's Read"), mux.ErrStreamReset, "the resetting side's blocked Read")
			if err := recv(t, peerRead, "the peer's Read"); err != io.EOF {
				t.Errorf("the peer's blocked Read: %v, want io.EOF", err)
			}
			wantErrIs(t, readersPeer.EndReason(), mux.ErrStreamReset, "the peer's EndReason")
			wantErrIs(t, recv(t, localWrite, "the resetting side's Write"), mux.ErrStreamReset, "the resetting side's blocked Write")
			wantErrIs(t, recv(t, peerWrite, "the peer's Write"), mux.ErrStreamReset, "the peer's blocked Write")
		})
	}
}

// Flow control: no head-of-line blocking; Writes wait for the peer's window.

func TestAPIAStreamWhoseReaderStoppedDoesNotStallOthers(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			accepted := make(chan *mux.Stream, 2)
			cli, _ := startSessions(t, tr.dial(t), pairOptions{serverHandler: acceptInto(accepted)})

			stalled, _ := openPair(t, cli, accepted) // the peer never reads it
			// Long enough that the window's worth goes out even on a
			// loaded machine; the rest must wait for the deadline.
			stalled.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := stalled.Write(make([]byte, 8<<20))
			wantDeadlineError(t, err, "a Write bigger than the window of a stream nobody reads")
			if n <= 0 {
				t.Fatalf("the stalled stream wrote %d bytes, want its window's worth", n)
			}
			stalled.SetWriteDeadline(time.Time{})
			stalledWrite := async(func() error { _, err := stalled.Write(make([]byte, 1<<20)); return err })

			busy, busyPeer := openPair(t, cli, accepted)
			go func() {
				io.Copy(busyPeer, busyPeer)
				busyPeer.Close()
			}()
			wantEcho(t, busy, payload(4, 2<<20), "on a second stream while the first is stalled")

			stalled.Reset()
			wantErrIs(t, recv(t, stalledWrite, "the stalled Write"), mux.ErrStreamReset, "the stalled Write after Reset")
		})
	}
}

func TestAPIAWriteLargerThanThePeersWindowWaitsUntilThePeerReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 16 << 10
		_, _, st, peer := sessionsWithStream(t, pipeConns(t), pairOptions{serverConfig: fixedWindow(window)})
		data := payload(5, 4*window)
		written := async(func() writeResult { n, err := st.Write(data); return writeResult{n, err} })
		synctest.Wait()
		notYet(t, written, "a Write of four windows must wait while the peer reads nothing")
		got := readFull(t, peer, len(data))
		r := recv(t, written, "the Write")
		if r.n != len(data) || r.err != nil {
			t.Errorf("Write = %v once the peer read, want (%d, <nil>)", r, len(data))
		}
		if !bytes.Equal(got, data) {
			t.Error("the peer read other bytes than those written")
		}
	})
}

func TestAPIAWritePastItsDeadlineReportsWhatFitTheWindow(t *testing.T) {
	const window = 16 << 10
	check := func(t *testing.T, conns connPair, deadline time.Duration) {
		_, _, st, peer := sessionsWithStream(t, conns, pairOptions{serverConfig: fixedWindow(window)})
		data := payload(6, 4*window)
		st.SetWriteDeadline(time.Now().Add(deadline))
		n, err := st.Write(data)
		wantDeadlineError(t, err, "a Write of four windows to a peer that reads nothing")
		if n <= 0 || n > window {
			t.Fatalf("the timed-out Write reports %d bytes written, want 1 to %d (the window; the sender must not buffer more)", n, window)
		}
		if got := readFull(t, peer, n); !bytes.Equal(got, data[:n]) {
			t.Error("the peer read other bytes than the written prefix")
		}
		// Nothing past the reported count was sent.
		peer.SetReadDeadline(time.Now().Add(deadline))
		extra, err := peer.Read(make([]byte, 1))
		if extra != 0 {
			t.Errorf("the peer could read %d more bytes than the Write reported", extra)
		}
		wantDeadlineError(t, err, "reading past what the timed-out Write reported")
		// Clearing the deadline lets the rest go through.
		st.SetWriteDeadline(time.Time{})
		rest := async(func() error { return writeAndClose(st, data[n:]) })
		if got := mustReadAll(t, peer, "the rest"); !bytes.Equal(got, data[n:]) {
			t.Errorf("after the deadline was cleared, the peer read %d bytes, want the %d left", len(got), len(data)-n)
		}
		if err := recv(t, rest, "the rest of the Write"); err != nil {
			t.Errorf("writing the rest: %v", err)
		}
	}
	t.Run("in fake time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { check(t, pipeConns(t), time.Second) })
	})
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			check(t, tr.dial(t), 100*time.Millisecond)
		})
	}
}

// Deadlines follow net.Conn.

func TestAPIStreamDeadlinesFollowNetConn(t *testing.T) {
	const window = 16 << 10
	tests := []struct {
		name string
		run  func(t *testing.T, st, peer *mux.Stream)
	}{
		{"a Read past its deadline fails with a timeout and the stream stays usable", func(t *testing.T, st, peer *mux.Stream) {
			st.SetReadDeadline(time.Now().Add(time.Second))
			start := time.Now()
			n, err := st.Read(make([]byte, 8))
			wantDeadlineError(t, err, "Read past its deadline")
			if n != 0 || time.Since(start) != time.Second {
				t.Errorf("Read returned %d bytes after %v, want 0 after 1s", n, time.Since(start))
			}
			peer.Write([]byte("late"))
			if got := readFull(t, st, 4); string(got) != "late" {
				t.Errorf("after a timeout, Read got %q, want %q", got, "late")
			}
		}},
		{"a Write past its deadline fails with a timeout", func(t *testing.T, st, peer *mux.Stream) {
			st.SetWriteDeadline(time.Now().Add(time.Second))
			start := time.Now()
			n, err := st.Write(make([]byte, 4*window))
			wantDeadlineError(t, err, "Write past its deadline")
			if n <= 0 || n > window || time.Since(start) != time.Second {
				t.Errorf("Write wrote %d bytes in %v, want 1 to %d in 1s", n, time.Since(start), window)
			}
		}},
		{"a read deadline in the past fails a Read at once", func(t *testing.T, st, peer *mux.Stream) {
			st.SetReadDeadline(time.Now().Add(-time.Second))
			start := time.Now()
			_, err := st.Read(make([]byte, 8))
			wantDeadlineError(t, err, "Read with a deadline in the past")
			if d := time.Since(start); d != 0 {
				t.Errorf("Read with a deadline in the past took %v, want it to fail at once", d)
			}
		}},
		{"a read deadline in the past fails a Read at once even with data waiting, as net.Conn's do", func(t *testing.T, st, peer *mux.Stream) {
			peer.Write([]byte("waiting"))
			synctest.Wait()
			st.SetReadDeadline(time.Now().Add(-time.Second))
			n, err := st.Read(make([]byte, 8))
			wantDeadlineError(t, err, "Read with a deadline in the past and data waiting")
			if n != 0 {
				t.Errorf("Read with a deadline in the past returned %d bytes, want 0 (net.Pipe and TCPConn fail)", n)
			}
		}},
		{"a write deadline in the past fails a Write at once and writes nothing", func(t *testing.T, st, peer *mux.Stream) {
			st.SetWriteDeadline(time.Now().Add(-time.Second))
			// Whether the Write finds the connection free or busy must
			// not matter, so try a few times.
			for i := range 20 {
				start := time.Now()
				n, err := st.Write([]byte("fits the window"))
				wantDeadlineError(t, err, fmt.Sprintf("Write %d with a deadline in the past", i))
				if n != 0 || time.Since(start) != 0 {
					t.Fatalf("Write %d with a deadline in the past wrote %d bytes in %v, want 0 at once", i, n, time.Since(start))
				}
			}
			peer.SetReadDeadline(time.Now().Add(time.Second))
			_, err := peer.Read(make([]byte, 8))
			wantDeadlineError(t, err, "the peer's Read, with nothing sent")
		}},
		{"extending the read deadline lets a blocked Read go on", func(t *testing.T, st, peer *mux.Stream) {
			st.SetReadDeadline(time.Now().Add(time.Second))
			read := async(func() writeResult { n, err := st.Read(make([]byte, 8)); return writeResult{n, err} })
			synctest.Wait()
			st.SetReadDeadline(time.Now().Add(time.Hour))
			time.Sleep(2 * time.Second) // past the first deadline, in fake time
			synctest.Wait()
			notYet(t, read, "a Read whose deadline was extended must still wait")
			peer.Write([]byte("go"))
			if r := recv(t, read, "the Read"); r.n != 2 || r.err != nil {
				t.Errorf("the Read = %v, want (2, <nil>)", r)
			}
		}},
		{"extending the write deadline lets a blocked Write go on", func(t *testing.T, st, peer *mux.Stream) {
			st.SetWriteDeadline(time.Now().Add(time.Second))
			written := async(func() writeResult { n, err := st.Write(make([]byte, 2*window)); return writeResult{n, err} })
			synctest.Wait()
			st.SetWriteDeadline(time.Now().Add(time.Hour))
			time.Sleep(2 * time.Second)
			synctest.Wait()
			notYet(t, written, "a Write whose deadline was extended must still wait")
			readFull(t, peer, 2*window)
			if r := recv(t, written, "the Write"); r.n != 2*window || r.err != nil {
				t.Errorf("the Write = %v, want (%d, <nil>)", r, 2*window)
			}
		}},
		{"the zero time clears a deadline", func(t *testing.T, st, peer *mux.Stream) {
			st.SetReadDeadline(time.Now().Add(-time.Second))
			st.SetReadDeadline(time.Time{})
			read := async(func() writeResult { n, err := st.Read(make([]byte, 8)); return writeResult{n, err} })
			time.Sleep(time.Minute)
			synctest.Wait()
			notYet(t, read, "a Read with its deadline cleared must wait for data")
			peer.Write([]byte("go"))
			if r := recv(t, read, "the Read"); r.n != 2 || r.err != nil {
				t.Errorf("the Read = %v, want (2, <nil>)", r)
			}
		}},
		{"SetDeadline sets both deadlines", func(t *testing.T, st, peer *mux.Stream) {
			st.SetDeadline(time.Now().Add(time.Second))
			read := async(func() error { _, err := st.Read(make([]byte, 8)); return err })
			written := async(func() error { _, err := st.Write(make([]byte, 4*window)); return err })
			wantDeadlineError(t, recv(t, read, "the Read"), "Read after SetDeadline")
			wantDeadlineError(t, recv(t, written, "the Write"), "Write after SetDeadline")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				small := fixedWindow(window)
				_, _, st, peer := sessionsWithStream(t, pipeConns(t), pairOptions{clientConfig: small, serverConfig: small})
				tt.run(t, st, peer)
			})
		})
	}
}

func TestAPIReadDeadlinesWorkOnEveryTransport(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			_, _, st, peer := sessionsWithStream(t, tr.dial(t), pairOptions{})
			for _, s := range []*mux.Stream{st, peer} {
				s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := s.Read(make([]byte, 1))
				wantDeadlineError(t, err, "Read past its deadline")
				s.SetReadDeadline(time.Now().Add(-time.Second))
				_, err = s.Read(make([]byte, 1))
				wantDeadlineError(t, err, "Read with a deadline in the past")
				s.SetReadDeadline(time.Time{})
			}
			exchange(t, st, peer, []byte("after"), []byte("timeouts"))
		})
	}
}

// Session.Close.

func TestAPICloseFailsEveryBlockedCallOnBothSides(t *testing.T) {
	eachSide(t, "the client closes", "the server closes", func(t *testing.T, clientCloses bool) {
		synctest.Test(t, func(t *testing.T) {
			const window = 16 << 10
			release := make(chan struct{})
			handler := func(accepted chan<- *mux.Stream) httpstream.NewStreamHandler {
				return func(st httpstream.Stream, _ <-chan struct{}) error {
					if st.Headers().Get("Block-Handler") != "" {
						<-release
						return nil
					}
					accepted <- st.(*mux.Stream)
					return nil
				}
			}
			toClient, toServer := make(chan *mux.Stream, 2), make(chan *mux.Stream, 2)
			small := fixedWindow(window)
			cli, srv := startSessions(t, pipeConns(t), pairOptions{
				clientHandler: handler(toClient),
				serverHandler: handler(toServer),
				clientConfig:  small,
				serverConfig:  small,
			})
			t.Cleanup(func() { close(release) })

			// On each side: a Read waiting for data, a Write waiting for
			// window and an OpenStream waiting for the peer's handler.
			type blockedCall struct {
				name string
				done <-chan error
				st   *mux.Stream // for a Read: the stream it reads
			}
			var calls []blockedCall
			for _, side := range []struct {
				name         string
				s            *mux.Session
				peerAccepted chan *mux.Stream
			}{{"client", cli, toServer}, {"server", srv, toClient}} {
				r, _ := openPair(t, side.s, side.peerAccepted)
				w, _ := openPair(t, side.s, side.peerAccepted)
				calls = append(calls,
					blockedCall{"the " + side.name + "'s Read", async(func() error { _, err := r.Read(make([]byte, 1)); return err }), r},
					blockedCall{"the " + side.name + "'s Write", async(func() error { _, err := w.Write(make([]byte, 4*window)); return err }), nil},
					blockedCall{"the " + side.name + "'s OpenStream", async(func() error {
						_, err := side.s.OpenStream(context.Background(), http.Header{"Block-Handler": {"yes"}})
						return err
					}), nil},
				)
			}
			synctest.Wait()
			for _, call := range calls {
				notYet(t, call.done, call.name+" must block until the close")
			}

			closer := srv
			if clientCloses {
				closer = cli
			}
			if err := closer.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			closerName := "the server"
			if clientCloses {
				closerName = "the client"
			}
			for _, call := range calls {
				err := recv(t, call.done, call.name)
				if call.st != nil && !strings.HasPrefix(call.name, closerName) {
					// The peer closed on purpose: its streams read to
					// io.EOF (API.md), and EndReason says why.
					if err != io.EOF {
						t.Errorf("%s, blocked when the peer closed the session: %v, want io.EOF", call.name, err)
					}
					wantErrIs(t, call.st.EndReason(), mux.ErrSessionClosed, "EndReason after "+call.name)
					continue
				}
				wantErrIs(t, err, mux.ErrSessionClosed, call.name+", blocked when the session closed")
			}
			recv(t, cli.CloseChan(), "the client's CloseChan")
			recv(t, srv.CloseChan(), "the server's CloseChan")
			for _, side := range []struct {
				name string
				s    *mux.Session
			}{{"client", cli}, {"server", srv}} {
				_, err := side.s.OpenStream(context.Background(), nil)
				wantErrIs(t, err, mux.ErrSessionClosed, "the "+side.name+"'s OpenStream after the close")
				_, err = side.s.CreateStream(nil)
				wantErrIs(t, err, mux.ErrSessionClosed, "the "+side.name+"'s CreateStream after the close")
				_, err = side.s.Ping(context.Background())
				wantErrIs(t, err, mux.ErrSessionClosed, "the "+side.name+"'s Ping after the close")
			}
		})
	})
}

func TestAPIABlockedPingFailsWhenTheSessionEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(s *mux.Session, peer net.Conn)
	}{
		{"Close is called", func(s *mux.Session, _ net.Conn) { s.Close() }},
		{"the peer's connection closes", func(_ *mux.Session, peer net.Conn) { peer.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				local, remote := net.Pipe()
				silentPeer(t, remote, true) // greets, then never answers a PING
				s, err := mux.Client(local, nil, &mux.Config{KeepAliveInterval: -1, KeepAliveTimeout: -1})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { closeSession(t, s, "client") })
				pinged := async(func() error { _, err := s.Ping(context.Background()); return err })
				synctest.Wait()
				notYet(t, pinged, "a Ping nobody answers must wait")
				tt.end(s, remote)
				wantErrIs(t, recv(t, pinged, "the Ping"), mux.ErrSessionClosed, "a blocked Ping when the session ended")
				recv(t, s.CloseChan(), "CloseChan")
			})
		})
	}
}

func TestAPIClosingASessionIsNoticedByThePeer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			eachSide(t, "the client closes", "the server closes", func(t *testing.T, clientCloses bool) {
				checkGoroutineLeaks(t)
				cli, srv, st, peer := sessionsWithStream(t, tr.dial(t), pairOptions{})
				closer, other, otherStream := cli, srv, peer
				if !clientCloses {
					closer, other, otherStream = srv, cli, st
				}
				read := async(func() error { _, err := otherStream.Read(make([]byte, 1)); return err })
				closer.Close()
				recv(t, other.CloseChan(), "the peer's CloseChan")
				if err := recv(t, read, "the peer's Read"); err != io.EOF {
					t.Errorf("the peer's blocked Read: %v, want io.EOF after a close on purpose", err)
				}
				wantErrIs(t, otherStream.EndReason(), mux.ErrSessionClosed, "the peer's EndReason")
				_, err := other.OpenStream(testContext(t), nil)
				wantErrIs(t, err, mux.ErrSessionClosed, "the peer's OpenStream")
				_, err = other.Ping(testContext(t))
				wantErrIs(t, err, mux.ErrSessionClosed, "the peer's Ping")
				_, err = otherStream.Write([]byte("x"))
				wantErrIs(t, err, mux.ErrSessionClosed, "the peer's Write")
			})
		})
	}
}

// keepOpenConn is a connection whose Close does nothing, as when a proxy
// keeps the other half of a TCP connection open.
type keepOpenConn struct{ net.Conn }

func (keepOpenConn) Close() error { return nil }

func TestAPICloseIsNoticedInBandWhenAProxyKeepsTheConnectionOpen(t *testing.T) {
	eachSide(t, "the client closes", "the server closes", func(t *testing.T, clientCloses bool) {
		checkGoroutineLeaks(t)
		conns := tcpConns(t)
		if clientCloses {
			conns.client = keepOpenConn{conns.client}
		} else {
			conns.server = keepOpenConn{conns.server}
		}
		cli, srv := startSessions(t, conns, pairOptions{serverHandler: echoHandler})
		closer, other := srv, cli
		if clientCloses {
			closer, other = cli, srv
		}
		go closer.Close() // it may wait for the peer to drop the connection
		recv(t, other.CloseChan(), "the peer to notice the close through the still-open connection")
		_, err := other.Ping(testContext(t))
		wantErrIs(t, err, mux.ErrSessionClosed, "the peer's Ping")
		recv(t, closer.CloseChan(), "the closer's CloseChan")
	})
}

func TestAPICloseIsIdempotentAndSafeFromManyGoroutines(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			cli, srv := startSessions(t, tr.dial(t), pairOptions{serverHandler: echoHandler, clientHandler: echoHandler})
			st := openStream(t, cli, nil)
			var wg sync.WaitGroup
			closeErrs := make(chan error, 64)
			for range 16 {
				for _, s := range []*mux.Session{cli, srv} {
					wg.Go(func() { closeErrs <- s.Close() })
					// Calls racing with the closes end one way or the other.
					wg.Go(func() { s.Ping(context.Background()) })
					wg.Go(func() {
						if st, err := s.OpenStream(context.Background(), nil); err == nil {
							st.Reset()
						}
					})
				}
				wg.Go(func() { st.Write([]byte("racing")) })
			}
			recv(t, async(func() bool { wg.Wait(); return true }), "all the concurrent calls to return")
			close(closeErrs)
			for err := range closeErrs {
				if err != nil && !errors.Is(err, mux.ErrSessionClosed) {
					t.Errorf("concurrent Close: %v, want nil or ErrSessionClosed", err)
				}
			}
			for _, s := range []*mux.Session{cli, srv} {
				if err := s.Close(); err != nil && !errors.Is(err, mux.ErrSessionClosed) {
					t.Errorf("Close after Close: %v, want nil or ErrSessionClosed", err)
				}
				if !isClosed(s.CloseChan()) {
					t.Error("CloseChan is open after Close returned")
				}
			}
		})
	}
}

// The session ends when its net.Conn fails.

func TestAPISessionsCloseWhenTheConnectionUnderThemFails(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			eachSide(t, "the client's connection is closed", "the server's connection is closed", func(t *testing.T, clientSide bool) {
				checkGoroutineLeaks(t)
				conns := tr.dial(t)
				cli, srv, st, peer := sessionsWithStream(t, conns, pairOptions{})
				read := func(s *mux.Stream) func() error {
					return func() error { _, err := s.Read(make([]byte, 1)); return err }
				}
				cliRead, srvRead := async(read(st)), async(read(peer))
				raw := conns.rawServer
				if clientSide {
					raw = conns.rawClient
				}
				raw.Close() // under TLS, the TCP connection beneath it
				recv(t, cli.CloseChan(), "the client's CloseChan")
				recv(t, srv.CloseChan(), "the server's CloseChan")
				wantErrIs(t, recv(t, cliRead, "the client's Read"), mux.ErrSessionClosed, "the client's blocked Read")
				wantErrIs(t, recv(t, srvRead, "the server's Read"), mux.ErrSessionClosed, "the server's blocked Read")
				_, err := cli.Ping(testContext(t))
				wantErrIs(t, err, mux.ErrSessionClosed, "the client's Ping")
			})
		})
	}
}

// Ping.

func TestAPIPingReturnsAPositiveRoundTripTime(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			cli, srv := startSessions(t, tr.dial(t), pairOptions{})
			for range 3 {
				pingRTT(t, cli, "the client's")
				pingRTT(t, srv, "the server's")
			}
			var wg sync.WaitGroup
			rtts := make(chan error, 16)
			for i := range 16 {
				s := cli
				if i%2 == 1 {
					s = srv
				}
				wg.Go(func() {
					rtt, err := s.Ping(context.Background())
					if err == nil && rtt <= 0 {
						err = fmt.Errorf("round-trip time %v, want > 0", rtt)
					}
					rtts <- err
				})
			}
			recv(t, async(func() bool { wg.Wait(); return true }), "concurrent Pings")
			close(rtts)
			for err := range rtts {
				if err != nil {
					t.Errorf("concurrent Ping: %v", err)
				}
			}
		})
	}
}

// Shutdown.

func TestAPIShutdownWaitsForOpenStreamsThenCloses(t *testing.T) {
	eachSide(t, "the client shuts down", "the server shuts down", func(t *testing.T, clientShutsDown bool) {
		synctest.Test(t, func(t *testing.T) {
			toClient, toServer := make(chan *mux.Stream, 2), make(chan *mux.Stream, 2)
			cli, srv := startSessions(t, pipeConns(t), pairOptions{
				clientHandler: acceptInto(toClient),
				serverHandler: acceptInto(toServer),
			})
			// One stream opened by each side.
			a, aPeer := openPair(t, cli, toServer)
			b, bPeer := openPair(t, srv, toClient)
			shutter, other := srv, cli
			if clientShutsDown {
				shutter, other = cli, srv
			}
			done := async(func() error { return shutter.Shutdown(context.Background()) })
			synctest.Wait()
			notYet(t, done, "Shutdown must wait while streams are open")
			wantOpen(t, shutter, "the session shutting down")

			// No new streams, from either side.
			_, err := other.OpenStream(testContext(t), nil)
			wantErrIs(t, err, mux.ErrStreamRefused, "the peer opening a stream during Shutdown")
			if _, err := shutter.OpenStream(testContext(t), nil); err == nil {
				t.Error("the side shutting down opened a new stream")
			}

			// The open streams carry on.
			exchange(t, a, aPeer, []byte("still"), []byte("flowing"))
			synctest.Wait()
			notYet(t, done, "Shutdown must wait while one stream is open")
			exchange(t, bPeer, b, []byte("both"), []byte("ways"))
			if err := recv(t, done, "Shutdown"); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			recv(t, shutter.CloseChan(), "CloseChan of the side that shut down")
			recv(t, other.CloseChan(), "CloseChan of its peer")
		})
	})
	t.Run("with no streams open it closes at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cli, srv := startSessions(t, pipeConns(t), pairOptions{})
			start := time.Now()
			if err := cli.Shutdown(testContext(t)); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("Shutdown with no streams took %v", d)
			}
			wantClosed(t, cli, "the client")
			wantClosed(t, srv, "the server")
		})
	})
}

func TestAPIShutdownReturnsTheContextErrorWhenItEndsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv, st, peer := sessionsWithStream(t, pipeConns(t), pairOptions{}) // the stream is never closed
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := srv.Shutdown(ctx)
		wantErrIs(t, err, context.DeadlineExceeded, "Shutdown whose context ended first")
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Shutdown returned after %v, want when its context ended (5s)", d)
		}
		wantClosed(t, srv, "the server")
		wantClosed(t, cli, "the client")
		if _, err := st.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("the client's Read on a stream left open by the server's Shutdown: %v, want io.EOF (a close on purpose)", err)
		}
		for _, s := range []*mux.Stream{peer} {
			_, err := s.Read(make([]byte, 1))
			if !errors.Is(err, mux.ErrStreamReset) && !errors.Is(err, mux.ErrSessionClosed) {
				t.Errorf("Read on a stream left open by Shutdown: %v, want ErrStreamReset or ErrSessionClosed", err)
			}
		}
	})
}

// Idle timeout, in fake time.

func TestAPIIdleTimeoutClosesASessionWithoutStreamActivity(t *testing.T) {
	const idle = 10 * time.Second
	type scenario func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream)
	tests := []struct {
		name string
		opts pairOptions
		run  scenario
	}{
		{"it closes both sides after the idle period", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - time.Second)
			wantOpen(t, cli, "the client, before the idle period ended")
			time.Sleep(2 * time.Second)
			wantClosed(t, cli, "the client, after the idle period")
			wantClosed(t, srv, "its peer")
			_, err := cli.Ping(context.Background())
			wantErrIs(t, err, mux.ErrSessionClosed, "Ping after the idle timeout")
		}},
		{"keepalive pings from either side do not keep it alive", pairOptions{
			clientConfig: &mux.Config{KeepAliveInterval: time.Second},
			serverConfig: &mux.Config{KeepAliveInterval: time.Second},
		}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - time.Second)
			wantOpen(t, cli, "the client, before the idle period ended")
			time.Sleep(2 * time.Second)
			wantClosed(t, cli, "the client, pinged every second but idle")
		}},
		{"data sent keeps it alive", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			st, peer := openPair(t, cli, toServer)
			cli.SetIdleTimeout(idle)
			trickle(t, st, peer, 3*idle)
			wantOpen(t, cli, "the client, sending a byte a second")
			time.Sleep(idle + time.Second)
			wantClosed(t, cli, "the client, idle after the data stopped")
		}},
		{"data received keeps it alive", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			st, peer := openPair(t, cli, toServer)
			cli.SetIdleTimeout(idle)
			trickle(t, peer, st, 3*idle)
			wantOpen(t, cli, "the client, receiving a byte a second")
			time.Sleep(idle + time.Second)
			wantClosed(t, cli, "the client, idle after the data stopped")
		}},
		{"opens, half-closes and resets are activity", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			step := idle - 2*time.Second
			time.Sleep(step)
			st, peer := openPair(t, cli, toServer)
			time.Sleep(step)
			wantOpen(t, cli, "the client, an open ago")
			peer.Close()
			time.Sleep(step)
			wantOpen(t, cli, "the client, a half-close ago")
			st.Reset()
			time.Sleep(step)
			wantOpen(t, cli, "the client, a reset ago")
			time.Sleep(3 * time.Second)
			wantClosed(t, cli, "the client, idle since the reset")
		}},
		{"an open stream without traffic does not keep it alive", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, toServer <-chan *mux.Stream) {
			st, _ := openPair(t, cli, toServer)
			cli.SetIdleTimeout(idle)
			time.Sleep(idle + time.Second)
			wantClosed(t, cli, "the client with a silent stream")
			_, err := st.Read(make([]byte, 1))
			wantErrIs(t, err, mux.ErrSessionClosed, "Read on a stream of a session closed for idleness")
		}},
		{"SetIdleTimeout(0) turns it off", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			cli.SetIdleTimeout(0)
			time.Sleep(10 * idle)
			wantOpen(t, cli, "the client with the idle timeout off")
		}},
		{"calling SetIdleTimeout again restarts the period", pairOptions{}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - 2*time.Second)
			cli.SetIdleTimeout(idle)
			time.Sleep(idle - 2*time.Second)
			wantOpen(t, cli, "the client, its idle timeout set again")
			time.Sleep(3 * time.Second)
			wantClosed(t, cli, "the client, idle since the second SetIdleTimeout")
		}},
		{"Config.IdleTimeout works like SetIdleTimeout", pairOptions{serverConfig: &mux.Config{IdleTimeout: idle}}, func(t *testing.T, cli, srv *mux.Session, _ <-chan *mux.Stream) {
			time.Sleep(idle - time.Second)
			wantOpen(t, srv, "the server, before its IdleTimeout")
			time.Sleep(2 * time.Second)
			wantClosed(t, srv, "the server, after its IdleTimeout")
			wantClosed(t, cli, "its peer")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				toServer := make(chan *mux.Stream, 2)
				tt.opts.serverHandler = acceptInto(toServer)
				cli, srv := startSessions(t, pipeConns(t), tt.opts)
				tt.run(t, cli, srv, toServer)
			})
		})
	}
}

// trickle sends one byte a second from w to r for d.
func trickle(t *testing.T, w, r *mux.Stream, d time.Duration) {
	t.Helper()
	for range int(d / time.Second) {
		time.Sleep(time.Second)
		if _, err := w.Write([]byte{1}); err != nil {
			t.Fatalf("trickle Write at %v: %v", time.Now().Format(time.TimeOnly), err)
		}
		readFull(t, r, 1)
	}
}

// Keepalive, in fake time.

func TestAPIKeepAliveClosesASessionWhosePeerNeverAnswers(t *testing.T) {
	const interval, timeout = time.Second, 3 * time.Second
	for _, side := range []struct {
		name  string
		start func(net.Conn, httpstream.NewStreamHandler, *mux.Config) (*mux.Session, error)
	}{{"client", mux.Client}, {"server", mux.Server}} {
		t.Run(side.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				local, remote := net.Pipe()
				silentPeer(t, remote, false) // reads everything, never writes
				s, err := side.start(local, nil, &mux.Config{KeepAliveInterval: interval, KeepAliveTimeout: timeout})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { closeSession(t, s, side.name) })
				pinged := async(func() error { _, err := s.Ping(context.Background()); return err })
				// No ping can have gone unanswered for the timeout yet.
				time.Sleep(timeout - 100*time.Millisecond)
				wantOpen(t, s, "the session, before any ping could time out")
				// The first keepalive went out after at most one interval.
				time.Sleep(interval + 200*time.Millisecond)
				wantClosed(t, s, "the session whose peer never answered its pings")
				wantErrIs(t, recv(t, pinged, "the Ping"), mux.ErrSessionClosed, "a Ping blocked when the keepalive timed out")
			})
		})
	}
	t.Run("a negative KeepAliveTimeout never closes it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			local, remote := net.Pipe()
			silentPeer(t, remote, false)
			s, err := mux.Client(local, nil, &mux.Config{KeepAliveInterval: interval, KeepAliveTimeout: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeSession(t, s, "client") })
			time.Sleep(time.Hour)
			wantOpen(t, s, "the session without a keepalive timeout")
		})
	})
}

func TestAPIKeepAliveKeepsASessionWhosePeerAnswersOpen(t *testing.T) {
	pinging := &mux.Config{KeepAliveInterval: time.Second, KeepAliveTimeout: 3 * time.Second}
	silent := &mux.Config{KeepAliveInterval: -1} // still answers the peer's pings
	for _, tt := range []struct {
		name string
		opts pairOptions
	}{
		{"the client pings a server that never pings", pairOptions{clientConfig: pinging, serverConfig: silent}},
		{"the server pings a client that never pings", pairOptions{clientConfig: silent, serverConfig: pinging}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cli, srv := startSessions(t, pipeConns(t), tt.opts)
				time.Sleep(time.Minute)
				wantOpen(t, cli, "the client")
				wantOpen(t, srv, "the server")
				ping(t, cli, "the client's")
			})
		})
	}
}

// Config.

func TestAPIConfig(t *testing.T) {
	starts := []struct {
		name  string
		start func(net.Conn, httpstream.NewStreamHandler, *mux.Config) (*mux.Session, error)
	}{{"Client", mux.Client}, {"Server", mux.Server}}

	invalid := []struct {
		name string
		cfg  mux.Config
	}{
		{"a negative MaxConcurrentStreams is an error", mux.Config{MaxConcurrentStreams: -1}},
		{"a MaxFrameSize of 10, under the protocol's 1 KiB, is an error", mux.Config{MaxFrameSize: 10}},
		{"a MaxFrameSize past the 24-bit length is an error", mux.Config{MaxFrameSize: 1 << 24}},
		{"a negative AcceptBacklog is an error", mux.Config{AcceptBacklog: -1}},
		{"a negative MaxHeaderBytes is an error", mux.Config{MaxHeaderBytes: -1}},
		{"an InitialStreamWindow past 2^31-1 is an error", mux.Config{InitialStreamWindow: 1 << 31}},
	}
	for _, tt := range invalid {
		for _, st := range starts {
			t.Run(st.name+": "+tt.name, func(t *testing.T) {
				checkGoroutineLeaks(t)
				c1, c2 := net.Pipe()
				defer c1.Close()
				defer c2.Close()
				cfg := tt.cfg
				s, err := st.start(c1, nil, &cfg)
				if err == nil {
					s.Close()
					t.Fatalf("%s(%+v) succeeded, want an error", st.name, tt.cfg)
				}
				if s != nil {
					t.Errorf("%s returned a session with its error %v", st.name, err)
				}
			})
		}
	}

	defaults := mux.DefaultConfig()
	valid := []struct {
		name string
		cfg  *mux.Config
	}{
		{"a nil Config works", nil},
		{"a zero Config works", &mux.Config{}},
		{"DefaultConfig() works", &defaults},
		{"negative durations turn the timers off and work", &mux.Config{
			KeepAliveInterval: -1, KeepAliveTimeout: -1, IdleTimeout: -1, StreamOpenTimeout: -1,
		}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			cli, _, st, peer := sessionsWithStream(t, pipeConns(t), pairOptions{clientConfig: tt.cfg, serverConfig: tt.cfg})
			exchange(t, st, peer, payload(7, 100<<10), payload(8, 100<<10))
			ping(t, cli, "the client's")
		})
	}

	t.Run("a nil Config advertises the default stream window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, st, _ := sessionsWithStream(t, pipeConns(t), pairOptions{})
			st.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := st.Write(make([]byte, 4*mux.DefaultInitialStreamWindow))
			wantDeadlineError(t, err, "a Write to a peer that reads nothing")
			// More than the protocol's default (what a peer that sent no
			// window setting would grant), at most the package's default.
			if n <= frame.DefaultInitialStreamWindow || n > mux.DefaultInitialStreamWindow {
				t.Errorf("the peer with a nil Config took %d bytes before reading, want more than %d and at most DefaultInitialStreamWindow (%d)",
					n, frame.DefaultInitialStreamWindow, mux.DefaultInitialStreamWindow)
			}
		})
	})
}

// Data integrity on many streams at once.

type integrityResult struct {
	index int
	n     int
	sum   [sha256.Size]byte
	err   error
}

// integritySpec is what one stream carries: up from opener to acceptor,
// down back.
type integritySpec struct{ up, down int }

func upSeed(i int) uint64   { return uint64(2*i + 1000) }
func downSeed(i int) uint64 { return uint64(2*i + 1001) }

// writeChunked writes p in pseudo-random pieces, then half-closes.
func writeChunked(st *mux.Stream, p []byte, seed uint64) error {
	r := mathrand.New(mathrand.NewPCG(seed, 1))
	for len(p) > 0 {
		n := min(len(p), 1+r.IntN(64<<10))
		if _, err := st.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return st.Close()
}

// serveIntegrity is the acceptor's side: it sends the down payload its
// headers ask for while it reads and hashes the up payload.
func serveIntegrity(st *mux.Stream, deadline time.Time, results chan<- integrityResult) {
	index, err1 := strconv.Atoi(st.Headers().Get("Test-Index"))
	down, err2 := strconv.Atoi(st.Headers().Get("Test-Down"))
	if err := errors.Join(err1, err2); err != nil {
		st.Reset()
		results <- integrityResult{index: -1, err: err}
		return
	}
	st.SetDeadline(deadline)
	sent := async(func() error { return writeChunked(st, payload(downSeed(index), down), uint64(index)) })
	got, rerr := io.ReadAll(st)
	werr := <-sent
	results <- integrityResult{index: index, n: len(got), sum: sha256.Sum256(got), err: errors.Join(rerr, werr)}
}

// runIntegrityOpener is the opener's side of stream i.
func runIntegrityOpener(s *mux.Session, deadline time.Time, i int, spec integritySpec) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	st, err := s.OpenStream(ctx, http.Header{
		"Test-Index": {strconv.Itoa(i)},
		"Test-Down":  {strconv.Itoa(spec.down)},
	})
	if err != nil {
		return fmt.Errorf("stream %d: OpenStream: %w", i, err)
	}
	st.SetDeadline(deadline)
	sent := async(func() error { return writeChunked(st, payload(upSeed(i), spec.up), uint64(i)) })
	got, err := io.ReadAll(st)
	if err != nil {
		return fmt.Errorf("stream %d: reading %d bytes: %w (after %d)", i, spec.down, err, len(got))
	}
	if err := <-sent; err != nil {
		return fmt.Errorf("stream %d: writing %d bytes: %w", i, spec.up, err)
	}
	if want := sha256.Sum256(payload(downSeed(i), spec.down)); len(got) != spec.down || sha256.Sum256(got) != want {
		return fmt.Errorf("stream %d: the opener read %d bytes with another SHA-256 than the %d the acceptor wrote", i, len(got), spec.down)
	}
	return nil
}

func TestAPIManyConcurrentStreamsDeliverEveryByteIntact(t *testing.T) {
	const streams = 32
	// Sizes are log-uniform up to 1 MiB (a few MB per transport in all),
	// with the edges forced in: a full MiB each way, and empty directions.
	rng := mathrand.New(mathrand.NewPCG(42, 42))
	size := func() int { return int(math.Exp2(rng.Float64() * 20)) }
	specs := make([]integritySpec, streams)
	for i := range specs {
		specs[i] = integritySpec{up: size(), down: size()}
	}
	specs[0] = integritySpec{up: 1 << 20, down: 1 << 20}
	specs[1].up, specs[2].down, specs[3] = 0, 0, integritySpec{}
	total := 0
	for _, s := range specs {
		total += s.up + s.down
	}
	t.Logf("%d streams carry %d bytes in all, per transport", streams, total)

	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			deadline := time.Now().Add(waitTimeout - time.Second)
			results := make(chan integrityResult, streams)
			handler := func(st httpstream.Stream, _ <-chan struct{}) error {
				go serveIntegrity(st.(*mux.Stream), deadline, results)
				return nil
			}
			cli, srv := startSessions(t, tr.dial(t), pairOptions{clientHandler: handler, serverHandler: handler})
			openers := make(chan error, streams)
			for i, spec := range specs {
				s := cli // half the streams are opened by each side
				if i%2 == 1 {
					s = srv
				}
				go func() { openers <- runIntegrityOpener(s, deadline, i, spec) }()
			}
			for range streams {
				if err := recv(t, openers, "an opener"); err != nil {
					t.Error(err)
				}
			}
			for range streams {
				r := recv(t, results, "an acceptor")
				if r.err != nil || r.index < 0 {
					t.Errorf("stream %d, acceptor: %v", r.index, r.err)
					continue
				}
				spec := specs[r.index]
				if want := sha256.Sum256(payload(upSeed(r.index), spec.up)); r.n != spec.up || r.sum != want {
					t.Errorf("stream %d: the acceptor read %d bytes with another SHA-256 than the %d the opener wrote", r.index, r.n, spec.up)
				}
			}
			eventually(t, "both sessions forgot every finished stream", func() bool {
				return cli.NumStreams() == 0 && srv.NumStreams() == 0
			})
		})
	}
}

// A peer that breaks the protocol gets a GOAWAY with a reason, and the
// session closes with an error saying what was wrong. The peer here is a
// hand-written client on the other end of a net.Pipe.

func TestAPIAPeerThatBreaksTheProtocolGetsAGoAwayAndTheSessionCloses(t *testing.T) {
	const window = 512 // below MaxFrameSize (1024), so one DATA frame can overrun it
	mustOpen := func(id uint32, h http.Header) []byte {
		b, err := frame.AppendOpen(nil, id, h)
		if err != nil {
			panic(err)
		}
		return b
	}
	header := func(ft frame.FrameType, id uint32, payload []byte) []byte {
		b := frame.AppendFrameHeader(nil, frame.FrameHeader{Length: uint32(len(payload)), Type: ft, StreamID: id})
		return append(b, payload...)
	}
	tests := []struct {
		name string
		// openFirst makes the client open stream 1 and wait for its
		// ACCEPT before it sends bad.
		openFirst bool
		// settingsFirst false sends bad in place of the SETTINGS frame.
		noSettings bool
		bad        []byte
		wantCode   frame.ErrCode
	}{
		{name: "DATA past the stream's window is a FLOW_CONTROL_ERROR", openFirst: true,
			bad: frame.AppendData(nil, 1, 0, make([]byte, window+1)), wantCode: frame.CodeFlowControlError},
		{name: "DATA longer than MaxFrameSize is a FRAME_SIZE_ERROR", openFirst: true,
			bad: frame.AppendData(nil, 1, 0, make([]byte, 2048)), wantCode: frame.CodeFrameSizeError},
		{name: "DATA on a stream never opened is a PROTOCOL_ERROR",
			bad: frame.AppendData(nil, 5, 0, []byte("x")), wantCode: frame.CodeProtocolError},
		{name: "an OPEN with the server's parity is a PROTOCOL_ERROR",
			bad: mustOpen(2, nil), wantCode: frame.CodeProtocolError},
		{name: "an OPEN whose ID is not above the last one is a PROTOCOL_ERROR",
			bad: append(mustOpen(5, nil), mustOpen(3, nil)...), wantCode: frame.CodeProtocolError},
		{name: "an OPEN over MaxHeaderBytes is a FRAME_SIZE_ERROR",
			bad: mustOpen(1, http.Header{"Big": {strings.Repeat("x", 2048)}}), wantCode: frame.CodeFrameSizeError},
		{name: "a WINDOW_UPDATE on stream 0 is a PROTOCOL_ERROR",
			bad: header(frame.FrameWindowUpdate, 0, []byte{0, 0, 0, 1}), wantCode: frame.CodeProtocolError},
		{name: "a WINDOW_UPDATE past 2^31-1 is a FLOW_CONTROL_ERROR", openFirst: true,
			bad: frame.AppendWindowUpdate(nil, 1, frame.MaxWindow), wantCode: frame.CodeFlowControlError},
		{name: "a second SETTINGS frame is a PROTOCOL_ERROR",
			bad: frame.AppendSettings(nil), wantCode: frame.CodeProtocolError},
		{name: "a first frame other than SETTINGS is a PROTOCOL_ERROR", noSettings: true,
			bad: frame.AppendPing(nil, 0, [8]byte{1}), wantCode: frame.CodeProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, client := serverWithRawClient(t, httpstream.NoOpNewStreamHandler, &mux.Config{
					InitialStreamWindow: window,
					MaxStreamWindow:     window,
					MaxFrameSize:        1024,
					MaxHeaderBytes:      1024,
				})
				hello := []byte(frame.Preface)
				if !tt.noSettings {
					hello = frame.AppendSettings(hello)
				}
				client.write(hello)
				if !tt.noSettings {
					client.next(frame.FrameSettings, 0)
				}
				if tt.openFirst {
					client.write(mustOpen(1, nil))
					client.next(frame.FrameAccept, 1)
				}
				// The server may stop reading in the middle of the bad
				// frame, so this Write may fail; the GOAWAY tells.
				go client.conn.Write(tt.bad)
				goAway := client.next(frame.FrameGoAway, 0)
				if goAway.Code != tt.wantCode {
					t.Errorf("GOAWAY code %v, want %v (reason %q)", goAway.Code, tt.wantCode, goAway.Reason)
				}
				if goAway.Reason == "" {
					t.Error("the GOAWAY gives no reason")
				}
				recv(t, srv.CloseChan(), "the server to close")
				_, err := srv.Ping(context.Background())
				wantErrIs(t, err, mux.ErrSessionClosed, "Ping after a protocol error")
				if err != nil && err.Error() == mux.ErrSessionClosed.Error() {
					t.Errorf("the session's error %q does not say what was wrong", err)
				}
			})
		})
	}
}

// Octets that arrived before the peer closed stay readable (SPEC 8.3).

// A close on purpose (the peer's Session.Close) ends the streams with
// io.EOF after their data, as Kubernetes' exec needs (its kubelet closes the
// connection without closing the error stream); a lost connection ends them
// with an error, so a cut transfer never looks complete.
func TestAPIDataReceivedBeforeThePeerClosedStaysReadable(t *testing.T) {
	tests := []struct {
		name      string
		endStream bool
		lost      bool // the connection breaks instead of a Close
		wantErr   error
	}{
		{"the peer had half-closed: the data, then io.EOF", true, false, io.EOF},
		{"the peer closed the session: the data, then io.EOF", false, false, io.EOF},
		{"the connection was lost: the data, then ErrSessionClosed", false, true, mux.ErrSessionClosed},
		{"the connection was lost after a half-close: the data, then io.EOF", true, true, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				conns := pipeConns(t)
				cli, srv, st, peer := sessionsWithStream(t, conns, pairOptions{})
				if _, err := peer.Write([]byte("tail")); err != nil {
					t.Fatal(err)
				}
				if tt.endStream {
					peer.Close()
				}
				synctest.Wait() // the data has arrived
				if tt.lost {
					conns.server.Close()
				} else {
					srv.Close()
				}
				wantClosed(t, cli, "the client, after its peer closed")
				if got := readFull(t, st, 4); string(got) != "tail" {
					t.Errorf("read %q, want %q", got, "tail")
				}
				_, err := st.Read(make([]byte, 1))
				wantErrIs(t, err, tt.wantErr, "Read after the data")
			})
		})
	}
}

// A header block the peer would not accept is not sent (SPEC 5: SHOULD).

func TestAPIOpeningWithHeadersOverThePeersLimitFailsAndTheSessionLivesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, srv := startSessions(t, pipeConns(t), pairOptions{
			serverHandler: httpstream.NoOpNewStreamHandler,
			serverConfig:  &mux.Config{MaxHeaderBytes: 1024},
		})
		synctest.Wait() // the server's SETTINGS have arrived
		_, err := cli.OpenStream(testContext(t), http.Header{"Big": {strings.Repeat("x", 4096)}})
		if err == nil {
			t.Fatal("opening a stream with 4 KiB of headers to a peer that takes 1 KiB succeeded")
		}
		wantOpen(t, cli, "the client")
		wantOpen(t, srv, "the server")
		openStream(t, cli, http.Header{"Small": {"ok"}})
	})
}

// Close sends END_STREAM even when the peer's window is full (SPEC 4.1: an
// empty payload counts for nothing) and does not wait for the peer.

func TestAPICloseDoesNotWaitForWindowOrForThePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 16 << 10
		_, _, st, peer := sessionsWithStream(t, pipeConns(t), pairOptions{serverConfig: fixedWindow(window)})
		st.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := st.Write(make([]byte, 4*window))
		wantDeadlineError(t, err, "a Write filling the window")
		start := time.Now()
		closed := async(st.Close)
		synctest.Wait()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close with the peer's window full: %v", err)
			}
		default:
			t.Fatal("Close blocked while the peer's window was full")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v", d)
		}
		if got := mustReadAll(t, peer, "the stream"); len(got) != n {
			t.Errorf("the peer read %d bytes before io.EOF, want the %d written", len(got), n)
		}
	})
}

// Concurrent Writes do not interleave.

func TestAPIConcurrentWritesOnOneStreamDoNotInterleave(t *testing.T) {
	const writers, size = 4, 100 << 10
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			_, _, st, peer := sessionsWithStream(t, tr.dial(t), pairOptions{})
			st.SetWriteDeadline(time.Now().Add(waitTimeout))
			written := async(func() error {
				var wg sync.WaitGroup
				errs := make(chan error, writers)
				for i := range writers {
					wg.Go(func() {
						_, err := st.Write(bytes.Repeat([]byte{byte('a' + i)}, size))
						errs <- err
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						return err
					}
				}
				return st.Close()
			})
			got := mustReadAll(t, peer, "the concurrent writes")
			if err := recv(t, written, "the writers"); err != nil {
				t.Fatalf("concurrent Write: %v", err)
			}
			if len(got) != writers*size {
				t.Fatalf("read %d bytes, want %d", len(got), writers*size)
			}
			seen := map[byte]bool{}
			for off := 0; off < len(got); off += size {
				block := got[off : off+size]
				if bytes.Count(block, block[:1]) != size || seen[block[0]] {
					t.Fatalf("bytes %d to %d are not one whole Write: the Writes interleaved", off, off+size)
				}
				seen[block[0]] = true
			}
		})
	}
}

// Streams and sessions report the connection's addresses, as net.Conn does.

func TestAPIStreamsReportTheConnectionsAddresses(t *testing.T) {
	checkGoroutineLeaks(t)
	conns := tcpConns(t)
	cli, srv, st, peer := sessionsWithStream(t, conns, pairOptions{})
	for _, c := range []struct {
		name        string
		local, want net.Addr
	}{
		{"client session LocalAddr", cli.LocalAddr(), conns.client.LocalAddr()},
		{"client session RemoteAddr", cli.RemoteAddr(), conns.client.RemoteAddr()},
		{"client stream LocalAddr", st.LocalAddr(), conns.client.LocalAddr()},
		{"client stream RemoteAddr", st.RemoteAddr(), conns.client.RemoteAddr()},
		{"server session LocalAddr", srv.LocalAddr(), conns.server.LocalAddr()},
		{"server stream RemoteAddr", peer.RemoteAddr(), conns.server.RemoteAddr()},
	} {
		if c.local == nil || c.local.String() != c.want.String() {
			t.Errorf("%s = %v, want %v", c.name, c.local, c.want)
		}
	}
}

// Streams that open and end in every way, many times, leave nothing behind
// (SPEC 10.5).

func TestAPIManyStreamsOpenedAndEndedInEveryWayLeaveNothingBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		accepted := make(chan *mux.Stream, 8)
		cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: acceptInto(accepted)})
		ends := []func(local, peer *mux.Stream){
			func(local, _ *mux.Stream) { local.Reset() },
			func(_, peer *mux.Stream) { peer.Reset() },
			func(local, _ *mux.Stream) { cli.RemoveStreams(local); local.Reset() },
			func(local, peer *mux.Stream) { exchange(t, local, peer, []byte("q"), []byte("a")) },
			func(local, peer *mux.Stream) { local.Close(); peer.Reset() },
		}
		for i := range 1000 {
			local, peer := openPair(t, cli, accepted)
			ends[i%len(ends)](local, peer)
		}
		synctest.Wait()
		wantNumStreams(t, cli, srv, 0)
		ping(t, cli, "the client's")
	})
}

// DATA may follow ACCEPT at once (SPEC 6.2): the opener writes the moment
// OpenStream returns, many times over. The acceptor's handler hands the
// stream to a goroutine that sets its deadline while the accept goes out, as
// a server preparing the stream might (Stream's methods may be called
// concurrently with each other).

func TestAPIDataWrittenTheMomentOpenStreamReturnsIsDelivered(t *testing.T) {
	handler := func(st httpstream.Stream, replySent <-chan struct{}) error {
		go func() {
			ms := st.(*mux.Stream)
			for {
				select {
				case <-replySent:
					io.Copy(ms, ms)
					ms.Close()
					return
				default:
					ms.SetDeadline(time.Now().Add(waitTimeout))
				}
			}
		}()
		return nil
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			cli, _ := startSessions(t, tr.dial(t), pairOptions{serverHandler: handler})
			for i := range 500 {
				st := openStream(t, cli, nil)
				msg := []byte("right away " + strconv.Itoa(i))
				sent := async(func() error { return writeAndClose(st, msg) })
				got, err := readAll(st)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("stream %d (ID %d): echo %q, %v; want %q", i, st.Identifier(), got, err, msg)
				}
				if err := recv(t, sent, "the Write"); err != nil {
					t.Fatalf("stream %d: Write: %v", i, err)
				}
			}
		})
	}
}

// A peer that sends PINGs but never reads the answers cannot make the
// session queue without bound (SPEC 10.2: ENHANCE_YOUR_CALM when the
// answers are not read).

func TestAPIAPeerThatFloodsPingsWithoutReadingIsCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rawEnd, srvEnd := net.Pipe()
		srv, err := mux.Server(srvEnd, nil, &mux.Config{KeepAliveInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeSession(t, srv, "server") })
		t.Cleanup(func() { rawEnd.Close() })
		flood := frame.AppendSettings([]byte(frame.Preface))
		for i := range 2 * 4096 { // twice the cap SPEC 10.2 gives
			flood = frame.AppendPing(flood, 0, [8]byte{byte(i >> 8), byte(i)})
		}
		go rawEnd.Write(flood) // fails once the session hangs up
		// The session stops reading while its answers wait, and gives a
		// peer that does not read them 5 seconds (SPEC 10.2).
		synctest.Wait()
		time.Sleep(5 * time.Second)
		wantClosed(t, srv, "a session whose peer sent 8,192 PINGs (twice the cap of SPEC 10.2) and read none of the answers")
		_, err = srv.Ping(context.Background())
		wantErrIs(t, err, mux.ErrSessionClosed, "Ping after the flood")
	})
}

// Frames that were in flight when a stream closed are discarded (SPEC 6.4),
// unknown frame types are skipped (SPEC 3.4), and PINGs are answered whatever
// the session's own keepalive setting (SPEC 4.7): none of it ends the
// session.

func TestAPIASessionToleratesWhatTheProtocolAllows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		accepted := make(chan *mux.Stream, 1)
		srv, client := serverWithRawClient(t, acceptInto(accepted), &mux.Config{KeepAliveInterval: -1})
		hello := frame.AppendSettings([]byte(frame.Preface))
		// An unknown frame type, with undefined flags, on a stream that
		// was never opened.
		hello = frame.AppendFrameHeader(hello, frame.FrameHeader{Length: 10, Type: 0x42, Flags: 0xff, StreamID: 7})
		hello = append(hello, make([]byte, 10)...)
		client.writeOpen(hello, 1)
		client.next(frame.FrameAccept, 1)
		st := recv(t, accepted, "the server's handler")

		// The server resets stream 1 while the client, not knowing yet,
		// still sends on it.
		st.Reset()
		client.next(frame.FrameReset, 1)
		late := frame.AppendData(nil, 1, 0, []byte("in flight"))
		late = frame.AppendWindowUpdate(late, 1, 1000)
		late = frame.AppendReset(late, 1, frame.CodeCancel, "crossed")
		late = frame.AppendPing(late, 0, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
		client.write(late)
		for {
			ack := client.next(frame.FramePing, 0)
			if ack.PingData == [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
				break
			}
		}
		wantOpen(t, srv, "the server")
		client.writeOpen(nil, 3)
		client.next(frame.FrameAccept, 3)
		recv(t, accepted, "the server's handler for stream 3")
	})
}

// A Read deadline holds even when the peer stalls in the middle of a DATA
// frame (a slow link does the same to a large frame): net.Conn's Read
// returns by its deadline, with what it has or with a timeout.

func TestAPIAReadDeadlineHoldsWhileTheRestOfAFrameIsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, client, st := rawClientWithAcceptedStream(t)

		st.SetReadDeadline(time.Now().Add(time.Second))
		read := async(func() writeResult { n, err := st.Read(make([]byte, 100)); return writeResult{n, err} })
		synctest.Wait()
		// A DATA frame of 100 octets of which only 10 arrive for now.
		partial := frame.AppendFrameHeader(nil, frame.FrameHeader{Length: 100, Type: frame.FrameData, StreamID: 1})
		client.write(append(partial, make([]byte, 10)...))
		time.Sleep(2 * time.Second) // past the deadline, in fake time
		synctest.Wait()
		select {
		case r := <-read:
			if r.err != nil {
				wantDeadlineError(t, r.err, "a Read whose deadline passed during a late frame")
			} else if r.n == 0 {
				t.Errorf("Read = %v, want data or a timeout", r)
			}
		default:
			t.Fatal("a Read is still blocked 1s past its deadline, waiting for the rest of a DATA frame")
		}
		client.write(make([]byte, 90)) // the rest, so the session can go on
	})
}

// Close is safe from any goroutine, the handler's included.

func TestAPICloseFromInsideTheHandlerEndsBothSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var srv *mux.Session
		closed := make(chan error, 1)
		handler := func(httpstream.Stream, <-chan struct{}) error {
			closed <- srv.Close()
			return errors.New("closing")
		}
		var cli *mux.Session
		cli, srv = startSessions(t, pipeConns(t), pairOptions{serverHandler: handler})
		_, err := cli.OpenStream(testContext(t), nil)
		if err == nil {
			t.Error("OpenStream succeeded on a session its peer's handler closed")
		}
		if err := recv(t, closed, "Close called in the handler to return"); err != nil {
			t.Errorf("Close in the handler: %v", err)
		}
		wantClosed(t, srv, "the server")
		wantClosed(t, cli, "the client")
	})
}

// A handler may half-close a stream before accepting it.

func TestAPIAStreamHalfClosedByTheHandlerReachesTheOpenerAsEOF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peers := make(chan *mux.Stream, 1)
		handler := func(st httpstream.Stream, _ <-chan struct{}) error {
			if err := st.Close(); err != nil {
				return err
			}
			peers <- st.(*mux.Stream)
			return nil
		}
		cli, srv := startSessions(t, pipeConns(t), pairOptions{serverHandler: handler})
		st := openStream(t, cli, nil)
		if got := mustReadAll(t, st, "a stream its acceptor closed"); len(got) != 0 {
			t.Errorf("read %d bytes, want none", len(got))
		}
		peer := recv(t, peers, "the handler")
		sent := async(func() error { return writeAndClose(st, []byte("one way")) })
		if got := mustReadAll(t, peer, "the other direction"); string(got) != "one way" {
			t.Errorf("the acceptor read %q, want %q", got, "one way")
		}
		if err := recv(t, sent, "the Write"); err != nil {
			t.Errorf("writing to a stream the peer half-closed: %v", err)
		}
		synctest.Wait()
		wantNumStreams(t, cli, srv, 0)
	})
}

// Reason texts are cut to 1,024 octets at a character boundary (SPEC 10.4).

func TestAPIALongRefusalReasonArrivesCutAtACharacterBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reason := strings.Repeat("é", 1500) // 3,000 octets
		handler := func(httpstream.Stream, <-chan struct{}) error { return errors.New(reason) }
		cli, _ := startSessions(t, pipeConns(t), pairOptions{serverHandler: handler})
		_, err := cli.OpenStream(testContext(t), nil)
		wantErrIs(t, err, mux.ErrStreamRefused, "OpenStream refused with a long reason")
		if err == nil {
			return
		}
		if !utf8.ValidString(err.Error()) {
			t.Errorf("the refusal's text is not valid UTF-8: the reason was cut inside a character")
		}
		if !strings.Contains(err.Error(), strings.Repeat("é", 100)) {
			t.Errorf("the refusal's text %.80q... does not carry the reason", err)
		}
		ping(t, cli, "the client's")
	})
}

// Data that Writes reported sent before the writer's Session.Close reaches
// the peer, followed by io.EOF: closing must not reset the TCP connection
// while the peer still sends window updates for what it reads (a reset makes
// the peer's kernel drop what it had not handed over yet).
func TestAPIDataWrittenBeforeCloseReachesThePeerWhileItStillSends(t *testing.T) {
	for _, tr := range transports[1:] { // TCP and TLS: net.Pipe has no kernel buffers to lose
		t.Run(tr.name, func(t *testing.T) {
			checkGoroutineLeaks(t)
			for round := range 5 {
				conns := tr.dial(t)
				// The client reads its connection slowly, so the kernel
				// still holds data for it when it credits what it read.
				conns.client = smallReadsConn{conns.client}
				cli, srv, st, peer := sessionsWithStream(t, conns, pairOptions{})
				const size = 8 << 20
				data := payload(uint64(round), size)
				got := async(func() []byte { b, _ := io.ReadAll(st); return b })
				if _, err := peer.Write(data); err != nil {
					t.Fatalf("Write: %v", err)
				}
				srv.Close() // at once: the client is still reading and crediting
				b := recv(t, got, "the client's ReadAll")
				if !bytes.Equal(b, data) {
					t.Fatalf("round %d: the client read %d of %d bytes before the end (EndReason %v)", round, len(b), size, st.EndReason())
				}
				wantErrIs(t, st.EndReason(), mux.ErrSessionClosed, "EndReason after the server's Close")
				recv(t, cli.CloseChan(), "the client's CloseChan")
			}
		})
	}
}

// smallReadsConn reads at most 512 octets at a time.
type smallReadsConn struct{ net.Conn }

func (c smallReadsConn) Read(p []byte) (int, error) { return c.Conn.Read(p[:min(len(p), 512)]) }

// Limits fit real workloads: with the default Config one session carries
// 5,000 concurrent streams (a kubectl port-forward uses two per forwarded
// connection), each of which still works, both ways.
func TestAPIFiveThousandConcurrentStreamsWithTheDefaultConfig(t *testing.T) {
	checkGoroutineLeaks(t)
	const n = 5000
	accepted := make(chan *mux.Stream, n)
	cli, srv := startSessions(t, tcpConns(t), pairOptions{serverHandler: acceptInto(accepted)})
	local := make([]*mux.Stream, n)
	peer := make([]*mux.Stream, n)
	for i := range n {
		local[i] = openStream(t, cli, nil)
		peer[i] = recv(t, accepted, "the server's handler")
	}
	wantNumStreams(t, cli, srv, n)
	// Every stream still carries data both ways, in any order.
	for _, i := range []int{0, n / 2, n - 1} {
		exchange(t, local[i], peer[i], []byte("question"), []byte("answer"))
	}
	for i := range n {
		local[i].Reset()
	}
	ping(t, cli, "the client's") // the server has read every RESET before the PING
	wantNumStreams(t, cli, srv, 0)
}
