package mux_test

// Black-box tests of opening streams: both sides open, with headers and data;
// OpenStream and CreateStream return only once the peer's handler accepted;
// the handler runs one stream at a time in open order, off the reader, and
// replySent closes after it returns; refusals (by the handler, a full backlog,
// MaxConcurrentStreams, a shutdown, a nil handler, a long reason) match
// ErrStreamRefused; unanswered opens time out and reset the half-open stream.

import (
	"bytes"
	"context"
	"errors"
	"io"
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
