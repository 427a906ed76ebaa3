package upgrade_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
	"github.com/httpstream-go/httpstream/upgrade"
)

// echoHandler upgrades and echoes every stream the client opens, each on a
// goroutine of its own; the handler function stays short, as it runs once
// per stream, in order.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := httpstream.Handshake(r, w, []string{"echo.v1"}); err != nil {
		return
	}
	conn := upgrade.NewResponseUpgrader().UpgradeResponse(w, r,
		func(s httpstream.Stream, replySent <-chan struct{}) error {
			go func() {
				_, _ = io.Copy(s, s)
				_ = s.Close()
			}()
			return nil
		})
	if conn == nil {
		return
	}
	<-conn.CloseChan()
}

// A client that dials through the WebSocket tunnel, for proxies and load
// balancers that forward only WebSocket upgrades, bounded by a context;
// the same UpgradeResponse on the server serves both upgrades. The
// Connection is a *mux.Session, with more than httpstream.Connection:
// OpenStream with a context, Ping, Shutdown, and streams that are
// net.Conns.
func Example_webSocketTunnel() {
	srv := httptest.NewServer(http.HandlerFunc(echoHandler))
	defer srv.Close()

	rt, err := upgrade.NewRoundTripperWithConfig(upgrade.RoundTripperConfig{
		Tunnel: upgrade.TunnelWebSocket, // the default, TunnelAuto, would also fall back to a direct upgrade
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	u, _ := url.Parse(srv.URL + "/echo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, protocol, err := upgrade.DialContext(ctx, upgrade.NewDialer(rt, nil, http.MethodPost, u), "echo.v1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println("protocol:", protocol)

	session := conn.(*mux.Session)
	if _, err := session.Ping(ctx); err != nil { // the round-trip time, through the tunnel
		fmt.Println(err)
		return
	}
	stream, err := session.OpenStream(ctx, http.Header{"Streamtype": {"data"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = stream.SetDeadline(time.Now().Add(10 * time.Second)) // a net.Conn
	_, _ = io.WriteString(stream, "through the tunnel")
	_ = stream.CloseWrite()
	echo, _ := io.ReadAll(stream)
	fmt.Println("echo:", strings.ToUpper(string(echo)))

	// Graceful: no new streams, wait for the open ones, then close.
	if err := session.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}

	// Output:
	// protocol: echo.v1
	// echo: THROUGH THE TUNNEL
}
