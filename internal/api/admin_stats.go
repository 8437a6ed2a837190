package api

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/oplog"
	"github.com/imqtt/imqtt/wire"
)

// The stats sampler reads this node's Prometheus instruments once a period
// and keeps the samples in a ring: rates and latency quantiles over a window
// are differences between two samples (quantiles from the histograms'
// bucket counts, as Prometheus's histogram_quantile does), and the
// dashboard's charts are the per-period differences.

// hist is a histogram's cumulative state.
type hist struct {
	count uint64
	sum   float64
	upper []float64 // bucket upper bounds, ascending, without +Inf
	cum   []uint64  // cumulative counts per bucket
}

// sample is every figure at one instant; counters are totals since start.
type sample struct {
	t                                    time.Time
	conns                                int64
	in, out, stored                      float64
	errors, denials, authFailures, drops float64
	ack, batch, commit                   hist
}

type sampler struct {
	m      *metrics.Metrics
	broker AdminBroker

	mu   sync.Mutex
	ring []sample
	next int // where the next sample goes
	n    int // samples held
}

func newSampler(m *metrics.Metrics, b AdminBroker, size int) *sampler {
	return &sampler{m: m, broker: b, ring: make([]sample, size)}
}

func (s *sampler) run(every time.Duration, stop <-chan struct{}) {
	s.add(s.take())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.add(s.take())
		case <-stop:
			return
		}
	}
}

func (s *sampler) add(x sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring[s.next] = x
	s.next = (s.next + 1) % len(s.ring)
	s.n = min(s.n+1, len(s.ring))
}

// samples returns the samples held, oldest first.
func (s *sampler) samples() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sample, 0, s.n)
	for i := range s.n {
		out = append(out, s.ring[(s.next-s.n+i+len(s.ring))%len(s.ring)])
	}
	return out
}

// take reads every instrument now.
func (s *sampler) take() sample {
	m := s.m
	x := sample{t: time.Now(), conns: s.broker.Clients()}
	collect(m.Publishes, func(d *dto.Metric) {
		switch label(d, "direction") {
		case "in":
			x.in += d.GetCounter().GetValue()
		case "out":
			x.out += d.GetCounter().GetValue()
		}
	})
	collect(m.Messages, func(d *dto.Metric) {
		if label(d, "outcome") == "stored" {
			x.stored += d.GetCounter().GetValue()
		}
	})
	x.errors = sum(m.Errors)
	x.denials = sum(m.ACLDenials)
	x.authFailures = sum(m.AuthFailures)
	x.drops = sum(m.Dropped)
	x.ack, x.batch, x.commit = readHist(m.AckSeconds), readHist(m.BatchSize), readHist(m.CommitSeconds)
	return x
}

func collect(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) == nil {
			f(&d)
		}
	}
}

func label(d *dto.Metric, name string) string {
	for _, l := range d.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sum(c prometheus.Collector) float64 {
	var total float64
	collect(c, func(d *dto.Metric) { total += d.GetCounter().GetValue() })
	return total
}

func readHist(h prometheus.Histogram) hist {
	var d dto.Metric
	if h.Write(&d) != nil {
		return hist{}
	}
	ph := d.GetHistogram()
	x := hist{count: ph.GetSampleCount(), sum: ph.GetSampleSum()}
	for _, b := range ph.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		x.upper = append(x.upper, b.GetUpperBound())
		x.cum = append(x.cum, b.GetCumulativeCount())
	}
	return x
}

// since returns the histogram of the observations between old and h.
func (h hist) since(old hist) hist {
	d := hist{count: h.count - old.count, sum: h.sum - old.sum, upper: h.upper, cum: make([]uint64, len(h.cum))}
	for i := range h.cum {
		d.cum[i] = h.cum[i]
		if i < len(old.cum) {
			d.cum[i] -= old.cum[i]
		}
	}
	return d
}

// quantile estimates the q-quantile by linear interpolation inside the
// bucket that holds it; NaN with no observations. Above the last bound it
// answers the last bound.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	lower, below := 0.0, uint64(0)
	for i, c := range h.cum {
		if float64(c) >= rank {
			inBucket := c - below
			if inBucket == 0 {
				return h.upper[i]
			}
			return lower + (h.upper[i]-lower)*(rank-float64(below))/float64(inBucket)
		}
		lower, below = h.upper[i], c
	}
	if len(h.upper) == 0 {
		return math.NaN()
	}
	return h.upper[len(h.upper)-1]
}

func (h hist) mean() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.sum / float64(h.count)
}

// num is a figure that may be unknown (no observations): JSON null.
type num = *float64

func known(v float64, scale float64) num {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	v = math.Round(v*scale*1000) / 1000
	return &v
}

type latency struct {
	P50   num    `json:"p50"`
	P99   num    `json:"p99"`
	Mean  num    `json:"mean"`
	Count uint64 `json:"count"`
}

func latencyOf(h hist, scale float64) latency {
	return latency{P50: known(h.quantile(0.5), scale), P99: known(h.quantile(0.99), scale), Mean: known(h.mean(), scale), Count: h.count}
}

// adminStatsReply is GET /v1/admin/stats.
type adminStatsReply struct {
	Node          string  `json:"node"`
	TS            int64   `json:"ts"`
	WindowSeconds float64 `json:"window_seconds"` // the rates and quantiles cover this
	Connections   int64   `json:"connections"`
	Messages      struct {
		InTotal      float64 `json:"in_total"`  // uplink publishes
		OutTotal     float64 `json:"out_total"` // events the server published
		StoredTotal  float64 `json:"stored_total"`
		InPerSec     float64 `json:"in_per_sec"`
		OutPerSec    float64 `json:"out_per_sec"`
		StoredPerSec float64 `json:"stored_per_sec"`
	} `json:"messages"`
	AckMS latency `json:"ack_ms"`
	Store struct {
		Batch         latency `json:"batch"` // messages per commit
		CommitMS      latency `json:"commit_ms"`
		CommitsPerSec float64 `json:"commits_per_sec"`
	} `json:"store"`
	Totals struct {
		Errors       float64 `json:"errors"`
		ACLDenials   float64 `json:"acl_denials"`
		AuthFailures float64 `json:"auth_failures"`
		Drops        float64 `json:"drops"`
	} `json:"totals"`
	PerSec struct {
		Errors       float64 `json:"errors"`
		ACLDenials   float64 `json:"acl_denials"`
		AuthFailures float64 `json:"auth_failures"`
		Drops        float64 `json:"drops"`
	} `json:"per_sec"`
	Push   pushStats `json:"push"`
	Series []point   `json:"series"` // per sampling period, oldest first, after ?since=
}

// point is one sampling period of the charts.
type point struct {
	T         int64   `json:"t"` // unix ms at its end
	Conns     int64   `json:"conns"`
	In        float64 `json:"in"`  // per second
	Out       float64 `json:"out"` // per second
	AckP50    num     `json:"ack_p50"`
	AckP99    num     `json:"ack_p99"`
	Batch     num     `json:"batch"`      // mean messages per commit
	CommitP50 num     `json:"commit_p50"` // ms
	CommitP99 num     `json:"commit_p99"` // ms
	Errors    float64 `json:"errors"`     // error replies per second
	Denials   float64 `json:"denials"`    // ACL denials and auth failures per second
}

func rate(now, old float64, secs float64) float64 {
	if secs <= 0 || now < old {
		return 0
	}
	return math.Round((now-old)/secs*1000) / 1000
}

func pointOf(prev, cur sample) point {
	secs := cur.t.Sub(prev.t).Seconds()
	ack, batch, commit := cur.ack.since(prev.ack), cur.batch.since(prev.batch), cur.commit.since(prev.commit)
	return point{T: cur.t.UnixMilli(), Conns: cur.conns, In: rate(cur.in, prev.in, secs), Out: rate(cur.out, prev.out, secs),
		AckP50: known(ack.quantile(0.5), 1000), AckP99: known(ack.quantile(0.99), 1000), Batch: known(batch.mean(), 1),
		CommitP50: known(commit.quantile(0.5), 1000), CommitP99: known(commit.quantile(0.99), 1000), Errors: rate(cur.errors, prev.errors, secs),
		Denials: rate(cur.denials+cur.authFailures, prev.denials+prev.authFailures, secs)}
}

// statsParams reads the stats' ?window= (seconds, 1 to 600, default 10)
// and ?since= (unix ms, -1 when not given), this node's and the cluster's.
func statsParams(w http.ResponseWriter, r *http.Request) (window, since int64, ok bool) {
	if !onlyParams(w, r, "window", "since") {
		return 0, 0, false
	}
	if window, ok = intParam(w, r, "window", 10, 1, 600); !ok {
		return 0, 0, false
	}
	since, ok = intParam(w, r, "since", -1, 0, math.MaxInt64)
	return window, since, ok
}

// adminStats answers this node's figures now, rates and quantiles over the
// last ?window= seconds (1 to 600, default 10), and the chart points after
// ?since= (unix ms; default none).
func (a *API) adminStats(w http.ResponseWriter, r *http.Request) {
	window, since, ok := statsParams(w, r)
	if !ok {
		return
	}
	s := a.adm.sampler
	if s == nil {
		writeError(w, http.StatusNotImplemented, wire.CodeInternal, "no broker to sample")
		return
	}
	now := s.take()
	held := s.samples()
	old := now
	for i := len(held) - 1; i >= 0; i-- { // the newest sample at least window old, else the oldest
		old = held[i]
		if now.t.Sub(held[i].t) >= time.Duration(window)*time.Second {
			break
		}
	}
	secs := now.t.Sub(old.t).Seconds()
	out := adminStatsReply{Node: a.adm.cfg.Node, TS: now.t.UnixMilli(), WindowSeconds: math.Round(secs*1000) / 1000,
		Connections: now.conns, Series: []point{}}
	out.Messages.InTotal, out.Messages.OutTotal, out.Messages.StoredTotal = now.in, now.out, now.stored
	out.Messages.InPerSec, out.Messages.OutPerSec = rate(now.in, old.in, secs), rate(now.out, old.out, secs)
	out.Messages.StoredPerSec = rate(now.stored, old.stored, secs)
	out.AckMS = latencyOf(now.ack.since(old.ack), 1000)
	batch := now.batch.since(old.batch)
	out.Store.Batch = latencyOf(batch, 1)
	out.Store.CommitMS = latencyOf(now.commit.since(old.commit), 1000)
	out.Store.CommitsPerSec = rate(float64(now.batch.count), float64(old.batch.count), secs)
	out.Totals.Errors, out.Totals.ACLDenials, out.Totals.AuthFailures, out.Totals.Drops = now.errors, now.denials, now.authFailures, now.drops
	out.PerSec.Errors, out.PerSec.ACLDenials = rate(now.errors, old.errors, secs), rate(now.denials, old.denials, secs)
	out.PerSec.AuthFailures, out.PerSec.Drops = rate(now.authFailures, old.authFailures, secs), rate(now.drops, old.drops, secs)
	out.Push = pushStatsOf(a.cfg.Metrics)
	if since >= 0 {
		for i := 1; i < len(held); i++ {
			if held[i].t.UnixMilli() > since {
				out.Series = append(out.Series, pointOf(held[i-1], held[i]))
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminEvents lists this node's recent refusals, denials and error replies,
// newest first: ?kind= (auth_failure, acl_denial, error, banned), ?after=
// (a seq: only newer), ?limit= (1 to 500, default 100).
func (a *API) adminEvents(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r, "kind", "after", "limit") {
		return
	}
	kind := r.URL.Query().Get("kind")
	if kind != "" && !oplog.Kinds[kind] {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "kind must be auth_failure, acl_denial, error or banned")
		return
	}
	after, ok := intParam(w, r, "after", 0, 0, math.MaxInt64)
	if !ok {
		return
	}
	limit, ok := intParam(w, r, "limit", 100, 1, 500)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": a.adm.cfg.Node,
		"events": a.cfg.Metrics.Recent.Recent(kind, uint64(after), int(limit))})
}

// pushStats is offline push's health, since the node started: the
// notifications by result, by provider, and the outbox's depth.
type pushStats struct {
	Results map[string]map[string]float64 `json:"results"` // provider → result → count
	Outbox  map[string]float64            `json:"outbox"`  // jobs, items
	Latency latency                       `json:"latency_ms"`
}

func pushStatsOf(m *metrics.Metrics) pushStats {
	out := pushStats{Results: map[string]map[string]float64{}, Outbox: map[string]float64{}}
	collect(m.PushTotal, func(d *dto.Metric) {
		p := label(d, "provider")
		if out.Results[p] == nil {
			out.Results[p] = map[string]float64{}
		}
		out.Results[p][label(d, "result")] = d.GetCounter().GetValue()
	})
	collect(m.PushOutboxDepth, func(d *dto.Metric) { out.Outbox[label(d, "kind")] = d.GetGauge().GetValue() })
	out.Latency = latencyOf(readHist(m.PushSeconds), 1000)
	return out
}
