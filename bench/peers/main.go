// Command peers is the loopback benchmark report of httpstream side by side
// with other stream multiplexers: every scenario of package bench/scenario
// run on this library's engine, hashicorp/yamux, xtaci/smux, the Kubernetes
// SPDY stack and raw TCP doing the same work (a TCP connection per stream),
// in one run, interleaved run by run, so that machine noise hits all alike.
// The table shows the median of the runs of each, and its ratio to TCP.
//
//	cd bench/peers && go run .     # full report, a few minutes on 2 cores
//	go run . -quick                # about ten times smaller
//	go run . -scenarios bulk,hol -reps 5 -json out.json
//
// It is a module of its own so that the root module stays free of
// dependencies; it reaches the engine through a replace of the root.
// Progress goes to stderr, the table to stdout. Every scenario is bounded in
// time: a stuck run is reported as a failure, not a hang.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
	"github.com/httpstream-go/httpstream/mux"
)

// defaultTimeout bounds every scenario run here, for every transport alike.
// The root report's 60s would make each hol run of a peer without flow
// control (smux v1, SPDY) last 30s (hol gives up at half the bound): three
// minutes of the report for two FAILs. 40s still leaves the slowest passing
// run, SPDY's interactive (11 to 18s here: it runs a fixed number of echoes,
// and each waits milliseconds behind the bulk stream), twice its need.
// quickTimeout does the same for -quick, whose SPDY interactive takes 2 to
// 4s.
const (
	defaultTimeout = 40 * time.Second
	quickTimeout   = 10 * time.Second
)

// peerModules are the modules whose versions the report prints.
var peerModules = []string{
	"github.com/hashicorp/yamux",
	"github.com/xtaci/smux",
	"k8s.io/streaming",
	"github.com/moby/spdystream",
}

func main() {
	quick := flag.Bool("quick", false, "run each scenario about ten times smaller")
	names := flag.String("scenarios", "", "comma-separated scenarios to run (default all: "+scenario.Names()+")")
	trNames := flag.String("transports", "", "comma-separated transports to run (default all: "+strings.Join(transportNames(allTransports()), ",")+"); tcp always runs")
	reps := flag.Int("reps", 3, "runs of each scenario on each transport; the median is shown")
	timeout := flag.Duration("timeout", 0, fmt.Sprintf("bound of every scenario run, the same for all transports (0: %s, with -quick %s)", defaultTimeout, quickTimeout))
	jsonOut := flag.String("json", "", "write every run and the summary as JSON to this file")
	flag.Parse()

	o := scenario.Default()
	o.Timeout = defaultTimeout
	if *quick {
		o = scenario.Quick()
		o.Timeout = quickTimeout
	}
	if *timeout > 0 {
		o.Timeout = *timeout
	}
	transports, err := selectTransports(*trNames)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	selected, err := scenario.Select(*names)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(2)
	}
	rep := scenario.Run(selected, transports, o, *reps, os.Stderr)
	fmt.Printf("httpstream peers loopback report  %s  %s/%s  %d CPUs  %s  reps=%d  timeout=%s%s\n\n",
		time.Now().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(),
		*reps, o.Timeout, map[bool]string{true: "  -quick"}[*quick])
	rep.WriteTable(os.Stdout, "tcp")
	writeNotes(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			os.Exit(1)
		}
	}
	if rep.Failed() {
		os.Exit(1)
	}
}

// allTransports lists the transports in column order, the baseline last.
func allTransports() []scenario.Transport {
	return []scenario.Transport{
		scenario.Mux{}, // the default Config, as in the root report
		Yamux{},
		Smux{},
		SPDY{},
		scenario.TCP{},
	}
}

func transportNames(trs []scenario.Transport) []string {
	var n []string
	for _, tr := range trs {
		n = append(n, tr.Name())
	}
	return n
}

func selectTransports(list string) ([]scenario.Transport, error) {
	all := allTransports()
	if list == "" {
		return all, nil
	}
	want := map[string]bool{"tcp": true} // the baseline of every ratio
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(transportNames(all), name) {
			return nil, fmt.Errorf("unknown transport %q (have %s)", name, strings.Join(transportNames(all), ","))
		}
		want[name] = true
	}
	var out []scenario.Transport
	for _, tr := range all {
		if want[tr.Name()] {
			out = append(out, tr)
		}
	}
	return out, nil
}

// writeNotes prints the versions of the peer modules this binary was built
// with (the table already ends with what each transport is).
func writeNotes(w io.Writer) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	var versions []string
	for _, d := range info.Deps {
		if slices.Contains(peerModules, d.Path) {
			versions = append(versions, d.Path+" "+d.Version)
		}
	}
	if len(versions) > 0 {
		fmt.Fprintf(w, "modules: %s\n", strings.Join(versions, ", "))
	}
}
