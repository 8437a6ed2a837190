package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Baseline labels: results under these names are what imqttd is measured against.
const (
	LabelMosquitto = "mosquitto"
	LabelMochi     = "mochi"
	LabelImqttd    = "imqttd"
)

// The targets of issue 6 on the 2-core machine.
const (
	TargetP2PRatio   = 1.0     // p2p rate, persisted end to end, over Mosquitto's plain rate
	TargetP99Ms      = 20.0    // p99 at half that rate
	TargetKiBPerConn = 12.0    // server memory per idle connection
	TargetSyncRate   = 100_000 // catch-up msgs/s
)

// The light-load row (issue 15): p2p at LightRate msgs/s on a fresh store,
// where a chat user feels a stall before any throughput figure.
const (
	LightRate        = 1000 // msgs/s over all pairs
	TargetLightP99Ms = 50.0
)

// The round-3 targets of issue 15, on the way to issue 6's.
const (
	TargetP2PRatio15   = 0.5 // p2p rate over Mosquitto's, as TargetP2PRatio
	TargetGoKiBPerConn = 8.0 // Go heap+stacks per idle, subscribed connection
)

// Compare writes results as markdown: a table per scenario with the ratios
// to the baselines run with the same case, then the targets, each met or not.
func Compare(w io.Writer, results []*Result) error {
	var b strings.Builder
	by := map[string][]*Result{}
	for _, r := range results {
		by[r.Scenario] = append(by[r.Scenario], r)
	}
	find := func(scenario, cas, label string) *Result {
		for _, r := range by[scenario] {
			if r.Case == cas && r.Target == label {
				return r
			}
		}
		return nil
	}
	ratio := func(v float64, base *Result, get func(*Result) float64) string {
		if base == nil || get(base) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", v/get(base))
	}
	verdict := func(r *Result) string {
		if len(r.Problems) == 0 {
			return "pass"
		}
		return "**FAIL**: " + strings.Join(r.Problems, "; ")
	}
	rate := func(r *Result) float64 { return r.Rate }
	kib := func(r *Result) float64 { return r.Extra["server_kib_per_conn"] }

	if rs := by["p2p"]; len(rs) > 0 {
		b.WriteString("### p2p: sender → receiver, QoS 1 uplink, until the receiving application has it\n\n")
		b.WriteString("| case | target | msgs/s | lost | dup | synced | p50 ms | p90 ms | p99 ms | max ms | × mosquitto | × mochi | server CPU µs/msg | bench CPU s | verdict |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, r := range rs {
			l := orZero(r.Latency)
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s |\n", r.Case, r.Target, num(r.Rate),
				r.Lost, r.Duplicated, r.Synced, l.P50, l.P90, l.P99, l.Max,
				ratio(r.Rate, find("p2p", r.Case, LabelMosquitto), rate), ratio(r.Rate, find("p2p", r.Case, LabelMochi), rate),
				opt(r.Extra, "server_cpu_us_per_msg"), opt(r.Extra, "bench_cpu_s"), verdict(r))
		}
		b.WriteString("\n")
	}
	if rs := by["conns"]; len(rs) > 0 {
		b.WriteString("### conns: idle connections, each subscribed (imqttd: authenticated by token, to its inbox)\n\n")
		b.WriteString("| case | target | connected | failed | conn/s | server RSS before → after | RSS KiB/conn | × mosquitto | × mochi | Go heap+stacks KiB/conn | verdict |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, r := range rs {
			e := r.Extra
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s → %s MiB | %.2f | %s | %s | %s | %s |\n", r.Case, r.Target, num(e["conns"]), num(e["conns_failed"]),
				num(e["connect_per_s"]), mib(e["server_rss_before_kib"]), mib(e["server_rss_after_kib"]), e["server_kib_per_conn"],
				ratio(kib(r), find("conns", r.Case, LabelMosquitto), kib), ratio(kib(r), find("conns", r.Case, LabelMochi), kib),
				opt(e, "server_go_live_kib_per_conn"), verdict(r))
		}
		b.WriteString("\n")
	}
	if rs := by["sync"]; len(rs) > 0 {
		b.WriteString("### sync: a device misses M messages (sent over HTTP while offline), connects and catches up\n\n")
		b.WriteString("| case | target | catch-up msgs/s | lost | dup | catch-up ms | server CPU µs/msg | HTTP sync msgs/s | filled over HTTP, sends/s | verdict |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, r := range rs {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %.0f | %s | %s | %s | %s |\n", r.Case, r.Target, num(r.Rate), r.Lost, r.Duplicated,
				r.Extra["catchup_ms"], opt(r.Extra, "server_cpu_us_per_msg"), num(r.Extra["http_sync_msgs_per_s"]), num(r.Extra["fill_http_sends_per_s"]), verdict(r))
		}
		b.WriteString("\n")
	}
	if rs := by["group"]; len(rs) > 0 {
		b.WriteString("### group: fan-out to the online members; latency is until the last online member has the message\n\n")
		b.WriteString("| case | target | deliveries/s | lost | dup | synced | p50 ms | p99 ms | max ms | verdict |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, r := range rs {
			l := orZero(r.Latency)
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %.2f | %.2f | %.2f | %s |\n", r.Case, r.Target, num(r.Rate), r.Lost, r.Duplicated, r.Synced,
				l.P50, l.P99, l.Max, verdict(r))
		}
		b.WriteString("\n")
	}
	b.WriteString("### Targets (issues 6 and 15)\n\n")
	for _, line := range targets(by) {
		b.WriteString("- " + line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// targets checks the targets against the results.
func targets(by map[string][]*Result) []string {
	var out []string
	mark := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	var im, mq *Result // the as-fast-as-acks-allow p2p runs
	for _, r := range by["p2p"] {
		if r.TargetRate != 0 {
			continue
		}
		switch r.Target {
		case LabelImqttd:
			im = r
		case LabelMosquitto:
			mq = r
		}
	}
	if im != nil && mq != nil && mq.Rate > 0 {
		x := im.Rate / mq.Rate
		out = append(out, fmt.Sprintf("p2p ≥ %.1f× Mosquitto, persisted end to end, 0 lost, 0 duplicated: %s — imqttd %s msgs/s (lost %d, dup %d) vs Mosquitto %s msgs/s (lost %d, dup %d) = %.2f×",
			TargetP2PRatio, mark(x >= TargetP2PRatio && im.Lost == 0 && im.Duplicated == 0), num(im.Rate), im.Lost, im.Duplicated, num(mq.Rate), mq.Lost, mq.Duplicated, x))
		out = append(out, fmt.Sprintf("p2p ≥ %.1f× Mosquitto (issue 15), 0 lost, 0 duplicated: %s — %.2f×",
			TargetP2PRatio15, mark(x >= TargetP2PRatio15 && im.Lost == 0 && im.Duplicated == 0), x))
	} else {
		out = append(out, "p2p ratio to Mosquitto: not measured (needs an imqttd and a mosquitto p2p run at rate=max with the same case)")
	}
	// Light load, for each imqttd target (the durability modes).
	light := false
	for _, r := range by["p2p"] {
		if !strings.HasPrefix(r.Target, LabelImqttd) || r.TargetRate != LightRate {
			continue
		}
		light = true
		l := orZero(r.Latency)
		out = append(out, fmt.Sprintf("light load (%d msgs/s, fresh store) p99 ≤ %.0f ms, %s: %s — p50 %.2f ms, p99 %.2f ms, max %.2f ms, lost %d, dup %d",
			LightRate, TargetLightP99Ms, r.Target, mark(l.P99 <= TargetLightP99Ms && len(r.Problems) == 0), l.P50, l.P99, l.Max, r.Lost, r.Duplicated))
	}
	if !light {
		out = append(out, fmt.Sprintf("light load (%d msgs/s): not measured", LightRate))
	}
	// The imqttd run at a fixed rate nearest half Mosquitto's (not the
	// light-load row).
	var half *Result
	for _, r := range by["p2p"] {
		if r.Target != LabelImqttd || r.TargetRate <= 0 || r.TargetRate == LightRate {
			continue
		}
		if half == nil || (mq != nil && math.Abs(r.TargetRate-mq.Rate/2) < math.Abs(half.TargetRate-mq.Rate/2)) {
			half = r
		}
	}
	if half != nil {
		l := orZero(half.Latency)
		ok := l.P99 < TargetP99Ms && len(half.Problems) == 0
		of := ""
		if mq != nil && mq.Rate > 0 {
			of = fmt.Sprintf(" (%.2f× Mosquitto's max)", half.TargetRate/mq.Rate)
		}
		out = append(out, fmt.Sprintf("p99 < %.0f ms at half that rate: %s — at %s msgs/s asked%s, sent %s: p50 %.2f ms, p99 %.2f ms, max %.2f ms, lost %d, dup %d",
			TargetP99Ms, mark(ok), num(half.TargetRate), of, num(half.SendRate), l.P50, l.P99, l.Max, half.Lost, half.Duplicated))
	} else {
		out = append(out, "p99 at half rate: not measured")
	}
	found := false
	for _, r := range by["conns"] {
		if r.Target != LabelImqttd {
			continue
		}
		// RSS net of the Go heap freed and not yet returned to the system
		// where the run has it: the logins before the connections leave
		// such heap behind, and its return can make plain RSS fall.
		k, ok := r.Extra["server_rss_net_kib_per_conn"]
		what := "RSS net of freed heap"
		if !ok {
			k, ok = r.Extra["server_kib_per_conn"]
			what = "RSS"
		}
		if !ok {
			continue
		}
		found = true
		if k < 0 {
			out = append(out, fmt.Sprintf("≤ %.0f KiB per idle connection: not measured — %s fell by %.2f KiB/conn during the run (%s)", TargetKiBPerConn, what, -k, r.Case))
		} else {
			out = append(out, fmt.Sprintf("≤ %.0f KiB per idle connection: %s — %.2f KiB/conn (%s) at %s connections (%s)", TargetKiBPerConn,
				mark(k <= TargetKiBPerConn && len(r.Problems) == 0), k, what, num(r.Extra["conns"]), r.Case))
		}
		if g, ok := r.Extra["server_go_live_kib_per_conn"]; ok {
			out = append(out, fmt.Sprintf("≤ %.0f KiB of Go heap+stacks per idle connection (issue 15): %s — %.2f KiB/conn (%s)", TargetGoKiBPerConn,
				mark(g <= TargetGoKiBPerConn && len(r.Problems) == 0), g, r.Case))
		}
	}
	if !found {
		out = append(out, "KiB per idle connection: not measured")
	}
	found = false
	for _, r := range by["sync"] {
		if r.Target != LabelImqttd {
			continue
		}
		found = true
		out = append(out, fmt.Sprintf("sync ≥ %s msgs/s (%s): %s — %s msgs/s catching up %d messages (lost %d, dup %d)", num(TargetSyncRate),
			r.Case, mark(r.Rate >= TargetSyncRate && len(r.Problems) == 0), num(r.Rate), r.Acked, r.Lost, r.Duplicated))
	}
	if !found {
		out = append(out, "sync: not measured")
	}
	return out
}

// opt formats m[key], "–" when it is missing.
func opt(m map[string]float64, key string) string {
	v, ok := m[key]
	if !ok {
		return "–"
	}
	return num(v)
}

func orZero(l *Latency) Latency {
	if l == nil {
		return Latency{}
	}
	return *l
}

func mib(kib float64) string { return fmt.Sprintf("%.1f", math.Round(kib/1024*10)/10) }
