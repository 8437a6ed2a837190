package deploy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// grafanaDashboard is deploy/grafana/imqtt.json as far as the check reads it.
type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

// TestGrafanaDashboard: deploy/grafana/imqtt.json is a dashboard whose
// every panel queries, and every query and variable names only metrics
// imqttd registers (internal/metrics, the Go and process collectors, and
// Prometheus' up), with only their labels: a renamed metric fails here,
// naming it, instead of leaving an empty panel.
func TestGrafanaDashboard(t *testing.T) {
	d := parseDashboard(t, readFile(t, "grafana/imqtt.json"))
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard has no uid or title: %q %q", d.UID, d.Title)
	}
	problems, n := checkDashboard(d, registered(t))
	for _, p := range problems {
		t.Error(p)
	}
	if n < 20 {
		t.Errorf("only %d panels with queries", n)
	}
}

// TestGrafanaDashboardCheck: the check finds what it is there to find.
func TestGrafanaDashboardCheck(t *testing.T) {
	d := parseDashboard(t, `{"title": "x", "uid": "x", "templating": {"list": [{"name": "i", "definition": "label_values(imqtt_conections, instance)"}]},
	  "panels": [
	    {"type": "row", "title": "r", "panels": [{"type": "timeseries", "title": "Renamed", "targets": [{"expr": "rate(imqtt_dropped_packets_total[5m])"}]}]},
	    {"type": "timeseries", "title": "WrongLabel", "targets": [{"expr": "sum(rate(imqtt_errors_total{reason=\"x\"}[$__rate_interval]))"}]},
	    {"type": "timeseries", "title": "WrongBy", "targets": [{"expr": "sum by (reason) (rate(imqtt_errors_total[5m]))"}]},
	    {"type": "stat", "title": "Empty", "targets": []},
	    {"type": "stat", "title": "Typo", "targets": [{"expr": "rat(imqtt_dropped_total[5m])"}]}
	  ]}`)
	problems, _ := checkDashboard(d, registered(t))
	all := strings.Join(problems, "\n")
	for _, want := range []string{
		`panel "Renamed": no metric imqtt_dropped_packets_total`,
		`panel "WrongLabel": imqtt_errors_total has no label "reason"`,
		`panel "WrongBy": query "sum by (reason) (rate(imqtt_errors_total[5m]))" groups by "reason", which none of its metrics has`,
		`panel "Empty": no query`,
		`panel "Typo": unknown function rat`,
		`variable i: no metric imqtt_conections`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the check missed %q; it said:\n%s", want, all)
		}
	}
}

func parseDashboard(t *testing.T, text string) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("grafana dashboard: %v", err)
	}
	return d
}

var labelValuesRE = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// checkDashboard lists what is wrong with d's queries given the metrics
// that exist and their labels, and counts the panels that query.
func checkDashboard(d grafanaDashboard, known map[string][]string) (problems []string, n int) {
	for _, v := range d.Templating.List {
		for _, m := range labelValuesRE.FindAllStringSubmatch(v.Definition, -1) {
			if _, ok := known[m[1]]; !ok {
				problems = append(problems, fmt.Sprintf("variable %s: no metric %s is registered by imqttd", v.Name, m[1]))
			}
		}
	}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			bad := func(format string, args ...any) {
				problems = append(problems, fmt.Sprintf("panel %q: ", p.Title)+fmt.Sprintf(format, args...))
			}
			if len(p.Targets) == 0 {
				bad("no query")
				continue
			}
			n++
			for _, target := range p.Targets {
				checkQuery(target.Expr, known, bad)
			}
		}
	}
	walk(d.Panels)
	return problems, n
}
