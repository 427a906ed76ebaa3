package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
	"github.com/httpstream-go/httpstream/upgrade"
)

// WebSocket is this library's engine in the WebSocket tunnel: a real
// upgrade (an http.Server answering with upgrade's UpgradeResponse, a
// RoundTripper with upgrade.TunnelWebSocket) over loopback, after which
// the frames travel in RFC 6455 binary messages, masked from client to
// server. Beside Mux (the same engine on the bare connection, which is
// what a direct upgrade leaves), it shows what the tunnel costs.
type WebSocket struct {
	Config *mux.Config // nil: defaults
}

// Name returns "httpstream-ws".
func (WebSocket) Name() string { return "httpstream-ws" }

// Notes says what runs.
func (w WebSocket) Notes() string {
	return "the same engine in a WebSocket tunnel (RFC 6455 binary messages, client frames masked) on one TCP connection, after a real HTTP upgrade"
}

// NewPair serves one upgrade on a loopback HTTP server and dials it.
func (w WebSocket) NewPair() (Pair, error) { return w.NewPairOn(Loopback{}) }

// NewPairOn serves one upgrade on an HTTP server listening across n and
// dials it there: over an emulated link, the upgrade's request and answer
// cross it too.
func (w WebSocket) NewPairOn(n Network) (Pair, error) {
	ln, addr, err := n.Listen()
	if err != nil {
		return nil, err
	}
	p := &wsPair{accepted: make(chan httpstream.Stream, 1024), upgraded: make(chan *mux.Session, 1)}
	upgrader := upgrade.NewResponseUpgraderWithConfig(w.Config)
	p.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			conn := upgrader.UpgradeResponse(rw, r, func(s httpstream.Stream, _ <-chan struct{}) error {
				select {
				case p.accepted <- s:
					return nil
				default:
					return errors.New("benchmark accept queue full")
				}
			})
			if conn != nil {
				p.upgraded <- conn.(*mux.Session)
			}
		}),
	}
	// Owned by the pair: Serve returns when Close shuts the server down.
	go p.srv.Serve(ln)

	rt, err := upgrade.NewRoundTripperWithConfig(upgrade.RoundTripperConfig{
		Proxier: func(*http.Request) (*url.URL, error) { return nil, nil },
		Tunnel:  upgrade.TunnelWebSocket,
		Mux:     w.Config,
	})
	if err != nil {
		p.srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		p.srv.Close()
		return nil, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		p.srv.Close()
		return nil, err
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		p.srv.Close()
		return nil, err
	}
	p.client = conn.(*mux.Session)
	select {
	case p.server = <-p.upgraded:
	case <-ctx.Done():
		p.client.Close()
		p.srv.Close()
		return nil, fmt.Errorf("the server did not upgrade: %w", ctx.Err())
	}
	return p, nil
}

type wsPair struct {
	srv            *http.Server
	client, server *mux.Session
	upgraded       chan *mux.Session
	accepted       chan httpstream.Stream
}

func (p *wsPair) Open() (Stream, error) {
	return p.client.OpenStream(context.Background(), nil)
}

func (p *wsPair) Accept() (Stream, error) {
	select {
	case s := <-p.accepted:
		return s.(*mux.Stream), nil
	case <-p.server.CloseChan():
		return nil, mux.ErrSessionClosed
	}
}

func (p *wsPair) Close() error {
	p.client.Close()
	err := p.server.Close()
	p.srv.Close()
	return err
}
