package mux_test

import (
	"context"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/httpstream-go/httpstream/mux"
)

// The benchmarks run a scenario of bench/scenario on this engine and on raw
// TCP (a connection per stream) in the same run, and report both and their
// ratio with b.ReportMetric. They are sized by b.N where the scenario allows.
// `go run ./bench` is the full report; these are the fine-grained tool:
//
//	go test -run '^$' -bench . -benchtime 2000x ./mux

var (
	muxTransport = scenario.Mux{Config: &mux.Config{MaxConcurrentStreams: 1 << 20}}
	tcpTransport = scenario.TCP{}
)

func runBoth(b *testing.B, s func(context.Context, scenario.Transport, scenario.Options) (map[string]float64, error), o scenario.Options) (m, t map[string]float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	b.StopTimer()
	t, err := s(ctx, tcpTransport, o)
	if err != nil {
		b.Fatalf("tcp: %v", err)
	}
	b.StartTimer()
	m, err = s(ctx, muxTransport, o)
	if err != nil {
		b.Fatalf("mux: %v", err)
	}
	return m, t
}

func report(b *testing.B, m, t map[string]float64, metric, unit string, higherIsBetter bool) {
	b.ReportMetric(m[metric], unit)
	b.ReportMetric(t[metric], "tcp-"+unit)
	if t[metric] > 0 {
		b.ReportMetric(m[metric]/t[metric], "x-tcp-"+unit)
	}
}

func BenchmarkBulk(b *testing.B) {
	o := scenario.Default()
	o.BulkBytes = int64(b.N) * int64(o.WriteSize)
	b.SetBytes(int64(o.WriteSize))
	m, t := runBoth(b, scenario.Bulk, o)
	report(b, m, t, "MB/s", "MB/s", true)
}

func BenchmarkBulk16Streams(b *testing.B) {
	o := scenario.Default()
	o.BulkBytes = int64(b.N) * int64(o.WriteSize)
	b.SetBytes(int64(o.WriteSize))
	m, t := runBoth(b, scenario.BulkN, o)
	report(b, m, t, "MB/s", "MB/s", true)
}

func BenchmarkEcho64(b *testing.B) {
	o := scenario.Default()
	o.EchoRounds = b.N
	m, t := runBoth(b, scenario.RTT, o)
	report(b, m, t, "p50-us", "p50-us", false)
	report(b, m, t, "p99-us", "p99-us", false)
}

func BenchmarkOpenEchoClose(b *testing.B) {
	o := scenario.Default()
	o.Opens = b.N
	m, t := runBoth(b, scenario.Open, o)
	report(b, m, t, "opens/s", "opens/s", true)
}

func BenchmarkInteractiveUnderBulk(b *testing.B) {
	o := scenario.Default()
	o.Interactive = time.Duration(b.N) * o.EchoEvery
	m, t := runBoth(b, scenario.Interactive, o)
	report(b, m, t, "p99-us", "p99-us", false)
	report(b, m, t, "bulk-MB/s", "bulk-MB/s", true)
}

func BenchmarkIdleStreamMemory(b *testing.B) {
	o := scenario.Default()
	o.IdleStreams = max(b.N, 100)
	m, t := runBoth(b, scenario.Mem, o)
	report(b, m, t, "heap-B/stream", "heap-B/stream", false)
}

func BenchmarkAllocsPerMiB(b *testing.B) {
	o := scenario.Default()
	o.BulkBytes = max(int64(b.N)*int64(o.WriteSize), 8<<20)
	m, t := runBoth(b, scenario.Allocs, o)
	report(b, m, t, "B/MiB", "B/MiB", false)
	report(b, m, t, "allocs/MiB", "allocs/MiB", false)
}
