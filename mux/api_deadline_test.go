package mux_test

// Black-box tests of stream deadlines, which follow net.Conn: Read and Write
// past their deadlines fail with a timeout and leave the stream usable,
// deadlines in the past fail at once, extending or clearing a deadline lets a
// blocked call go on, SetDeadline sets both, and a Read deadline holds while
// the rest of a DATA frame is late.

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

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
