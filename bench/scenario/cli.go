package scenario

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Command is the command line that `go run ./bench` and bench/peers share:
// their common flags, the checks that run before any scenario does, the -h
// text, and the -json and -html files. Each command adds its own flags to
// Flags before Parse.
type Command struct {
	// Flags holds the common flags; a command adds its own.
	Flags *flag.FlagSet
	// Scenarios and Options are set by Parse: the scenarios to run, and
	// Default() or Quick() as -quick says, as the command's check left them.
	Scenarios []Scenario
	Options   Options

	about              string
	quick              bool
	scenarios          string
	reps               int
	jsonPath, htmlPath string
	jsonFile, htmlFile *os.File
	wanRTT             time.Duration
	wanRate            float64 // MB/s
	wanBuffer          int64
}

// NewCommand defines the common flags. about opens the -h text: what the
// command is and how it is run.
func NewCommand(name, about string) *Command {
	c := &Command{Flags: flag.NewFlagSet(name, flag.ContinueOnError), about: about}
	fs := c.Flags
	// Parse reports errors itself, in one line; -h prints the whole text.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVar(&c.quick, "quick", false, "about ten times smaller counts, and runs of at least a quarter second instead of one")
	fs.StringVar(&c.scenarios, "scenarios", "", "comma-separated scenarios to run (default: "+Names(false)+"); "+
		Names(true)+" run over an emulated WAN link when named, or all of them as "+wanGroup)
	fs.IntVar(&c.reps, "reps", 3, "runs of each scenario on each transport, at least 1; the table shows the median")
	fs.StringVar(&c.jsonPath, "json", "", "also write the report as JSON to this file: every run, the medians, the metadata")
	fs.StringVar(&c.htmlPath, "html", "", "also write the report as one self-contained HTML page to this file: ratio bars, latency distributions, the table")
	d := DefaultLink()
	fs.DurationVar(&c.wanRTT, "wan-rtt", d.RTT(), "round trip of the wan scenarios' emulated link, half each way")
	fs.Float64Var(&c.wanRate, "wan-rate", d.Forward.Rate/1e6, "rate of the emulated link each way, MB/s (10^6 bytes a second)")
	fs.Int64Var(&c.wanBuffer, "wan-buffer", 0, "the emulated link's bottleneck queue each way, bytes (0: one bandwidth-delay product, rate × round trip)")
	return c
}

// Reps returns the -reps flag, once Parse has checked it.
func (c *Command) Reps() int { return c.reps }

// Quick returns the -quick flag.
func (c *Command) Quick() bool { return c.quick }

// Parse parses args and checks everything before anything runs: no
// argument may be left over (a stray word stops flag parsing, so the flags
// after it would be silently ignored), -reps is at least 1, the scenarios
// exist, check (the command's own flags; it may adjust the Options) passes,
// and the Options are sound. Last, it creates the -json and -html files, so
// that an unwritable path fails now rather than after minutes of running.
// It returns flag.ErrHelp for -h.
func (c *Command) Parse(args []string, check func(*Options) error) error {
	if err := c.Flags.Parse(args); err != nil {
		return err
	}
	if c.Flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: this command takes flags only, and flag parsing stopped there, so %q would have been ignored",
			c.Flags.Arg(0), strings.Join(c.Flags.Args(), " "))
	}
	if c.reps < 1 {
		return fmt.Errorf("-reps %d: must be at least 1", c.reps)
	}
	var err error
	if c.Scenarios, err = Select(c.scenarios); err != nil {
		return fmt.Errorf("-scenarios: %w", err)
	}
	c.Options = Default()
	if c.quick {
		c.Options = Quick()
	}
	c.Options.Link = SymmetricLink(c.wanRTT, c.wanRate*1e6, c.wanBuffer)
	if err := c.Options.Link.Check(); err != nil {
		return fmt.Errorf("-wan-rtt, -wan-rate, -wan-buffer: %w", err)
	}
	if check != nil {
		if err := check(&c.Options); err != nil {
			return err
		}
	}
	if err := c.Options.Check(); err != nil {
		return err
	}
	for _, s := range c.Scenarios {
		if s.WAN {
			if err := c.Options.checkWAN(); err != nil {
				return err
			}
			break
		}
	}
	if c.jsonFile, err = create("-json", c.jsonPath); err != nil {
		return err
	}
	if c.htmlFile, err = create("-html", c.htmlPath); err != nil {
		c.jsonFile.Close()
		return err
	}
	return nil
}

// create creates the file of an output flag, if it was given.
func create(flagName, path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return f, nil
}

// WriteFiles writes the report to the -json and -html files Parse created,
// and closes them.
func (c *Command) WriteFiles(r *Report) error {
	var errs []error
	if c.jsonFile != nil {
		b, err := json.MarshalIndent(r, "", "  ")
		if err == nil {
			_, err = c.jsonFile.Write(append(b, '\n'))
		}
		errs = append(errs, err, c.jsonFile.Close())
	}
	if c.htmlFile != nil {
		errs = append(errs, r.WriteHTML(c.htmlFile), c.htmlFile.Close())
	}
	return errors.Join(errs...)
}

// Usage writes the -h text: what the command is, its flags, the columns of
// the table, the scenarios and their metrics, and their sizes.
func (c *Command) Usage(w io.Writer) {
	fmt.Fprint(w, strings.TrimLeft(c.about, "\n"))
	fmt.Fprintln(w, "\nFlags:")
	c.Flags.SetOutput(w)
	c.Flags.PrintDefaults()
	c.Flags.SetOutput(io.Discard)
	fmt.Fprintln(w)
	WriteGuide(w)
}

// WriteGuide explains how to read the report: its columns, each scenario
// and metric, and the sizes of the runs.
func WriteGuide(w io.Writer) {
	base := TCP{}.Name()
	fmt.Fprintf(w, `The table:
  header             date, Go version, GOMAXPROCS, reps, -quick, the bound of a run,
                     and the mux.Config the httpstream transport ran with
  scenario, metric   what was measured; the arrow says which way is better:
                     ↑ higher is better, ↓ lower is better
  <transport>        the median of the -reps runs on that transport
  <transport>/%[1]s    that median over %[1]s's, %[1]s being raw TCP with a connection
                     per stream: 0.80x on an ↑ metric is 20%% less, 2.00x on a ↓
                     metric twice as much (twice the latency, twice the memory)
  PASS, FAIL         hol: whether the second stream got through
  FAIL elsewhere     no run of that scenario on that transport succeeded;
                     the error is printed under the table
  -                  no value, or no ratio to take
  A metric that no transport measured above zero is left out, and a value
  below zero (noise around zero) reads ~0.

Scenarios and their metrics:
`, base)
	for _, s := range All {
		about := s.About
		if s.WAN {
			about += " (runs when named)"
		}
		fmt.Fprintf(w, "  %-15s %s\n", s.Name, about)
		for _, m := range s.Metrics {
			fmt.Fprintf(w, "    %-20s %s\n", m.Name+" "+m.Better.Arrow(), m.About)
		}
		if s.Latency {
			fmt.Fprintln(w, "                         (and the whole latency distribution, which -json and -html show)")
		}
	}
	d, q := Default(), Quick()
	fmt.Fprintf(w, `
Sizes, full and with -quick:
  bulk, bulk-N       at least %s and %s in total, and at least %s and %s of running
  rtt                at least %d and %d echoes of %d B, and at least %s and %s
  open               at least %d and %d cycles, and at least %s and %s
  interactive        %s and %s, an echo every %s
  wan-*              %s and %s, of which the first %s and %s are left out; an echo every %s;
                     the link: %s (-wan-rtt, -wan-rate, -wan-buffer)
  mem                %d and %d idle streams
  hol                at least %s and %s on the second stream, and at least %s and %s
  allocs             %s and %s
  every run          bounded by %s (bench/peers: -timeout); hol gives up at half of it
`,
		FormatBytes(d.BulkBytes), FormatBytes(q.BulkBytes), d.MinDuration, q.MinDuration,
		d.EchoRounds, q.EchoRounds, d.EchoSize, d.MinDuration, q.MinDuration,
		d.Opens, q.Opens, d.MinDuration, q.MinDuration,
		d.Interactive, q.Interactive, d.EchoEvery,
		d.WANDuration, q.WANDuration, d.WANWarmup, q.WANWarmup, d.WANEchoEvery, d.Link,
		d.IdleStreams, q.IdleStreams,
		FormatBytes(d.HOLBytes), FormatBytes(q.HOLBytes), d.MinDuration, q.MinDuration,
		FormatBytes(d.AllocsBytes), FormatBytes(q.AllocsBytes),
		d.Timeout)
}
