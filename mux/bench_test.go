package mux_test

import (
	"context"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/httpstream-go/httpstream/mux"
)

// BenchmarkScenario runs each scenario of `go run ./bench` as a
// sub-benchmark of the same name (BenchmarkScenario/bulk-N, .../hol), on
// this engine and on raw TCP (a connection per stream) in the same run, and
// reports every metric of the report's table for both, and their ratio,
// with b.ReportMetric: "MB/s", "tcp-MB/s", "x-tcp-MB/s". b.N sizes the work
// (see perOp), so ns/op is this engine's time per unit of it; the pair's
// setup is in the time too, which b.N's growth makes noise. `go run ./bench`
// is the full report; these are the fine-grained tool, for a profile or a
// benchstat comparison of one scenario:
//
//	go test -run '^$' -bench 'Scenario/rtt' -benchtime 20000x ./mux
//	go test -run '^$' -bench . -cpuprofile cpu.out ./mux
func BenchmarkScenario(b *testing.B) {
	for _, bm := range perOp {
		s, ok := scenario.Lookup(bm.scenario)
		if !ok {
			b.Fatalf("no scenario %q", bm.scenario)
		}
		b.Run(s.Name, func(b *testing.B) {
			o := scenario.Default()
			// b.N sizes the work; a minimum duration would make every
			// iteration count last a second whatever b.N says.
			o.MinDuration = 0
			bm.size(&o, b.N)
			if bm.bytesPerOp > 0 {
				b.SetBytes(bm.bytesPerOp)
			}
			m, t := runBoth(b, s, o)
			report(b, s, m, t)
		})
	}
}

// perOp says, for each scenario, what one iteration of b.N is.
var perOp = []struct {
	scenario   string
	size       func(o *scenario.Options, n int)
	bytesPerOp int64 // for b.SetBytes, when an op moves bytes
}{
	// One 32 KiB write.
	{"bulk", func(o *scenario.Options, n int) { o.BulkBytes = int64(n) * int64(o.WriteSize) }, 32 << 10},
	// One 32 KiB write, shared by the 16 streams (each moves n×2 KiB).
	{"bulk-N", func(o *scenario.Options, n int) { o.BulkBytes = int64(n) * int64(o.WriteSize) }, 32 << 10},
	// One echo (after 100 warm-up echoes).
	{"rtt", func(o *scenario.Options, n int) { o.EchoRounds = n }, 0},
	// One open, accept, one-byte echo and close.
	{"open", func(o *scenario.Options, n int) { o.Opens = n }, 0},
	// One echo period (1ms) of echo under bulk.
	{"interactive", func(o *scenario.Options, n int) { o.Interactive = time.Duration(n) * o.EchoEvery }, 0},
	// One idle stream opened and held.
	{"mem", func(o *scenario.Options, n int) { o.IdleStreams = n }, 0},
	// One 32 KiB write on the stream that must get past the stalled one.
	{"hol", func(o *scenario.Options, n int) { o.HOLBytes = int64(n) * int64(o.WriteSize) }, 32 << 10},
	// One 32 KiB write, every allocation counted.
	{"allocs", func(o *scenario.Options, n int) { o.AllocsBytes = int64(n) * int64(o.WriteSize) }, 32 << 10},
}

var (
	// The mem scenario holds b.N streams at once, past the default limit.
	muxTransport = scenario.Mux{Config: &mux.Config{MaxConcurrentStreams: 1 << 20}}
	tcpTransport = scenario.TCP{}
)

// runBoth runs s on TCP, off the clock, then on this engine, on the clock.
func runBoth(b *testing.B, s scenario.Scenario, o scenario.Options) (m, t map[string]float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	b.StopTimer()
	t, err := s.Run(ctx, tcpTransport, o)
	if err != nil {
		b.Fatalf("tcp: %v", err)
	}
	b.StartTimer()
	m, err = s.Run(ctx, muxTransport, o)
	if err != nil {
		b.Fatalf("mux: %v", err)
	}
	b.StopTimer()
	return m, t
}

// report reports the table's metrics of s for both transports and their
// ratio. hol's pass/fail is not a number to report: a head-of-line block is
// a failure of the benchmark.
func report(b *testing.B, s scenario.Scenario, m, t map[string]float64) {
	for _, metric := range s.Metrics {
		name := metric.Name
		if name == scenario.Pass {
			if m[name] != 1 {
				b.Fatalf("%s: the second stream was blocked behind the stalled one", s.Name)
			}
			continue
		}
		v, ok := m[name]
		if !ok {
			continue // not measured (stack-B/stream without goroutines per stream)
		}
		b.ReportMetric(v, name)
		b.ReportMetric(t[name], "tcp-"+name)
		if t[name] > 0 && v > 0 {
			b.ReportMetric(v/t[name], "x-tcp-"+name)
		}
	}
}
