// Package scenario holds the workloads of the benchmark report, written
// once against a small interface so that `go run ./bench` (this library
// against raw TCP) and bench/peers (other multiplexers) measure exactly the
// same work. A Transport makes connected client/server pairs; each scenario
// drives one pair and returns numbers, never asserting on time.
//
// The package also makes the report both commands print, from one Report:
// the text table (report.go), the HTML page with its charts (html.go), the
// header of what ran where (meta.go), and the command line they share, its
// checks and its -h text (cli.go).
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
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

// ErrUnsupported reports that a transport cannot run a scenario (the wan
// scenarios need a NetworkTransport): the report shows no value and says
// why, but it is not a failure.
var ErrUnsupported = errors.New("unsupported")

// ErrStuck reports that a scenario made no progress within its bound: the
// report shows it as a failure instead of hanging.
var ErrStuck = errors.New("scenario made no progress within its time bound")

// Options size the scenarios. Zero fields take the defaults of Default(),
// except MinDuration, whose zero means no minimum (as the testing.B
// benchmarks in mux want: there b.N sizes the work).
type Options struct {
	BulkBytes   int64         // bytes moved by bulk and bulk-N (in total), at least
	WriteSize   int           // bytes per Write in bulk scenarios
	Streams     int           // streams of bulk-N
	EchoRounds  int           // round trips of rtt, at least
	EchoSize    int           // bytes per echo in rtt and interactive
	Interactive time.Duration // how long interactive runs
	EchoEvery   time.Duration // echo period in interactive
	Opens       int           // open+echo+close cycles of open, at least
	IdleStreams int           // streams held open by mem
	HOLBytes    int64         // bytes the second stream must move in hol, at least
	AllocsBytes int64         // bytes moved by allocs while it counts
	// MinDuration is how long bulk, bulk-N, rtt, open and hol keep going
	// past their byte or round count: a run of a few tens of milliseconds
	// measures start-up (slow start, window growth, a GC cycle landing or
	// not), and once came out 1.37 times "faster than TCP".
	MinDuration time.Duration
	Timeout     time.Duration // bound of every scenario run

	// Link is the emulated link of the wan scenarios; the zero value is
	// DefaultLink().
	Link LinkConfig
	// WANDuration is how long each run of a wan scenario moves data; the
	// first WANWarmup of it (windows growing, the link's queue filling) is
	// left out of its numbers.
	WANDuration  time.Duration
	WANWarmup    time.Duration
	WANEchoEvery time.Duration // echo period in wan-interactive
}

// Default returns the full-size options; Quick smaller ones.
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
		AllocsBytes: 64 << 20,
		MinDuration: time.Second,
		Timeout:     60 * time.Second,

		Link:         DefaultLink(),
		WANDuration:  5 * time.Second,
		WANWarmup:    time.Second,
		WANEchoEvery: 10 * time.Millisecond,
	}
}

// Quick returns options about ten times smaller than Default in counts (a
// power of two in bytes), and a quarter in durations: a quarter of a second per run is still long enough
// for a loopback transfer to reach its steady state.
func Quick() Options {
	o := Default()
	o.BulkBytes /= 8
	o.EchoRounds /= 10
	o.Interactive /= 4
	o.Opens /= 10
	o.IdleStreams /= 10
	o.HOLBytes /= 8
	o.MinDuration /= 4
	o.WANDuration = 2 * time.Second
	o.WANWarmup = 500 * time.Millisecond
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
	orDefault(&o.AllocsBytes, d.AllocsBytes)
	orDefault(&o.Timeout, d.Timeout)
	o.MinDuration = max(o.MinDuration, 0)
	if o.Link == (LinkConfig{}) {
		o.Link = d.Link
	}
	o.Link = o.Link.withDefaults()
	orDefault(&o.WANDuration, d.WANDuration)
	orDefault(&o.WANWarmup, d.WANWarmup)
	orDefault(&o.WANEchoEvery, d.WANEchoEvery)
	return o
}

func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Check reports options under which a scenario cannot give a fair result:
// hol gives up at half of Timeout, so a run that must last MinDuration
// needs Timeout well above twice that.
func (o Options) Check() error {
	o = o.withDefaults()
	if o.MinDuration > 0 && o.Timeout < 4*o.MinDuration {
		return fmt.Errorf("the bound of a run, %s, is under four times its minimum duration, %s: hol, which gives up at half the bound, could not pass", o.Timeout, o.MinDuration)
	}
	if o.WANWarmup >= o.WANDuration {
		return fmt.Errorf("the warm-up of a wan run, %s, leaves nothing of its %s to measure", o.WANWarmup, o.WANDuration)
	}
	return o.Link.Check()
}

// checkWAN reports options under which a wan run cannot finish within its
// bound: it moves data for WANDuration, then drains the link.
func (o Options) checkWAN() error {
	o = o.withDefaults()
	if o.Timeout < 2*o.WANDuration {
		return fmt.Errorf("the bound of a run, %s, is under twice the length of a wan run, %s", o.Timeout, o.WANDuration)
	}
	return nil
}

// optionsJSON is Options as the JSON report writes them, with their units
// in the names: sizes in bytes, durations in seconds.
type optionsJSON struct {
	BulkBytes          int64   `json:"bulk_bytes"`
	WriteSizeBytes     int     `json:"write_size_bytes"`
	Streams            int     `json:"streams"`
	EchoRounds         int     `json:"echo_rounds"`
	EchoSizeBytes      int     `json:"echo_size_bytes"`
	InteractiveSeconds float64 `json:"interactive_seconds"`
	EchoEverySeconds   float64 `json:"echo_every_seconds"`
	Opens              int     `json:"opens"`
	IdleStreams        int     `json:"idle_streams"`
	HOLBytes           int64   `json:"hol_bytes"`
	AllocsBytes        int64   `json:"allocs_bytes"`
	MinDurationSeconds float64 `json:"min_duration_seconds"`
	TimeoutSeconds     float64 `json:"timeout_seconds"`

	Link                linkJSON `json:"link"`
	WANDurationSeconds  float64  `json:"wan_duration_seconds"`
	WANWarmupSeconds    float64  `json:"wan_warmup_seconds"`
	WANEchoEverySeconds float64  `json:"wan_echo_every_seconds"`
}

// linkJSON and pathJSON are LinkConfig as the JSON report writes it.
type linkJSON struct {
	Forward pathJSON `json:"forward"`
	Back    pathJSON `json:"back"`
}

type pathJSON struct {
	DelaySeconds       float64 `json:"delay_seconds"`
	RateBytesPerSecond float64 `json:"rate_bytes_per_second"`
	BufferBytes        int64   `json:"buffer_bytes"`
}

func toPathJSON(p Path) pathJSON { return pathJSON{p.Delay.Seconds(), p.Rate, p.Buffer} }

func (p pathJSON) path() Path {
	return Path{Delay: seconds(p.DelaySeconds), Rate: p.RateBytesPerSecond, Buffer: p.BufferBytes}
}

// seconds turns seconds read from JSON back into a Duration.
func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// MarshalJSON writes the options with their units in the names: sizes in
// bytes, durations in seconds.
func (o Options) MarshalJSON() ([]byte, error) {
	return json.Marshal(optionsJSON{
		o.BulkBytes, o.WriteSize, o.Streams, o.EchoRounds, o.EchoSize,
		o.Interactive.Seconds(), o.EchoEvery.Seconds(), o.Opens, o.IdleStreams,
		o.HOLBytes, o.AllocsBytes, o.MinDuration.Seconds(), o.Timeout.Seconds(),
		linkJSON{toPathJSON(o.Link.Forward), toPathJSON(o.Link.Back)},
		o.WANDuration.Seconds(), o.WANWarmup.Seconds(), o.WANEchoEvery.Seconds(),
	})
}

// UnmarshalJSON reads what MarshalJSON wrote, so that a saved report can be
// read back and drawn again.
func (o *Options) UnmarshalJSON(b []byte) error {
	var j optionsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*o = Options{
		BulkBytes: j.BulkBytes, WriteSize: j.WriteSizeBytes, Streams: j.Streams,
		EchoRounds: j.EchoRounds, EchoSize: j.EchoSizeBytes,
		Interactive: seconds(j.InteractiveSeconds), EchoEvery: seconds(j.EchoEverySeconds),
		Opens: j.Opens, IdleStreams: j.IdleStreams, HOLBytes: j.HOLBytes, AllocsBytes: j.AllocsBytes,
		MinDuration: seconds(j.MinDurationSeconds), Timeout: seconds(j.TimeoutSeconds),
		Link:        LinkConfig{Forward: j.Link.Forward.path(), Back: j.Link.Back.path()},
		WANDuration: seconds(j.WANDurationSeconds), WANWarmup: seconds(j.WANWarmupSeconds),
		WANEchoEvery: seconds(j.WANEchoEverySeconds),
	}
	return nil
}

// Result is what one run of one scenario measured. Metrics maps a metric
// name (see the scenario's Metrics) to its value.
type Result struct {
	Scenario string
	Metrics  map[string]float64
	Err      error
}

// Better says which way a metric improves.
type Better int

// The two directions of a metric.
const (
	Higher Better = iota + 1 // more is better: throughput, rates
	Lower                    // less is better: latency, memory, allocations
)

// Arrow returns ↑ for Higher and ↓ for Lower, as the table marks metrics.
func (b Better) Arrow() string {
	if b == Higher {
		return "↑"
	}
	return "↓"
}

// MarshalText writes "higher" or "lower", for the JSON report.
func (b Better) MarshalText() ([]byte, error) {
	switch b {
	case Higher:
		return []byte("higher"), nil
	case Lower:
		return []byte("lower"), nil
	}
	return nil, fmt.Errorf("scenario: unknown direction %d", int(b))
}

// UnmarshalText reads "higher" or "lower".
func (b *Better) UnmarshalText(text []byte) error {
	switch string(text) {
	case "higher":
		*b = Higher
	case "lower":
		*b = Lower
	default:
		return fmt.Errorf("scenario: unknown direction %q", text)
	}
	return nil
}

// Metric describes one number a scenario reports: its name, which carries
// its unit ("MB/s", "p99-us"), the way it improves, and a line for -h.
type Metric struct {
	Name   string `json:"name"`
	Better Better `json:"better"`
	About  string `json:"about"`
}

// Pass is the metric of a scenario that passes (1) or fails (0) rather than
// measures; the table shows PASS or FAIL and takes no ratio of it.
const Pass = "pass"

// Scenario is one workload.
type Scenario struct {
	Name  string `json:"name"`
	About string `json:"about"` // what it does, one line for -h
	// Metrics are the numbers the table shows, in its order; the first is
	// the primary one. Run may report more (the latency distribution), which
	// the table leaves out.
	Metrics []Metric `json:"metrics"`
	// Latency says that Run also reports the latency distribution: a metric
	// LatencyMetric(q) for every q in LatencyQuantiles.
	Latency bool `json:"latency,omitempty"`
	// WAN says that the scenario runs over an emulated link (Options.Link)
	// and only when named: a run takes seconds, so the default selection
	// leaves it out.
	WAN bool `json:"wan,omitempty"`
	// Run runs the scenario once on tr, within ctx, and returns its
	// metrics; it never asserts on time.
	Run func(ctx context.Context, tr Transport, o Options) (map[string]float64, error) `json:"-"`
}

// Primary returns the scenario's main metric, the one the HTML report's
// ratio bars lead with.
func (s Scenario) Primary() Metric { return s.Metrics[0] }

// Metric returns the metric of s named name.
func (s Scenario) Metric(name string) (Metric, bool) {
	for _, m := range s.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// LatencyQuantiles are the percentiles of the latency distribution that rtt
// and interactive report, dense in the tail where multiplexers differ; 100
// is the slowest sample.
var LatencyQuantiles = []float64{1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100}

// LatencyMetric names the metric of percentile q of a latency distribution,
// in microseconds: "p50-us", "p99.9-us".
func LatencyMetric(q float64) string { return "p" + strconv.FormatFloat(q, 'f', -1, 64) + "-us" }

// All lists the scenarios in report order.
var All = []Scenario{
	{Name: "bulk", About: "one stream moves data one way as fast as it can, in 32 KiB writes", Run: Bulk,
		Metrics: []Metric{{"MB/s", Higher, "megabytes (10^6) per second, as the receiver saw them"}}},
	{Name: "bulk-N", About: "16 streams move data at once, the same total as bulk", Run: BulkN,
		Metrics: []Metric{{"MB/s", Higher, "the aggregate of the streams, megabytes per second"}}},
	{Name: "rtt", About: "64-byte echoes on one stream, one after the other", Run: RTT, Latency: true,
		Metrics: []Metric{
			{"p50-us", Lower, "median round trip, microseconds"},
			{"p99-us", Lower, "99th percentile round trip, microseconds"},
		}},
	{Name: "open", About: "open a stream, accept it, echo one byte, close both sides; in sequence", Run: Open,
		Metrics: []Metric{{"opens/s", Higher, "cycles per second"}}},
	{Name: "interactive", About: "a 64-byte echo every ms on one stream while another sends bulk", Run: Interactive, Latency: true,
		Metrics: []Metric{
			{"p99-us", Lower, "99th percentile echo, microseconds"},
			{"p50-us", Lower, "median echo, microseconds"},
			{"bulk-MB/s", Higher, "what the bulk stream moved meanwhile, megabytes per second"},
		}},
	{Name: "mem", About: "hold idle streams open; both ends counted", Run: Mem,
		Metrics: []Metric{
			{"heap-B/stream", Lower, "heap bytes per idle stream"},
			{"goroutines/stream", Lower, "goroutines per idle stream (a row only if some transport has any)"},
			{"stack-B/stream", Lower, "stack bytes per idle stream, measured only with goroutines per stream"},
		}},
	{Name: "hol", About: "one stream's reader stops; another stream must still move its data", Run: HOL,
		Metrics: []Metric{
			{Pass, Higher, "PASS if the second stream finished within half the bound of a run"},
			{"MB/s", Higher, "what the second stream moved, megabytes per second"},
		}},
	{Name: "allocs", About: "the whole process's allocations while one stream moves 64 MiB", Run: Allocs,
		Metrics: []Metric{
			{"B/MiB", Lower, "bytes allocated per MiB moved (the scenario's own buffers: 1 KiB)"},
			{"allocs/MiB", Lower, "allocations per MiB moved"},
		}},
	{Name: "wan-bulk", About: "bulk over an emulated WAN link (-wan-rtt, -wan-rate): one stream, 32 KiB writes", Run: WANBulk, WAN: true,
		Metrics: []Metric{{"MB/s", Higher, "megabytes per second after the warm-up, as the receiver saw them"}}},
	{Name: "wan-bulk-N", About: "bulk-N over the emulated WAN link: 16 streams at once", Run: WANBulkN, WAN: true,
		Metrics: []Metric{{"MB/s", Higher, "the aggregate of the streams after the warm-up, megabytes per second"}}},
	{Name: "wan-interactive", About: "over the emulated WAN link: a 64-byte echo every 10 ms on one stream while another sends bulk", Run: WANInteractive, WAN: true, Latency: true,
		Metrics: []Metric{
			{"p99-added-ms", Lower, "99th percentile echo minus the link's round trip: the wait behind the bulk, milliseconds"},
			{"p50-added-ms", Lower, "median echo minus the link's round trip, milliseconds"},
			{"bulk-MB/s", Higher, "what the bulk stream moved meanwhile, megabytes per second"},
		}},
}

// wanGroup is the name that selects every wan scenario.
const wanGroup = "wan"

// Names lists the scenarios' names, comma-separated, in report order: the
// loopback ones (wan false) or the wan ones.
func Names(wan bool) string {
	var names []string
	for _, s := range All {
		if s.WAN == wan {
			names = append(names, s.Name)
		}
	}
	return strings.Join(names, ",")
}

// Select returns the scenarios named in a comma-separated list, where
// "wan" names every wan scenario; for an empty list, every scenario but
// the wan ones.
func Select(list string) ([]Scenario, error) {
	if list == "" {
		return selectWAN(false), nil
	}
	var out []Scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == wanGroup {
			out = append(out, selectWAN(true)...)
			continue
		}
		s, ok := Lookup(name)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (have %s; %s, or %s for all of these)", name, Names(false), Names(true), wanGroup)
		}
		out = append(out, s)
	}
	return out, nil
}

func selectWAN(wan bool) []Scenario {
	var out []Scenario
	for _, s := range All {
		if s.WAN == wan {
			out = append(out, s)
		}
	}
	return out
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
func LoopbackTCP() (client, server net.Conn, err error) { return ConnectOn(Loopback{}) }
