package scenario

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/httpstream-go/httpstream/mux"
)

// Meta says what a report ran on and with what: the table's header, the top
// of the HTML page and the "meta" of the JSON, so that a number read cold,
// weeks later, still says where it came from.
type Meta struct {
	Title          string    `json:"title"`
	Command        string    `json:"command"` // how to run it again
	Started        time.Time `json:"started"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	GoVersion      string    `json:"go_version"`
	OS             string    `json:"os"`
	Arch           string    `json:"arch"`
	GOMAXPROCS     int       `json:"gomaxprocs"`
	NumCPU         int       `json:"num_cpu"`
	Reps           int       `json:"reps"` // runs of each case; the table shows their median
	Quick          bool      `json:"quick"`
	Baseline       string    `json:"baseline"` // the transport every ratio divides by
	// MuxConfig is the mux.Config the httpstream transport ran with, every
	// default filled in; nil if no transport was this library's engine.
	MuxConfig []Setting `json:"mux_config,omitempty"`
	// Modules are the versions of other multiplexers' modules (bench/peers).
	Modules []string `json:"modules,omitempty"`
}

// NewMeta fills in what the process knows: the time, Go, the machine, and
// the Config of the first Mux among transports.
func NewMeta(title, command string, reps int, quick bool, transports []Transport) Meta {
	m := Meta{
		Title:      title,
		Command:    command,
		Started:    time.Now().UTC(),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		Reps:       reps,
		Quick:      quick,
		Baseline:   TCP{}.Name(),
	}
	for _, tr := range transports {
		if mt, ok := tr.(Mux); ok {
			m.MuxConfig = ConfigSettings(mt.Config)
			break
		}
	}
	return m
}

// Setting is one field of a mux.Config, as the report shows it.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"` // with its unit: "32 KiB", "30s", "off"
	// Changed says the field was set, not left to its default.
	Changed bool `json:"changed,omitempty"`
}

// byteFields are the mux.Config fields counted in bytes, shown in KiB or
// MiB.
var byteFields = map[string]bool{
	"MaxFrameSize": true, "InitialStreamWindow": true, "MaxStreamWindow": true,
	"MaxSessionWindow": true, "MaxHeaderBytes": true, "UnsentLimit": true,
}

// ConfigSettings lists the fields of c (nil: the defaults) with every zero
// replaced by its default, as mux resolves them. It walks the struct rather
// than naming fields, so that a field added to mux.Config shows in the
// report without anyone remembering to add it here; fields that are not
// numbers, durations, booleans or strings (the Logger) are left out.
func ConfigSettings(c *mux.Config) []Setting {
	var set mux.Config
	if c != nil {
		set = *c
	}
	def := mux.DefaultConfig()
	sv, dv := reflect.ValueOf(set), reflect.ValueOf(def)
	var out []Setting
	for i := range sv.NumField() {
		f := sv.Type().Field(i)
		v, d := sv.Field(i), dv.Field(i)
		if !f.IsExported() {
			continue
		}
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Bool, reflect.String:
		default:
			continue
		}
		changed := !v.IsZero()
		if !changed {
			v = d
		}
		out = append(out, Setting{Name: f.Name, Value: settingValue(f.Name, v), Changed: changed})
	}
	return out
}

// settingValue formats one resolved Config field: durations and sizes with
// their units, and the negative values that mean "off" as such.
func settingValue(name string, v reflect.Value) string {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d := time.Duration(v.Int())
		switch {
		case name == "QueueTarget" && d == 0:
			return "auto"
		case name == "QueueTarget" && d < 0:
			return "none"
		case d < 0:
			return "off"
		case d == 0:
			return "none"
		}
		return d.String()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() < 0 {
			return "off"
		}
		if byteFields[name] {
			return FormatBytes(v.Int())
		}
		return fmt.Sprint(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if byteFields[name] {
			return FormatBytes(int64(v.Uint()))
		}
		return fmt.Sprint(v.Uint())
	}
	return fmt.Sprint(v.Interface())
}

// FormatBytes writes n in MiB or KiB when it is a whole number of them, and
// in bytes otherwise: "16 MiB", "32 KiB", "1500 B".
func FormatBytes(n int64) string {
	switch {
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// headerLines returns the report's header as lines of at most width
// characters after the first: title and date, the run's conditions, the
// Config.
func (m Meta) headerLines(o Options, width int) []string {
	lines := []string{
		fmt.Sprintf("%s, %s UTC, took %s", m.Title, m.Started.Format("2006-01-02 15:04"),
			time.Duration(m.ElapsedSeconds*float64(time.Second)).Round(time.Second)),
		fmt.Sprintf("%s %s/%s, GOMAXPROCS=%d of %d CPUs; %s", m.GoVersion, m.OS, m.Arch, m.GOMAXPROCS, m.NumCPU, m.reps()),
		m.runBounds(o),
	}
	if len(m.Modules) > 0 {
		lines = append(lines, wrap("modules: ", strings.Join(m.Modules, ", "), width)...)
	}
	if m.MuxConfig != nil {
		lines = append(lines, wrap("httpstream mux.Config: ", m.configText(), width)...)
	}
	return lines
}

// headerLines is the Meta's header, and the emulated link if a wan
// scenario ran.
func (r *Report) headerLines(width int) []string {
	lines := r.Meta.headerLines(r.Options, width)
	if l := r.linkLine(); l != "" {
		lines = append(lines[:3:3], append([]string{l}, lines[3:]...)...)
	}
	return lines
}

// linkLine describes the emulated link of the wan scenarios and their
// runs, or is "" if none ran.
func (r *Report) linkLine() string {
	for _, s := range r.Scenarios {
		if s.WAN {
			o := r.Options
			return fmt.Sprintf("wan-*: emulated link %s each way; %s per run, the first %s left out",
				o.Link, o.WANDuration, o.WANWarmup)
		}
	}
	return ""
}

// reps says how many runs each case had and at what size.
func (m Meta) reps() string {
	size := "full size"
	if m.Quick {
		size = "-quick"
	}
	if m.Reps == 1 {
		return "1 run of each case; " + size
	}
	return fmt.Sprintf("%d runs of each case, median shown; %s", m.Reps, size)
}

// runBounds says how long a run lasts at least and at most.
func (m Meta) runBounds(o Options) string {
	s := "each run: "
	if o.MinDuration > 0 {
		s += fmt.Sprintf("at least %s for bulk, bulk-N, rtt, open and hol; ", o.MinDuration)
	}
	return s + fmt.Sprintf("at most %s", o.Timeout)
}

// configText lists the Config as "Name value" pairs; a * marks what was set
// rather than left to its default.
func (m Meta) configText() string {
	parts := make([]string, len(m.MuxConfig))
	for i, s := range m.MuxConfig {
		parts[i] = s.Name + " " + s.Value
		if s.Changed {
			parts[i] += "*"
		}
	}
	text := strings.Join(parts, ", ")
	if m.anyChanged() {
		text += " (* set, the rest DefaultConfig)"
	} else {
		text += " (DefaultConfig)"
	}
	return text
}

func (m Meta) anyChanged() bool {
	for _, s := range m.MuxConfig {
		if s.Changed {
			return true
		}
	}
	return false
}

// wrap breaks text at ", " into lines of at most width characters, the
// first starting with prefix, the rest indented by two spaces.
func wrap(prefix, text string, width int) []string {
	var lines []string
	line := prefix
	for i, part := range strings.SplitAfter(text, ", ") {
		if i > 0 && len(line)+len(strings.TrimSpace(part)) > width {
			lines = append(lines, strings.TrimRight(line, " "))
			line = "  "
		}
		line += part
	}
	return append(lines, line)
}
