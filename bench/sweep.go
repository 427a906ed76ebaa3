package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/httpstream-go/httpstream/mux"
)

// sweep is a mux.Config field that -sweep varies, and the values it runs.
type sweep struct {
	name   string // the -sweep value, which is also the field's own flag
	field  string // the mux.Config field
	values []int64
	def    int64 // the field's default, one of values
	set    func(c *mux.Config, v int64)
	isSet  func(c mux.Config) bool // the field's own flag set it too
	format func(v int64) string    // a value, as the report shows it
}

// sweeps lists what -sweep can vary. QueueTarget is what trades the echo's
// wait behind a bulk stream on the same connection against the bulk
// stream's rate: auto-tuning keeps about that much queue on the path while
// other streams receive. From 100 µs to 10 ms, the automatic target, and
// none (every stream sized as if alone). MaxStreamWindow caps the window
// whatever the target: from the initial window (no growth) to the
// default, doubling.
var sweeps = []sweep{{
	name:   "queue-target",
	field:  "QueueTarget",
	values: []int64{int64(100 * time.Microsecond), int64(200 * time.Microsecond), int64(500 * time.Microsecond), int64(time.Millisecond), int64(2 * time.Millisecond), int64(3 * time.Millisecond), int64(5 * time.Millisecond), int64(10 * time.Millisecond), 0, -1},
	def:    0,
	set:    func(c *mux.Config, v int64) { c.QueueTarget = time.Duration(v) },
	isSet:  func(c mux.Config) bool { return c.QueueTarget != 0 },
	format: func(v int64) string {
		switch {
		case v == 0:
			return "auto"
		case v < 0:
			return "none"
		}
		return time.Duration(v).String()
	},
}, {
	name:   "max-window",
	field:  "MaxStreamWindow",
	values: []int64{256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20},
	def:    mux.DefaultMaxStreamWindow,
	set:    func(c *mux.Config, v int64) { c.MaxStreamWindow = uint32(v) },
	isSet:  func(c mux.Config) bool { return c.MaxStreamWindow != 0 },
	format: scenario.FormatBytes,
}}

// sweepScenarios runs when -scenarios does not say otherwise.
const sweepScenarios = "interactive,wan-interactive"

func sweepNames() string {
	var names []string
	for _, s := range sweeps {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

// lookupSweep checks a -sweep against the rest of the command line: the
// field is not also set by its own flag, and every scenario has a latency
// to plot against the bulk stream's rate.
func lookupSweep(name string, cfg mux.Config, scenarios []scenario.Scenario) (*sweep, error) {
	i := slices.IndexFunc(sweeps, func(s sweep) bool { return s.name == name })
	if i < 0 {
		return nil, fmt.Errorf("-sweep %q: unknown (have %s)", name, sweepNames())
	}
	sw := &sweeps[i]
	if sw.isSet(cfg) {
		return nil, fmt.Errorf("-sweep %s and -%s both set %s", name, name, sw.field)
	}
	for _, s := range scenarios {
		if _, ok := s.Metric(scenario.FrontierX); !ok {
			return nil, fmt.Errorf("-sweep runs scenarios with a bulk stream beside the one it times (interactive, wan-interactive), not %s", s.Name)
		}
	}
	return sw, nil
}

// transports returns the engine on base at each value, named by the value,
// and tcp last, the reference.
func (sw *sweep) transports(base mux.Config) []scenario.Transport {
	var trs []scenario.Transport
	for _, v := range sw.values {
		cfg := base
		sw.set(&cfg, v)
		trs = append(trs, scenario.Mux{Config: &cfg, Label: sw.format(v)})
	}
	return append(trs, scenario.TCP{})
}

// meta describes the sweep's run: base as its Config, with the swept field
// marked.
func (sw *sweep) meta(base mux.Config, command string, cmd *scenario.Command) scenario.Meta {
	m := scenario.NewMeta("httpstream frontier of "+sw.field, command, cmd.Reps(), cmd.Quick(), []scenario.Transport{scenario.Mux{Config: &base}})
	for i := range m.MuxConfig {
		if m.MuxConfig[i].Name == sw.field {
			var vs []string
			for _, v := range sw.values {
				vs = append(vs, sw.format(v))
			}
			m.MuxConfig[i].Value = strings.Join(vs, ", ")
			m.MuxConfig[i].Changed = true
		}
	}
	return m
}

// report marks rep as this sweep's.
func (sw *sweep) report() *scenario.Sweep {
	return &scenario.Sweep{Setting: sw.field, Default: sw.format(sw.def)}
}
