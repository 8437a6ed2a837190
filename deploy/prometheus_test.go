package deploy

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/imqtt/imqtt/internal/metrics"
)

// ruleFile is a Prometheus rules file, as far as imqtt's example uses it;
// a key it does not know is an error (a misspelt "annotations" would
// otherwise leave an alert without its text).
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = []string{"job", "instance"}

// severities are the values of the severity label routes expect.
var severities = []string{"critical", "warning", "info"}

// TestAlertRules: deploy/prometheus/alerts.yml parses as a rules file,
// every rule has an alert name, an expression, a for, a severity and a
// summary, and every metric an expression names is one imqttd registers
// (its own, the Go and process collectors'), or Prometheus' up, with only
// labels that metric has.
func TestAlertRules(t *testing.T) {
	rf := parseRules(t, readFile(t, "prometheus/alerts.yml"))
	known := registered(t)
	n := 0
	for _, g := range rf.Groups {
		n += len(g.Rules)
	}
	if n < 10 {
		t.Fatalf("only %d rules in alerts.yml", n)
	}
	for _, p := range checkRules(rf, known) {
		t.Error(p)
	}
}

// TestAlertRulesCheck: the check itself finds what it is there to find,
// so TestAlertRules cannot pass by seeing nothing.
func TestAlertRulesCheck(t *testing.T) {
	rf := parseRules(t, `groups:
  - name: bad
    rules:
      - alert: Renamed
        expr: sum by (instance) (rate(imqtt_dropped_packets_total[5m])) > 0
        for: 1m
        labels: {severity: warning}
        annotations: {summary: "x"}
      - alert: WrongLabel
        expr: rate(imqtt_limit_refusals_total{reason="disk_space"}[5m]) > 0
        for: 1m
        labels: {severity: warning}
        annotations: {summary: "x"}
      - alert: Typo
        expr: rat(imqtt_dropped_total[5m]) > 0
        labels: {severity: loud}
        annotations: {}
`)
	problems := strings.Join(checkRules(rf, registered(t)), "\n")
	for _, want := range []string{
		`Renamed: no metric imqtt_dropped_packets_total`,
		`WrongLabel: imqtt_limit_refusals_total has no label "reason"`,
		`Typo: unknown function rat`,
		`Typo: no for`,
		`Typo: severity "loud"`,
		`Typo: no summary`,
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("the check missed %q; it said:\n%s", want, problems)
		}
	}
	var strict ruleFile
	dec := yaml.NewDecoder(strings.NewReader("groups:\n  - name: g\n    rules:\n      - alert: A\n        anotations: {}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err == nil {
		t.Error("a misspelt key parsed")
	}
}

func parseRules(t *testing.T, text string) ruleFile {
	t.Helper()
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alert rules: %v", err)
	}
	return rf
}

// checkRules lists what is wrong with the rules of rf, given the metrics
// that exist and their labels.
func checkRules(rf ruleFile, known map[string][]string) []string {
	var problems []string
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			problems = append(problems, fmt.Sprintf("group %q: no name or no rules", g.Name))
		}
		for _, r := range g.Rules {
			bad := func(format string, args ...any) {
				problems = append(problems, r.Alert+": "+fmt.Sprintf(format, args...))
			}
			switch {
			case r.Alert == "":
				bad("a rule without an alert name (expr %q)", r.Expr)
			case seen[r.Alert]:
				bad("alert named twice")
			}
			seen[r.Alert] = true
			if r.For == "" {
				bad("no for (a single bad scrape would page)")
			}
			if s := r.Labels["severity"]; !slices.Contains(severities, s) {
				bad("severity %q, want one of %v", s, severities)
			}
			if r.Annotations["summary"] == "" {
				bad("no summary")
			}
			checkQuery(r.Expr, known, bad)
		}
	}
	return problems
}

var (
	fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)
	varRE    = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// registered returns every metric name imqttd's registry describes, with
// its labels: the instruments of internal/metrics (described, since a
// labelled one has no series until counted), the Go and process
// collectors' (gathered), the series names of histograms and summaries
// (_bucket, _sum, _count), and Prometheus' own up.
func registered(t *testing.T) map[string][]string {
	t.Helper()
	m := metrics.New()
	known := map[string][]string{"up": nil}
	add := func(name string, labels []string, kind dto.MetricType) {
		switch kind {
		case dto.MetricType_HISTOGRAM:
			known[name+"_bucket"] = append(slices.Clone(labels), "le")
			known[name+"_sum"], known[name+"_count"] = labels, labels
		case dto.MetricType_SUMMARY:
			known[name] = append(slices.Clone(labels), "quantile")
			known[name+"_sum"], known[name+"_count"] = labels, labels
		default:
			known[name] = labels
		}
	}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanInterface() {
			continue
		}
		c, ok := f.Interface().(prometheus.Collector)
		if !ok || f.IsZero() {
			continue
		}
		kind := dto.MetricType_UNTYPED
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			kind = dto.MetricType_HISTOGRAM
		case prometheus.Summary, *prometheus.SummaryVec:
			kind = dto.MetricType_SUMMARY
		}
		ch := make(chan *prometheus.Desc, 8)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			s := d.String()
			name := fqNameRE.FindStringSubmatch(s)
			if name == nil {
				t.Fatalf("cannot read a metric name from %s", s)
			}
			var labels []string
			if vl := varRE.FindStringSubmatch(s); vl != nil && vl[1] != "" {
				for _, l := range strings.Split(vl[1], ",") {
					l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "c("), ")")
					labels = append(labels, l)
				}
			}
			add(name[1], labels, kind)
		}
	}
	if _, ok := known["imqtt_limit_refusals_total"]; !ok {
		t.Fatal("reading internal/metrics' instruments found no imqtt_limit_refusals_total: the reflection is out of date")
	}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		var labels []string
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		_, ok := known[f.GetName()]
		_, buckets := known[f.GetName()+"_bucket"]
		// A histogram described by a collector of several instruments
		// (metrics.BeforeSend) was taken as untyped: its series names come
		// from here.
		if !ok || f.GetType() == dto.MetricType_HISTOGRAM && !buckets {
			add(f.GetName(), labels, f.GetType())
		}
	}
	for _, want := range []string{"go_goroutines", "process_open_fds", "imqtt_store_commit_seconds_bucket"} {
		if _, ok := known[want]; !ok {
			t.Fatalf("the registry has no %s: the collection is out of date", want)
		}
	}
	return known
}

// selector is a metric an expression selects, with the labels its
// matchers name.
type selector struct {
	name   string
	labels []string
}

// PromQL's functions and aggregation operators: an identifier before "("
// must be one of them (anything else is a typo PromQL would refuse).
var (
	promFuncs = strings.Fields(`abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil
		changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
		days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg histogram_count
		histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour
		idelta increase info irate label_join label_replace last_over_time ln log10 log2 mad_over_time
		max_over_time min_over_time minute month pi predict_linear present_over_time quantile_over_time rad
		rate resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt
		stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year`)
	promAggs = strings.Fields(`avg bottomk count count_values group limit_ratio limitk max min quantile stddev
		stdvar sum topk`)
	// promListWords are followed by a list of label names in parentheses.
	promListWords = strings.Fields(`by without on ignoring group_left group_right`)
	promWords     = strings.Fields(`and or unless bool offset inf nan atan2`)
)

// selectors lists the metric selectors of a PromQL expression, and the
// labels its by and without lists name. It is a tokeniser, not a parser:
// it skips strings, comments, numbers and durations, range and subquery
// brackets, keywords, and the label lists of on, ignoring and group_*; an
// identifier before "(" is a function; any other identifier is a metric
// name, whose {matchers} it reads.
func selectors(expr string) (out []selector, grouping []string, err error) {
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(expr, i)
			if err != nil {
				return nil, nil, err
			}
			i = j
		case c == '[':
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unclosed [ in %q", expr)
			}
			i += j + 1
		case isDigit(c) || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
			id := expr[start:i]
			next := nextNonSpace(expr, i)
			word := strings.ToLower(id)
			switch {
			case slices.Contains(promListWords, word):
				if next < len(expr) && expr[next] == '(' {
					j := strings.IndexByte(expr[next:], ')')
					if j < 0 {
						return nil, nil, fmt.Errorf("unclosed label list after %s", id)
					}
					if word == "by" || word == "without" {
						for _, l := range strings.Split(expr[next+1:next+j], ",") {
							if l = strings.TrimSpace(l); l != "" {
								grouping = append(grouping, l)
							}
						}
					}
					i = next + j + 1
				}
			case slices.Contains(promWords, word):
			case next < len(expr) && expr[next] == '(':
				if !slices.Contains(promFuncs, id) && !slices.Contains(promAggs, id) {
					return nil, nil, fmt.Errorf("unknown function %s", id)
				}
			case slices.Contains(promAggs, id): // sum by (x) (...)
			default:
				s := selector{name: id}
				if next < len(expr) && expr[next] == '{' {
					labels, j, err := matchers(expr, next)
					if err != nil {
						return nil, nil, fmt.Errorf("%s: %w", id, err)
					}
					s.labels, i = labels, j
				}
				out = append(out, s)
			}
		case c == '{':
			return nil, nil, fmt.Errorf("a selector without a metric name in %q: name the metric", expr)
		default:
			i++
		}
	}
	return out, grouping, nil
}

// matchers reads {label op "value", ...} at expr[i] and returns the label
// names and the index after the closing brace.
func matchers(expr string, i int) ([]string, int, error) {
	var labels []string
	i++ // {
	for {
		i = nextNonSpace(expr, i)
		if i < len(expr) && expr[i] == '}' {
			return labels, i + 1, nil
		}
		start := i
		for i < len(expr) && isIdent(expr[i]) {
			i++
		}
		if start == i {
			return nil, 0, fmt.Errorf("a label name expected at %q", expr[start:])
		}
		labels = append(labels, expr[start:i])
		i = nextNonSpace(expr, i)
		switch {
		case strings.HasPrefix(expr[i:], "=~"), strings.HasPrefix(expr[i:], "!~"), strings.HasPrefix(expr[i:], "!="):
			i += 2
		case strings.HasPrefix(expr[i:], "="):
			i++
		default:
			return nil, 0, fmt.Errorf("a matcher operator expected at %q", expr[i:])
		}
		i = nextNonSpace(expr, i)
		if i >= len(expr) || !strings.ContainsRune("\"'`", rune(expr[i])) {
			return nil, 0, fmt.Errorf("a quoted label value expected at %q", expr[i:])
		}
		j, err := skipString(expr, i)
		if err != nil {
			return nil, 0, err
		}
		i = nextNonSpace(expr, j)
		if i < len(expr) && expr[i] == ',' {
			i++
		}
	}
}

// skipString returns the index after the string literal at expr[i].
func skipString(expr string, i int) (int, error) {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && q != '`':
			j++
		case expr[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string in %q", expr)
}

func nextNonSpace(s string, i int) int {
	for i < len(s) && bytes.IndexByte([]byte(" \t\r\n"), s[i]) >= 0 {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) }

// TestSelectors: the tokeniser finds the metrics of the expression shapes
// alert rules use, and nothing else.
func TestSelectors(t *testing.T) {
	for expr, want := range map[string]string{
		`up{job="imqtt"} == 0`: `up[job]`,
		`histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{x=~"1|2", y!="}"}[5m:1m])))`: `a_bucket[x y]`,
		`sum(rate(a[5m])) without (le) / on (instance) group_left (z) b offset 10m > bool 1e3`:      `a[] b[]`,
		"a # c{d}\n and label_replace(b, \"dst\", \"$1\", \"src\", \"(.*)\") unless c @ 100":        `a[] b[] c[]`,
		`x < 0.5 * (x offset 10m) and (x offset 10m) > .5`:                                          `x[] x[] x[]`,
	} {
		sels, _, err := selectors(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			got = append(got, s.name+"["+strings.Join(s.labels, " ")+"]")
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("%s: %s, want %s", expr, g, want)
		}
	}
	for _, expr := range []string{`rat(a[5m])`, `{__name__="a"}`, `a{b="c"`, `a{b}`, `a[5m`, `a{b="c}`} {
		if _, _, err := selectors(expr); err == nil {
			t.Errorf("%s: no error", expr)
		}
	}
}

// checkQuery reports (through bad) a PromQL query that names no metric,
// a metric imqttd does not register (known: its metrics and their
// labels), a label the metric does not have, or a by or without label
// that none of its metrics has (the panel would show one line).
func checkQuery(expr string, known map[string][]string, bad func(format string, args ...any)) {
	sels, grouping, err := selectors(expr)
	if err != nil {
		bad("%v", err)
		return
	}
	if len(sels) == 0 {
		bad("query %q names no metric", expr)
	}
	for _, s := range sels {
		labels, ok := known[s.name]
		if !ok {
			bad("no metric %s is registered by imqttd", s.name)
			continue
		}
		for _, l := range s.labels {
			if !slices.Contains(labels, l) && !slices.Contains(scrapeLabels, l) {
				bad("%s has no label %q (it has %v)", s.name, l, labels)
			}
		}
	}
	for _, l := range grouping {
		if !slices.Contains(scrapeLabels, l) && !slices.ContainsFunc(sels, func(s selector) bool { return slices.Contains(known[s.name], l) }) {
			bad("query %q groups by %q, which none of its metrics has", expr, l)
		}
	}
}
