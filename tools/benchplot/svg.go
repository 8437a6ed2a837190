package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Layout, in SVG user units (pixels at 100%).
const (
	width    = 760
	labelW   = 170 // the target names, right-aligned
	valueW   = 90  // room after the longest bar for its value
	plotX0   = labelW + 10
	plotX1   = width - valueW
	barOne   = 14 // a bar's height in a one-series chart
	barMany  = 9  // each series' bar in a chart of several
	rowGap   = 6
	groupGap = 20 // the case's label above its rows
	fontSize = 12
)

// Colours: one per target (one-series charts), one per series otherwise.
var (
	targetColours = map[string]string{"imqttd": "#1f77b4", "mochi": "#ff7f0e", "mosquitto": "#2ca02c"}
	otherColours  = []string{"#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"}
	seriesColours = [][]string{
		2: {"#1f77b4", "#ff7f0e"},
		4: {"#08519c", "#3182bd", "#6baed6", "#bdd7e7"},
	}
)

// axis maps values to x between plotX0 and plotX1.
type axis struct {
	log      bool
	min, max float64 // linear: min is 0; log: decades
	ticks    []float64
}

func newAxis(c chart) axis {
	lo, hi := math.Inf(1), 0.0
	for _, g := range c.groups {
		for _, r := range g.rows {
			for _, v := range r.values {
				if math.IsNaN(v) {
					continue
				}
				hi = max(hi, v)
				if v > 0 {
					lo = min(lo, v)
				}
			}
		}
	}
	if c.log {
		if math.IsInf(lo, 1) {
			lo, hi = 1, 10
		}
		a := axis{log: true, min: math.Pow(10, math.Floor(math.Log10(lo))), max: math.Pow(10, math.Ceil(math.Log10(hi)))}
		if a.max <= a.min {
			a.max = a.min * 10
		}
		for t := a.min; t <= a.max*1.0001; t *= 10 {
			a.ticks = append(a.ticks, t)
		}
		return a
	}
	if hi <= 0 {
		hi = 1
	}
	step := math.Pow(10, math.Floor(math.Log10(hi/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if hi/(step*m) <= 6 {
			step *= m
			break
		}
	}
	a := axis{max: math.Ceil(hi/step) * step}
	for t := 0.0; t <= a.max+step/2; t += step {
		a.ticks = append(a.ticks, t)
	}
	return a
}

func (a axis) x(v float64) float64 {
	var f float64
	if a.log {
		f = (math.Log10(max(v, a.min)) - math.Log10(a.min)) / (math.Log10(a.max) - math.Log10(a.min))
	} else {
		f = v / a.max
	}
	return plotX0 + max(0, min(1, f))*(plotX1-plotX0)
}

// svg renders c.
func (c chart) svg() []byte {
	var b bytes.Buffer
	a := newAxis(c)
	many := len(c.series) > 1
	barH := barOne
	if many {
		barH = barMany
	}
	rowH := len(c.series)*barH + rowGap
	if !many {
		rowH = barH + rowGap
	}

	y := 28.0
	body := &bytes.Buffer{}
	text(body, 12, y-8, "start", "font-size:15px;font-weight:bold", c.title)
	if many {
		x := float64(plotX0)
		for i, s := range c.series {
			fmt.Fprintf(body, "<rect x=\"%s\" y=\"%s\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", f(x), f(y), seriesColour(len(c.series), i))
			text(body, x+16, y+10, "start", "", s)
			x += 24 + 8*float64(len(s)) + 12
		}
		y += 22
	}
	axisTop := y + 14
	y = axisTop + 6
	var bars bytes.Buffer
	others := 0
	colours := map[string]string{}
	for _, g := range c.groups {
		text(&bars, 12, y+14, "start", "font-weight:bold;fill:#444", g.label)
		y += groupGap
		for _, r := range g.rows {
			label := r.target
			if r.failed {
				label += " (FAIL)"
			}
			text(&bars, labelW, y+float64(rowH-rowGap)/2+4, "end", "", label)
			for i, v := range r.values {
				by := y + float64(i*barH)
				var colour string
				if many {
					colour = seriesColour(len(c.series), i)
				} else {
					colour = colours[r.target]
					if colour == "" {
						colour = targetColours[r.target]
						if colour == "" {
							colour = otherColours[others%len(otherColours)]
							others++
						}
						colours[r.target] = colour
					}
				}
				if math.IsNaN(v) {
					text(&bars, plotX0+4, by+float64(barH)-2, "start", "font-size:10px;fill:#888", "not measured")
					continue
				}
				x1 := max(a.x(v), plotX0+1)
				fmt.Fprintf(&bars, "<rect x=\"%d\" y=\"%s\" width=\"%s\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>\n",
					plotX0, f(by), f(x1-plotX0), barH-1, colour, esc(fmt.Sprintf("%s, %s: %s", g.label, r.target, num(v))))
				size := "font-size:11px"
				if many {
					size = "font-size:9px"
				}
				text(&bars, x1+4, by+float64(barH)-2, "start", size, num(v))
			}
			y += float64(rowH)
		}
	}
	axisBottom := y
	for _, t := range a.ticks {
		x := a.x(t)
		fmt.Fprintf(body, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#ddd\"/>\n", f(x), f(axisTop), f(x), f(axisBottom))
		text(body, x, axisTop-4, "middle", "font-size:10px;fill:#666", num(t))
	}
	body.Write(bars.Bytes())
	y += 8
	for _, n := range c.notes {
		y += 16
		text(body, 12, y, "start", "font-size:11px;fill:#555", n)
	}
	y += 12

	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"%d\">\n",
		width, int(y), width, int(y), fontSize)
	fmt.Fprintf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n")
	b.Write(body.Bytes())
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func seriesColour(n, i int) string {
	if n < len(seriesColours) && len(seriesColours[n]) == n {
		return seriesColours[n][i]
	}
	return otherColours[i%len(otherColours)]
}

func text(b *bytes.Buffer, x, y float64, anchor, style, s string) {
	fmt.Fprintf(b, "<text x=\"%s\" y=\"%s\" text-anchor=\"%s\"", f(x), f(y), anchor)
	if style != "" {
		fmt.Fprintf(b, " style=\"%s\"", style)
	}
	fmt.Fprintf(b, ">%s</text>\n", esc(s))
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// f formats a coordinate to a tenth of a pixel.
func f(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// num formats a figure as BENCHMARKS.md does: thousands grouped, two
// decimals below 10, one below 100.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a < 10 && v != math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100 && v != math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
