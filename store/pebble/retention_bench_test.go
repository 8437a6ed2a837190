package pebble_test

import (
	"testing"
	"time"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// BenchmarkSweep: how fast the retention sweep deletes messages, with all
// their rows, on Pebble: a store of 100,000 1:1 messages among 1,000 users
// (100 B bodies), swept whole in chunks of 200 (retention.DefaultChunk), as
// fast as the store goes (the sweeper itself runs at a bounded rate).
// msgs/s is the figure; each iteration sweeps a fresh store.
func BenchmarkSweep(b *testing.B) {
	const n, chunk = 100_000, 200
	b.ReportAllocs()
	var swept int
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		st := fillForSweep(b, n)
		b.StartTimer()
		start := time.Now()
		for {
			sw, err := st.SweepMessages(b.Context(), n+1, chunk)
			if err != nil {
				b.Fatal(err)
			}
			swept += sw.Messages
			if sw.Done {
				break
			}
		}
		spent += time.Since(start)
		b.StopTimer()
		if swept%n != 0 {
			b.Fatalf("swept %d of %d", swept, n)
		}
		_ = st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(swept)/spent.Seconds(), "msgs/s")
}

func fillForSweep(b *testing.B, n int) *pebble.Store {
	b.Helper()
	st, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := newSender(1000)
	for s.id < int64(n) {
		var batch store.Batch
		for range 1000 {
			from, to := s.pair()
			s.add(&batch, from, to)
		}
		if err := st.Commit(b.Context(), &batch); err != nil {
			b.Fatal(err)
		}
	}
	return st
}
