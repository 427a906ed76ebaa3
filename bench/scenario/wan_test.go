package scenario

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// loopbackOnly is a transport that cannot run over another network: it
// has no NewPairOn.
type loopbackOnly struct{}

func (loopbackOnly) Name() string           { return "loopback-only" }
func (loopbackOnly) Notes() string          { return "" }
func (loopbackOnly) NewPair() (Pair, error) { return TCP{}.NewPair() }

func TestWANScenarioOnATransportWithoutNetworkIsNotAFailure(t *testing.T) {
	tr := loopbackOnly{}
	s, _ := Lookup("wan-bulk")
	res := RunOne(s, tr, Options{})
	if !errors.Is(res.Err, ErrUnsupported) {
		t.Fatalf("err %v, want ErrUnsupported", res.Err)
	}
	r := Run(Meta{Reps: 1, Baseline: "tcp"}, []Scenario{s}, []Transport{tr}, Options{WANDuration: 300 * time.Millisecond, WANWarmup: 100 * time.Millisecond}, io.Discard)
	if r.Failed() {
		t.Errorf("failures %v", r.Failures)
	}
	var b strings.Builder
	r.WriteTable(&b)
	if !strings.Contains(b.String(), "loopback-only did not run wan-bulk: unsupported") {
		t.Errorf("the table does not say what did not run:\n%s", b.String())
	}
}

func TestWANInteractiveMeasuresTheWaitBehindBulk(t *testing.T) {
	s, _ := Lookup("wan-interactive")
	o := Options{WANDuration: 1500 * time.Millisecond, WANWarmup: 500 * time.Millisecond, Timeout: 20 * time.Second}
	res := RunOne(s, TCP{}, o)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	m := res.Metrics
	t.Logf("tcp over the default link: echo p50 +%.1f ms, p99 +%.1f ms over the RTT, bulk %.1f MB/s", m["p50-added-ms"], m["p99-added-ms"], m["bulk-MB/s"])
	// A connection per stream shares the link's queue: the echo waits
	// behind it (2 MB at 50 MB/s: 40 ms), and the bulk stream fills the
	// link. Generous bounds: the machine is shared.
	if m["p50-added-ms"] < 25 || m["p50-added-ms"] > 70 {
		t.Errorf("p50 added %.1f ms, want about 40 (a full queue)", m["p50-added-ms"])
	}
	if m["bulk-MB/s"] < 30 || m["bulk-MB/s"] > 51 {
		t.Errorf("bulk %.1f MB/s, want about 50", m["bulk-MB/s"])
	}
}
