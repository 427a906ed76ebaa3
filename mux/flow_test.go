package mux

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

// tcpSessions returns a client and a server session over loopback TCP and a
// channel of the streams the server accepts.
func tcpSessions(t testing.TB, cfg *Config) (*Session, *Session, chan *Stream) {
	t.Helper()
	a, b := tcpPair(t)
	return sessionsOver(t, a, b, cfg)
}

// pipeSessions is tcpSessions over net.Pipe, usable inside a synctest bubble.
func pipeSessions(t testing.TB, cfg *Config) (*Session, *Session, chan *Stream) {
	t.Helper()
	a, b := netPipe()
	return sessionsOver(t, a, b, cfg)
}

func sessionsOver(t testing.TB, a, b net.Conn, cfg *Config) (*Session, *Session, chan *Stream) {
	t.Helper()
	accepted := make(chan *Stream, 64)
	srv, err := Server(b, func(st httpstream.Stream, _ <-chan struct{}) error {
		accepted <- st.(*Stream)
		return nil
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Client(a, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, srv, accepted
}

func TestReadAndWriteAllocateNothingInSteadyState(t *testing.T) {
	cli, _, accepted := tcpSessions(t, nil)
	st, err := cli.OpenStream(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	out, in := make([]byte, 32<<10), make([]byte, 32<<10)
	cycle := func() {
		if _, err := st.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, in); err != nil {
			t.Fatal(err)
		}
	}
	for range 64 { // warm up windows and buffer pools
		cycle()
	}
	if n := testing.AllocsPerRun(200, cycle); n != 0 {
		t.Fatalf("%v allocations per 32 KiB Write+Read, want 0", n)
	}
}

func TestWritesNeverExceedThePeersWindow(t *testing.T) {
	// The raw peer grants 1 MiB (its SETTINGS) ; the session must stop
	// there and wait for WINDOW_UPDATE, however much the application writes.
	s, p := newRawPeer(t, true, nil, nil)
	opened := make(chan *Stream, 1)
	go func() {
		st, err := s.OpenStream(t.Context(), nil)
		if err != nil {
			t.Error(err)
		}
		opened <- st
	}()
	f := p.next()
	if f.Type != frame.FrameOpen {
		t.Fatalf("got %v, want OPEN", f)
	}
	p.send(frame.AppendAccept(nil, f.StreamID))
	st := <-opened
	const window = 1 << 20
	wrote := make(chan int, 1)
	go func() {
		st.SetWriteDeadline(time.Now().Add(30 * time.Second))
		n, _ := st.Write(make([]byte, 3*window))
		wrote <- n
	}()
	got := 0
	for got < window {
		f := p.next()
		if f.Type != frame.FrameData {
			t.Fatalf("got %v, want DATA", f)
		}
		got += len(f.Data)
	}
	if got != window {
		t.Fatalf("received %d octets before any WINDOW_UPDATE, the window is %d", got, window)
	}
	// Now credit exactly one more MiB: that much more arrives, no more.
	p.send(frame.AppendWindowUpdate(nil, f.StreamID, window))
	for got < 2*window {
		got += len(p.next().Data)
	}
	st.SetWriteDeadline(time.Now()) // the rest cannot go out: the Write gives up
	if n := <-wrote; n != 2*window {
		t.Fatalf("Write reported %d octets written, %d went out", n, 2*window)
	}
}

func TestPeerThatFillsEveryWindowCannotGrowTheHeapPastTheBound(t *testing.T) {
	const streams, window = 64, 64 << 10
	cfg := &Config{InitialStreamWindow: window, MaxFrameSize: 16 << 10}
	s, p := newRawPeer(t, false, func(*Stream) {}, cfg)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	chunk := make([]byte, 16<<10)
	for i := range streams {
		id := uint32(2*i + 1)
		p.send(openFrame(id, nil))
		if f := p.next(); f.Type != frame.FrameAccept {
			t.Fatalf("got %v, want ACCEPT", f)
		}
		for range window / len(chunk) {
			p.send(frame.AppendData(nil, id, 0, chunk))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// The bound of Config's doc: the windows, plus two partly used 16 KiB
	// blocks and about a kilobyte of bookkeeping per stream.
	bound := int64(streams * (window + 33<<10))
	t.Logf("heap grew %d KiB for %d streams with full %d KiB windows (bound %d KiB)", growth>>10, streams, window>>10, bound>>10)
	if growth > bound {
		t.Fatalf("heap grew %d octets, more than the bound %d", growth, bound)
	}
	// One octet more on any stream is past its window: the session ends.
	p.send(frame.AppendData(nil, 1, 0, []byte{0}))
	p.expectGoAway(frame.CodeFlowControlError)
	waitClosed(t, s)
}

func TestWindowsGrowOnlyForFastReaders(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pause time.Duration // between reads of each half-window
		grows bool
	}{
		{"a reader that keeps up grows its window", 0, true},
		{"a reader that pauses keeps its window", time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := &Config{InitialStreamWindow: 64 << 10, MaxStreamWindow: 1 << 20, KeepAliveInterval: -1}
				// A path whose bandwidth-delay product, 200 KB, is past
				// the initial window: auto-tuning grows the window only
				// if the reader keeps up with it.
				a, b, wait := simLink(5*time.Millisecond, 20e6, 200e3)
				defer wait()
				cli, srv, accepted := sessionsOver(t, a, b, cfg)
				defer srv.Close()
				defer cli.Close()
				st, err := cli.OpenStream(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				peer := <-accepted
				go func() {
					st.Write(make([]byte, 4<<20))
					st.Close()
				}()
				buf := make([]byte, 32<<10)
				for {
					if _, err := io.ReadFull(peer, buf); err != nil {
						break
					}
					time.Sleep(tt.pause)
				}
				peer.mu.Lock()
				window := peer.recv.window
				peer.mu.Unlock()
				if grew := window > 64<<10; grew != tt.grows {
					t.Fatalf("window ended at %d KiB", window>>10)
				}
				if window > 1<<20 {
					t.Fatalf("window %d KiB is past MaxStreamWindow", window>>10)
				}
				_ = srv
			})
		})
	}
}

func TestReadDeadlineInterruptsABlockedRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cli, _, accepted := pipeSessions(t, &Config{KeepAliveInterval: -1})
		st, err := cli.OpenStream(t.Context(), http.Header{})
		if err != nil {
			t.Fatal(err)
		}
		<-accepted
		st.SetReadDeadline(time.Now().Add(time.Second))
		start := time.Now()
		_, err = st.Read(make([]byte, 1))
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("Read returned %v after %v, want a deadline error after 1s", err, time.Since(start))
		}
	})
}

func TestAFailedPayloadReadAfterTheBufferShrankDoesNotCorruptIt(t *testing.T) {
	// A frame's payload is being read into the buffer's last block when
	// the application reads the blocks in front of it, and then the
	// payload never arrives: giving the reserved region back must touch
	// only the blocks it added (a stale index here once put a nil block in
	// the pool, and crashed the next session to take it).
	s, p := newRawPeer(t, false, func(*Stream) {}, nil)
	accepted := make(chan *Stream, 1)
	s.handler = func(st httpstream.Stream, _ <-chan struct{}) error { accepted <- st.(*Stream); return nil }
	p.send(openFrame(1, nil))
	if f := p.next(); f.Type != frame.FrameAccept {
		t.Fatalf("got %v, want ACCEPT", f)
	}
	st := <-accepted
	// The window's floor fills one block; the window then rises from it as
	// that DATA arrives (SPEC 7.4: the increment is granted before the next
	// frame is read), and the next payload takes part of a second block.
	p.send(frame.AppendData(nil, 1, 0, make([]byte, maxStreamWindowFloor)))
	p.send(frame.AppendData(nil, 1, 0, make([]byte, 4<<10)))
	// A header promising 1000 octets, and only 500 of them: the reader
	// reserves room in the second block and waits for the rest.
	p.send(append(frame.AppendFrameHeader(nil, frame.FrameHeader{Length: 1000, Type: frame.FrameData, StreamID: 1}), make([]byte, 500)...))
	if n, err := io.ReadFull(st, make([]byte, 16<<10)); err != nil || n != 16<<10 {
		t.Fatalf("Read = %d, %v", n, err) // frees the first block
	}
	p.conn.Close() // the payload never comes
	waitClosed(t, s)
	for range 64 {
		if b := getBlock(); b == nil {
			t.Fatal("the block pool handed out nil")
		}
	}
}

func TestStreamsClosedWithUnreadDataKeepTheirPlaceUntilRead(t *testing.T) {
	// A handler that closes its side at once and reads later: the streams
	// are closed by both sides, but their data is still buffered, so they
	// still count against MaxConcurrentStreams (SPEC 10.3).
	accepted := make(chan *Stream, 8)
	s, p := newRawPeer(t, false, func(st *Stream) { st.Close(); accepted <- st }, &Config{MaxConcurrentStreams: 2})
	open := func(id uint32) frame.Frame {
		p.send(openFrame(id, nil))
		f := *p.next() // a copy: the reader reuses its Frame
		if f.Type == frame.FrameAccept {
			p.send(frame.AppendData(nil, id, frame.FlagEndStream, make([]byte, 10<<10)))
			if end := p.next(); end.Type != frame.FrameData || !end.Flags.Has(frame.FlagEndStream) {
				t.Fatalf("got %v, want the handler's END_STREAM", end)
			}
		}
		return f
	}
	first := open(1)
	open(3)
	if first.Type != frame.FrameAccept {
		t.Fatalf("got %v, want ACCEPT", first)
	}
	if f := open(5); f.Type != frame.FrameRefuse || f.Code != frame.CodeStreamLimit {
		t.Fatalf("a third stream while two hold unread data: got %v, want REFUSE STREAM_LIMIT", f)
	}
	if got, err := io.ReadAll(<-accepted); err != nil || len(got) != 10<<10 {
		t.Fatalf("ReadAll = %d octets, %v", len(got), err)
	}
	if f := open(7); f.Type != frame.FrameAccept {
		t.Fatalf("once one of them is read: got %v, want ACCEPT", f)
	}
	// Stream 7 is forgotten once both its END_STREAMs are through, which
	// may be just after the peer has seen ours.
	atkPoll(t, atkWait, "NumStreams drops the streams closed by both sides", func() bool { return s.NumStreams() == 0 })
}

func TestAStreamOfSmallMessagesKeepsItsFloor(t *testing.T) {
	// SPEC 7.4: a stream's window rises from its floor once it has
	// received startAfter octets, so small messages cost no WINDOW_UPDATE;
	// the octet that reaches startAfter raises it.
	_, p := newRawPeer(t, false, func(*Stream) {}, nil)
	p.send(openFrame(1, nil))
	if f := p.next(); f.Type != frame.FrameAccept {
		t.Fatalf("got %v, want ACCEPT", f)
	}
	// updates returns the increments of the WINDOW_UPDATEs the session
	// sends before it answers a PING sent after what came before: the
	// answer comes after whatever the frames before it made the session
	// queue (SPEC 4.7).
	updates := func(mark byte) (incs []uint32) {
		p.send(frame.AppendPing(nil, 0, [8]byte{mark}))
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				t.Fatalf("raw peer read: %v", err)
			}
			switch {
			case f.Type == frame.FramePing && !f.Flags.Has(frame.FlagAck):
				go p.conn.Write(frame.AppendPing(nil, frame.FlagAck, f.PingData))
			case f.Type == frame.FramePing && f.PingData == [8]byte{mark}:
				return incs
			case f.Type == frame.FrameWindowUpdate:
				incs = append(incs, f.Increment)
			}
		}
	}
	p.send(frame.AppendData(nil, 1, 0, make([]byte, startAfter-1)))
	if incs := updates(1); len(incs) != 0 {
		t.Errorf("WINDOW_UPDATEs %v after %d octets, want none: the floor holds them", incs, startAfter-1)
	}
	p.send(frame.AppendData(nil, 1, 0, []byte{0}))
	if incs, want := updates(2), uint32(DefaultInitialStreamWindow-maxStreamWindowFloor); len(incs) != 1 || incs[0] != want {
		t.Errorf("WINDOW_UPDATEs %v after %d octets, want one of %d: the rise to InitialStreamWindow", incs, startAfter, want)
	}
}

// The session's receive budget (MaxSessionWindow) is shared: streams that
// receive data take from it, up to InitialStreamWindow at once, the rest stay
// at their floor but still work, and every octet comes back once the streams
// end (SPEC 7.4).
func TestTheSessionBudgetIsSharedAndGivenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Windows may take three quarters of the budget: room there for
		// two streams' rise from the floor (with their block slack), and
		// the headers, but not for a third's.
		const rise = 64<<10 - maxStreamWindowFloor
		cfg := &Config{InitialStreamWindow: 64 << 10, MaxStreamWindow: 64 << 10, MaxSessionWindow: (2*(rise+blockSlack) + 8<<10) / 3 * 4, KeepAliveInterval: -1}
		cli, srv, accepted := pipeSessions(t, cfg)
		type pair struct{ local, peer *Stream }
		var pairs []pair
		for range 4 {
			st, err := cli.OpenStream(t.Context(), http.Header{"N": {"x"}})
			if err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, pair{st, <-accepted})
		}
		// Data on every stream: the first two rise, the others cannot.
		for _, p := range pairs {
			if _, err := p.local.Write(make([]byte, startAfter)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		for i, p := range pairs {
			p.peer.mu.Lock()
			w := p.peer.recv.window
			p.peer.mu.Unlock()
			want := uint32(maxStreamWindowFloor)
			if i < 2 {
				want = 64 << 10
			}
			if w != want {
				t.Errorf("stream %d: window %d, want %d", i, w, want)
			}
		}
		// The ones at their floor still carry data, more than the floor.
		for _, p := range pairs {
			data := make([]byte, 3*maxStreamWindowFloor)
			go func() { p.local.Write(data); p.local.Close() }()
			got, err := io.ReadAll(p.peer)
			if err != nil || len(got) != len(data)+startAfter {
				t.Fatalf("read %d octets, %v; want %d", len(got), err, len(data)+startAfter)
			}
			p.peer.Close()
		}
		synctest.Wait()
		if n := srv.NumStreams(); n != 0 {
			t.Fatalf("the server tracks %d streams, want none", n)
		}
		if used := srv.budgetUsed.Load(); used != 0 {
			t.Errorf("the server's budget holds %d octets after every stream ended, want 0", used)
		}
		if used := cli.budgetUsed.Load(); used != 0 {
			t.Errorf("the client's budget holds %d octets after every stream ended, want 0", used)
		}
	})
}
