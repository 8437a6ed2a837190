package bench

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Latency summarises a set of durations, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize computes the latency summary of samples (nanoseconds). It sorts
// samples in place. Percentiles are nearest-rank: P99 is the smallest sample
// that at least 99% of the samples do not exceed. No samples: the zero Latency.
func Summarize(samples []int64) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum float64
	for _, s := range samples {
		sum += float64(s)
	}
	return Latency{
		Count: int64(len(samples)),
		Mean:  ms(sum / float64(len(samples))),
		P50:   ms(float64(Percentile(samples, 50))),
		P90:   ms(float64(Percentile(samples, 90))),
		P99:   ms(float64(Percentile(samples, 99))),
		Max:   ms(float64(samples[len(samples)-1])),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be sorted ascending and not empty.
func Percentile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms turns nanoseconds into milliseconds rounded to microseconds.
func ms(ns float64) float64 { return math.Round(ns/1e3) / 1e3 }

// Rate is n per second over d; 0 when d is not positive.
func Rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// each calls fn(i) for every i in [from, to), on workers goroutines that
// take the next index as they finish one, until ctx ends; it returns once
// they all have. The load tool's fills, dials and sends share it.
func each(ctx context.Context, from, to, workers int, fn func(i int)) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
