package mux_test

// Black-box tests of ending streams and sessions: a stream's Close and
// CloseWrite half-close, Reset ends both directions on both sides, ended
// streams are forgotten and RemoveStreams is bookkeeping only; Session.Close
// fails every blocked call, is idempotent and is noticed by the peer (in band,
// too), a failed connection ends the session, Shutdown waits for open streams,
// and what a peer close means for data already received or sent (io.EOF or
// ErrSessionClosed, EndReason).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

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
