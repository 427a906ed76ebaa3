package scenario

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Report holds every run and, per scenario and transport, the median of
// each metric. Everything the table and the HTML page show is in its
// exported fields, so its JSON is the whole report.
type Report struct {
	Meta       Meta                                     `json:"meta"`
	Options    Options                                  `json:"options"`
	Transports []TransportInfo                          `json:"transports"` // in column order
	Scenarios  []Scenario                               `json:"scenarios"`  // in row order, with their metrics
	Runs       []RunRecord                              `json:"runs"`
	Median     map[string]map[string]map[string]float64 `json:"median"` // scenario -> transport -> metric
	Failures   map[string]map[string]string             `json:"failed,omitempty"`
	// Unsupported says which transport could not run which scenario, and
	// why (ErrUnsupported): no value, and no failure.
	Unsupported map[string]map[string]string `json:"unsupported,omitempty"`
	// Sweep, if set, makes the report a frontier (sweep.go).
	Sweep *Sweep `json:"sweep,omitempty"`
}

// TransportInfo names a transport of the report and says what it is.
type TransportInfo struct {
	Name  string `json:"name"`
	Notes string `json:"notes"`
}

// RunRecord is one run of one scenario on one transport.
type RunRecord struct {
	Scenario       string             `json:"scenario"`
	Transport      string             `json:"transport"`
	Rep            int                `json:"rep"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	Error          string             `json:"error,omitempty"`
	ElapsedSeconds float64            `json:"elapsed_seconds"`
}

// Run runs each scenario meta.Reps times on each transport, interleaving
// the transports run by run, and writes a progress line per run to
// progress. The report's Meta is meta, with the time the whole run took.
func Run(meta Meta, scenarios []Scenario, transports []Transport, o Options, progress io.Writer) *Report {
	o = o.withDefaults()
	r := &Report{
		Meta:        meta,
		Options:     o,
		Scenarios:   scenarios,
		Median:      map[string]map[string]map[string]float64{},
		Failures:    map[string]map[string]string{},
		Unsupported: map[string]map[string]string{},
	}
	for _, tr := range transports {
		r.Transports = append(r.Transports, TransportInfo{Name: tr.Name(), Notes: tr.Notes()})
	}
	start := time.Now()
	for _, s := range scenarios {
		all := map[string]map[string][]float64{}
		for rep := 1; rep <= meta.Reps; rep++ {
			for _, tr := range transports {
				t0 := time.Now()
				res := RunOne(s, tr, o)
				run := RunRecord{Scenario: s.Name, Transport: tr.Name(), Rep: rep, Metrics: res.Metrics, ElapsedSeconds: time.Since(t0).Seconds()}
				switch {
				case errors.Is(res.Err, ErrUnsupported):
					run.Error = res.Err.Error()
					addNote(r.Unsupported, s.Name, tr.Name(), run.Error)
				case res.Err != nil:
					run.Error = res.Err.Error()
					addNote(r.Failures, s.Name, tr.Name(), run.Error)
				}
				r.Runs = append(r.Runs, run)
				line := describe(s, run)
				if errors.Is(res.Err, ErrUnsupported) {
					line = "not run: " + run.Error
				}
				fmt.Fprintf(progress, "%-15s %-12s run %d/%d  %6.2fs  %s\n", s.Name, tr.Name(), rep, meta.Reps, run.ElapsedSeconds, line)
				if all[tr.Name()] == nil {
					all[tr.Name()] = map[string][]float64{}
				}
				for k, v := range res.Metrics {
					all[tr.Name()][k] = append(all[tr.Name()][k], v)
				}
			}
		}
		r.Median[s.Name] = map[string]map[string]float64{}
		for tr, metrics := range all {
			r.Median[s.Name][tr] = map[string]float64{}
			for k, vs := range metrics {
				r.Median[s.Name][tr][k] = median(vs)
			}
		}
	}
	r.Meta.ElapsedSeconds = time.Since(start).Seconds()
	return r
}

// addNote sets notes[scenario][transport] to msg.
func addNote(notes map[string]map[string]string, scenario, transport, msg string) {
	if notes[scenario] == nil {
		notes[scenario] = map[string]string{}
	}
	notes[scenario][transport] = msg
}

// describe is a run's progress line: its table metrics, or its failure.
func describe(s Scenario, run RunRecord) string {
	if run.Error != "" {
		return "FAILED: " + run.Error
	}
	var b strings.Builder
	for _, m := range s.Metrics {
		if v, ok := run.Metrics[m.Name]; ok {
			fmt.Fprintf(&b, "%s=%s ", m.Name, format(v))
		}
	}
	return b.String()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Failed reports whether any run failed.
func (r *Report) Failed() bool { return len(r.Failures) > 0 }

// A row is one line of the table: one metric of one scenario.
type row struct {
	scenario Scenario
	metric   Metric
	cells    []cell // one per transport, in r.Transports order
}

// A cell is one transport's median of one metric.
type cell struct {
	value  float64
	ok     bool // a run reported it
	failed bool // no run of the scenario on this transport succeeded
	// ratio is value over the baseline's value; NaN where there is none (the
	// baseline's own cell, a pass/fail, a value at or below zero).
	ratio float64
	// lo, hi are the lowest and highest of the runs, over the baseline's
	// median: the spread behind the ratio. NaN with ratio.
	lo, hi float64
}

// rows returns the table's rows: every declared metric of every scenario,
// except those that carry no information. A metric that no transport
// measured above zero (goroutines per idle stream, when none starts any) is
// left out; so is one no transport reported. A pass/fail stays, and so does
// a scenario's primary metric when a transport failed, for the FAIL.
func (r *Report) rows() []row {
	var rows []row
	base := r.Meta.Baseline
	for _, s := range r.Scenarios {
		for mi, m := range s.Metrics {
			rw := row{scenario: s, metric: m}
			keep := false
			for _, tr := range r.Transports {
				c := cell{ratio: math.NaN(), lo: math.NaN(), hi: math.NaN()}
				c.value, c.ok = r.Median[s.Name][tr.Name][m.Name]
				_, failed := r.Failures[s.Name][tr.Name]
				c.failed = failed && r.Median[s.Name][tr.Name] == nil
				switch {
				case c.failed && mi == 0, c.ok && m.Name == Pass, c.ok && c.value > 0:
					keep = true
				}
				b, hasBase := r.Median[s.Name][base][m.Name]
				if c.ok && hasBase && b > 0 && c.value > 0 && m.Name != Pass && tr.Name != base {
					c.ratio = c.value / b
					lo, hi := r.spread(s.Name, tr.Name, m.Name)
					c.lo, c.hi = lo/b, hi/b
				}
				rw.cells = append(rw.cells, c)
			}
			if keep {
				rows = append(rows, rw)
			}
		}
	}
	return rows
}

// spread returns the lowest and highest value of a metric over the
// successful runs of a scenario on a transport.
func (r *Report) spread(scenario, transport, metric string) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, run := range r.Runs {
		if v, ok := run.Metrics[metric]; ok && run.Scenario == scenario && run.Transport == transport && run.Error == "" {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return lo, hi
}

// text is how the table shows a cell.
func (c cell) text(metric string) string {
	switch {
	case c.failed:
		return "FAIL"
	case !c.ok:
		return "-"
	case metric == Pass && c.value == 1:
		return "PASS"
	case metric == Pass:
		return "FAIL"
	case c.value < 0:
		// Every metric is a rate, a time or a cost: below zero it is noise
		// around zero, not a number to compare.
		return "~0"
	}
	return format(c.value)
}

// ratioText is how the table shows a cell's ratio to the baseline.
func (c cell) ratioText() string {
	if math.IsNaN(c.ratio) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", c.ratio)
}

// WriteTable writes the report as text: the header (what ran, where, how),
// one row per scenario metric with each transport's median and its ratio
// to the baseline, a legend, what each transport is, and the failures.
func (r *Report) WriteTable(w io.Writer) {
	for _, l := range r.headerLines(100) {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	if r.Sweep != nil {
		r.writeFrontier(w)
	} else {
		r.writeTransportTable(w)
	}
	fmt.Fprintln(w, "\ntransports:")
	groups := r.transportGroups()
	width := 0
	for _, g := range groups {
		width = max(width, len(g[0]))
	}
	for _, g := range groups {
		fmt.Fprintf(w, "  %-*s  %s\n", width, g[0], g[1])
	}
	for _, g := range r.unsupportedGroups() {
		fmt.Fprintf(w, "\n%s did not run %s: %s\n", g[1], g[0], g[2])
	}
	for _, f := range r.sortedFailures() {
		fmt.Fprintf(w, "\nFAILED %s on %s: %s\n", f[0], f[1], f[2])
	}
}

// transportGroups returns (names, notes) for the transports, those with
// the same notes (a sweep's) named together: "256 KiB, 1 MiB".
func (r *Report) transportGroups() [][2]string {
	var groups [][2]string
	for _, tr := range r.Transports {
		if n := len(groups); n > 0 && groups[n-1][1] == tr.Notes {
			groups[n-1][0] += ", " + tr.Name
			continue
		}
		groups = append(groups, [2]string{tr.Name, tr.Notes})
	}
	return groups
}

// writeTransportTable writes a row per scenario metric and a column per
// transport, then the legend.
func (r *Report) writeTransportTable(w io.Writer) {
	base := r.Meta.Baseline
	head := []string{"scenario", "metric", ""}
	for _, tr := range r.Transports {
		head = append(head, tr.Name)
	}
	for _, tr := range r.Transports {
		if tr.Name != base {
			head = append(head, tr.Name+"/"+base)
		}
	}
	table := [][]string{head}
	for _, rw := range r.rows() {
		line := []string{rw.scenario.Name, rw.metric.Name, rw.metric.Better.Arrow()}
		for _, c := range rw.cells {
			line = append(line, c.text(rw.metric.Name))
		}
		for i, c := range rw.cells {
			if r.Transports[i].Name != base {
				line = append(line, c.ratioText())
			}
		}
		table = append(table, line)
	}
	writeColumns(w, table, 3)

	fmt.Fprintf(w, "\n↑ higher is better, ↓ lower is better. A cell is the median of %s;\n", runs(r.Meta.Reps))
	fmt.Fprintf(w, "X/%s is X's median over %s's (a connection per stream): above 1, X measured more.\n", base, base)
}

// unsupportedGroups lists what did not run as (scenarios, transport,
// reason), the scenarios that one transport could not run for one reason
// together, in report order: "wan-bulk, wan-interactive".
func (r *Report) unsupportedGroups() [][3]string {
	var groups [][3]string
	for _, n := range r.sortedNotes(r.Unsupported) {
		i := slices.IndexFunc(groups, func(g [3]string) bool { return g[1] == n[1] && g[2] == n[2] })
		if i < 0 {
			groups = append(groups, n)
			continue
		}
		groups[i][0] += ", " + n[0]
	}
	return groups
}

// sortedFailures lists the failures as (scenario, transport, error), in
// report order, so that two reports of the same failures read the same.
func (r *Report) sortedFailures() [][3]string { return r.sortedNotes(r.Failures) }

// sortedNotes lists notes (Failures, Unsupported) as (scenario, transport,
// message), in report order.
func (r *Report) sortedNotes(notes map[string]map[string]string) [][3]string {
	var out [][3]string
	for _, s := range r.Scenarios {
		for _, tr := range r.Transports {
			if msg, ok := notes[s.Name][tr.Name]; ok {
				out = append(out, [3]string{s.Name, tr.Name, msg})
			}
		}
	}
	return out
}

// writeColumns writes table with columns two spaces apart, the first
// textCols left-aligned and the rest (numbers) right-aligned. Widths count
// runes, for the arrows.
func writeColumns(w io.Writer, table [][]string, textCols int) {
	var widths []int
	for _, line := range table {
		for i, c := range line {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, line := range table {
		var b strings.Builder
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < textCols {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// format writes a metric's value with three or four significant digits,
// and whole numbers as they are.
func format(v float64) string {
	switch {
	case v == float64(int64(v)) && math.Abs(v) < 1e6:
		return fmt.Sprintf("%d", int64(v))
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
