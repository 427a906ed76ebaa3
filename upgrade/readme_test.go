package upgrade

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
)

// readmeExec and readmeServe are the README's server snippet (exec and
// serve there; inside this package, upgrade.NewResponseUpgrader loses its
// qualifier), so that it compiles and is tested; change both together.
func readmeExec(w http.ResponseWriter, r *http.Request) {
	if _, err := httpstream.Handshake(r, w, []string{"v5.channel.k8s.io"}); err != nil {
		return // Handshake has answered with 400 or 403
	}
	streams := make(chan httpstream.Stream)
	done := make(chan struct{})
	defer close(done) // from now on the handler refuses: nobody takes streams
	conn := NewResponseUpgrader().UpgradeResponse(w, r,
		func(s httpstream.Stream, replySent <-chan struct{}) error {
			select { // keep the handler short: it runs once per stream, in order
			case streams <- s:
				return nil // nil accepts the stream; an error refuses it, with its text
			case <-done:
				return errors.New("the server is done with this connection")
			}
		})
	if conn == nil {
		return // UpgradeResponse has answered with 400 or 500
	}
	defer conn.Close()
	for {
		select {
		case s := <-streams:
			go readmeServe(s)
		case <-conn.CloseChan(): // the client closed, or the connection failed
			return
		}
	}
}

// readmeServe echoes the stream back, then half-closes it.
func readmeServe(s httpstream.Stream) {
	io.Copy(s, s)
	s.Close()
}

// The README's server pattern leaves no goroutine behind, however the
// client ends: sessions closed while streams are being opened, echoed, or
// left half-done (a handler that runs after the serving loop returned must
// not block forever).
func TestTheREADMEServerPatternLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("sessions", func(t *testing.T) {
		srv, _ := newTestServer(t, http.HandlerFunc(readmeExec), false)
		u, _ := url.Parse(srv.URL + "/exec")
		rt := mustRoundTripper(t, RoundTripperConfig{Proxier: noProxy})
		sessions, streams := 60, 30
		if testing.Short() {
			sessions = 10
		}
		var wg sync.WaitGroup
		for i := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, _, err := NewDialer(rt, nil, http.MethodPost, u).Dial("v5.channel.k8s.io")
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				defer conn.Close()
				for j := range streams {
					s, err := conn.CreateStream(nil)
					if err != nil {
						return // the session may end while others open
					}
					switch (i + j) % 3 {
					case 0: // a full echo
						s.Write([]byte("ping"))
						s.Close()
						io.ReadAll(s)
					case 1: // left half-done: the session's Close ends it
						s.Write([]byte("ping"))
					case 2:
						s.Reset()
					}
				}
				// Streams still opening when the client closes: their
				// handlers may run while, or after, the serving loop
				// returns.
				var opening sync.WaitGroup
				for range 8 {
					opening.Add(1)
					go func() { defer opening.Done(); conn.CreateStream(nil) }()
				}
				conn.Close()
				opening.Wait()
			}()
		}
		wg.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // bounded: the goroutines end on their own
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left behind:\n%s", n-before, buf[:runtime.Stack(buf, true)])
	}
}
