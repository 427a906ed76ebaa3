// Package scenario holds the workloads of the benchmark report, written
// once against a small interface so that `go run ./bench` (this library
// against raw TCP) and bench/peers (other multiplexers) measure exactly the
// same work. A Transport makes connected client/server pairs; each scenario
// drives one pair and returns numbers, never asserting on time.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Stream is one bidirectional stream. Close must let the peer read what was
// written and then io.EOF (a half-close for multiplexers, a full close for
// TCP); both ends call it when done.
type Stream interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// Pair is one connection between a client and a server, over which the
// client opens streams and the server accepts them. For raw TCP, every
// stream is a TCP connection of its own.
type Pair interface {
	Open() (Stream, error)
	Accept() (Stream, error)
	Close() error
}

// Transport makes Pairs over loopback.
type Transport interface {
	Name() string
	NewPair() (Pair, error)
	// Notes says what the transport cannot do or does differently (no flow
	// control, say), for the report.
	Notes() string
}

// ErrStuck reports that a scenario made no progress within its bound: the
// report shows it as a failure instead of hanging.
var ErrStuck = errors.New("scenario made no progress within its time bound")

// Options size the scenarios. Zero fields take the defaults of Default().
type Options struct {
	BulkBytes   int64         // bytes moved by bulk and bulk-N (in total)
	WriteSize   int           // bytes per Write in bulk scenarios
	Streams     int           // streams of bulk-N
	EchoRounds  int           // round trips of rtt
	EchoSize    int           // bytes per echo in rtt and interactive
	Interactive time.Duration // how long interactive runs
	EchoEvery   time.Duration // echo period in interactive
	Opens       int           // open+echo+close cycles of open
	IdleStreams int           // streams held open by mem
	HOLBytes    int64         // bytes the second stream must move in hol
	Timeout     time.Duration // bound of every scenario
}

// Default returns the full-size options; Quick about a tenth of them.
func Default() Options {
	return Options{
		BulkBytes:   512 << 20,
		WriteSize:   32 << 10,
		Streams:     16,
		EchoRounds:  20000,
		EchoSize:    64,
		Interactive: 2 * time.Second,
		EchoEvery:   time.Millisecond,
		Opens:       20000,
		IdleStreams: 5000,
		HOLBytes:    64 << 20,
		Timeout:     60 * time.Second,
	}
}

// Quick returns options about ten times smaller than Default.
func Quick() Options {
	o := Default()
	o.BulkBytes /= 10
	o.EchoRounds /= 10
	o.Interactive /= 4
	o.Opens /= 10
	o.IdleStreams /= 10
	o.HOLBytes /= 8
	return o
}

func (o Options) withDefaults() Options {
	d := Default()
	orDefault(&o.BulkBytes, d.BulkBytes)
	orDefault(&o.WriteSize, d.WriteSize)
	orDefault(&o.Streams, d.Streams)
	orDefault(&o.EchoRounds, d.EchoRounds)
	orDefault(&o.EchoSize, d.EchoSize)
	orDefault(&o.Interactive, d.Interactive)
	orDefault(&o.EchoEvery, d.EchoEvery)
	orDefault(&o.Opens, d.Opens)
	orDefault(&o.IdleStreams, d.IdleStreams)
	orDefault(&o.HOLBytes, d.HOLBytes)
	orDefault(&o.Timeout, d.Timeout)
	return o
}

func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Result is what one run of one scenario measured. Metrics maps a metric
// name (see each scenario) to its value; higher or lower is better as the
// scenario says.
type Result struct {
	Scenario string
	Metrics  map[string]float64
	Err      error
}

// Scenario is one workload.
type Scenario struct {
	Name string
	// Primary is the metric the report's ratio column uses.
	Primary string
	// HigherIsBetter says how to read Primary.
	HigherIsBetter bool
	Run            func(ctx context.Context, tr Transport, o Options) (map[string]float64, error)
}

// All lists the scenarios in report order.
var All = []Scenario{
	{Name: "bulk", Primary: "MB/s", HigherIsBetter: true, Run: Bulk},
	{Name: "bulk-N", Primary: "MB/s", HigherIsBetter: true, Run: BulkN},
	{Name: "rtt", Primary: "p50-us", Run: RTT},
	{Name: "open", Primary: "opens/s", HigherIsBetter: true, Run: Open},
	{Name: "interactive", Primary: "p99-us", Run: Interactive},
	{Name: "mem", Primary: "heap-B/stream", Run: Mem},
	{Name: "hol", Primary: "pass", HigherIsBetter: true, Run: HOL},
	{Name: "allocs", Primary: "B/MiB", Run: Allocs},
}

// Names lists the scenarios' names, comma-separated, in report order.
func Names() string {
	names := make([]string, len(All))
	for i, s := range All {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// Select returns the scenarios named in a comma-separated list, or All for
// an empty list.
func Select(list string) ([]Scenario, error) {
	if list == "" {
		return All, nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		s, ok := Lookup(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, Names())
		}
		out = append(out, s)
	}
	return out, nil
}

// Lookup returns the scenario named name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range All {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// RunOne runs scenario s once on tr, bounded by o.Timeout.
func RunOne(s Scenario, tr Transport, o Options) Result {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	m, err := s.Run(ctx, tr, o)
	return Result{Scenario: s.Name, Metrics: m, Err: err}
}

// openPair makes a pair and closes it when ctx ends, so that any stuck
// Read or Write returns: a scenario never outlives its bound.
func openPair(ctx context.Context, tr Transport) (Pair, func(), error) {
	p, err := tr.NewPair()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: new pair: %w", tr.Name(), err)
	}
	stop := context.AfterFunc(ctx, func() { p.Close() })
	return p, func() { stop(); p.Close() }, nil
}

// stuck turns an error seen after ctx ended into ErrStuck.
func stuck(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ErrStuck, err)
	}
	return err
}

// streamPair opens a stream on p and accepts it on the other side.
func streamPair(p Pair) (client, server Stream, err error) {
	type accepted struct {
		s   Stream
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		s, err := p.Accept()
		ch <- accepted{s, err}
	}()
	c, err := p.Open()
	a := <-ch
	if err != nil {
		return nil, nil, fmt.Errorf("open: %w", err)
	}
	if a.err != nil {
		return nil, nil, fmt.Errorf("accept: %w", a.err)
	}
	return c, a.s, nil
}

// LoopbackTCP returns the two ends of a new TCP connection over 127.0.0.1.
func LoopbackTCP() (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	client, err = net.Dial("tcp", ln.Addr().String())
	a := <-ch
	if err != nil {
		if a.c != nil {
			a.c.Close()
		}
		return nil, nil, err
	}
	if a.err != nil {
		client.Close()
		return nil, nil, a.err
	}
	return client, a.c, nil
}
