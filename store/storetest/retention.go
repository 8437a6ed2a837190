package storetest

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// RetentionStore is what the Retention part opens: swept messages are
// committed as any, with their changes, group logs and burns.
type RetentionStore interface {
	store.Versions
	store.Messages
	store.Conversations
	store.Groups
	store.Grants
	store.Lives
	store.Retention
	store.Burns
}

// Retention tests the sweep of old messages and the burns of burn after
// reading (store/retention.go).
func Retention(t *testing.T, open func(t *testing.T) RetentionStore) {
	run(t, open, []testCase{
		{"Sweep", testSweep},
		{"SweepResume", testSweepResume},
		{"SweepConversationGone", testSweepConversationGone},
		{"SweepChanges", testSweepChanges},
		{"SweepGroup", testSweepGroup},
		{"SweepForwardedGrant", testSweepForwardedGrant},
		{"Burns", testBurns},
	})
}

func (f *fixture) retention() RetentionStore {
	f.t.Helper()
	r, ok := f.store.(RetentionStore)
	if !ok {
		f.t.Fatal("the store has no Retention role")
	}
	return r
}

func (f *fixture) sweep(before int64, limit int) store.Sweep {
	f.t.Helper()
	sw, err := f.retention().SweepMessages(f.ctx, before, limit)
	if err != nil {
		f.t.Fatalf("sweep before %d: %v", before, err)
	}
	return sw
}

func (f *fixture) inboxFloor(user string) uint64 {
	f.t.Helper()
	v, err := f.retention().InboxFloor(f.ctx, user)
	if err != nil {
		f.t.Fatalf("inbox floor of %s: %v", user, err)
	}
	return v
}

func (f *fixture) gone(what string, ids ...int64) {
	f.t.Helper()
	ms, err := f.messages.GetMessages(f.ctx, ids)
	if err != nil || len(ms) != 0 {
		f.t.Errorf("%s: messages %v left: %+v, %v", what, ids, ms, err)
	}
}

// testSweep: the messages below the bound go with their inbox and history
// entries, acks, grants and reactions; the floor is the last swept
// version; the conversation row is recounted; nothing younger is touched.
func testSweep(t *testing.T, f *fixture) {
	var ss []sent
	for id := int64(1); id <= 10; id++ {
		from, to := "alice", "bob"
		if id%2 == 0 {
			from, to = "bob", "alice"
		}
		var b store.Batch
		s := f.add(&b, from, to, id, id)
		if id == 3 || id == 8 {
			b.Messages[0].Media = "m-" + string(rune('a'+id))
			b.Grants = []store.Grant{{Media: b.Messages[0].Media, Principal: "u:" + to}}
		}
		f.commit(&b)
		ss = append(ss, s)
	}
	f.react(20, "bob", 2, "👍", true)   // a reaction of a swept message: its record is younger
	f.react(21, "alice", 7, "👍", true) // of a kept one
	before := f.snapshotFor("alice", "bob")

	sw := f.sweep(6, 0)
	if sw.Messages != 5 || !sw.Done || sw.Cursor != 6 {
		t.Errorf("sweep: %+v, want 5 messages, done, cursor 6", sw)
	}
	f.gone("swept", 1, 2, 3, 4, 5)
	for _, user := range []string{"alice", "bob"} {
		peer := map[string]string{"alice": "bob", "bob": "alice"}[user]
		var want []int64
		for _, e := range before[user] {
			if e.MsgID >= 6 {
				want = append(want, e.MsgID)
			}
		}
		if got := msgIDs(f.rangeEvents(user, 0, 100)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s's range after the sweep: %v, want %v", user, got, want)
		}
		if got := msgIDs(f.history(user, peer, 0, 100)); !reflect.DeepEqual(got, []int64{10, 9, 8, 7, 6}) {
			t.Errorf("%s's history after the sweep: %v", user, got)
		}
	}
	// The floor: the version of the last entry swept from the front.
	if got, want := f.inboxFloor("alice"), ss[4].event("alice").Ver; got != want {
		t.Errorf("alice's floor: %d, want %d", got, want)
	}
	if got := f.inboxFloor("carol"); got != 0 {
		t.Errorf("carol's floor: %d", got)
	}
	if _, err := LookupAck(f.ctx, f.messages, "alice", "c1"); err == nil {
		t.Error("the ack of a swept message is left")
	}
	if _, err := LookupAck(f.ctx, f.messages, "alice", "c7"); err != nil {
		t.Errorf("the ack of a kept message: %v", err)
	}
	if p, err := f.retention().MediaGrants(f.ctx, "m-d"); err != nil || len(p) != 0 {
		t.Errorf("grants of a swept message's media: %v, %v", p, err)
	}
	if p, err := f.retention().MediaGrants(f.ctx, "m-i"); err != nil || len(p) != 1 {
		t.Errorf("grants of a kept message's media: %v, %v", p, err)
	}
	rs := f.reactions(2, 7)
	if len(rs[2]) != 0 || len(rs[7]) != 1 {
		t.Errorf("reactions after the sweep: %+v", rs)
	}
	// bob's unread counted 1, 3, 5, 7, 9 and now only 7, 9.
	if c := f.conv("bob", "alice"); c.Unread != 2 || c.Last != 10 {
		t.Errorf("bob's row: %+v, want unread 2, last 10", c)
	}
	if c := f.conv("alice", "bob"); c.Unread != 3 {
		t.Errorf("alice's row: %+v, want unread 3", c)
	}
	cur, err := f.retention().SweepCursor(f.ctx)
	if err != nil || cur != 6 {
		t.Errorf("cursor: %d, %v", cur, err)
	}
	// Again: nothing more, the cursor stays.
	if sw := f.sweep(6, 0); sw.Messages != 0 || !sw.Done || sw.Cursor != 6 {
		t.Errorf("second sweep: %+v", sw)
	}
	if sw := f.sweep(3, 0); sw.Messages != 0 || sw.Cursor != 6 {
		t.Errorf("a sweep below the cursor: %+v", sw)
	}
}

// snapshotFor is each user's range, as committed.
func (f *fixture) snapshotFor(users ...string) map[string][]store.Event {
	out := map[string][]store.Event{}
	for _, u := range users {
		out[u] = f.rangeEvents(u, 0, 100)
	}
	return out
}

// testSweepResume: a sweep of limit n moves the cursor past n messages
// only; the next resumes there.
func testSweepResume(t *testing.T, f *fixture) {
	for id := int64(1); id <= 7; id++ {
		f.send("alice", "bob", id*10, id)
	}
	sw := f.sweep(65, 3)
	if sw.Messages != 3 || sw.Done || sw.Cursor != 31 {
		t.Fatalf("first chunk: %+v, want 3 messages, not done, cursor 31", sw)
	}
	f.gone("first chunk", 10, 20, 30)
	if got := msgIDs(f.rangeEvents("bob", 0, 100)); !reflect.DeepEqual(got, []int64{40, 50, 60, 70}) {
		t.Errorf("after the first chunk: %v", got)
	}
	sw = f.sweep(65, 3)
	if sw.Messages != 3 || sw.Cursor != 61 {
		t.Fatalf("second chunk: %+v", sw)
	}
	for !sw.Done {
		sw = f.sweep(65, 3)
	}
	if sw.Cursor != 65 {
		t.Errorf("cursor at the end: %d, want 65", sw.Cursor)
	}
	if got := msgIDs(f.rangeEvents("bob", 0, 100)); !reflect.DeepEqual(got, []int64{70}) {
		t.Errorf("after the sweep: %v", got)
	}
	if c := f.conv("bob", "alice"); c.Unread != 1 || c.Last != 70 {
		t.Errorf("bob's row: %+v", c)
	}
}

// testSweepConversationGone: a conversation whose every message went has
// no row; another is left as it was.
func testSweepConversationGone(t *testing.T, f *fixture) {
	f.send("alice", "bob", 1, 1)
	f.send("bob", "alice", 2, 2)
	f.send("alice", "carol", 3, 3)
	f.send("carol", "alice", 10, 10)
	head := f.head("bob")
	f.sweep(5, 0)
	for _, c := range f.convs("alice") {
		if c.Peer == "bob" {
			t.Errorf("alice's row with bob is left: %+v", c)
		}
	}
	if c := f.conv("alice", "carol"); c.Last != 10 || c.Unread != 1 {
		t.Errorf("alice's row with carol: %+v", c)
	}
	if cs := f.convs("bob"); len(cs) != 0 {
		t.Errorf("bob's rows: %+v", cs)
	}
	if got := f.head("bob"); got != head {
		t.Errorf("bob's head after his inbox was swept: %d, want %d (versions never go back)", got, head)
	}
}

// testSweepChanges: change records below the bound go from the inboxes;
// a younger change of a swept message stays in the inbox as a record of
// nothing.
func testSweepChanges(t *testing.T, f *fixture) {
	f.send("alice", "bob", 1, 1)
	rb, _ := f.change1("alice", "bob", 2, 2, store.Change{Kind: store.ChangeRecall, Target: 1}, false)
	rb.Recalls = []store.Recall{{MsgID: 1, By: "alice", TS: 2}}
	f.commit(rb)
	db, _ := f.change1("bob", "alice", 3, 3, store.Change{Kind: store.ChangeDelete, Peer: "alice"}, true)
	f.commit(db)
	f.send("bob", "alice", 9, 9)
	f.sweep(4, 0)
	f.gone("swept", 1, 2, 3)
	for _, u := range []string{"alice", "bob"} {
		if got := msgIDs(f.rangeEvents(u, 0, 100)); !reflect.DeepEqual(got, []int64{9}) {
			t.Errorf("%s's range: %v", u, got)
		}
	}
	if f.inboxFloor("bob") != 3 || f.inboxFloor("alice") != 2 {
		t.Errorf("floors: alice %d, bob %d", f.inboxFloor("alice"), f.inboxFloor("bob"))
	}
}

// testSweepGroup: a group's messages and change records go with their
// log rows; the group's floor is the last swept seq, in its head with the
// change records up to it, so a member's unread no longer counts them.
func testSweepGroup(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	f.groupSend("g1", "alice", 101, 1)
	f.commit(groupChange("g1", "alice", 102, 2, 1, store.Change{Kind: store.ChangeReaction, Target: 101, Emoji: "👍", Add: true}))
	f.groupSend("g1", "alice", 103, 3)
	f.groupSend("g1", "alice", 104, 4)
	if u := f.member("g1", "bob").Unread(f.groupHead("g1")); u != 3 {
		t.Fatalf("bob's unread before the sweep: %d", u)
	}
	f.sweep(103, 0)
	f.gone("swept", 101, 102)
	var got []int64
	for _, m := range f.groupRange("g1", 0) {
		got = append(got, m.ID)
	}
	if !reflect.DeepEqual(got, []int64{103, 104}) {
		t.Errorf("group range: %v", got)
	}
	if v, err := f.retention().GroupFloor(f.ctx, "g1"); err != nil || v != 2 {
		t.Errorf("group floor: %d, %v", v, err)
	}
	h := f.groupHead("g1")
	if h.Seq != 4 || h.MsgID != 104 || h.Floor != 2 || h.FloorChanges != 1 || h.Changes != 1 {
		t.Errorf("head: %+v; want seq 4, msg 104, floor 2 with 1 change", h)
	}
	if u := f.member("g1", "bob").Unread(h); u != 2 {
		t.Errorf("bob's unread after the sweep: %d, want 2", u)
	}
	// A commit after the sweep keeps the floor.
	f.groupSend("g1", "alice", 105, 5)
	if h := f.groupHead("g1"); h.Floor != 2 || h.Seq != 5 {
		t.Errorf("head after a send: %+v", h)
	}
}

// testSweepForwardedGrant: media sent to the same user, or the same
// group, in an old message and again in a young one (a forward) has one
// grant row; sweeping the old message leaves it to the young one, and
// sweeping the young one takes it.
func testSweepForwardedGrant(t *testing.T, f *fixture) {
	withMedia := func(b *store.Batch, media, principal string) {
		m := &b.Messages[len(b.Messages)-1]
		m.Media = media
		b.Grants = append(b.Grants, store.Grant{Media: media, Principal: principal, MsgID: m.ID})
	}
	var b store.Batch
	f.add(&b, "alice", "bob", 1, 1)
	withMedia(&b, "m-fwd", "u:bob")
	f.commit(&b)
	b = store.Batch{}
	f.add(&b, "carol", "bob", 5, 5) // the forward, from someone else
	withMedia(&b, "m-fwd", "u:bob")
	f.commit(&b)

	f.createGroup("g1", "alice", "bob")
	for _, id := range []int64{2, 6} {
		m := store.Message{ID: id, From: "alice", Group: "g1", Seq: uint64(id), Type: "text", CMID: "g" + strconv.FormatInt(id, 10), TS: id}
		b := store.Batch{Messages: []store.Message{m},
			Acks:  []store.Ack{{From: "alice", CMID: m.CMID, ID: id, TS: id, Group: "g1", Seq: m.Seq}},
			Heads: []store.GroupHead{{Group: "g1", Seq: m.Seq, MsgID: id, TS: id}}}
		withMedia(&b, "m-gfwd", "g:g1")
		f.commit(&b)
	}
	grants := func(media string) []string {
		t.Helper()
		p, err := f.retention().MediaGrants(f.ctx, media)
		if err != nil {
			t.Fatalf("grants of %s: %v", media, err)
		}
		return p
	}

	f.sweep(4, 0)
	f.gone("swept", 1, 2)
	if p := grants("m-fwd"); !reflect.DeepEqual(p, []string{"u:bob"}) {
		t.Errorf("grants of media forwarded to bob after the old message went: %q, want u:bob", p)
	}
	if p := grants("m-gfwd"); !reflect.DeepEqual(p, []string{"g:g1"}) {
		t.Errorf("grants of media forwarded to g1 after the old message went: %q, want g:g1", p)
	}
	f.sweep(7, 0)
	f.gone("swept", 5, 6)
	if p := grants("m-fwd"); len(p) != 0 {
		t.Errorf("grants of m-fwd after both messages went: %q", p)
	}
	if p := grants("m-gfwd"); len(p) != 0 {
		t.Errorf("grants of m-gfwd after both messages went: %q", p)
	}
}

// testBurns: a burn is unread until its message is read, then due at the
// read plus its TTL, once; due ones are listed soonest first; deletes are
// idempotent; a swept message takes its burn.
func testBurns(t *testing.T, f *fixture) {
	r := f.retention()
	for i, id := range []int64{10, 20, 30} {
		var b store.Batch
		f.add(&b, "alice", "bob", id, id)
		b.Messages[0].TTL = 5 * (i + 1)
		b.Burns = []store.Burn{{MsgID: id, User: "bob", Peer: "alice", TTL: 5 * (i + 1)}}
		f.commitTwice(&b)
	}
	if m := f.message(20); m.TTL != 10 {
		t.Errorf("message TTL: %d", m.TTL)
	}
	if bs, err := r.DueBurns(f.ctx, 1<<40, 0); err != nil || len(bs) != 0 {
		t.Errorf("due before any read: %+v, %v", bs, err)
	}
	if bs, err := r.ReadBurns(f.ctx, "alice", "bob", 100, 1000); err != nil || len(bs) != 0 {
		t.Errorf("the sender's read: %+v, %v", bs, err)
	}
	bs, err := r.ReadBurns(f.ctx, "bob", "alice", 20, 1000)
	want := []store.Burn{{MsgID: 10, User: "bob", Peer: "alice", TTL: 5, Due: 6000}, {MsgID: 20, User: "bob", Peer: "alice", TTL: 10, Due: 11000}}
	if err != nil || !reflect.DeepEqual(bs, want) {
		t.Errorf("read: %+v, %v; want %+v", bs, err, want)
	}
	if bs, err := r.ReadBurns(f.ctx, "bob", "alice", 20, 5000); err != nil || len(bs) != 0 {
		t.Errorf("read again: %+v, %v", bs, err)
	}
	if bs, err := r.DueBurns(f.ctx, 5999, 0); err != nil || len(bs) != 0 {
		t.Errorf("due before its time: %+v, %v", bs, err)
	}
	bs, err = r.DueBurns(f.ctx, 20000, 0)
	if err != nil || !reflect.DeepEqual(bs, want) {
		t.Errorf("due: %+v, %v", bs, err)
	}
	if err := r.DeleteBurns(f.ctx, []int64{10, 10, 999}); err != nil {
		t.Fatal(err)
	}
	if bs, _ := r.DueBurns(f.ctx, 20000, 0); len(bs) != 1 || bs[0].MsgID != 20 {
		t.Errorf("due after a delete: %+v", bs)
	}
	// A swept message's burn goes with it, read or not.
	f.sweep(25, 0)
	if bs, _ := r.DueBurns(f.ctx, 20000, 0); len(bs) != 0 {
		t.Errorf("a swept message's burn is due: %+v", bs)
	}
	bs, err = r.ReadBurns(f.ctx, "bob", "alice", 0x7fffffffffffffff, 2000)
	if err != nil || len(bs) != 1 || bs[0].MsgID != 30 || bs[0].Due != 17000 {
		t.Errorf("read after the sweep: %+v, %v", bs, err)
	}
}
