package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
	"github.com/httpstream-go/httpstream/upgrade"
)

// The WebSocket tunnel against an independent implementation of RFC 6455,
// github.com/coder/websocket: its client against our server, our client
// against its server, and our whole session over its net.Conn adapter.

const wsTestTimeout = 20 * time.Second

// echoStreams accepts every stream and echoes it.
func echoStreams(s httpstream.Stream, _ <-chan struct{}) error {
	go func() {
		_, _ = io.Copy(s, s)
		_ = s.Close()
	}()
	return nil
}

// echoCheck sends data of several sizes on streams of session and checks
// the echoes, all at once so that frames of streams interleave.
func echoCheck(t *testing.T, session *mux.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTestTimeout)
	defer cancel()
	sizes := []int{1, 125, 126, 65535, 65536, 3<<20 + 1}
	errs := make(chan error, len(sizes))
	for _, size := range sizes {
		go func() {
			data := make([]byte, size)
			_, _ = rand.Read(data)
			s, err := session.OpenStream(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			_ = s.SetDeadline(time.Now().Add(wsTestTimeout))
			go func() { _, _ = s.Write(data); _ = s.CloseWrite() }()
			got, err := io.ReadAll(s)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("%d octets sent, %d echoed, or different", size, len(got))
			}
			errs <- err
		}()
	}
	for range sizes {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("echoes still running")
		}
	}
}

func TestTheirClientAgainstOurServer(t *testing.T) {
	upgraded := make(chan httpstream.Connection, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn := upgrade.NewResponseUpgrader().UpgradeResponse(w, r, echoStreams); conn != nil {
			upgraded <- conn
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), wsTestTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, srv.URL, &websocket.DialOptions{Subprotocols: []string{"chat", upgrade.WebSocketProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != upgrade.WebSocketProtocol || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("their client got %s with subprotocol %q", resp.Status, c.Subprotocol())
	}
	c.SetReadLimit(-1) // our messages are batches of frames, up to 256 KiB
	serverSide := <-upgraded
	defer serverSide.Close()

	// Our whole session over their net.Conn adapter.
	session, err := mux.Client(websocket.NetConn(context.Background(), c, websocket.MessageBinary), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	echoCheck(t, session)

	// Their ping gets our pong (their reader is the session's).
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("their ping: %v", err)
	}
	// Their close gets our close back, and ends our session.
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("their close handshake: %v", err)
	}
	select {
	case <-serverSide.CloseChan():
	case <-ctx.Done():
		t.Fatal("our server's session outlived the close handshake")
	}
}

func TestOurClientAgainstTheirServer(t *testing.T) {
	pinged := make(chan error, 1)
	ended := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{upgrade.WebSocketProtocol}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		ctx, cancel := context.WithTimeout(context.Background(), wsTestTimeout)
		defer cancel()
		session, err := mux.Server(websocket.NetConn(ctx, c, websocket.MessageBinary), echoStreams, nil)
		if err != nil {
			return
		}
		// Their server pings our client, while the session reads.
		pinged <- c.Ping(ctx)
		select {
		case <-session.CloseChan():
			ended <- nil
		case <-ctx.Done():
			ended <- ctx.Err()
		}
	}))
	defer srv.Close()

	rt, err := upgrade.NewRoundTripperWithConfig(upgrade.RoundTripperConfig{
		Proxier: func(*http.Request) (*url.URL, error) { return nil, nil },
		Tunnel:  upgrade.TunnelWebSocket,
	})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), wsTestTimeout)
	defer cancel()
	conn, _, err := upgrade.DialContext(ctx, upgrade.NewDialer(rt, nil, http.MethodGet, u))
	if err != nil {
		t.Fatal(err)
	}
	echoCheck(t, conn.(*mux.Session))
	select {
	case err := <-pinged:
		if err != nil {
			t.Fatalf("their ping: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("their ping got no pong")
	}
	// Our close ends their session through the close handshake.
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("their server's session outlived our close")
	}
}
