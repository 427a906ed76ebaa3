package scenario

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// The HTML report is one page with no external resource (no script, font
// or stylesheet to fetch), so that it can be mailed, attached to an issue
// or opened from a CI artifact as it is. Its charts are SVG written here by
// hand: the root module takes nothing outside the standard library.

// palette colours the transports other than the baseline, in column order
// (Okabe and Ito's colour-blind-safe set); the baseline is baselineColour.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#8C6D31"}

const (
	baselineColour = "#6B7280"
	betterColour   = "#1A7F37"
	worseColour    = "#B42318"
	pageWidth      = 1060 // px, the width of the wide charts
)

// esc escapes text for HTML and SVG, both element content and attributes.
func esc(s string) string { return html.EscapeString(s) }

// colour returns the colour of transport i of the report.
func (r *Report) colour(i int) string {
	if r.Transports[i].Name == r.Meta.Baseline {
		return baselineColour
	}
	n := 0
	for j := range i {
		if r.Transports[j].Name != r.Meta.Baseline {
			n++
		}
	}
	return palette[n%len(palette)]
}

// WriteHTML writes the report as one self-contained HTML page: the header,
// each scenario's ratio to the baseline as bars with the spread of the
// runs, the latency distributions of the scenarios that have one, the
// table, what each transport is, and the failures.
func (r *Report) WriteHTML(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:24px auto;max-width:%dpx;padding:0 16px}
h1{font-size:24px;margin:0 0 6px}h2{font-size:19px;margin:28px 0 4px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
p.meta{margin:2px 0;color:#3d444d}p.note{color:#59636e;margin:4px 0 10px;font-size:14px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;padding:1px 4px;border-radius:4px}
svg{display:block;font-family:inherit}svg text{font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:20px}
table{border-collapse:collapse;font-size:13.5px;margin-top:8px}
th,td{padding:3px 10px;border-bottom:1px solid #e5e7eb}th{text-align:right;background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.txt,th.txt{text-align:left}
tr.first td{border-top:2px solid #d0d7de}.better{color:%s}.worse{color:%s}.fail{color:%s;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:14px}dt{font-weight:600}dd{margin:0}
</style></head><body>
`, esc(r.Meta.Title), pageWidth, betterColour, worseColour, worseColour)
	r.htmlHeader(&b)
	if r.Sweep != nil {
		r.htmlFrontier(&b)
	} else {
		r.htmlTransportReport(&b)
	}
	b.WriteString("<h2>Transports</h2>\n<dl>\n")
	for i, tr := range r.Transports {
		fmt.Fprintf(&b, "<dt style=\"color:%s\">%s</dt><dd>%s</dd>\n", r.colour(i), esc(tr.Name), esc(tr.Notes))
	}
	b.WriteString("</dl>\n")
	if gs := r.unsupportedGroups(); len(gs) > 0 {
		b.WriteString("<h2>Not run</h2>\n")
		for _, g := range gs {
			fmt.Fprintf(&b, "<p>%s did not run %s: <code>%s</code></p>\n", esc(g[1]), esc(g[0]), esc(g[2]))
		}
	}
	if fs := r.sortedFailures(); len(fs) > 0 {
		b.WriteString("<h2>Failures</h2>\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "<p><span class=\"fail\">FAILED</span> %s on %s: <code>%s</code></p>\n", esc(f[0]), esc(f[1]), esc(f[2]))
		}
	}
	b.WriteString("</body></html>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// htmlTransportReport writes the body of a report of transports: the ratio
// bars, the latency distributions, the table.
func (r *Report) htmlTransportReport(b *bytes.Buffer) {
	b.WriteString("<h2>Ratio to " + esc(r.Meta.Baseline) + "</h2>\n")
	fmt.Fprintf(b, `<p class="note">Each bar is a transport's median over %[1]s's median (%[1]s: raw TCP, a connection per stream), on a log scale
centred on 1&times;; the thin line through it spans the lowest and highest of %[2]s over the same median.
The arrow says which way is better; the ratio is <span class="better">green</span> where the transport beats %[1]s and
<span class="worse">red</span> where it does worse.</p>
`, esc(r.Meta.Baseline), runs(r.Meta.Reps))
	r.ratioChart(b)
	if r.hasLatency() {
		b.WriteString("<h2>Latency distribution</h2>\n")
		fmt.Fprintf(b, `<p class="note">Round-trip time by percentile, the tail stretched out (each step right is ten times rarer); both scales
logarithmic, lower is better. A point is the median of %s' values of that percentile.</p>
<div class="charts">
`, runs(r.Meta.Reps))
		for _, s := range r.Scenarios {
			if s.Latency {
				r.latencyChart(b, s)
			}
		}
		b.WriteString("</div>\n")
	}
	b.WriteString("<h2>Table</h2>\n")
	r.htmlTable(b)
}

// htmlHeader writes the title and what the report ran on, as the text
// table's header does.
func (r *Report) htmlHeader(b *bytes.Buffer) {
	m := r.Meta
	fmt.Fprintf(b, "<h1>%s</h1>\n", esc(m.Title))
	fmt.Fprintf(b, "<p class=\"meta\">%s UTC, took %s &middot; <code>%s</code></p>\n",
		m.Started.Format("2006-01-02 15:04"), time.Duration(m.ElapsedSeconds*float64(time.Second)).Round(time.Second), esc(m.Command))
	fmt.Fprintf(b, "<p class=\"meta\">%s %s/%s &middot; GOMAXPROCS=%d of %d CPUs &middot; %s</p>\n",
		esc(m.GoVersion), esc(m.OS), esc(m.Arch), m.GOMAXPROCS, m.NumCPU, esc(m.reps()))
	fmt.Fprintf(b, "<p class=\"meta\">%s</p>\n", esc(m.runBounds(r.Options)))
	if l := r.linkLine(); l != "" {
		fmt.Fprintf(b, "<p class=\"meta\">%s</p>\n", esc(l))
	}
	if len(m.Modules) > 0 {
		fmt.Fprintf(b, "<p class=\"meta\">modules: %s</p>\n", esc(strings.Join(m.Modules, ", ")))
	}
	if m.MuxConfig != nil {
		fmt.Fprintf(b, "<p class=\"meta\">httpstream <code>mux.Config</code>: %s</p>\n", esc(m.configText()))
	}
}

// logScale maps values on a logarithmic axis from lo to hi onto pixels
// from p0 to p1.
type logScale struct{ lo, hi, p0, p1 float64 }

func (s logScale) at(v float64) float64 {
	v = min(max(v, s.lo), s.hi)
	return s.p0 + (math.Log(v)-math.Log(s.lo))/(math.Log(s.hi)-math.Log(s.lo))*(s.p1-s.p0)
}

// ticks returns the 1-2-5 values within the axis, or only the powers of ten
// when the axis spans more than three decades, so labels do not collide.
func (s logScale) ticks() []float64 {
	steps := []float64{1, 2, 5}
	if math.Log10(s.hi/s.lo) > 3 {
		steps = []float64{1}
	}
	var out []float64
	for e := math.Floor(math.Log10(s.lo)); e <= math.Ceil(math.Log10(s.hi)); e++ {
		for _, m := range steps {
			if v := m * math.Pow(10, e); v >= s.lo*0.999 && v <= s.hi*1.001 {
				out = append(out, v)
			}
		}
	}
	return out
}

// niceBounds widens [lo, hi] to the 1-2-5 values around it.
func niceBounds(lo, hi float64) (float64, float64) {
	down := func(v float64) float64 {
		e := math.Pow(10, math.Floor(math.Log10(v)))
		for _, m := range []float64{5, 2, 1} {
			if m*e <= v {
				return m * e
			}
		}
		return e
	}
	up := func(v float64) float64 {
		e := math.Pow(10, math.Floor(math.Log10(v)))
		for _, m := range []float64{1, 2, 5, 10} {
			if m*e >= v {
				return m * e
			}
		}
		return 10 * e
	}
	return down(lo), up(hi)
}

// ratioLabel writes a ratio axis label: "0.5×", "1×", "20×".
func ratioLabel(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) + "×" }

// ratioChart draws, for every row of the table, one bar per transport
// other than the baseline from 1× to its ratio, with the runs' spread, and
// the hol pass/fail as words.
func (r *Report) ratioChart(b *bytes.Buffer) {
	rows := r.rows()
	var others []int // transports drawn: all but the baseline
	for i, tr := range r.Transports {
		if tr.Name != r.Meta.Baseline {
			others = append(others, i)
		}
	}
	lo, hi := 0.5, 2.0
	for _, rw := range rows {
		for _, i := range others {
			c := rw.cells[i]
			if !math.IsNaN(c.ratio) {
				lo, hi = min(lo, c.ratio, c.lo), max(hi, c.ratio, c.hi)
			}
		}
	}
	// Beyond a thousand times either way the bar is clipped, its value
	// still written: one pathological ratio must not squash the others.
	lo, hi = niceBounds(max(lo, 1e-3), min(hi, 1e3))
	const labelW, valueW, top, barH, barGap, groupGap = 200, 80, 44, 13, 4, 12
	x := logScale{lo, hi, labelW + 10, pageWidth - valueW}
	groupH := len(others)*(barH+barGap) - barGap
	height := top + len(rows)*(groupH+groupGap) + 8
	fmt.Fprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"ratio to %s per scenario\">\n",
		pageWidth, height, pageWidth, height, esc(r.Meta.Baseline))
	// Legend, then the axis: ticks, grid, and the 1× line.
	lx := float64(labelW + 10)
	for _, i := range others {
		fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"4\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%.1f\" y=\"14\">%s</text>\n",
			lx, r.colour(i), lx+16, esc(r.Transports[i].Name))
		lx += 16 + 8*float64(len(r.Transports[i].Name)) + 22
	}
	// Bands behind every other group, so that a group's bars read as one;
	// drawn first, under the grid.
	for gi := 0; gi < len(rows); gi += 2 {
		fmt.Fprintf(b, "<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f3f5f7\"/>\n",
			top+gi*(groupH+groupGap)-groupGap/2, pageWidth, groupH+groupGap)
	}
	for _, t := range x.ticks() {
		px := x.at(t)
		stroke, width := "#e5e7eb", 1.0
		if t == 1 {
			stroke, width = "#1f2328", 1.5
		}
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%.1f\"/>\n", px, top-6, px, height-4, stroke, width)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#59636e\">%s</text>\n", px, top-10, ratioLabel(t))
	}
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" fill=\"#59636e\">ratio to %s</text>\n", 0, top-10, esc(r.Meta.Baseline))
	y := top
	for _, rw := range rows {
		fmt.Fprintf(b, "<text x=\"4\" y=\"%d\"><tspan font-weight=\"600\">%s</tspan> %s %s</text>\n",
			y+groupH/2+4, esc(rw.scenario.Name), esc(rw.metric.Name), rw.metric.Better.Arrow())
		for k, i := range others {
			r.ratioBar(b, rw, rw.cells[i], r.colour(i), x, y+k*(barH+barGap), barH)
		}
		y += groupH + groupGap
	}
	b.WriteString("</svg>\n")
}

// ratioBar draws one transport's bar of one row at the top y.
func (r *Report) ratioBar(b *bytes.Buffer, rw row, c cell, colour string, x logScale, y, h int) {
	one := x.at(1)
	mid := float64(y) + float64(h)/2
	// A word instead of a bar, after a swatch of the transport's colour so
	// that it reads without counting rows against the legend.
	word := func(text, fill, weight string) {
		fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>", one+5, mid-5, colour)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-weight=\"%s\">%s</text>\n", one+20, mid+4, fill, weight, text)
	}
	switch {
	case c.failed:
		word("FAIL", worseColour, "600")
		return
	case rw.metric.Name == Pass && c.ok:
		if c.value == 1 {
			word("PASS", betterColour, "600")
		} else {
			word("FAIL (head-of-line blocked)", worseColour, "600")
		}
		return
	case math.IsNaN(c.ratio):
		word("no value", "#59636e", "400")
		return
	}
	end := x.at(c.ratio)
	left, width := min(one, end), math.Max(math.Abs(end-one), 1.5)
	fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s %s: %s</title></rect>\n",
		left, y, width, h, colour, esc(rw.scenario.Name), esc(rw.metric.Name), fmt.Sprintf("%.2f×", c.ratio))
	if !math.IsNaN(c.lo) && c.hi > c.lo {
		x0, x1 := x.at(c.lo), x.at(c.hi)
		fmt.Fprintf(b, "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\" stroke=\"#1f2328\" stroke-width=\"1.2\" fill=\"none\"/>\n",
			x0, mid, x1, x0, mid-4, mid+4, x1, mid-4, mid+4)
	}
	better := (c.ratio > 1) == (rw.metric.Better == Higher)
	fill := worseColour
	if better {
		fill = betterColour
	}
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\" font-weight=\"600\">%s</text>\n", x.p1+8, mid+4, fill, fmt.Sprintf("%.2f×", c.ratio))
}

// runs writes "the 3 runs", or "the one run".
func runs(n int) string {
	if n == 1 {
		return "the one run"
	}
	return fmt.Sprintf("the %d runs", n)
}

func (r *Report) hasLatency() bool {
	for _, s := range r.Scenarios {
		if s.Latency {
			return true
		}
	}
	return false
}

// ninesX places percentile q on the "nines" axis: 90 at 1, 99 at 2, 99.9
// at 3; the slowest sample (100) half a step past the last percentile.
func ninesX(q float64) float64 {
	last := LatencyQuantiles[len(LatencyQuantiles)-2]
	if q >= 100 {
		return math.Log10(100/(100-last)) + 0.5
	}
	return math.Log10(100 / (100 - q))
}

// latencyLabel writes a latency axis label: "50µs", "2ms".
func latencyLabel(us float64) string {
	if us >= 1000 {
		return format(us/1000) + "ms"
	}
	return format(us) + "µs"
}

// latencyChart draws one scenario's latency by percentile, a line per
// transport, from the medians of the runs.
func (r *Report) latencyChart(b *bytes.Buffer, s Scenario) {
	const w, h, left, right, top, bottom = 520, 350, 58, 16, 62, 36
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, tr := range r.Transports {
		for _, q := range LatencyQuantiles {
			if v, ok := r.Median[s.Name][tr.Name][LatencyMetric(q)]; ok && v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		return // no transport measured it
	}
	lo, hi = niceBounds(lo, hi)
	if lo == hi {
		hi = lo * 10
	}
	y := logScale{lo, hi, h - bottom, top}
	xMax := ninesX(100)
	px := func(q float64) float64 { return left + ninesX(q)/xMax*(w-left-right) }
	fmt.Fprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s latency by percentile\">\n", w, h, w, h, esc(s.Name))
	fmt.Fprintf(b, "<text x=\"0\" y=\"14\" font-weight=\"600\" style=\"font-size:14px\">%s</text><text x=\"0\" y=\"30\" fill=\"#59636e\">%s</text>\n",
		esc(s.Name), esc(s.About))
	for _, t := range y.ticks() {
		py := y.at(t)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e7eb\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#59636e\">%s</text>\n",
			left, py, w-right, py, left-6, py+4, latencyLabel(t))
	}
	for _, q := range []float64{1, 50, 90, 99, 99.9, 100} {
		label := "p" + fmt.Sprint(q)
		if q == 100 {
			label = "max"
		}
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e5e7eb\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#59636e\">%s</text>\n",
			px(q), top, px(q), h-bottom, px(q), h-bottom+16, label)
	}
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#59636e\">percentile</text>\n", (w+left)/2, h-4)
	lx := float64(left)
	for i, tr := range r.Transports {
		var pts []string
		for _, q := range LatencyQuantiles {
			if v, ok := r.Median[s.Name][tr.Name][LatencyMetric(q)]; ok && v > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(q), y.at(v)))
			}
		}
		if len(pts) == 0 {
			continue
		}
		dash := ""
		if tr.Name == r.Meta.Baseline {
			dash = " stroke-dasharray=\"5 3\""
		}
		fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", strings.Join(pts, " "), r.colour(i), dash)
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(b, "<circle cx=\"%s\" cy=\"%s\" r=\"2.5\" fill=\"%s\"/>\n", xy[0], xy[1], r.colour(i))
		}
		fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/><text x=\"%.1f\" y=\"%d\">%s</text>\n",
			lx, top-14, r.colour(i), lx+15, top-10, esc(tr.Name))
		lx += 15 + 7.5*float64(len(tr.Name)) + 14
	}
	b.WriteString("</svg>\n")
}

// htmlTable writes the table's rows as an HTML table.
func (r *Report) htmlTable(b *bytes.Buffer) {
	base := r.Meta.Baseline
	b.WriteString("<table>\n<tr><th class=\"txt\">scenario</th><th class=\"txt\">metric</th>")
	for i, tr := range r.Transports {
		fmt.Fprintf(b, "<th style=\"color:%s\">%s</th>", r.colour(i), esc(tr.Name))
	}
	for i, tr := range r.Transports {
		if tr.Name != base {
			fmt.Fprintf(b, "<th style=\"color:%s\">%s/%s</th>", r.colour(i), esc(tr.Name), esc(base))
		}
	}
	b.WriteString("</tr>\n")
	prev := ""
	for _, rw := range r.rows() {
		class, name := "", ""
		if rw.scenario.Name != prev {
			class, name = " class=\"first\"", rw.scenario.Name
			prev = rw.scenario.Name
		}
		fmt.Fprintf(b, "<tr%s><td class=\"txt\"><b>%s</b></td><td class=\"txt\">%s %s</td>", class, esc(name), esc(rw.metric.Name), rw.metric.Better.Arrow())
		for _, c := range rw.cells {
			text := c.text(rw.metric.Name)
			cls := "num"
			if text == "FAIL" {
				cls += " fail"
			}
			fmt.Fprintf(b, "<td class=\"%s\">%s</td>", cls, esc(text))
		}
		for i, c := range rw.cells {
			if r.Transports[i].Name == base {
				continue
			}
			cls := "num"
			if !math.IsNaN(c.ratio) {
				if (c.ratio > 1) == (rw.metric.Better == Higher) {
					cls += " better"
				} else {
					cls += " worse"
				}
			}
			fmt.Fprintf(b, "<td class=\"%s\">%s</td>", cls, esc(c.ratioText()))
		}
		b.WriteString("</tr>\n")
	}
	fmt.Fprintf(b, "</table>\n<p class=\"note\">↑ higher is better, ↓ lower is better; a cell is the median of %s.</p>\n", runs(r.Meta.Reps))
}
