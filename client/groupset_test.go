package client

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// gev is a live or synced message of group g at seq s.
func gev(g string, s uint64) Event {
	return Event{Kind: wire.KindMsg, Msg: &wire.Msg{Kind: wire.KindMsg, ID: fmt.Sprint(g, s), Group: g, Seq: s}, Raw: []byte(`{}`)}
}

func gbatch(g string, since, upto uint64, more bool, seqs ...uint64) (wire.Sync, []Event, int) {
	items := make([]Event, len(seqs))
	for i, s := range seqs {
		items[i] = gev(g, s)
	}
	return wire.Sync{Kind: wire.KindSync, Group: g, Since: since, Upto: upto, More: more, Epoch: "e1"}, items, len(items)
}

func seqs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Msg.Seq
	}
	return out
}

// described renders requests as "heads" or "g@since".
func described(reqs []wire.SyncRequest) []string {
	var out []string
	for _, r := range reqs {
		if r.Heads {
			out = append(out, "heads")
			continue
		}
		out = append(out, fmt.Sprintf("%s@%d", r.Group, r.Since))
	}
	return out
}

func wantReqs(t *testing.T, what string, got []wire.SyncRequest, want ...string) {
	t.Helper()
	if d := described(got); !slices.Equal(d, want) && !(len(d) == 0 && len(want) == 0) {
		t.Fatalf("%s: requests %v, want %v", what, d, want)
	}
}

// heads is a heads answer listing hs.
func heads(hs ...wire.GroupHead) []wire.GroupHead { return hs }

var t0 = time.Unix(1_800_000_000, 0)

// Heads start cursors at the join, raise a cursor below a re-join, sync
// what moved two requests at a time, and drop what is no longer listed.
func TestGroupSetHeads(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 5, Epoch: "e1"}, "b": {Seq: 2}, "old": {Seq: 9}}, &room{}, 100, 10*time.Second)
	wantReqs(t, "connect", gs.connected(t0), "heads")
	out, reqs := gs.onHeads(heads(
		wire.GroupHead{Group: "a", Seq: 8, Join: 0},
		wire.GroupHead{Group: "b", Seq: 12, Join: 10}, // re-joined at 10
		wire.GroupHead{Group: "c", Seq: 3, Join: 1},   // new
		wire.GroupHead{Group: "d", Seq: 4, Join: 4},   // new, nothing after the join
	), t0)
	if len(out) != 1 || out[0].Group == nil || out[0].Group.Group != "old" || out[0].Group.Action != ActionLeft {
		t.Fatalf("events %+v, want old left", out)
	}
	wantReqs(t, "after heads", reqs, "a@5", "b@10")
	if gs.settled() {
		t.Fatal("settled with syncs in flight")
	}
	cur := gs.cursors()
	if _, ok := cur["old"]; ok || cur["c"].Seq != 1 || cur["d"].Seq != 4 || cur["b"].Seq != 10 || !gs.dirty {
		t.Fatalf("cursors %+v", cur)
	}
	out, reqs, _ = gs.batchAt(gbatch("a", 5, 8, false, 6, 7, 8))
	if !slices.Equal(seqs(out), []uint64{6, 7, 8}) {
		t.Fatalf("a delivered %v", seqs(out))
	}
	wantReqs(t, "a done", reqs, "c@1")
	_, reqs, _ = gs.batchAt(gbatch("b", 10, 12, false, 11, 12))
	wantReqs(t, "b done", reqs)
	_, reqs, _ = gs.batchAt(gbatch("c", 1, 3, false, 2, 3))
	wantReqs(t, "c done", reqs)
	if !gs.settled() {
		t.Fatalf("not settled: busy %d, queue %d", gs.busy, len(gs.queue))
	}
}

// The batch method's extra arguments, for gs.batchAt(gbatch(...)) above.
func (gs *groupSet) batchAt(b wire.Sync, items []Event, n int) ([]Event, []wire.SyncRequest, int) {
	return gs.batch(b, items, n, t0)
}

// A live message is delivered when it continues its group, starts a sync
// of that group on a gap, and asks for heads when its group is unknown:
// never more than one heads request a second.
func TestGroupSetLive(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 5}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 5}), t0)
	out, reqs := gs.live(gev("a", 6), t0)
	if !slices.Equal(seqs(out), []uint64{6}) || len(reqs) != 0 {
		t.Fatalf("in order: %v %v", seqs(out), described(reqs))
	}
	out, reqs = gs.live(gev("a", 9), t0)
	if len(out) != 0 {
		t.Fatalf("a gap delivered %v", seqs(out))
	}
	wantReqs(t, "gap", reqs, "a@6")
	out, _, _ = gs.batchAt(gbatch("a", 6, 8, false, 7, 8))
	if !slices.Equal(seqs(out), []uint64{7, 8, 9}) {
		t.Fatalf("after the gap's sync: %v", seqs(out))
	}
	_, reqs = gs.live(gev("x", 1), t0.Add(100*time.Millisecond))
	wantReqs(t, "unknown group, under a second after the last heads", reqs)
	wantReqs(t, "tick a second later", gs.tick(t0.Add(time.Second)), "heads")
	_, reqs = gs.live(gev("x", 2), t0.Add(1100*time.Millisecond))
	wantReqs(t, "unknown group while heads are in flight", reqs)
}

// Errors naming a group: busy retries after a second, not_member asks heads;
// a request with no answer is sent again after the timeout.
func TestGroupSetErrorsAndTimeouts(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 1}, "b": {Seq: 1}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	_, reqs := gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 3}, wire.GroupHead{Group: "b", Seq: 3}), t0)
	wantReqs(t, "heads", reqs, "a@1", "b@1")
	wantReqs(t, "busy", gs.failed(wire.Error{Group: "a", Code: wire.CodeBusy}, t0))
	wantReqs(t, "before the retry", gs.tick(t0.Add(500*time.Millisecond)))
	wantReqs(t, "the retry", gs.tick(t0.Add(time.Second)), "a@1")
	wantReqs(t, "not a member", gs.failed(wire.Error{Group: "b", Code: wire.CodeNotMember}, t0.Add(2*time.Second)), "heads")
	wantReqs(t, "a unanswered", gs.tick(t0.Add(11*time.Second)), "a@1")
	wantReqs(t, "heads unanswered", gs.tick(t0.Add(12*time.Second)), "heads")
	out, reqs := gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 3}), t0.Add(13*time.Second))
	if len(out) != 1 || out[0].Group.Group != "b" {
		t.Fatalf("b not told as left: %+v", out)
	}
	wantReqs(t, "a still in flight", reqs)
	if gs.busy != 1 {
		t.Fatalf("busy %d, want 1 (a's sync)", gs.busy)
	}
}

// The room for waiting live events is one for the inbox and every group.
func TestGroupSetSharedRoom(t *testing.T) {
	r := &room{}
	inbox := newSequencer(0, "e1", ver, r)
	gs := newGroupSet(map[string]GroupCursor{"a": {}, "b": {}}, r, 100, 10*time.Second)
	gs.connected(t0)
	for s := uint64(2); s < 1+maxHeld/2; s++ { // maxHeld/2-1 each
		gs.live(gev("a", s), t0)
		gs.live(gev("b", s), t0)
	}
	if r.events != maxHeld-2 {
		t.Fatalf("room holds %d, want %d", r.events, maxHeld-2)
	}
	inbox.live(ev(5))
	inbox.live(ev(6))
	inbox.live(ev(7)) // no room
	if r.events != maxHeld || !inbox.overflow {
		t.Fatalf("room holds %d, overflow %v", r.events, inbox.overflow)
	}
	gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 0}), t0) // b is gone: its held events go
	if r.events != maxHeld/2-1+2 {                            // a's and the inbox's
		t.Fatalf("after b left the room holds %d", r.events)
	}
}

// A sync that ends below the head without progress (a hole still
// settling) is retried a second later, and until then the set is not
// settled: WaitSynced must not return with a group behind its head.
func TestGroupSetRetryKeepsUnsettled(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 2}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	_, reqs := gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 5}), t0)
	wantReqs(t, "heads", reqs, "a@2")
	_, reqs, _ = gs.batchAt(gbatch("a", 2, 2, false))
	wantReqs(t, "a sync that brought nothing", reqs)
	if gs.settled() {
		t.Fatal("settled with a at 2 below its head 5 and a retry to come")
	}
	wantReqs(t, "the retry", gs.tick(t0.Add(groupRetry)), "a@2")
	gs.batchAt(gbatch("a", 2, 5, false, 3, 4, 5))
	if !gs.settled() {
		t.Fatal("not settled once a reached its head")
	}
}

// A cursor above its group's head (another history's) is synced, and the
// server's reset brings the group from the join.
func TestGroupSetCursorAboveHead(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 1000, Epoch: "old"}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	_, reqs := gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 3}), t0)
	wantReqs(t, "heads", reqs, "a@1000")
	b, items, n := gbatch("a", 0, 3, false, 1, 2, 3)
	b.Reset = true
	out, _, _ := gs.batch(b, items, n, t0)
	if !slices.Equal(seqs(out), []uint64{1, 2, 3}) || gs.cursors()["a"].Seq != 3 {
		t.Fatalf("after the reset: delivered %v, cursor %+v", seqs(out), gs.cursors()["a"])
	}
}

// Groups that heads no longer list are told in name order.
func TestGroupSetLeftInOrder(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"c": {}, "a": {}, "b": {}, "d": {}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	out, _ := gs.onHeads(heads(wire.GroupHead{Group: "b"}), t0)
	var got []string
	for _, ev := range out {
		got = append(got, ev.Group.Group)
	}
	if !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Fatalf("left events %v, want a c d", got)
	}
}
