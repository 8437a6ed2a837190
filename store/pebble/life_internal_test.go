package pebble

import (
	"testing"

	"github.com/imqtt/imqtt/store"
)

// BenchmarkReadChanges is the lookup a read position's ReadChanges costs
// in a log of 100,000 seqs, every other one a change record: one seek of
// the change index (gc/), whatever the log's length.
func BenchmarkReadChanges(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const seqs = 100_000
	for from := uint64(1); from <= seqs; from += 1000 {
		var batch store.Batch
		for seq := from; seq < from+1000 && seq <= seqs; seq++ {
			m := store.Message{ID: int64(seq), From: "m1", Group: "g", Seq: seq, Type: "text", TS: int64(seq)}
			h := store.GroupHead{Group: "g", Seq: seq, MsgID: m.ID, TS: m.TS}
			if seq%2 == 0 {
				m.Change = &store.Change{Kind: store.ChangeReaction, Target: 1, Emoji: "x", Add: true, Count: seq / 2}
				h = store.GroupHead{Group: "g", Seq: seq, Changes: seq / 2}
			}
			batch.Messages = append(batch.Messages, m)
			batch.Heads = append(batch.Heads, h)
		}
		if err := s.Commit(b.Context(), &batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.CompactAll(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		seq := uint64(i*7919%seqs) + 1
		n, err := changesUpTo(s.db, "g", seq)
		if err != nil || n != seq/2 {
			b.Fatalf("changes up to %d: %d, %v", seq, n, err)
		}
	}
}
