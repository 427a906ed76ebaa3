package mux_test

// Black-box tests of flow control and data delivery: a stream whose reader
// stopped does not stall the others (no head-of-line blocking), Writes larger
// than the peer's window wait for the peer to read, a Write past its deadline
// reports what fit the window, concurrent Writes on one stream do not
// interleave, and many concurrent streams deliver every byte intact.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

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
