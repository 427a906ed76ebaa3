// Command peers is the loopback benchmark report of httpstream side by side
// with other stream multiplexers: every scenario of package bench/scenario
// run on this library's engine, hashicorp/yamux, xtaci/smux, the Kubernetes
// SPDY stack and raw TCP doing the same work (a TCP connection per stream),
// in one run, interleaved run by run, so that machine noise hits all alike.
// The table shows the median of the runs of each, and its ratio to TCP.
//
//	cd bench/peers && go run .     # full report, about 5 minutes on 2 cores
//	go run . -quick                # smaller: about a minute
//	go run . -scenarios bulk,hol -reps 5 -json out.json
//	go run . -html peers.html      # the same as one page with charts
//	go run . -scenarios wan        # over an emulated 40 ms, 50 MB/s link
//	go run . -h                    # the flags, and how to read the table
//
// It is a module of its own so that the root module stays free of
// dependencies; it reaches the engine through a replace of the root.
// Progress goes to stderr, the table to stdout. Every scenario is bounded in
// time: a stuck run is reported as a failure, not a hang. Every flag is
// checked, and the output files created, before anything runs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
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

const about = `peers: the loopback benchmark report of httpstream beside other multiplexers.

Runs every scenario of go run ./bench on this library's engine, on
hashicorp/yamux, xtaci/smux and the Kubernetes SPDY stack (k8s.io/streaming
over moby/spdystream), each on its default configuration over one TCP
connection, and on raw TCP doing the same work with a connection per stream,
over 127.0.0.1, interleaved run by run so that machine noise hits all alike.
It prints one table: the median of each, and its ratio to TCP. Progress goes
to stderr, the table to stdout. Exit status 1 if a run failed (an error, or
no progress within the bound of a run), 2 for a bad command line.

Usage: cd bench/peers && go run . [flags]
`

func main() {
	cmd, transports, err := parseArgs(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		cmd.Usage(os.Stdout)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "peers: %v\n(go run . -h lists the flags)\n", err)
		os.Exit(2)
	}
	meta := scenario.NewMeta("httpstream peers loopback report", strings.Join(append([]string{"go run ."}, os.Args[1:]...), " "),
		cmd.Reps(), cmd.Quick(), transports)
	meta.Modules = moduleVersions()
	rep := scenario.Run(meta, cmd.Scenarios, transports, cmd.Options, os.Stderr)
	// The files first: they hold every run, and a closed stdout (a pipe
	// into head) must not lose them.
	status := 0
	if err := cmd.WriteFiles(rep); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		status = 1
	}
	rep.WriteTable(os.Stdout)
	if rep.Failed() {
		status = 1
	}
	os.Exit(status)
}

// parseArgs defines the flags, parses args and checks them all, the common
// ones (scenario.Command) and this command's, and returns the transports to
// run.
func parseArgs(args []string) (*scenario.Command, []scenario.Transport, error) {
	cmd := scenario.NewCommand("peers", about)
	fs := cmd.Flags
	trNames := fs.String("transports", "", "comma-separated transports to run (default all: "+strings.Join(transportNames(allTransports()), ",")+"); tcp always runs")
	timeout := fs.Duration("timeout", 0, fmt.Sprintf("bound of every scenario run, the same for all transports (0: %s, with -quick %s)", defaultTimeout, quickTimeout))
	var transports []scenario.Transport
	err := cmd.Parse(args, func(o *scenario.Options) error {
		switch {
		case *timeout < 0:
			return fmt.Errorf("-timeout %s: must not be negative", *timeout)
		case *timeout > 0:
			o.Timeout = *timeout
		case cmd.Quick():
			o.Timeout = quickTimeout
		default:
			o.Timeout = defaultTimeout
		}
		var err error
		transports, err = selectTransports(*trNames)
		return err
	})
	return cmd, transports, err
}

// allTransports lists the transports in column order, the baseline last.
func allTransports() []scenario.Transport {
	return []scenario.Transport{
		scenario.Mux{},       // the default Config, as in the root report
		scenario.WebSocket{}, // the same engine in the WebSocket tunnel
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
			return nil, fmt.Errorf("-transports: unknown transport %q (have %s)", name, strings.Join(transportNames(all), ","))
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

// moduleVersions returns the versions of the peer modules this binary was
// built with, for the report's header.
func moduleVersions() []string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	var versions []string
	for _, d := range info.Deps {
		if slices.Contains(peerModules, d.Path) {
			versions = append(versions, d.Path+" "+d.Version)
		}
	}
	return versions
}
