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
