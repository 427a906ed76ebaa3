// Command bench is the loopback benchmark report of httpstream: every
// scenario of package bench/scenario run on this library's engine and on
// raw TCP doing the same work (a TCP connection per stream), in one run,
// interleaved, so that machine noise hits both alike. The table shows the
// median of the runs of each, and their ratio.
//
//	go run ./bench                 # full report, about a minute on 2 cores
//	go run ./bench -quick          # about ten times smaller
//	go run ./bench -scenarios bulk,rtt -reps 5 -json out.json
//
// Progress goes to stderr, the table to stdout. Every scenario is bounded in
// time: a stuck run is reported as a failure, not a hang.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/httpstream-go/httpstream/mux"
)

func main() {
	quick := flag.Bool("quick", false, "run each scenario about ten times smaller")
	names := flag.String("scenarios", "", "comma-separated scenarios to run (default all: "+scenario.Names()+")")
	reps := flag.Int("reps", 3, "runs of each scenario on each transport; the median is shown")
	jsonOut := flag.String("json", "", "write every run and the summary as JSON to this file")
	frameSize := flag.Int("frame-size", 0, "mux Config.MaxFrameSize (0: default)")
	initWindow := flag.Uint("initial-window", 0, "mux Config.InitialStreamWindow (0: default)")
	maxWindow := flag.Uint("max-window", 0, "mux Config.MaxStreamWindow (0: default)")
	unsent := flag.Int("unsent-limit", 0, "mux Config.UnsentLimit (0: default, -1: off)")
	flag.Parse()

	o := scenario.Default()
	if *quick {
		o = scenario.Quick()
	}
	cfg := mux.Config{
		MaxFrameSize:        *frameSize,
		InitialStreamWindow: uint32(*initWindow),
		MaxStreamWindow:     uint32(*maxWindow),
		UnsentLimit:         *unsent,
	}
	transports := []scenario.Transport{scenario.Mux{Config: &cfg}, scenario.TCP{}}
	selected, err := scenario.Select(*names)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	rep := scenario.Run(selected, transports, o, *reps, os.Stderr)
	fmt.Printf("httpstream loopback report  %s  %s/%s  %d CPUs  %s\n\n",
		time.Now().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	rep.WriteTable(os.Stdout, "tcp")
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if rep.Failed() {
		os.Exit(1)
	}
}
