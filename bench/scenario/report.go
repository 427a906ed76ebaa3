package scenario

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report holds every run and, per scenario and transport, the median of
// each metric.
type Report struct {
	Options  Options                                  `json:"options"`
	Runs     []RunRecord                              `json:"runs"`
	Median   map[string]map[string]map[string]float64 `json:"median"` // scenario -> transport -> metric
	Failures map[string]map[string]string             `json:"failed,omitempty"`
	order    []Scenario
	trs      []string
	notes    map[string]string
}

// RunRecord is one run of one scenario on one transport.
type RunRecord struct {
	Scenario  string             `json:"scenario"`
	Transport string             `json:"transport"`
	Rep       int                `json:"rep"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	Error     string             `json:"error,omitempty"`
	Seconds   float64            `json:"seconds"`
}

// Run runs each scenario reps times on each transport, interleaving the
// transports run by run, and writes a progress line per run to progress.
func Run(scenarios []Scenario, transports []Transport, o Options, reps int, progress io.Writer) *Report {
	o = o.withDefaults()
	r := &Report{
		Options:  o,
		Median:   map[string]map[string]map[string]float64{},
		Failures: map[string]map[string]string{},
		order:    scenarios,
	}
	r.notes = map[string]string{}
	for _, tr := range transports {
		r.trs = append(r.trs, tr.Name())
		r.notes[tr.Name()] = tr.Notes()
	}
	for _, s := range scenarios {
		all := map[string]map[string][]float64{}
		for rep := 1; rep <= reps; rep++ {
			for _, tr := range transports {
				start := time.Now()
				res := RunOne(s, tr, o)
				run := RunRecord{Scenario: s.Name, Transport: tr.Name(), Rep: rep, Metrics: res.Metrics, Seconds: time.Since(start).Seconds()}
				if res.Err != nil {
					run.Error = res.Err.Error()
					if r.Failures[s.Name] == nil {
						r.Failures[s.Name] = map[string]string{}
					}
					r.Failures[s.Name][tr.Name()] = run.Error
				}
				r.Runs = append(r.Runs, run)
				fmt.Fprintf(progress, "%-12s %-12s run %d/%d  %6.2fs  %s\n", s.Name, tr.Name(), rep, reps, run.Seconds, describe(run))
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
	return r
}

func describe(run RunRecord) string {
	if run.Error != "" {
		return "FAILED: " + run.Error
	}
	keys := make([]string, 0, len(run.Metrics))
	for k := range run.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, format(run.Metrics[k]))
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

// WriteTable writes one row per scenario metric: each transport's median and
// its ratio to the baseline transport.
func (r *Report) WriteTable(w io.Writer, baseline string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\tmetric\t")
	for _, tr := range r.trs {
		fmt.Fprintf(tw, "%s\t", tr)
	}
	for _, tr := range r.trs {
		if tr != baseline {
			fmt.Fprintf(tw, "%s/%s\t", tr, baseline)
		}
	}
	fmt.Fprintln(tw)
	for _, s := range r.order {
		metrics := map[string]bool{}
		for _, m := range r.Median[s.Name] {
			for k := range m {
				metrics[k] = true
			}
		}
		keys := make([]string, 0, len(metrics))
		for k := range metrics {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if (keys[i] == s.Primary) != (keys[j] == s.Primary) {
				return keys[i] == s.Primary
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t", s.Name, k)
			for _, tr := range r.trs {
				if msg, failed := r.Failures[s.Name][tr]; failed && r.Median[s.Name][tr] == nil {
					fmt.Fprintf(tw, "FAIL\t")
					_ = msg
					continue
				}
				v, ok := r.Median[s.Name][tr][k]
				if !ok {
					fmt.Fprint(tw, "-\t")
					continue
				}
				if k == "pass" {
					fmt.Fprintf(tw, "%s\t", map[bool]string{true: "PASS", false: "FAIL"}[v == 1])
					continue
				}
				fmt.Fprintf(tw, "%s\t", format(v))
			}
			base, hasBase := r.Median[s.Name][baseline][k]
			for _, tr := range r.trs {
				if tr == baseline {
					continue
				}
				v, ok := r.Median[s.Name][tr][k]
				if !ok || !hasBase || base <= 0 || v < 0 || k == "pass" {
					fmt.Fprint(tw, "-\t")
					continue
				}
				fmt.Fprintf(tw, "%.2fx\t", v/base)
			}
			fmt.Fprintln(tw)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, tr := range r.trs {
		fmt.Fprintf(w, "%s: %s\n", tr, r.notes[tr])
	}
	for s, m := range r.Failures {
		for tr, msg := range m {
			fmt.Fprintf(w, "\nFAILED %s on %s: %s", s, tr, msg)
		}
	}
	if r.Failed() {
		fmt.Fprintln(w)
	}
}

func format(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e6:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
