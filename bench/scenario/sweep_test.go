package scenario

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// fakeSweep is a sweep's report as go run ./bench -sweep max-window makes
// it, without running anything: two values and tcp, on both interactive
// scenarios.
func fakeSweep() *Report {
	r := fakeReport()
	r.Sweep = &Sweep{Setting: "MaxStreamWindow", Default: "16 MiB"}
	r.Transports = []TransportInfo{{"1 MiB", "the engine"}, {"16 MiB", "the engine"}, {"tcp", "a connection per stream"}}
	inter, _ := Lookup("interactive")
	wan, _ := Lookup("wan-interactive")
	r.Scenarios = []Scenario{inter, wan}
	r.Median = map[string]map[string]map[string]float64{
		"interactive": {
			"1 MiB":  {"p99-us": 330, "p50-us": 60, "bulk-MB/s": 3000},
			"16 MiB": {"p99-us": 980, "p50-us": 230, "bulk-MB/s": 4000},
			"tcp":    {"p99-us": 80, "p50-us": 26, "bulk-MB/s": 5000},
		},
		"wan-interactive": {
			"1 MiB":  {"p99-added-ms": 12, "p50-added-ms": 2, "bulk-MB/s": 20},
			"16 MiB": {"p99-added-ms": 49, "p50-added-ms": 46, "bulk-MB/s": 50},
			"tcp":    {"p99-added-ms": 42, "p50-added-ms": 40, "bulk-MB/s": 50},
		},
	}
	r.Runs, r.Failures = nil, nil
	return r
}

func TestSweepReadsAsAFrontier(t *testing.T) {
	var b bytes.Buffer
	fakeSweep().WriteTable(&b)
	out := b.String()
	t.Log("\n" + out)
	for _, want := range [][]string{
		{"MaxStreamWindow", "p99-us", "↓", "p50-us", "↓", "bulk-MB/s", "↑", "p99/tcp", "p50/tcp", "bulk/tcp"},
		{"1", "MiB", "330", "60", "3000", "4.12x", "2.31x", "0.60x"},
		{"16", "MiB", "(default)", "980", "230", "4000"},
		{"tcp", "80", "26", "5000", "-", "-", "-"},
		{"MaxStreamWindow", "p99-added-ms", "↓", "p50-added-ms", "↓", "bulk-MB/s", "↑", "p99-added/tcp"},
		{"1", "MiB", "12", "2", "20", "0.29x", "0.05x", "0.40x"},
		{"1", "MiB,", "16", "MiB", "the", "engine"}, // one line for the values' transports
	} {
		if !anyLineHasAll(out, want) {
			t.Errorf("no line has all of %q", want)
		}
	}
	if strings.Contains(out, "httpstream/tcp") {
		t.Error("a sweep prints the table of transports too")
	}
}

func TestSweepPageHasAChartPerScenario(t *testing.T) {
	var b bytes.Buffer
	if err := fakeSweep().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`aria-label="interactive frontier"`, `aria-label="wan-interactive frontier"`, "16 MiB (default)", "Frontier of MaxStreamWindow"} {
		if !strings.Contains(page, want) {
			t.Errorf("missing %q", want)
		}
	}
	for rest := page; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		dec := xml.NewDecoder(strings.NewReader(rest[i : i+j+len("</svg>")]))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("svg: %v", err)
			}
		}
		rest = rest[i+j:]
	}
}

func TestLabelsOfCrowdedPointsDoNotOverlap(t *testing.T) {
	var placed []labelBox
	for range 4 { // four labels at one point
		placed = append(placed, placeLabel(placed, 100, 100, 40, false))
	}
	for i, a := range placed {
		for _, b := range placed[i+1:] {
			if a.y == b.y {
				t.Errorf("two labels on one line: %+v", placed)
			}
		}
	}
}
