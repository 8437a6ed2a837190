package mongo_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
)

// TestPushClaimsTwoNodes: two nodes (two Stores on one database) claiming
// the same jobs and devices at once never both hold one; together they
// claim every job. On FerretDB, whose updates are not atomic, this holds
// because a claim is a unique insert.
func TestPushClaimsTwoNodes(t *testing.T) {
	db := newDB(t)
	a, b := open(t, db), open(t, db)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	const jobs, now, until = 60, 1000, 100_000
	var batch store.Batch
	for id := int64(1); id <= jobs; id++ {
		batch.Messages = append(batch.Messages, store.Message{ID: id, From: "alice", To: "bob", Type: "text", TS: now})
		batch.PushJobs = append(batch.PushJobs, store.PushJob{MsgID: id, Created: now})
	}
	if err := a.Commit(ctx, &batch); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	owner := map[int64]string{}
	devices := map[int]int{} // round: winners
	var wg sync.WaitGroup
	for n, node := range []*mongo.Store{a, b, a, b} {
		holder := fmt.Sprintf("n%d", n)
		wg.Go(func() {
			for range jobs {
				js, err := node.ClaimPushJobs(ctx, holder, now, until, 5)
				if err != nil {
					t.Errorf("%s: claim jobs: %v", holder, err)
					return
				}
				if len(js) == 0 {
					break
				}
				mu.Lock()
				for _, j := range js {
					if o, dup := owner[j.MsgID]; dup {
						t.Errorf("job %d claimed by %s and %s", j.MsgID, o, holder)
					}
					owner[j.MsgID] = holder
				}
				mu.Unlock()
			}
			for round := range 5 {
				at := int64(now + round*until) // each round's leases have passed by the next
				ok, err := node.ClaimPushDevice(ctx, "bob", "phone", holder, at, at+until/2)
				if err != nil {
					t.Errorf("%s: claim device: %v", holder, err)
					return
				}
				if ok {
					mu.Lock()
					devices[round]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(owner) != jobs {
		t.Errorf("%d of %d jobs claimed", len(owner), jobs)
	}
	for round := range 5 {
		if devices[round] > 1 {
			t.Errorf("round %d: %d holders of one device", round, devices[round])
		}
	}
}

// TestPushClaimStaleRead: a claimer that read the claims long ago (the
// lease it saw has since passed to a second holder, who released it, and
// to a third, whose claim deleted the second's generation) inserts a
// generation that is free again, and must still lose: its read-back sees
// a higher one.
func TestPushClaimStaleRead(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	ctx := t.Context()
	claim := func(holder string, now, until int64) bool {
		t.Helper()
		ok, err := s.ClaimPushDevice(ctx, "bob", "phone", holder, now, until)
		if err != nil {
			t.Fatalf("claim by %s: %v", holder, err)
		}
		return ok
	}
	if !claim("n0", 0, 10) {
		t.Fatal("first claim refused")
	}
	once := false
	mongo.SetAfterClaimRead(t, func() {
		if once {
			return
		}
		once = true // in the stale claimer's claim, after its read
		if !claim("n1", 20, 100) {
			t.Error("n1's claim after n0's lease refused")
		}
		if err := s.ReleasePushDevice(ctx, "bob", "phone", "n1"); err != nil {
			t.Fatal(err)
		}
		if !claim("n2", 20, 100) {
			t.Error("n2's claim after n1's release refused")
		}
	})
	if claim("stale", 20, 100) {
		t.Error("the stale claimer holds the device beside n2")
	}
	if claim("n3", 30, 130) {
		t.Error("n2's lease is not held")
	}
}
