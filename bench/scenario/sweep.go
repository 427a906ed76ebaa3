package scenario

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
)

// Sweep marks a report whose transports, but the baseline, are one engine
// at several values of one setting (go run ./bench -sweep): the report is
// then a frontier, each scenario's numbers per value one above the other,
// the baseline's last as the reference, and the HTML page plots latency
// against throughput. The values are the transports' names, in column
// order.
type Sweep struct {
	Setting string `json:"setting"` // what varies: "MaxStreamWindow"
	Default string `json:"default"` // the transport that runs the setting's default
}

// FrontierX is the metric the frontier plots across, against a scenario's
// primary one (its latency): the rate of the bulk stream that shares the
// connection.
const FrontierX = "bulk-MB/s"

// label is how the frontier names a transport: its value, the default
// marked.
func (r *Report) label(name string) string {
	if name == r.Sweep.Default {
		return name + " (default)"
	}
	return name
}

// frontierTables returns, per scenario, its table: a line per transport,
// each metric's median, then each metric's ratio to the baseline.
func (r *Report) frontierTables() map[string][][]string {
	rowsOf := map[string][]row{}
	for _, rw := range r.rows() {
		rowsOf[rw.scenario.Name] = append(rowsOf[rw.scenario.Name], rw)
	}
	base := r.Meta.Baseline
	tables := map[string][][]string{}
	for _, s := range r.Scenarios {
		rows := rowsOf[s.Name]
		head := []string{r.Sweep.Setting}
		for _, rw := range rows {
			head = append(head, rw.metric.Name+" "+rw.metric.Better.Arrow())
		}
		for _, rw := range rows {
			head = append(head, strings.TrimSuffix(rw.metric.Name, "-"+unit(rw.metric.Name))+"/"+base)
		}
		table := [][]string{head}
		for i, tr := range r.Transports {
			line := []string{r.label(tr.Name)}
			for _, rw := range rows {
				line = append(line, rw.cells[i].text(rw.metric.Name))
			}
			for _, rw := range rows {
				line = append(line, rw.cells[i].ratioText())
			}
			table = append(table, line)
		}
		tables[s.Name] = table
	}
	return tables
}

// unit returns the unit at the end of a metric's name: "us" of "p99-us",
// "MB/s" of "bulk-MB/s".
func unit(metric string) string {
	if i := strings.LastIndex(metric, "-"); i >= 0 {
		return metric[i+1:]
	}
	return ""
}

// writeFrontier writes a sweep's tables, one per scenario.
func (r *Report) writeFrontier(w io.Writer) {
	tables := r.frontierTables()
	fmt.Fprintf(w, "frontier of %s: each line one value of it, %s in the same run as the reference\n", r.Sweep.Setting, r.Meta.Baseline)
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n%s: %s\n", s.Name, s.About)
		writeColumns(w, tables[s.Name], 1)
	}
}

// frontierChart draws one scenario of a sweep: its primary metric (a
// latency) up, the bulk stream's rate across, a point per value joined in
// order, and the baseline's point apart.
func (r *Report) frontierChart(b *bytes.Buffer, s Scenario) {
	ym := s.Primary()
	if _, ok := s.Metric(FrontierX); !ok || ym.Name == FrontierX {
		return
	}
	type point struct {
		x, y float64
		i    int // transport
	}
	var pts []point
	xMax, yMax := 0.0, 0.0
	for i, tr := range r.Transports {
		m := r.Median[s.Name][tr.Name]
		x, okX := m[FrontierX]
		y, okY := m[ym.Name]
		if okX && okY {
			pts = append(pts, point{x, max(y, 0), i})
			xMax, yMax = max(xMax, x), max(yMax, y)
		}
	}
	if len(pts) == 0 {
		return
	}
	const w, h, left, right, top, bottom = 500, 360, 62, 24, 50, 44
	xs := linearAxis(xMax, left, w-right)
	ys := linearAxis(yMax, h-bottom, top)
	fmt.Fprintf(b, "<svg width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s frontier\">\n", w, h, w, h, esc(s.Name))
	fmt.Fprintf(b, "<text x=\"0\" y=\"14\" font-weight=\"600\" style=\"font-size:14px\">%s</text>"+
		"<text x=\"0\" y=\"30\" fill=\"#59636e\">better: down (%s) and right (%s)</text>\n", esc(s.Name), esc(ym.Name), FrontierX)
	for _, t := range ys.ticks() {
		py := ys.at(t)
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e7eb\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#59636e\">%s</text>\n",
			left, py, w-right, py, left-6, py+4, format(t))
	}
	for _, t := range xs.ticks() {
		px := xs.at(t)
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e5e7eb\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#59636e\">%s</text>\n",
			px, top, px, h-bottom, px, h-bottom+16, format(t))
	}
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#59636e\">%s (the bulk stream)</text>\n", (w+left)/2, h-6, FrontierX)
	fmt.Fprintf(b, "<text transform=\"translate(12 %d) rotate(-90)\" text-anchor=\"middle\" fill=\"#59636e\">%s</text>\n", (h+top-bottom)/2, esc(ym.Name))
	var line []string
	for _, p := range pts {
		if r.Transports[p.i].Name != r.Meta.Baseline {
			line = append(line, fmt.Sprintf("%.1f,%.1f", xs.at(p.x), ys.at(p.y)))
		}
	}
	fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", strings.Join(line, " "), palette[0])
	var placed []labelBox
	for _, p := range pts {
		name := r.Transports[p.i].Name
		px, py := xs.at(p.x), ys.at(p.y)
		tip := fmt.Sprintf("%s: %s %s, %s %s", r.label(name), ym.Name, format(p.y), FrontierX, format(p.x))
		if name == r.Meta.Baseline {
			fmt.Fprintf(b, "<path d=\"M%.1f %.1fl6 6-6 6-6-6z\" fill=\"%s\"><title>%s</title></path>", px, py-6, baselineColour, esc(tip))
		} else {
			fmt.Fprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s</title></circle>", px, py, palette[0], esc(tip))
		}
		// The label to the left of a point in the right half, so that it
		// stays in; the default's in bold.
		anchor, dx, weight := "start", 7.0, "400"
		if px > float64(w)/2 {
			anchor, dx = "end", -7
		}
		if name == r.Sweep.Default {
			weight = "600"
		}
		box := placeLabel(placed, px+dx, py-5, 7*float64(len(name)), anchor == "end")
		placed = append(placed, box)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-weight=\"%s\">%s</text>\n", px+dx, box.y, anchor, weight, esc(name))
	}
	b.WriteString("</svg>\n")
}

// labelBox is where a label went: its baseline y and its horizontal span.
type labelBox struct{ x0, x1, y float64 }

// placeLabel returns a box for a label of width w at x (its start, or its
// end if rightAligned) and baseline y, moved up or down by a line at a time
// until it overlaps none of placed: points of a frontier often crowd
// together where the windows stop mattering.
func placeLabel(placed []labelBox, x, y, w float64, rightAligned bool) labelBox {
	box := labelBox{x, x + w, y}
	if rightAligned {
		box.x0, box.x1 = x-w, x
	}
	for _, dy := range []float64{0, -13, 13, -26, 26, -39, 39} {
		try := box
		try.y += dy
		clear := true
		for _, p := range placed {
			if try.x0 < p.x1 && p.x0 < try.x1 && math.Abs(try.y-p.y) < 13 {
				clear = false
				break
			}
		}
		if clear {
			return try
		}
	}
	return box
}

// linearScale maps 0 to hi onto pixels from p0 to p1.
type linearScale struct{ hi, p0, p1 float64 }

// linearAxis returns a scale from 0 to a round value at or above top.
func linearAxis(top float64, p0, p1 int) linearScale {
	step := niceStep(top)
	return linearScale{math.Max(step*math.Ceil(top*1.05/step), step), float64(p0), float64(p1)}
}

func (s linearScale) at(v float64) float64 { return s.p0 + v/s.hi*(s.p1-s.p0) }

// ticks returns the multiples of a round step from 0 to hi.
func (s linearScale) ticks() []float64 {
	step := niceStep(s.hi)
	var out []float64
	for v := 0.0; v <= s.hi*1.0001; v += step {
		out = append(out, v)
	}
	return out
}

// niceStep returns a 1-2-5 step that cuts 0..top into four to ten parts.
func niceStep(top float64) float64 {
	if !(top > 0) {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(top)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2, 5} {
		if top/(m*e) <= 10 {
			return m * e
		}
	}
	return 10 * e
}

// htmlFrontier writes a sweep's page body: the charts, then the tables.
func (r *Report) htmlFrontier(b *bytes.Buffer) {
	fmt.Fprintf(b, "<h2>Frontier of %s</h2>\n", esc(r.Sweep.Setting))
	fmt.Fprintf(b, `<p class="note">Each point is one value of %s (the median of %s), joined in order; the grey diamond is %s in the same run.
Up is the latency of the small echo, right the rate of the bulk stream beside it: the default's place on the line is the trade-off it makes.</p>
<div class="charts">
`, esc(r.Sweep.Setting), runs(r.Meta.Reps), esc(r.Meta.Baseline))
	for _, s := range r.Scenarios {
		r.frontierChart(b, s)
	}
	b.WriteString("</div>\n")
	tables := r.frontierTables()
	for _, s := range r.Scenarios {
		fmt.Fprintf(b, "<h2>%s</h2>\n<p class=\"note\">%s</p>\n<table>\n", esc(s.Name), esc(s.About))
		for i, line := range tables[s.Name] {
			b.WriteString("<tr>")
			for j, c := range line {
				tag, cls := "td", "num"
				if i == 0 {
					tag = "th"
				}
				if j == 0 {
					cls = "txt"
				}
				fmt.Fprintf(b, "<%s class=\"%s\">%s</%s>", tag, cls, esc(c), tag)
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</table>\n")
	}
}
