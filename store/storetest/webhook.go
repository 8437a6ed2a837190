package storetest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// WebhookStore is what the Webhooks part opens: message.after_send events
// are committed with their messages.
type WebhookStore interface {
	store.Versions
	store.Messages
	store.Webhooks
}

// Webhooks tests the Webhooks role: the outbox of events, in lanes, each
// claimed by one holder at a time.
func Webhooks(t *testing.T, open func(t *testing.T) WebhookStore) {
	run(t, open, []testCase{
		{"WebhookEventsCommitted", testWebhookCommitted},
		{"WebhookOrderPerLane", testWebhookOrder},
		{"ClaimWebhookLane", testWebhookClaim},
		{"ClaimWebhookLaneConcurrent", testWebhookClaimConcurrent},
		{"RetryWebhookLaneMovesOnlyTheHead", testWebhookRetry},
		{"SweepWebhooks", testWebhookSweep},
		{"WebhookRowsBehindTheHead", testWebhookBehindHead},
		{"ReleaseWebhookLane", testWebhookRelease},
	})
}

// whEvent is an event of lane with ID id at t0+id.
func whEvent(lane string, id int64) store.WebhookEvent {
	return store.WebhookEvent{ID: id, Lane: lane, Type: "user.online", TS: t0 + id,
		Data: json.RawMessage(`{"n":` + strconv.FormatInt(id, 10) + `}`)}
}

func (f *fixture) addEvents(evs ...store.WebhookEvent) {
	f.t.Helper()
	if err := f.webhooks.AddWebhookEvents(f.ctx, evs); err != nil {
		f.t.Fatalf("add webhook events: %v", err)
	}
}

// laneIDs are the IDs of lane's first n events.
func (f *fixture) laneIDs(lane string, n int) []int64 {
	f.t.Helper()
	evs, err := f.webhooks.WebhookEvents(f.ctx, lane, n)
	if err != nil {
		f.t.Fatalf("webhook events of %s: %v", lane, err)
	}
	var ids []int64
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// dueLanes are the names of the lanes due at now.
func (f *fixture) dueLanes(now int64) []string {
	f.t.Helper()
	ls, err := f.webhooks.DueWebhookLanes(f.ctx, now, 100)
	if err != nil {
		f.t.Fatalf("due webhook lanes: %v", err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Lane)
	}
	return out
}

func (f *fixture) claimLane(lane, holder string, now, until int64) bool {
	f.t.Helper()
	ok, err := f.webhooks.ClaimWebhookLane(f.ctx, lane, holder, now, until)
	if err != nil {
		f.t.Fatalf("claim webhook lane %s: %v", lane, err)
	}
	return ok
}

func (f *fixture) deleteEvents(lane string, ids ...int64) {
	f.t.Helper()
	if err := f.webhooks.DeleteWebhookEvents(f.ctx, lane, ids); err != nil {
		f.t.Fatalf("delete webhook events of %s: %v", lane, err)
	}
}

func (f *fixture) whDepth() int64 {
	f.t.Helper()
	n, err := f.webhooks.WebhookDepth(f.ctx)
	if err != nil {
		f.t.Fatalf("webhook depth: %v", err)
	}
	return n
}

// testWebhookCommitted: a batch's events are written with its messages,
// every field comes back, and the batch again adds none.
func testWebhookCommitted(t *testing.T, f *fixture) {
	var b store.Batch
	for _, id := range []int64{101, 102} {
		f.add(&b, "alice", "bob", id, t0+id)
		e := whEvent("c:alice:bob", id)
		e.Type, e.MsgID = "message.after_send", id
		b.Webhooks = append(b.Webhooks, e)
	}
	f.commit(&b)
	evs, err := f.webhooks.WebhookEvents(f.ctx, "c:alice:bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].ID != 101 || evs[0].Type != "message.after_send" || evs[0].TS != t0+101 ||
		string(evs[0].Data) != `{"n":101}` || evs[0].Lane != "c:alice:bob" || evs[1].ID != 102 {
		t.Fatalf("events: %+v", evs)
	}
	f.commit(&b)
	if n := f.whDepth(); n != 2 {
		t.Errorf("depth after the batch again: %d, want 2", n)
	}
	equalIDs(t, "due lanes", f.dueLanes(t0), []string{"c:alice:bob"})
}

// testWebhookOrder: a lane's events come in ID order whatever order they
// were added in; lanes are apart.
func testWebhookOrder(t *testing.T, f *fixture) {
	f.addEvents(whEvent("g:team", 30), whEvent("u:bob", 21))
	f.addEvents(whEvent("g:team", 10), whEvent("g:team", 20))
	f.addEvents(whEvent("g:team", 20)) // again: left as it is
	equalIDs(t, "team", f.laneIDs("g:team", 10), []int64{10, 20, 30})
	equalIDs(t, "team's head", f.laneIDs("g:team", 1), []int64{10})
	equalIDs(t, "bob", f.laneIDs("u:bob", 10), []int64{21})
	equalIDs(t, "a lane with none", f.laneIDs("u:carol", 10), nil)
	equalIDs(t, "due lanes", f.dueLanes(t0), []string{"g:team", "u:bob"})
	if n := f.whDepth(); n != 4 {
		t.Errorf("depth: %d, want 4", n)
	}
}

// testWebhookClaim: a held lane is not claimed by another holder nor
// listed as due until its lease passes; its holder may claim it again.
func testWebhookClaim(t *testing.T, f *fixture) {
	f.addEvents(whEvent("u:alice", 1), whEvent("u:bob", 2))
	if !f.claimLane("u:alice", "n1", t0, t0+100) {
		t.Fatal("n1 could not claim a free lane")
	}
	if f.claimLane("u:alice", "n2", t0+50, t0+150) {
		t.Error("n2 claimed a lane n1 holds")
	}
	equalIDs(t, "due while held", f.dueLanes(t0+50), []string{"u:bob"})
	if !f.claimLane("u:alice", "n1", t0+50, t0+200) {
		t.Error("n1 could not extend its claim")
	}
	if f.claimLane("u:alice", "n2", t0+150, t0+250) {
		t.Error("n2 claimed the lane within n1's extended lease")
	}
	if !f.claimLane("u:alice", "n2", t0+200, t0+300) {
		t.Error("n2 could not claim once the lease passed")
	}
	if err := f.webhooks.ReleaseWebhookLane(f.ctx, "u:alice", "n1"); err != nil {
		t.Fatal(err)
	}
	if f.claimLane("u:alice", "n3", t0+210, t0+300) {
		t.Error("n1's release ended n2's claim")
	}
	if err := f.webhooks.ReleaseWebhookLane(f.ctx, "u:alice", "n2"); err != nil {
		t.Fatal(err)
	}
	if !f.claimLane("u:alice", "n3", t0+210, t0+300) {
		t.Error("a released lane could not be claimed")
	}
}

// testWebhookClaimConcurrent: of holders claiming one lane at once,
// exactly one wins.
func testWebhookClaimConcurrent(t *testing.T, f *fixture) {
	f.addEvents(whEvent("g:team", 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := f.webhooks.ClaimWebhookLane(f.ctx, "g:team", fmt.Sprintf("n%d", i), t0, t0+1000)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d holders won the lane, want 1", wins)
	}
}

// testWebhookRetry: a retry puts off its lane only, keeps the head the
// head, and is counted; an event added meanwhile does not make the lane
// due; once the head is deleted, the next one is due at once.
func testWebhookRetry(t *testing.T, f *fixture) {
	f.addEvents(whEvent("c:a:b", 1), whEvent("c:a:b", 2), whEvent("g:team", 3))
	if !f.claimLane("c:a:b", "n1", t0, t0+100) {
		t.Fatal("claim")
	}
	if err := f.webhooks.RetryWebhookLane(f.ctx, "c:a:b", "n1", t0+1000, 3); err != nil {
		t.Fatal(err)
	}
	f.addEvents(whEvent("c:a:b", 4))
	equalIDs(t, "due before the retry", f.dueLanes(t0+10), []string{"g:team"})
	equalIDs(t, "the lane's events", f.laneIDs("c:a:b", 10), []int64{1, 2, 4})
	ls, err := f.webhooks.DueWebhookLanes(f.ctx, t0+1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "due at the retry", ls, []store.WebhookLane{{Lane: "g:team"}, {Lane: "c:a:b", Due: t0 + 1000, Attempts: 3}})
	if !f.claimLane("c:a:b", "n2", t0+1000, t0+1100) {
		t.Error("the retry did not release the lane")
	}
	f.deleteEvents("c:a:b", 1)
	ls, err = f.webhooks.DueWebhookLanes(f.ctx, t0+1050, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Lane == "c:a:b" {
			t.Errorf("a held lane listed: %+v", l)
		}
	}
	if err := f.webhooks.ReleaseWebhookLane(f.ctx, "c:a:b", "n2"); err != nil {
		t.Fatal(err)
	}
	ls, err = f.webhooks.DueWebhookLanes(f.ctx, t0+20, 10)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range ls {
		if l.Lane == "c:a:b" {
			found = true
			if l.Attempts != 0 || l.Due > t0+20 {
				t.Errorf("the next head kept the old one's retry: %+v", l)
			}
		}
	}
	if !found {
		t.Errorf("the lane with a new head is not due: %+v", ls)
	}
	equalIDs(t, "the lane's events after the head", f.laneIDs("c:a:b", 10), []int64{2, 4})
}

// testWebhookSweep: events older than the cut are deleted and counted,
// younger ones stay.
func testWebhookSweep(t *testing.T, f *fixture) {
	f.addEvents(whEvent("u:a", 1), whEvent("u:a", 2), whEvent("u:a", 50), whEvent("u:b", 3), whEvent("u:c", 60))
	n, err := f.webhooks.SweepWebhooks(f.ctx, t0+10)
	if err != nil || n != 3 {
		t.Fatalf("swept %d (%v), want 3", n, err)
	}
	equalIDs(t, "a", f.laneIDs("u:a", 10), []int64{50})
	equalIDs(t, "b", f.laneIDs("u:b", 10), nil)
	equalIDs(t, "c", f.laneIDs("u:c", 10), []int64{60})
	if d := f.whDepth(); d != 2 {
		t.Errorf("depth: %d, want 2", d)
	}
	if n, err := f.webhooks.SweepWebhooks(f.ctx, t0+10); err != nil || n != 0 {
		t.Errorf("swept again: %d (%v)", n, err)
	}
}

// testWebhookBehindHead: a lane read from its head after deletes finds
// the rows behind it, also one added below where the last read began.
func testWebhookBehindHead(t *testing.T, f *fixture) {
	f.addEvents(whEvent("g:team", 100), whEvent("g:team", 200))
	equalIDs(t, "first", f.laneIDs("g:team", 1), []int64{100})
	f.deleteEvents("g:team", 100)
	equalIDs(t, "second", f.laneIDs("g:team", 10), []int64{200})
	f.deleteEvents("g:team", 200)
	equalIDs(t, "none left", f.laneIDs("g:team", 10), nil)
	f.addEvents(whEvent("g:team", 150))
	equalIDs(t, "an event behind the last head", f.laneIDs("g:team", 10), []int64{150})
	f.addEvents(whEvent("g:team", 120))
	equalIDs(t, "an event below the head", f.laneIDs("g:team", 10), []int64{120, 150})
}

// testWebhookRelease: a lane released with no event left is not due; an
// event added after brings it back.
func testWebhookRelease(t *testing.T, f *fixture) {
	f.addEvents(whEvent("u:a", 1))
	if !f.claimLane("u:a", "n1", t0, t0+100) {
		t.Fatal("claim")
	}
	f.deleteEvents("u:a", 1)
	if err := f.webhooks.ReleaseWebhookLane(f.ctx, "u:a", "n1"); err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "due after the last event", f.dueLanes(t0), nil)
	f.addEvents(whEvent("u:a", 2))
	equalIDs(t, "due after a new one", f.dueLanes(t0), []string{"u:a"})
	equalIDs(t, "its events", f.laneIDs("u:a", 10), []int64{2})
}
