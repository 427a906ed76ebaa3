package scenario

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

// TCP is the baseline: every stream is a TCP connection of its own over
// loopback.
type TCP struct{}

// Name returns "tcp".
func (TCP) Name() string { return "tcp" }

// Notes says how streams map to connections.
func (TCP) Notes() string { return "one TCP connection per stream" }

// NewPair listens on a loopback port; Open dials it and Accept accepts.
func (t TCP) NewPair() (Pair, error) { return t.NewPairOn(Loopback{}) }

// NewPairOn listens across n; Open dials there and Accept accepts.
func (TCP) NewPairOn(n Network) (Pair, error) {
	ln, addr, err := n.Listen()
	if err != nil {
		return nil, err
	}
	return &tcpPair{ln: ln, addr: addr}, nil
}

type tcpPair struct {
	ln    net.Listener
	addr  string     // what Open dials to reach ln
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func (p *tcpPair) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *tcpPair) Open() (Stream, error) {
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	p.track(c)
	return c.(*net.TCPConn), nil
}

func (p *tcpPair) Accept() (Stream, error) {
	c, err := p.ln.Accept()
	if err != nil {
		return nil, err
	}
	p.track(c)
	return c.(*net.TCPConn), nil
}

func (p *tcpPair) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	return err
}

// Mux is this library's engine over one loopback TCP connection.
type Mux struct {
	Config *mux.Config // nil: defaults
	// Label names the transport in the report; "" is "httpstream". A sweep
	// runs several Configs side by side, each with its own.
	Label string
}

// Name returns the Label, or "httpstream".
func (m Mux) Name() string {
	if m.Label != "" {
		return m.Label
	}
	return "httpstream"
}

// Notes says what the transport is; its Config is in the report's header
// (Meta.MuxConfig), every field of it.
func (m Mux) Notes() string {
	return "this library's engine: streams multiplexed over one TCP connection (mux.Config above)"
}

// NewPair starts a client and a server session over a loopback connection.
func (m Mux) NewPair() (Pair, error) { return m.NewPairOn(Loopback{}) }

// NewPairOn starts a client and a server session over a connection across
// n.
func (m Mux) NewPairOn(n Network) (Pair, error) {
	a, b, err := ConnectOn(n)
	if err != nil {
		return nil, err
	}
	p := &muxPair{accepted: make(chan httpstream.Stream, 1024)}
	p.server, err = mux.Server(b, func(s httpstream.Stream, _ <-chan struct{}) error {
		select {
		case p.accepted <- s:
			return nil
		default:
			return errors.New("benchmark accept queue full")
		}
	}, m.Config)
	if err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	p.client, err = mux.Client(a, nil, m.Config)
	if err != nil {
		p.server.Close()
		a.Close()
		return nil, err
	}
	return p, nil
}

type muxPair struct {
	client, server *mux.Session
	accepted       chan httpstream.Stream
}

func (p *muxPair) Open() (Stream, error) {
	return p.client.OpenStream(context.Background(), nil)
}

func (p *muxPair) Accept() (Stream, error) {
	select {
	case s := <-p.accepted:
		return s.(*mux.Stream), nil
	case <-p.server.CloseChan():
		return nil, mux.ErrSessionClosed
	}
}

func (p *muxPair) Close() error {
	p.client.Close()
	return p.server.Close()
}
