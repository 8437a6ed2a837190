package bench

import (
	"strings"
	"testing"
)

// TestTargetsLightLoad: the light-load row is judged against its own
// target for every imqttd target (the durability modes), and is not taken
// for the run at half Mosquitto's rate.
func TestTargetsLightLoad(t *testing.T) {
	p2p := func(target string, rate, p99 float64) *Result {
		return &Result{Scenario: "p2p", Target: target, TargetRate: rate, Rate: max(rate, 30_000), Latency: &Latency{P99: p99}}
	}
	by := map[string][]*Result{"p2p": {
		p2p(LabelMosquitto, 0, 1),
		p2p(LabelImqttd, 0, 80),
		p2p(LabelImqttd, LightRate, 400),
		p2p("imqttd-interval-1s", LightRate, 7),
	}}
	got := strings.Join(targets(by), "\n")
	for _, want := range []string{
		"p99 ≤ 50 ms, imqttd: **not met** — p50 0.00 ms, p99 400.00 ms",
		"p99 ≤ 50 ms, imqttd-interval-1s: **met**",
		"p99 at half rate: not measured",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
}
