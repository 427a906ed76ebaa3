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
		if len(c.Scenarios) != len(All) {
			t.Errorf("%q: %d scenarios, want all", tc.args, len(c.Scenarios))
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
