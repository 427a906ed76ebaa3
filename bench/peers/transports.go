package main

import (
	"errors"

	"github.com/hashicorp/yamux"
	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/xtaci/smux"
)

// Yamux is hashicorp/yamux on its DefaultConfig over one loopback TCP
// connection.
type Yamux struct{}

// Name returns "yamux".
func (Yamux) Name() string { return "yamux" }

// Notes gives the defaults that shape the numbers.
func (Yamux) Notes() string {
	return "DefaultConfig: 256 KiB stream window, fixed; a frame may carry a whole window; " +
		"accept backlog 256; keepalive 30s; write timeout 10s; no stream limit"
}

// NewPair starts a yamux client and server over a loopback connection.
func (t Yamux) NewPair() (scenario.Pair, error) { return t.NewPairOn(scenario.Loopback{}) }

// NewPairOn starts a yamux client and server over a connection across n.
func (Yamux) NewPairOn(n scenario.Network) (scenario.Pair, error) {
	a, b, err := scenario.ConnectOn(n)
	if err != nil {
		return nil, err
	}
	server, err := yamux.Server(b, nil)
	if err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	client, err := yamux.Client(a, nil)
	if err != nil {
		server.Close()
		a.Close()
		return nil, err
	}
	return &yamuxPair{client: client, server: server}, nil
}

type yamuxPair struct {
	client, server *yamux.Session
}

// Open opens a stream; a yamux.Stream already is a scenario.Stream (its
// Close half-closes, and it has per-stream deadlines).
func (p *yamuxPair) Open() (scenario.Stream, error) { return p.client.OpenStream() }

func (p *yamuxPair) Accept() (scenario.Stream, error) { return p.server.AcceptStream() }

// Close closes both sessions, which closes the connection and every stream.
func (p *yamuxPair) Close() error {
	return errors.Join(p.client.Close(), p.server.Close())
}

// Smux is xtaci/smux on its DefaultConfig (protocol version 1) over one
// loopback TCP connection.
type Smux struct{}

// Name returns "smux".
func (Smux) Name() string { return "smux" }

// Notes gives the defaults that shape the numbers.
func (Smux) Notes() string {
	return "DefaultConfig, protocol v1: no per-stream flow control, one 4 MiB receive buffer " +
		"per session (an unread stream stalls all: hol FAILs); 32 KiB frames; keepalive 10s, " +
		"timeout 30s; no stream limit; Close is CloseWrite"
}

// NewPair starts a smux client and server over a loopback connection.
func (t Smux) NewPair() (scenario.Pair, error) { return t.NewPairOn(scenario.Loopback{}) }

// NewPairOn starts a smux client and server over a connection across n.
func (Smux) NewPairOn(n scenario.Network) (scenario.Pair, error) {
	a, b, err := scenario.ConnectOn(n)
	if err != nil {
		return nil, err
	}
	server, err := smux.Server(b, nil)
	if err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	client, err := smux.Client(a, nil)
	if err != nil {
		server.Close()
		a.Close()
		return nil, err
	}
	return &smuxPair{client: client, server: server}, nil
}

type smuxPair struct {
	client, server *smux.Session
}

func (p *smuxPair) Open() (scenario.Stream, error) {
	s, err := p.client.OpenStream()
	if err != nil {
		return nil, err
	}
	return smuxStream{s}, nil
}

func (p *smuxPair) Accept() (scenario.Stream, error) {
	s, err := p.server.AcceptStream()
	if err != nil {
		return nil, err
	}
	return smuxStream{s}, nil
}

// Close closes both sessions, which closes the connection and every stream.
func (p *smuxPair) Close() error {
	return errors.Join(p.client.Close(), p.server.Close())
}

// smuxStream makes Close a half-close, as the scenarios expect: the peer
// reads what was written, then io.EOF, and this side may still read. smux
// frees the stream once both sides have sent FIN and the data is read.
type smuxStream struct {
	*smux.Stream
}

func (s smuxStream) Close() error { return s.CloseWrite() }
