package chat_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// bigGroup makes group "big" of members on st: alice its owner, then
// u00000…, straight through the store (as BenchmarkGroupHeads does).
func bigGroup(b *testing.B, st store.Store, members int) {
	b.Helper()
	ms := make([]store.Member, members)
	ms[0] = store.Member{User: "alice", Role: store.RoleOwner}
	for i := 1; i < members; i++ {
		ms[i] = store.Member{User: fmt.Sprintf("u%05d", i), Role: store.RoleMember}
	}
	if err := st.CreateGroup(context.Background(), store.Group{ID: "big", Owner: "alice"}, ms); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGroupReads: GET /v1/groups/{gid}/messages/{seq}/reads as the
// service answers it on Pebble, for a message of a group of members=N,
// half of whom have read it; the sender asks.
//
//	go test -run '^$' -bench GroupReads -benchtime 200x ./chat
func BenchmarkGroupReads(b *testing.B) {
	for _, members := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			st := openStore(b)
			ctx := context.Background()
			bigGroup(b, st, members)
			svc := newService(b, st, &msgs{})
			ack, err := svc.Send(ctx, from("alice"), wire.Send{CMID: "m1", Group: "big", Type: "text", Body: "hi"})
			if err != nil {
				b.Fatal(err)
			}
			var reads []store.GroupRead
			for i := 2; i < members; i += 2 {
				reads = append(reads, store.GroupRead{Group: "big", User: fmt.Sprintf("u%05d", i), Seq: ack.Seq})
			}
			if err := st.SetGroupReads(ctx, reads); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r, err := svc.GroupReads(ctx, "alice", "big", ack.Seq, "", 0)
				if err != nil || r.Read != int64(len(reads)) || r.Read+r.Unread != int64(members-1) {
					b.Fatalf("reads %d unread %d (want %d of %d), %v", r.Read, r.Unread, len(reads), members-1, err)
				}
			}
		})
	}
}

// countingStore counts what each Commit writes, by Batch field.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	commits int
	rows    map[string]int
}

func (c *countingStore) Commit(ctx context.Context, b *store.Batch) error {
	c.mu.Lock()
	c.commits++
	for name, n := range map[string]int{
		"messages": len(b.Messages), "entries": len(b.Entries), "acks": len(b.Acks), "convs": len(b.Convs),
		"grants": len(b.Grants), "heads": len(b.Heads), "reads": len(b.Reads), "pushjobs": len(b.PushJobs),
		"webhooks": len(b.Webhooks), "recalls": len(b.Recalls), "edits": len(b.Edits), "reactions": len(b.Reactions),
		"hides": len(b.Hides), "clears": len(b.Clears), "mentioned": len(b.Mentioned),
	} {
		c.rows[name] += n
	}
	c.mu.Unlock()
	return c.Store.Commit(ctx, b)
}

// total returns the commits and the rows of each field so far.
func (c *countingStore) total() (commits int, rows map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rows = make(map[string]int, len(c.rows))
	for name, n := range c.rows {
		rows[name] = n
	}
	return c.commits, rows
}

// maxChangeRows bounds the rows one change of a group message may commit,
// whatever the group's size (4 today: the change record, its ack, the
// group's head and the recall or reaction itself).
const maxChangeRows = 8

// BenchmarkGroupChangeWrites: what one recall or reaction of a group
// message stores, at members=1,000 and 10,000 (no member online: the
// service and the store alone). rows/change counts the Batch's rows of
// every kind (each is one or a few Pebble keys, store/pebble commit.go
// and life.go); the same figure at both sizes is what read diffusion
// promises: a change writes per group, not per member.
//
//	go test -run '^$' -bench GroupChangeWrites -benchtime 200x ./chat
func BenchmarkGroupChangeWrites(b *testing.B) {
	for _, kind := range []string{wire.KindRecall, wire.KindReaction} {
		for _, members := range []int{1_000, 10_000} {
			b.Run(fmt.Sprintf("%s/members=%d", kind, members), func(b *testing.B) {
				st := &countingStore{Store: openStore(b), rows: map[string]int{}}
				ctx := context.Background()
				bigGroup(b, st, members)
				svc := newService(b, st, &msgs{})
				commits, rows := 0, map[string]int{}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					ack, err := svc.Send(ctx, from("alice"), wire.Send{CMID: fmt.Sprint("m", i), Group: "big", Type: "text", Body: "hi"})
					if err != nil {
						b.Fatal(err)
					}
					c0, r0 := st.total()
					cmid := fmt.Sprint("c", i)
					b.StartTimer()
					cack, err := chat.Wait(ctx, func(done func(chat.Result)) {
						if kind == wire.KindRecall {
							svc.Recall(ctx, from("alice"), wire.Recall{CMID: cmid, ID: ack.ID}, done)
						} else {
							svc.React(ctx, from("alice"), wire.React{CMID: cmid, ID: ack.ID, Emoji: "👍", Op: wire.ReactAdd}, done)
						}
					})
					b.StopTimer()
					if err != nil || cack.Seq != ack.Seq+1 {
						b.Fatalf("%s of %s: seq %d, %v", kind, ack.ID, cack.Seq, err)
					}
					c1, r1 := st.total()
					commits += c1 - c0
					for name, n := range r1 {
						rows[name] += n - r0[name]
					}
				}
				all := 0
				for name, n := range rows {
					if all += n; n == 0 {
						delete(rows, name)
					}
				}
				b.Logf("rows of %d changes: %v", b.N, rows)
				if commits != b.N || all > maxChangeRows*b.N {
					b.Errorf("%d changes took %d commits and %d rows: a change must write per group, not per member", b.N, commits, all)
				}
				b.ReportMetric(float64(commits)/float64(b.N), "commits/change")
				b.ReportMetric(float64(all)/float64(b.N), "rows/change")
			})
		}
	}
}
