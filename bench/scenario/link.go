package scenario

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// The link emulator: a WAN path between loopback endpoints, in the
// standard library, for the wan-* scenarios.
//
// Both ends keep real loopback TCP sockets (so TCP_NOTSENT_LOWAT, Nagle and
// the socket buffers apply on the endpoints as they would on a real host);
// a relay in this process accepts the client's connection, dials the
// server, and carries each direction through a bottleneck (bottleneck.go):
// a queue of at most one buffer drained at the link's rate, then the
// one-way delay. A full queue is not a loss: the relay stops reading, and
// TCP's flow control pushes back to the sender. All connections of a Link
// share its two bottlenecks, as connections over one real path do, so a
// connection per stream (the tcp transport) competes for the same queue
// as streams multiplexed over one connection.
//
// What it does not model: loss and the congestion control that reacts to
// it (the relay terminates TCP on each side, so each endpoint's TCP sees a
// loopback path and the link is full from the first round trip: only
// windows that span the link, such as a multiplexer's stream windows, feel
// the delay), and the handshake of a connection, which is not delayed.

// Path is one direction of an emulated link: a bottleneck that sends Rate
// bytes a second out of a queue of at most Buffer bytes, then a
// propagation delay.
type Path struct {
	Delay time.Duration // one-way propagation delay, at least 0
	Rate  float64       // bottleneck rate in bytes per second, above 0
	// Buffer is the bottleneck's queue in bytes. 0: one bandwidth-delay
	// product of the link (Rate × the round trip), the rule of thumb for a
	// router's buffer and what fills when a sender's window exceeds the
	// link's.
	Buffer int64
}

// LinkConfig is an emulated link's two directions.
type LinkConfig struct {
	Forward Path // client to server
	Back    Path // server to client
}

// SymmetricLink returns a link whose directions each have half of rtt as
// their delay, rate, and buffer (0: one bandwidth-delay product).
func SymmetricLink(rtt time.Duration, rate float64, buffer int64) LinkConfig {
	p := Path{Delay: rtt / 2, Rate: rate, Buffer: buffer}
	return LinkConfig{Forward: p, Back: p}
}

// DefaultLink is the link of the wan scenarios: 40 ms round trip, 50 MB/s
// each way, a buffer of one bandwidth-delay product (2 MB): a fast
// continental path.
func DefaultLink() LinkConfig { return SymmetricLink(40*time.Millisecond, 50e6, 0) }

// RTT returns the link's round trip without queueing: the two delays.
func (c LinkConfig) RTT() time.Duration { return c.Forward.Delay + c.Back.Delay }

// withDefaults fills in the buffers left 0.
func (c LinkConfig) withDefaults() LinkConfig {
	for _, p := range []*Path{&c.Forward, &c.Back} {
		if p.Buffer == 0 {
			p.Buffer = int64(p.Rate * c.RTT().Seconds())
		}
	}
	return c
}

// Check reports a link that cannot be emulated.
func (c LinkConfig) Check() error {
	for _, d := range []struct {
		name string
		p    Path
	}{{"forward", c.Forward}, {"back", c.Back}} {
		switch {
		case d.p.Delay < 0:
			return fmt.Errorf("link %s delay %s: must not be negative", d.name, d.p.Delay)
		case !(d.p.Rate > 0) || d.p.Rate > 1e12:
			return fmt.Errorf("link %s rate %g B/s: must be above 0 and at most 1 TB/s", d.name, d.p.Rate)
		case d.p.Buffer < 0:
			return fmt.Errorf("link %s buffer %d: must not be negative", d.name, d.p.Buffer)
		}
	}
	return nil
}

// String describes the link: "40ms RTT, 50 MB/s, 2 MB buffer", and each
// direction if they differ.
func (c LinkConfig) String() string {
	c = c.withDefaults()
	path := func(p Path) string {
		return fmt.Sprintf("%s MB/s, %s MB buffer", format(p.Rate/1e6), format(float64(p.Buffer)/1e6))
	}
	if c.Forward == c.Back {
		return fmt.Sprintf("%s RTT, %s", c.RTT(), path(c.Forward))
	}
	return fmt.Sprintf("%s RTT; forward %s delay, %s; back %s delay, %s",
		c.RTT(), c.Forward.Delay, path(c.Forward), c.Back.Delay, path(c.Back))
}

// Network is what a pair's connections cross: loopback directly
// (Loopback), or an emulated link (Link).
type Network interface {
	// Listen returns a listener for the server's end of connections, and
	// the address a client dials to reach it across the network.
	Listen() (ln net.Listener, addr string, err error)
}

// Loopback is the network of the loopback scenarios: 127.0.0.1, nothing
// in between.
type Loopback struct{}

// Listen listens on a free loopback port, which clients dial directly.
func (Loopback) Listen() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return ln, ln.Addr().String(), nil
}

// NetworkTransport is a Transport that can make its pairs over any
// Network; the wan scenarios need it (OverLink).
type NetworkTransport interface {
	Transport
	NewPairOn(n Network) (Pair, error)
}

// OverLink returns tr with every pair over an emulated link of its own,
// made with cfg and closed with the pair. It fails with ErrUnsupported for
// a transport that is not a NetworkTransport.
func OverLink(tr Transport, cfg LinkConfig) (Transport, error) {
	nt, ok := tr.(NetworkTransport)
	if !ok {
		return nil, fmt.Errorf("%w: %s has no NewPairOn(Network), which an emulated link needs", ErrUnsupported, tr.Name())
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return linkTransport{nt, cfg}, nil
}

type linkTransport struct {
	tr  NetworkTransport
	cfg LinkConfig
}

func (t linkTransport) Name() string { return t.tr.Name() }
func (t linkTransport) Notes() string {
	return t.tr.Notes() + "; over an emulated link: " + t.cfg.String()
}

func (t linkTransport) NewPair() (Pair, error) {
	l := NewLink(t.cfg)
	p, err := t.tr.NewPairOn(l)
	if err != nil {
		l.Close()
		return nil, err
	}
	return linkPair{p, l}, nil
}

// linkPair closes its link with it.
type linkPair struct {
	Pair
	link *Link
}

func (p linkPair) Close() error { return errors.Join(p.Pair.Close(), p.link.Close()) }

// ConnectOn returns the two ends of a new TCP connection across n.
func ConnectOn(n Network) (client, server net.Conn, err error) {
	ln, addr, err := n.Listen()
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	client, err = net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		ln.Close() // ends the Accept
		if a := <-ch; a.c != nil {
			a.c.Close()
		}
		return nil, nil, err
	}
	a := <-ch
	if a.err != nil {
		client.Close()
		return nil, nil, a.err
	}
	return client, a.c, nil
}

// dialTimeout bounds a dial over loopback, which connects at once or not
// at all.
const dialTimeout = 10 * time.Second

// Link is an emulated link (see the top of this file); it is a Network.
// Close it when done: that ends its relay and every connection across it.
type Link struct {
	cfg     LinkConfig
	start   time.Time   // the link's clock: now() is the time since start
	forward *bottleneck // client to server, shared by every connection
	back    *bottleneck // server to client
	chunks  chunkPool
	done    chan struct{}  // closed by Close: every relay goroutine returns
	wg      sync.WaitGroup // counts the relay goroutines; Close waits for them

	mu      sync.Mutex // guards closed, open
	closed  bool
	open    map[*relayedConn]bool // connections being relayed
	relayLn []net.Listener        // the relay's listeners, one per Listen
}

// NewLink starts an emulated link; cfg's zero buffers become one
// bandwidth-delay product. It panics if cfg fails Check: callers check
// configurations where the user gave them.
func NewLink(cfg LinkConfig) *Link {
	if err := cfg.Check(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	l := &Link{cfg: cfg, start: time.Now(), done: make(chan struct{}), open: map[*relayedConn]bool{}}
	l.forward = newBottleneck(cfg.Forward, cfg.RTT())
	l.back = newBottleneck(cfg.Back, cfg.RTT())
	return l
}

// Config returns the link's configuration, buffers filled in.
func (l *Link) Config() LinkConfig { return l.cfg }

// now is the link's clock, monotonic.
func (l *Link) now() time.Duration { return time.Since(l.start) }

// Listen returns a real loopback listener for the server and the address
// of the relay in front of it: a connection dialled there is relayed to
// the listener across the link. Closing the listener closes the relay's.
func (l *Link) Listen() (net.Listener, string, error) {
	server, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		server.Close()
		return nil, "", err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		server.Close()
		relay.Close()
		return nil, "", net.ErrClosed
	}
	l.relayLn = append(l.relayLn, relay)
	l.wg.Add(1)
	l.mu.Unlock()
	go l.acceptLoop(relay, server.Addr().String()) // ends when relay is closed
	return linkListener{server, relay}, relay.Addr().String(), nil
}

type linkListener struct {
	net.Listener
	relay net.Listener
}

func (ln linkListener) Close() error { return errors.Join(ln.Listener.Close(), ln.relay.Close()) }

// acceptLoop relays every connection accepted on relay to target, until
// relay is closed. The connection to the server is made before the next
// accept, so that the server accepts in the order clients dialled.
func (l *Link) acceptLoop(relay net.Listener, target string) {
	defer l.wg.Done()
	for {
		c, err := relay.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", target, dialTimeout)
		if err != nil {
			c.Close()
			continue
		}
		l.relay(c.(*net.TCPConn), s.(*net.TCPConn))
	}
}

// Close ends the link: its listeners, every connection across it, and its
// relay goroutines, which it waits for (they return at once: each waits on
// done or on a socket that Close closed).
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	for _, ln := range l.relayLn {
		ln.Close()
	}
	for rc := range l.open {
		rc.closeSockets()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// relay starts carrying the connection between the client's end c and the
// server's end s: a flow each way, each a reader and a writer goroutine,
// which end when the connection does or the link closes.
func (l *Link) relay(c, s *net.TCPConn) {
	rc := &relayedConn{link: l, client: c, server: s}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	l.open[rc] = true
	l.wg.Add(4)
	l.mu.Unlock()
	rc.flows = 2
	for _, f := range []*flow{newFlow(rc, l.forward, c, s), newFlow(rc, l.back, s, c)} {
		go f.readLoop()
		go f.writeLoop()
	}
}

// relayedConn is one connection across the link: the relay's two sockets.
type relayedConn struct {
	link           *Link
	client, server *net.TCPConn // the relay's ends: accepted from the client, dialled to the server

	mu    sync.Mutex // guards flows
	flows int        // directions still carrying data
}

// flowDone is called by each direction's writer when it ends; after the
// second, the sockets close.
func (rc *relayedConn) flowDone() {
	rc.mu.Lock()
	rc.flows--
	last := rc.flows == 0
	rc.mu.Unlock()
	if last {
		rc.abort()
	}
}

// abort closes both sockets, which ends both directions, and forgets the
// connection.
func (rc *relayedConn) abort() {
	rc.closeSockets()
	rc.link.mu.Lock()
	delete(rc.link.open, rc)
	rc.link.mu.Unlock()
}

func (rc *relayedConn) closeSockets() {
	rc.client.Close()
	rc.server.Close()
}
