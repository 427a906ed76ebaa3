package main

import (
	"testing"

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
		{name: "a stray argument after a Config flag", args: []string{"-frame-size", "2048", "1"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg, err := parseArgs(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseArgs(%q) = %v, want error %v", tc.args, err, tc.wantErr)
			}
			// Field by field: mux.Config may grow fields that are not
			// comparable (a Logger, a hook).
			if err == nil && (cfg.MaxFrameSize != tc.want.MaxFrameSize ||
				cfg.InitialStreamWindow != tc.want.InitialStreamWindow ||
				cfg.MaxStreamWindow != tc.want.MaxStreamWindow ||
				cfg.UnsentLimit != tc.want.UnsentLimit) {
				t.Errorf("Config = %+v, want %+v", cfg, tc.want)
			}
		})
	}
}
