// Command bench is the loopback benchmark report of httpstream: every
// scenario of package bench/scenario run on this library's engine and on
// raw TCP doing the same work (a TCP connection per stream), in one run,
// interleaved, so that machine noise hits both alike. The table shows the
// median of the runs of each, and their ratio.
//
//	go run ./bench                 # full report, about a minute on 2 cores
//	go run ./bench -quick          # smaller: about 15 seconds
//	go run ./bench -scenarios bulk,rtt -reps 5 -json out.json
//	go run ./bench -quick -html report.html   # the same as one page with charts
//	go run ./bench -scenarios wan             # over an emulated 40 ms, 50 MB/s link
//	go run ./bench -sweep queue-target        # latency against throughput per QueueTarget
//	go run ./bench -sweep max-window          # latency against throughput per MaxStreamWindow
//	go run ./bench -h              # the flags, and how to read the table
//
// Progress goes to stderr, the table to stdout. Every scenario is bounded in
// time: a stuck run is reported as a failure, not a hang. Every flag is
// checked, and the output files created, before anything runs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

const about = `bench: the loopback benchmark report of httpstream.

Runs every scenario on this library's engine (streams multiplexed over one
TCP connection) and on raw TCP doing the same work with a TCP connection per
stream, over 127.0.0.1, interleaved run by run so that machine noise hits
both alike, and prints one table: the median of each, and their ratio.
Progress goes to stderr, the table to stdout. Exit status 1 if a run failed
(an error, or no progress within the bound of a run), 2 for a bad command
line. bench/peers runs the same scenarios on yamux, smux and Kubernetes'
SPDY stack as well.

Usage: go run ./bench [flags]
`

func main() {
	cmd, cfg, sw, err := parseArgs(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		cmd.Usage(os.Stdout)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n(go run ./bench -h lists the flags)\n", err)
		os.Exit(2)
	}
	transports := []scenario.Transport{scenario.Mux{Config: &cfg}, scenario.WebSocket{Config: &cfg}, scenario.TCP{}}
	command := strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " ")
	meta := scenario.NewMeta("httpstream loopback report", command, cmd.Reps(), cmd.Quick(), transports)
	if sw != nil {
		transports, meta = sw.transports(cfg), sw.meta(cfg, command, cmd)
	}
	rep := scenario.Run(meta, cmd.Scenarios, transports, cmd.Options, os.Stderr)
	if sw != nil {
		rep.Sweep = sw.report()
	}
	// The files first: they hold every run, and a closed stdout (a pipe
	// into head) must not lose them.
	status := 0
	if err := cmd.WriteFiles(rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		status = 1
	}
	rep.WriteTable(os.Stdout)
	if rep.Failed() {
		status = 1
	}
	os.Exit(status)
}

// parseArgs defines the flags, parses args and checks them all, the common
// ones (scenario.Command) and the mux.Config ones, which it returns as the
// Config the httpstream transport runs with, and -sweep, which it returns
// if set.
func parseArgs(args []string) (*scenario.Command, mux.Config, *sweep, error) {
	cmd := scenario.NewCommand("bench", about)
	fs := cmd.Flags
	frameSize := fs.Int("frame-size", 0, fmt.Sprintf("mux Config.MaxFrameSize, %d to %d (0: the default, %d)", frame.MinMaxFrameSize, frame.MaxLength, mux.DefaultMaxFrameSize))
	initWindow := fs.Uint64("initial-window", 0, fmt.Sprintf("mux Config.InitialStreamWindow, at most %d (0: the default, %d)", frame.MaxWindow, mux.DefaultInitialStreamWindow))
	maxWindow := fs.Uint64("max-window", 0, fmt.Sprintf("mux Config.MaxStreamWindow, at most %d (0: the default, %d)", frame.MaxWindow, mux.DefaultMaxStreamWindow))
	queueTarget := fs.Duration("queue-target", 0, "mux Config.QueueTarget, the queue auto-tuning lets a bulk stream build while others receive (0: automatic; negative: none, every stream sized as if alone)")
	unsent := fs.Int("unsent-limit", 0, fmt.Sprintf("mux Config.UnsentLimit (0: the default, %d; negative: off)", mux.DefaultUnsentLimit))
	sweepName := fs.String("sweep", "", "run "+sweepScenarios+" (or the -scenarios named) on the engine at each of several values of one\n"+
		"mux.Config field, tcp beside them, and print the frontier: the echo's latency against the bulk stream's rate, per value\n"+
		"(-html: as a chart). One of: "+sweepNames())
	var cfg mux.Config
	var sw *sweep
	err := cmd.Parse(args, func(*scenario.Options) error {
		var err error
		if cfg, err = muxConfig(*frameSize, *initWindow, *maxWindow, *unsent, *queueTarget); err != nil || *sweepName == "" {
			return err
		}
		named := false
		fs.Visit(func(f *flag.Flag) { named = named || f.Name == "scenarios" })
		if !named {
			cmd.Scenarios, _ = scenario.Select(sweepScenarios)
		}
		sw, err = lookupSweep(*sweepName, cfg, cmd.Scenarios)
		return err
	})
	return cmd, cfg, sw, err
}

// muxConfig checks the Config flags against the protocol's limits, so that
// a value the engine would refuse (or a window that does not fit in 32
// bits, which a conversion would silently wrap) fails before anything runs.
func muxConfig(frameSize int, initWindow, maxWindow uint64, unsent int, queueTarget time.Duration) (mux.Config, error) {
	switch {
	case frameSize != 0 && (frameSize < frame.MinMaxFrameSize || frameSize > frame.MaxLength):
		return mux.Config{}, fmt.Errorf("-frame-size %d: must be 0 (the default) or %d to %d", frameSize, frame.MinMaxFrameSize, frame.MaxLength)
	case initWindow > frame.MaxWindow:
		return mux.Config{}, fmt.Errorf("-initial-window %d: must be at most %d", initWindow, frame.MaxWindow)
	case maxWindow > frame.MaxWindow:
		return mux.Config{}, fmt.Errorf("-max-window %d: must be at most %d", maxWindow, frame.MaxWindow)
	}
	return mux.Config{
		MaxFrameSize:        frameSize,
		InitialStreamWindow: uint32(initWindow),
		MaxStreamWindow:     uint32(maxWindow),
		UnsentLimit:         unsent,
		QueueTarget:         queueTarget,
	}, nil
}
