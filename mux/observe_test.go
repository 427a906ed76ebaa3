package mux

// Tests of what operators see: Stats, Err, the frame trace, and what a
// handler's panic and a STREAM_LIMIT refusal tell them.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
)

func TestStatsCountWhatWentEachWay(t *testing.T) {
	{ // real time: PING round trips take none in a synctest bubble
		a, b := tcpPair(t)
		cli, srv, accepted := sessionsOver(t, a, b, &Config{KeepAliveInterval: -1})
		st, err := cli.OpenStream(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		peer := <-accepted
		go func() { st.Write(make([]byte, 40<<10)); st.Close() }()
		if got, err := io.ReadAll(peer); err != nil || len(got) != 40<<10 {
			t.Fatalf("read %d, %v", len(got), err)
		}
		peer.Reset() // after the data: a reset to count
		// The server answers this PING after its RESET, and the client's
		// frames before it have all arrived.
		if _, err := cli.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}

		// A frame counts as sent once its batch is written, which can be
		// just after the peer has it: wait (bounded) for the counts to meet.
		c, s := cli.Stats(), srv.Stats()
		for deadline := time.Now().Add(5 * time.Second); c.FramesSent != s.FramesReceived && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			c, s = cli.Stats(), srv.Stats()
		}
		if c.DataSent != 40<<10 || s.DataReceived != 40<<10 {
			t.Errorf("DATA octets: client sent %d, server received %d; want %d", c.DataSent, s.DataReceived, 40<<10)
		}
		if c.FramesSent == 0 || c.FramesSent != s.FramesReceived {
			t.Errorf("frames: client sent %d, server received %d; want the same, not 0", c.FramesSent, s.FramesReceived)
		}
		if c.StreamsOpened != 1 || s.StreamsAccepted != 1 {
			t.Errorf("streams: client opened %d, server accepted %d; want 1 and 1", c.StreamsOpened, s.StreamsAccepted)
		}
		if s.ResetsSent != 1 || c.ResetsReceived != 1 {
			t.Errorf("resets: server sent %d, client received %d; want 1 and 1", s.ResetsSent, c.ResetsReceived)
		}
		if c.RTT <= 0 || c.MinRTT <= 0 || c.MinRTT > c.RTT*2 {
			t.Errorf("RTT %v, MinRTT %v; want both measured", c.RTT, c.MinRTT)
		}
		if c.Err != nil || cli.Err() != nil {
			t.Errorf("Err of a live session: %v, %v; want nil", c.Err, cli.Err())
		}
		ps := peer.Stats()
		if ps.DataReceived != 40<<10 || ps.FramesReceived == 0 || ps.RecvWindowPeak < maxStreamWindowFloor {
			t.Errorf("the server's stream stats %+v", ps)
		}
		if ss := st.Stats(); ss.DataSent != 40<<10 || ss.FramesSent != ps.FramesReceived {
			t.Errorf("the client's stream stats %+v, want %d octets in %d frames", ss, 40<<10, ps.FramesReceived)
		}

		srv.Close()
		<-cli.CloseChan()
		if err := cli.Err(); !errors.Is(err, ErrSessionClosed) || !strings.Contains(err.Error(), "SESSION_CLOSED") {
			t.Errorf("the client's Err after the server closed: %v, want ErrSessionClosed with the peer's code", err)
		}
		if err := cli.Stats().Err; err == nil {
			t.Error("Stats().Err is nil after the session ended")
		}
	}
}

// recordingHandler keeps the slog records it gets.
type recordingHandler struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) messages(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.Level != level {
			continue
		}
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		out = append(out, b.String())
	}
	return out
}

func TestTheFrameTraceLogsEveryFrameOnlyAtLevelTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		traced := &recordingHandler{level: LevelTrace}
		debug := &recordingHandler{level: slog.LevelDebug}
		a, b := netPipe()
		cli, _, accepted := sessionsOver(t, a, b, &Config{KeepAliveInterval: -1, Logger: slog.New(traced)})

		st, err := cli.OpenStream(t.Context(), http.Header{"Kind": {"trace"}})
		if err != nil {
			t.Fatal(err)
		}
		peer := <-accepted
		go func() { st.Write([]byte("hello")); st.Close() }()
		io.ReadAll(peer)
		synctest.Wait()
		all := strings.Join(traced.messages(LevelTrace), "\n")
		for _, want := range []string{
			"frame sent type=SETTINGS",
			"frame received type=SETTINGS",
			"frame sent type=OPEN stream=1",
			"frame received type=ACCEPT stream=1",
			"frame sent type=DATA stream=1 flags=0 length=5",
			"frame sent type=DATA stream=1 flags=1 length=0",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("the trace has no %q; it has:\n%s", want, all)
			}
		}

		// A logger at debug level gets no frame records.
		a2, b2 := netPipe()
		cli2, _, accepted2 := sessionsOver(t, a2, b2, &Config{KeepAliveInterval: -1, Logger: slog.New(debug)})
		if _, err := cli2.OpenStream(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		<-accepted2
		synctest.Wait()
		if got := debug.messages(LevelTrace); len(got) != 0 {
			t.Errorf("a debug logger got %d frame records", len(got))
		}
	})
}

func TestAPanickingHandlerRefusesItsStreamAndTheSessionCarriesOn(t *testing.T) {
	logs := &recordingHandler{level: slog.LevelError}
	a, b := tcpPair(t)
	srv, err := Server(b, func(st httpstream.Stream, _ <-chan struct{}) error {
		if st.Headers().Get("Panic") != "" {
			panic("the handler's bug")
		}
		return nil
	}, &Config{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Client(a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	_, err = cli.OpenStream(t.Context(), http.Header{"Panic": {"yes"}})
	if !errors.Is(err, ErrStreamRefused) || !strings.Contains(err.Error(), "handler failed") || strings.Contains(err.Error(), "the handler's bug") {
		t.Fatalf("OpenStream of a stream whose handler panics: %v, want a refusal that says the handler failed, without the panic's text", err)
	}
	if _, err := cli.OpenStream(t.Context(), nil); err != nil {
		t.Fatalf("the next OpenStream: %v; the session should carry on", err)
	}
	if msgs := logs.messages(slog.LevelError); len(msgs) != 1 || !strings.Contains(msgs[0], "panicked") || !strings.Contains(msgs[0], "stack=") {
		t.Fatalf("error records %q, want one about the panic, with its stack", msgs)
	}
}

func TestAStreamLimitRefusalSaysHowManyPlacesUnreadDataHolds(t *testing.T) {
	// The handler closes its side and never reads: streams closed by both
	// sides hold their places with unread data (SPEC 10.3).
	s, p := newRawPeer(t, false, func(st *Stream) { st.Close() }, &Config{MaxConcurrentStreams: 2})
	for _, id := range []uint32{1, 3} {
		p.send(openFrame(id, nil))
		if f := p.next(); f.Type != frame.FrameAccept {
			t.Fatalf("got %v, want ACCEPT", f)
		}
		p.send(frame.AppendData(nil, id, frame.FlagEndStream, []byte("unread")))
		if f := p.next(); f.Type != frame.FrameData || !f.Flags.Has(frame.FlagEndStream) {
			t.Fatalf("got %v, want the handler's END_STREAM", f)
		}
	}
	p.send(openFrame(5, nil))
	f := p.next()
	if f.Type != frame.FrameRefuse || f.Code != frame.CodeStreamLimit || !strings.Contains(f.Reason, "2 of them closed by both sides") {
		t.Fatalf("got %v, want REFUSE STREAM_LIMIT saying 2 places are held by unread data", f)
	}
	_ = s

}
