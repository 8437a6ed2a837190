package api

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHistogramQuantiles(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: []float64{1, 2, 4, 8}})
	if q := readHist(h).quantile(0.5); !math.IsNaN(q) {
		t.Fatalf("empty histogram p50 = %v, want NaN (unknown)", q)
	}
	for range 50 {
		h.Observe(0.5) // bucket ≤1
	}
	before := readHist(h)
	for range 90 {
		h.Observe(1.5) // bucket ≤2
	}
	for range 10 {
		h.Observe(100) // +Inf
	}
	all := readHist(h)
	if all.count != 150 || len(all.upper) != 4 {
		t.Fatalf("read %+v", all)
	}
	// Over everything: rank 75 of 150 falls in (1,2], 25 of its 90 in.
	if q, want := all.quantile(0.5), 1+25.0/90; math.Abs(q-want) > 1e-9 {
		t.Errorf("p50 = %v, want %v", q, want)
	}
	// Above the last bound the answer is the last bound.
	if q := all.quantile(0.99); q != 8 {
		t.Errorf("p99 = %v, want 8", q)
	}
	// Since the first 50: 100 observations, rank 50 in (1,2] at 50/90.
	d := all.since(before)
	if d.count != 100 || d.cum[0] != 0 {
		t.Fatalf("difference %+v", d)
	}
	if q, want := d.quantile(0.5), 1+50.0/90; math.Abs(q-want) > 1e-9 {
		t.Errorf("p50 of the difference = %v, want %v", q, want)
	}
	if m := d.mean(); math.Abs(m-(90*1.5+10*100)/100) > 1e-9 {
		t.Errorf("mean = %v", m)
	}
	if known(math.NaN(), 1) != nil || *known(0.0012345, 1000) != 1.235 {
		t.Error("known() does not map NaN to null or round to microseconds")
	}
}
