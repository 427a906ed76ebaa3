package scenario

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/mux"
)

// fakeReport is a report as Run would make it, without running anything:
// two transports, three reps, a failure, a pass/fail, a metric measured as
// zero everywhere and one measured below zero.
func fakeReport() *Report {
	cfg := mux.Config{MaxStreamWindow: 1 << 20}
	meta := NewMeta("test report", "go run ./bench -quick", 3, true, []Transport{Mux{Config: &cfg}, TCP{}})
	meta.Started = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	meta.ElapsedSeconds = 42
	r := &Report{
		Meta:       meta,
		Options:    Quick(),
		Transports: []TransportInfo{{"httpstream", "the engine"}, {"tcp", "a connection per stream"}},
		Scenarios:  All,
		Median: map[string]map[string]map[string]float64{
			"bulk": {"httpstream": {"MB/s": 2000}, "tcp": {"MB/s": 4000}},
			"rtt": {
				"httpstream": latencyMetrics(microseconds(2, 100), nil),
				"tcp":        latencyMetrics(microseconds(1, 100), nil),
			},
			"mem": {
				"httpstream": {"heap-B/stream": -81.92, "goroutines/stream": 0},
				"tcp":        {"heap-B/stream": 660, "goroutines/stream": 0},
			},
			"hol": {"httpstream": {"pass": 1, "MB/s": 1500}, "tcp": {"pass": 0}},
		},
		Failures: map[string]map[string]string{"open": {"httpstream": "open 3: <stuck>"}},
	}
	for rep, v := range []float64{1500, 2000, 2500} {
		r.Runs = append(r.Runs,
			RunRecord{Scenario: "bulk", Transport: "httpstream", Rep: rep + 1, Metrics: map[string]float64{"MB/s": v}},
			RunRecord{Scenario: "bulk", Transport: "tcp", Rep: rep + 1, Metrics: map[string]float64{"MB/s": 4000}})
	}
	r.Median["open"] = map[string]map[string]float64{"tcp": {"opens/s": 10000}}
	return r
}

// microseconds returns n samples: step, 2×step, ... µs.
func microseconds(step, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = time.Duration((i+1)*step) * time.Microsecond
	}
	return s
}

func TestTableReadsCold(t *testing.T) {
	var b bytes.Buffer
	fakeReport().WriteTable(&b)
	out := b.String()
	t.Log("\n" + out)
	for _, tc := range []struct {
		name      string
		want      []string
		wantNot   []string
		inOneLine bool // every string of want on one line of the table
	}{
		{name: "the header says when, on what Go and how many CPUs",
			want: []string{"2026-12-01 09:30 UTC", "go1.", "GOMAXPROCS=", "CPUs"}},
		{name: "the header says how many reps, and -quick",
			want: []string{"3 runs of each case, median shown; -quick"}},
		{name: "the header gives the mux Config, with what was set marked",
			want: []string{"mux.Config: MaxFrameSize 32 KiB", "MaxStreamWindow 1 MiB*", "(* set, the rest DefaultConfig)"}},
		{name: "a higher-is-better metric has an up arrow", inOneLine: true,
			want: []string{"bulk", "MB/s", "↑", "2000", "4000", "0.50x"}},
		{name: "a lower-is-better metric has a down arrow", inOneLine: true,
			want: []string{"rtt", "p99-us", "↓", "198", "99", "2.00x"}},
		{name: "the latency distribution stays out of the table",
			wantNot: []string{"p99.9-us", "p100-us"}},
		{name: "a metric zero on every transport is left out",
			wantNot: []string{"goroutines/stream"}},
		{name: "a metric no transport reported is left out",
			wantNot: []string{"stack-B/stream"}},
		{name: "a value below zero reads as noise, with no ratio", inOneLine: true,
			want: []string{"mem", "heap-B/stream", "~0", "660", "-"}, wantNot: []string{"-81.92", "-0.12x"}},
		{name: "pass and fail are words, with no ratio", inOneLine: true,
			want: []string{"hol", "pass", "PASS", "FAIL", "-"}},
		{name: "a failed transport shows FAIL, and the error under the table", inOneLine: true,
			want: []string{"open", "opens/s", "FAIL", "10000"}},
		{name: "the error of a failure is printed",
			want: []string{"FAILED open on httpstream: open 3: <stuck>"}},
		{name: "the legend says how to read arrows and ratios",
			want: []string{"↑ higher is better, ↓ lower is better", "X/tcp is X's median over tcp's"}},
		{name: "every transport is described",
			want: []string{"httpstream  the engine", "tcp         a connection per stream"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inOneLine {
				if !anyLineHasAll(out, tc.want) {
					t.Errorf("no line has all of %q", tc.want)
				}
			} else {
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("missing %q", w)
					}
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("has %q", w)
				}
			}
		})
	}
}

// anyLineHasAll reports whether one line of out has every field of want,
// in order, as whole fields.
func anyLineHasAll(out string, want []string) bool {
	for _, line := range strings.Split(out, "\n") {
		fields, i := strings.Fields(line), 0
		for _, f := range fields {
			if i < len(want) && f == want[i] {
				i++
			}
		}
		if i == len(want) {
			return true
		}
	}
	return false
}

func TestColumnsAlignArrowsAndNumbers(t *testing.T) {
	var b bytes.Buffer
	writeColumns(&b, [][]string{
		{"scenario", "metric", "", "httpstream", "tcp"},
		{"bulk", "MB/s", "↑", "2000", "4000"},
		{"interactive", "bulk-MB/s", "↓", "1", "12.5"},
	}, 3)
	want := "scenario     metric        httpstream   tcp\n" +
		"bulk         MB/s       ↑        2000  4000\n" +
		"interactive  bulk-MB/s  ↓           1  12.5\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {2000, "2000"}, {1234.6, "1235"}, {12.34, "12.3"}, {2.125, "2.12"},
		{-81.92, "-81.9"}, {3e6, "3000000"}, {0.08, "0.08"},
	} {
		if got := format(tc.v); got != tc.want {
			t.Errorf("format(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestRatioSpreadComesFromTheRuns(t *testing.T) {
	r := fakeReport()
	for _, rw := range r.rows() {
		if rw.scenario.Name != "bulk" {
			continue
		}
		c := rw.cells[0]
		if c.ratio != 0.5 || c.lo != 1500.0/4000 || c.hi != 2500.0/4000 {
			t.Errorf("bulk ratio %v from %v to %v; want 0.5 from 0.375 to 0.625", c.ratio, c.lo, c.hi)
		}
		if !math.IsNaN(rw.cells[1].ratio) {
			t.Errorf("the baseline has a ratio to itself: %v", rw.cells[1].ratio)
		}
		return
	}
	t.Fatal("no bulk row")
}

func TestConfigSettings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    *mux.Config
		field  string
		value  string
		change bool
	}{
		{"nil is every default", nil, "MaxFrameSize", "32 KiB", false},
		{"a zero field takes its default", &mux.Config{}, "MaxStreamWindow", "16 MiB", false},
		{"a set size is in its unit, and marked", &mux.Config{MaxFrameSize: 1500}, "MaxFrameSize", "1500 B", true},
		{"a negative duration is off", &mux.Config{KeepAliveInterval: -1}, "KeepAliveInterval", "off", true},
		{"a negative limit is off", &mux.Config{UnsentLimit: -1}, "UnsentLimit", "off", true},
		{"no idle timeout is none", nil, "IdleTimeout", "none", false},
		{"a count is a number", nil, "MaxConcurrentStreams", "8192", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range ConfigSettings(tc.cfg) {
				if s.Name == tc.field {
					if s.Value != tc.value || s.Changed != tc.change {
						t.Errorf("%s = %q changed=%v, want %q changed=%v", s.Name, s.Value, s.Changed, tc.value, tc.change)
					}
					return
				}
			}
			t.Errorf("no %s", tc.field)
		})
	}
	for _, s := range ConfigSettings(nil) {
		if s.Name == "Logger" {
			t.Error("the Logger is not a setting to print")
		}
	}
}

func TestJSONCarriesMetadataAndUnits(t *testing.T) {
	b, err := json.Marshal(fakeReport())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Meta struct {
			GoVersion      string    `json:"go_version"`
			GOMAXPROCS     int       `json:"gomaxprocs"`
			Reps           int       `json:"reps"`
			Quick          bool      `json:"quick"`
			Started        time.Time `json:"started"`
			ElapsedSeconds float64   `json:"elapsed_seconds"`
			MuxConfig      []Setting `json:"mux_config"`
		} `json:"meta"`
		Options   map[string]any `json:"options"`
		Scenarios []struct {
			Metrics []struct{ Name, Better string } `json:"metrics"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	m := got.Meta
	if m.GoVersion == "" || m.GOMAXPROCS == 0 || m.Reps != 3 || !m.Quick || m.Started.IsZero() || m.ElapsedSeconds != 42 || len(m.MuxConfig) == 0 {
		t.Errorf("meta = %+v", m)
	}
	if got.Options["min_duration_seconds"] != 0.25 || got.Options["timeout_seconds"] != 60.0 || got.Options["interactive_seconds"] != 0.5 {
		t.Errorf("options durations are not in seconds: %v", got.Options)
	}
	if better := got.Scenarios[0].Metrics[0].Better; better != "higher" {
		t.Errorf("bulk MB/s better = %q, want higher", better)
	}
}

// The JSON is the whole report: read back, it prints the same table.
func TestJSONRoundTrip(t *testing.T) {
	r := fakeReport()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Options != r.Options {
		t.Errorf("options %+v, want %+v", back.Options, r.Options)
	}
	var want, got bytes.Buffer
	r.WriteTable(&want)
	back.WriteTable(&got)
	if got.String() != want.String() {
		t.Errorf("read back, the table is\n%s\nwant\n%s", got.String(), want.String())
	}
}

func TestHTMLIsSelfContainedAndWellFormed(t *testing.T) {
	var b bytes.Buffer
	if err := fakeReport().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, external := range []string{"<script", "<link", "src=", "href=", "url(", "@import"} {
		if strings.Contains(page, external) {
			t.Errorf("the page fetches something: %q", external)
		}
	}
	for _, want := range []string{
		"test report", "GOMAXPROCS=", "MaxStreamWindow 1 MiB*", // the header
		`aria-label="ratio to tcp per scenario"`, // the bars
		`aria-label="rtt latency by percentile"`, // a latency chart
		"open 3: &lt;stuck&gt;",                  // an escaped failure
	} {
		if !strings.Contains(page, want) {
			t.Errorf("missing %q", want)
		}
	}
	// Every chart is well-formed XML, which a browser's SVG parser needs.
	svgs := 0
	for rest := page; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatal("an <svg> is not closed")
		}
		dec := xml.NewDecoder(strings.NewReader(rest[i : i+j+len("</svg>")]))
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("svg %d: %v", svgs, err)
			}
		}
		svgs++
		rest = rest[i+j:]
	}
	// The bars and rtt's latency; interactive has no data, so no chart.
	if svgs != 2 {
		t.Errorf("%d charts, want 2", svgs)
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       Options
		wantErr bool
	}{
		{"the defaults", Default(), false},
		{"quick", Quick(), false},
		{"no minimum duration", Options{Timeout: time.Second}, false},
		{"a bound under four minimum durations", Options{MinDuration: time.Second, Timeout: 3 * time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Check(); (err != nil) != tc.wantErr {
				t.Errorf("Check() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
