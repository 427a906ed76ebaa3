package scenario

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommandChecksEveryFlagBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(*Options) error
		wantErr bool
		mention string // what the error must name for the user to fix it
	}{
		{name: "no flags is the full report", args: nil},
		{name: "-quick with one rep", args: []string{"-quick", "-reps", "1"}},
		{name: "-reps 0 is an error", args: []string{"-reps", "0"}, wantErr: true, mention: "-reps 0"},
		{name: "negative -reps is an error", args: []string{"-reps", "-2"}, wantErr: true, mention: "-reps -2"},
		{name: "a -reps that is not a number is an error", args: []string{"-reps", "x"}, wantErr: true, mention: "-reps"},
		{name: "a stray argument is an error, not the end of the flags",
			args: []string{"-quick", "extra", "-reps", "1"}, wantErr: true, mention: `"extra -reps 1"`},
		{name: "an unknown scenario is an error", args: []string{"-scenarios", "bulk,nope"}, wantErr: true, mention: "nope"},
		{name: "an unknown flag is an error", args: []string{"-fast"}, wantErr: true, mention: "-fast"},
		{name: "-json into a missing directory fails at once",
			args: []string{"-json", filepath.Join(dir, "missing", "r.json")}, wantErr: true, mention: "-json"},
		{name: "-html onto a directory fails at once", args: []string{"-html", dir}, wantErr: true, mention: "-html"},
		{name: "writable -json and -html", args: []string{"-json", out + ".json", "-html", out + ".html"}},
		{name: "the command's own check runs", args: []string{"-quick"},
			check: func(*Options) error { return errors.New("-frame-size 1: out of range") }, wantErr: true, mention: "-frame-size"},
		{name: "options the command sets are checked",
			check: func(o *Options) error { o.Timeout = time.Second; return nil }, wantErr: true, mention: "minimum duration"},
		{name: "a wan run must fit in the bound of a run", args: []string{"-scenarios", "wan-bulk"},
			check: func(o *Options) error { o.MinDuration, o.Timeout = 0, 6*time.Second; return nil }, wantErr: true, mention: "wan run"},
		{name: "a wan run's bound is not checked when none runs", args: []string{"-scenarios", "bulk"},
			check: func(o *Options) error { o.MinDuration, o.Timeout = 0, 6*time.Second; return nil }},
		{name: "a link with no rate is an error", args: []string{"-wan-rate", "0"}, wantErr: true, mention: "-wan-rate"},
		{name: "a negative round trip is an error", args: []string{"-wan-rtt", "-1ms"}, wantErr: true, mention: "-wan-rtt"},
		{name: "a negative buffer is an error", args: []string{"-wan-buffer", "-1"}, wantErr: true, mention: "-wan-buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCommand("test", "about\n")
			err := c.Parse(tc.args, tc.check)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse(%q) = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not name %q", err, tc.mention)
			}
			if err == nil {
				if err := c.WriteFiles(fakeReport()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// The writable case made both files, complete.
	for _, name := range []string{out + ".json", out + ".html"} {
		if b, err := os.ReadFile(name); err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

func TestCommandOptionsFollowQuick(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Options
	}{
		{nil, Default()},
		{[]string{"-quick"}, Quick()},
	} {
		c := NewCommand("test", "")
		if err := c.Parse(tc.args, nil); err != nil {
			t.Fatal(err)
		}
		if c.Options != tc.want {
			t.Errorf("%q: options %+v, want %+v", tc.args, c.Options, tc.want)
		}
		for _, s := range c.Scenarios {
			if s.WAN {
				t.Errorf("%q: %s runs by default, but a wan scenario runs only when named", tc.args, s.Name)
			}
		}
		if len(c.Scenarios) != len(All)-3 {
			t.Errorf("%q: %d scenarios, want all %d but the 3 wan ones", tc.args, len(c.Scenarios), len(All)-3)
		}
	}
}

func TestHelpDescribesToolAndColumns(t *testing.T) {
	c := NewCommand("test", "test: what the tool is.\n")
	if err := c.Parse([]string{"-h"}, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h = %v, want flag.ErrHelp", err)
	}
	var b bytes.Buffer
	c.Usage(&b)
	help := b.String()
	for _, want := range []string{
		"test: what the tool is.",
		"-reps", "-quick", "-json", "-html", // the flags
		"↑ higher is better, ↓ lower is better", "<transport>/tcp", // the columns
		"hol", "heap-B/stream ↓", "MB/s ↑", // the scenarios and metrics
		"Sizes, full and with -quick",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("-h does not say %q", want)
		}
	}
}

func TestWANScenariosRunWhenNamed(t *testing.T) {
	for _, tc := range []struct {
		list string
		want []string
	}{
		{"", []string{"bulk", "bulk-N", "rtt", "open", "interactive", "mem", "hol", "allocs"}},
		{"wan", []string{"wan-bulk", "wan-bulk-N", "wan-interactive"}},
		{"rtt,wan-interactive", []string{"rtt", "wan-interactive"}},
		{"bulk, wan", []string{"bulk", "wan-bulk", "wan-bulk-N", "wan-interactive"}},
	} {
		got, err := Select(tc.list)
		if err != nil {
			t.Fatalf("Select(%q): %v", tc.list, err)
		}
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		if strings.Join(names, ",") != strings.Join(tc.want, ",") {
			t.Errorf("Select(%q) = %v, want %v", tc.list, names, tc.want)
		}
	}
}

func TestWANFlagsMakeTheLink(t *testing.T) {
	c := NewCommand("test", "")
	if err := c.Parse([]string{"-wan-rtt", "100ms", "-wan-rate", "12.5", "-wan-buffer", "500000"}, nil); err != nil {
		t.Fatal(err)
	}
	want := Path{Delay: 50 * time.Millisecond, Rate: 12.5e6, Buffer: 500000}
	if l := c.Options.Link; l.Forward != want || l.Back != want {
		t.Errorf("link %+v, want %+v each way", l, want)
	}
}
