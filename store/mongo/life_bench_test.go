package mongo_test

import (
	"fmt"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// BenchmarkGroupChange commits reactions and recalls in a group of
// members=10000 as the chat pipeline builds them (a change has no read of
// its sender): the cost does not grow with the members (read diffusion:
// no write per member; TestGroupChangeWrites counts them).
func BenchmarkGroupChange(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			s := open(b, newDB(b))
			defer s.Close()
			ms := make([]store.Member, n)
			for i := range ms {
				ms[i] = store.Member{User: fmt.Sprintf("u%05d", i), Role: store.RoleMember}
			}
			if err := s.CreateGroup(b.Context(), store.Group{ID: "g1", Owner: "u00000", Created: 1}, ms); err != nil {
				b.Fatal(err)
			}
			const msgs = 64
			for i := range msgs {
				m := store.Message{ID: int64(i + 1), From: "u00000", Group: "g1", Seq: uint64(i + 1), Type: "text", Body: "hi", TS: int64(i)}
				if err := s.Commit(b.Context(), &store.Batch{Messages: []store.Message{m},
					Heads: []store.GroupHead{{Group: "g1", Seq: m.Seq, MsgID: m.ID, TS: m.TS}}}); err != nil {
					b.Fatal(err)
				}
			}
			for _, kind := range []string{store.ChangeReaction, store.ChangeRecall} {
				b.Run("kind="+kind, func(b *testing.B) {
					b.ReportAllocs()
					h, err := s.GroupHead(b.Context(), "g1")
					if err != nil {
						b.Fatal(err)
					}
					seq, count := h.Seq, h.Changes
					for i := 0; b.Loop(); i++ {
						seq++
						count++
						id := int64(1_000_000 + seq)
						user := fmt.Sprintf("u%05d", i%n)
						target := int64(i%msgs + 1)
						c := store.Change{Kind: kind, Target: target, Count: count}
						bt := &store.Batch{Heads: []store.GroupHead{{Group: "g1", Seq: seq, Changes: count}}}
						if kind == store.ChangeReaction {
							c.Emoji, c.Add = "👍", true
							bt.Reactions = []store.Reaction{{MsgID: target, User: user, Emoji: "👍", Add: true, TS: id}}
						} else {
							bt.Recalls = []store.Recall{{MsgID: target, By: user, TS: id}}
						}
						m := store.Message{ID: id, From: user, Group: "g1", Seq: seq, Type: kind, CMID: fmt.Sprint("c", id), TS: id, Change: &c}
						bt.Messages = []store.Message{m}
						bt.Acks = []store.Ack{{From: user, CMID: m.CMID, ID: id, TS: id, Group: "g1", Seq: seq}}
						if err := s.Commit(b.Context(), bt); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
