package main

import (
	"strings"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/mux"
)

func TestConfigFlagsAreCheckedNotTruncated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    mux.Config
		wantErr bool
	}{
		{name: "no flags is the default Config", args: nil},
		{name: "a frame size in range", args: []string{"-frame-size", "1024"}, want: mux.Config{MaxFrameSize: 1024}},
		{name: "the largest frame size", args: []string{"-frame-size", "16777215"}, want: mux.Config{MaxFrameSize: 16777215}},
		{name: "a frame size under the protocol's minimum", args: []string{"-frame-size", "100"}, wantErr: true},
		{name: "a frame size over 24 bits", args: []string{"-frame-size", "16777216"}, wantErr: true},
		{name: "a negative frame size", args: []string{"-frame-size", "-1"}, wantErr: true},
		{name: "the largest window", args: []string{"-initial-window", "2147483647"}, want: mux.Config{InitialStreamWindow: 1<<31 - 1}},
		{name: "a window over 31 bits", args: []string{"-initial-window", "2147483648"}, wantErr: true},
		// uint32(1<<32) is 0, the default: the old flag ran the default
		// while the command line said otherwise.
		{name: "a window that wraps 32 bits", args: []string{"-initial-window", "4294967296"}, wantErr: true},
		{name: "a negative window", args: []string{"-initial-window", "-1"}, wantErr: true},
		{name: "a max window", args: []string{"-max-window", "1048576"}, want: mux.Config{MaxStreamWindow: 1 << 20}},
		{name: "a max window over 31 bits", args: []string{"-max-window", "4294967295"}, wantErr: true},
		{name: "the unsent limit off", args: []string{"-unsent-limit", "-1"}, want: mux.Config{UnsentLimit: -1}},
		{name: "a queue target", args: []string{"-queue-target", "1ms"}, want: mux.Config{QueueTarget: time.Millisecond}},
		{name: "a stray argument after a Config flag", args: []string{"-frame-size", "2048", "1"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, _, err := parseArgs(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseArgs(%q) = %v, want error %v", tc.args, err, tc.wantErr)
			}
			// Field by field: mux.Config may grow fields that are not
			// comparable (a Logger, a hook).
			if err == nil && (cfg.MaxFrameSize != tc.want.MaxFrameSize ||
				cfg.InitialStreamWindow != tc.want.InitialStreamWindow ||
				cfg.MaxStreamWindow != tc.want.MaxStreamWindow ||
				cfg.UnsentLimit != tc.want.UnsentLimit ||
				cfg.QueueTarget != tc.want.QueueTarget) {
				t.Errorf("Config = %+v, want %+v", cfg, tc.want)
			}
		})
	}
}

func TestSweepFlag(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		wantErr   bool
		scenarios []string
		first     string // the first value's name
		def       string // the default's name
	}{
		{name: "no sweep", args: nil},
		{name: "the window sweep runs both interactive scenarios", args: []string{"-sweep", "max-window"},
			scenarios: []string{"interactive", "wan-interactive"}, first: "256 KiB", def: "16 MiB"},
		{name: "the sweep runs the scenarios named", args: []string{"-sweep", "max-window", "-scenarios", "wan-interactive"},
			scenarios: []string{"wan-interactive"}, first: "256 KiB", def: "16 MiB"},
		{name: "a scenario without a bulk stream cannot be swept", args: []string{"-sweep", "max-window", "-scenarios", "rtt"}, wantErr: true},
		{name: "the swept field may not be set too", args: []string{"-sweep", "max-window", "-max-window", "1048576"}, wantErr: true},
		{name: "an unknown sweep", args: []string{"-sweep", "frame-size-ish"}, wantErr: true},
		{name: "the queue-target sweep", args: []string{"-sweep", "queue-target"},
			scenarios: []string{"interactive", "wan-interactive"}, first: "100µs", def: "auto"},
		{name: "the queue target may not be set beside its sweep", args: []string{"-sweep", "queue-target", "-queue-target", "1ms"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, sw, err := parseArgs(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseArgs(%q) = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err != nil || tc.scenarios == nil {
				if err == nil && sw != nil {
					t.Errorf("a sweep without -sweep: %+v", sw)
				}
				return
			}
			var names []string
			for _, s := range cmd.Scenarios {
				names = append(names, s.Name)
			}
			if sw == nil || strings.Join(names, ",") != strings.Join(tc.scenarios, ",") {
				t.Fatalf("sweep %v over %v, want %v", sw, names, tc.scenarios)
			}
			trs := sw.transports(mux.Config{})
			if len(trs) != len(sw.values)+1 || trs[len(trs)-1].Name() != "tcp" || trs[0].Name() != tc.first {
				t.Errorf("transports %v: want one per value, named by it (the first %q), and tcp last", trs, tc.first)
			}
			if sw.report().Default != tc.def {
				t.Errorf("default %q, want %q", sw.report().Default, tc.def)
			}
		})
	}
}
