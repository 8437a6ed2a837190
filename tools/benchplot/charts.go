package main

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
)

// chart is one horizontal bar chart: groups of rows, each row a bar per
// series (one series: the bar takes the colour of the row's target).
type chart struct {
	file   string
	title  string
	series []string // legend, when more than one
	log    bool     // a log scale (latency spans 1 ms to seconds)
	notes  []string
	groups []group
}

// group is the results of one case.
type group struct {
	label string
	rows  []row
}

// row is one result; a value of NaN was not measured.
type row struct {
	target string
	values []float64
	failed bool // the run reported problems (a rate not reached, a loss)
}

// scenarioOrder puts the scenarios in BENCHMARKS.md's order; others follow
// by name.
var scenarioOrder = []string{"p2p", "conns", "sync", "group", "replay"}

// build makes every chart the results have, in a stable order.
func build(results []result) []chart {
	byScenario := map[string][]result{}
	for _, r := range results {
		byScenario[r.Scenario] = append(byScenario[r.Scenario], r)
	}
	scenarios := slices.Sorted(maps.Keys(byScenario))
	rank := func(s string) int {
		if i := slices.Index(scenarioOrder, s); i >= 0 {
			return i
		}
		return len(scenarioOrder)
	}
	sort.SliceStable(scenarios, func(i, j int) bool { return rank(scenarios[i]) < rank(scenarios[j]) })

	var charts []chart
	for _, s := range scenarios {
		rs := byScenario[s]
		charts = append(charts, rateChart(s, rs))
		if slices.ContainsFunc(rs, func(r result) bool { return r.Latency != nil }) {
			charts = append(charts, latencyChart(s, rs))
		}
		if s == "conns" {
			charts = append(charts, memoryChart(rs))
		}
	}
	return charts
}

func rateChart(scenario string, rs []result) chart {
	c := chart{file: fileName(scenario) + "-rate.svg", title: scenario + ": delivered messages per second"}
	value := func(r result) float64 { return r.Rate }
	switch scenario {
	case "conns":
		c.title = "conns: connections made per second"
		value = func(r result) float64 { return extra(r, "connect_per_s") }
	case "group":
		c.title = "group: deliveries per second (message × online member)"
	case "sync":
		c.title = "sync: messages caught up per second, Dial to the last missed message"
	case "p2p":
		c.notes = []string{"rate=max: as fast as acks allow (throughput); a fixed rate: the load asked for, which a FAIL row did not reach"}
	}
	c.groups = groups(rs, func(r result) []float64 { return []float64{value(r)} })
	return c
}

func latencyChart(scenario string, rs []result) chart {
	c := chart{file: fileName(scenario) + "-latency.svg", title: scenario + ": latency from send to delivery, ms (log scale)",
		series: []string{"p50", "p90", "p99", "max"}, log: true}
	switch scenario {
	case "group":
		c.title = "group: latency until the last online member has the message, ms (log scale)"
	case "p2p":
		c.notes = []string{"rate=max rows are queueing time (a backlog builds in front of the receivers): read latency from the fixed-rate rows"}
	}
	c.groups = groups(rs, func(r result) []float64 {
		if l := r.Latency; l != nil {
			return []float64{l.P50, l.P90, l.P99, l.Max}
		}
		return []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	})
	return c
}

// memoryChart shows what an idle connection costs the server: its RSS
// (net of Go heap freed and not yet returned, where the run has it, as
// `imqtt bench compare` reads it) and its Go heap and stacks.
func memoryChart(rs []result) chart {
	c := chart{file: "conns-memory.svg", title: "conns: server memory per idle connection, KiB",
		series: []string{"RSS", "Go heap+stacks"}}
	fell := false
	c.groups = groups(rs, func(r result) []float64 {
		rss, ok := r.Extra["server_rss_net_kib_per_conn"]
		if !ok {
			rss = extra(r, "server_kib_per_conn")
		}
		if rss < 0 {
			rss, fell = math.NaN(), true
		}
		return []float64{rss, extra(r, "server_go_live_kib_per_conn")}
	})
	c.notes = append(c.notes, "RSS net of Go heap freed and not yet returned to the system, where the run measured it; Go heap+stacks only for Go servers")
	if fell {
		c.notes = append(c.notes, "no bar: RSS fell during the run (heap left by the logins was reused), so no figure")
	}
	return c
}

// extra is r.Extra[key], NaN when the run did not report it.
func extra(r result, key string) float64 {
	if v, ok := r.Extra[key]; ok {
		return v
	}
	return math.NaN()
}

// groups puts the results in one group per case, cases in natural order
// (rate=1000 before rate=12071 before rate=max), targets by name.
func groups(rs []result, values func(result) []float64) []group {
	byCase := map[string][]result{}
	for _, r := range rs {
		byCase[r.Case] = append(byCase[r.Case], r)
	}
	cases := slices.Sorted(maps.Keys(byCase))
	sort.SliceStable(cases, func(i, j int) bool { return naturalLess(cases[i], cases[j]) })
	gs := make([]group, 0, len(cases))
	for _, cs := range cases {
		g := group{label: cs}
		in := byCase[cs]
		sort.SliceStable(in, func(i, j int) bool { return in[i].Target < in[j].Target })
		for _, r := range in {
			g.rows = append(g.rows, row{target: r.Target, values: values(r), failed: len(r.Problems) > 0})
		}
		gs = append(gs, g)
	}
	return gs
}

// naturalLess compares a and b with runs of digits as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da != "" && db != "" {
			if len(strings.TrimLeft(da, "0")) != len(strings.TrimLeft(db, "0")) {
				return len(strings.TrimLeft(da, "0")) < len(strings.TrimLeft(db, "0"))
			}
			if da != db {
				return strings.TrimLeft(da, "0") < strings.TrimLeft(db, "0")
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) })
	if i < 0 {
		return s
	}
	return s[:i]
}

// fileName keeps a scenario's name safe as a file name.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			return r
		}
		return '_'
	}, s)
}
