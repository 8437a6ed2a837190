package storetest

import (
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Messages tests the Messages role: commit, inbox ranges and heads,
// histories, message reads, dedupe rows and the epoch.
func Messages(t *testing.T, open func(t *testing.T) MessageStore) {
	run(t, open, []testCase{
		{"CommitAndRead", testCommitAndRead},
		{"GetMessages", testGetMessages},
		{"NoteToSelf", testNoteToSelf},
		{"Replay", testReplay},
		{"Limits", testLimits},
		{"Epoch", testEpoch},
	})
}

func testCommitAndRead(t *testing.T, f *fixture) {
	m1 := f.send("alice", "bob", 101, 1000)
	m2 := f.send("bob", "alice", 102, 2000)
	m4 := f.send("alice", "carol", 103, 2500)
	m3 := f.send("alice", "bob", 104, 3000)

	all := f.rangeEvents("alice", 0, 0)
	equalEvents(t, "range alice", all, events("alice", m1, m2, m4, m3))
	for i := 1; i < len(all); i++ {
		if all[i].Ver <= all[i-1].Ver {
			t.Errorf("range not ascending by ver: %d after %d", all[i].Ver, all[i-1].Ver)
		}
	}
	equalEvents(t, "range alice since m2", f.rangeEvents("alice", m2.ToVer, 0), events("alice", m4, m3))
	equalEvents(t, "range alice limit 1", f.rangeEvents("alice", 0, 1), events("alice", m1))
	equalEvents(t, "range alice since head", f.rangeEvents("alice", m3.FromVer, 0), nil)
	equalEvents(t, "range bob", f.rangeEvents("bob", 0, 0), events("bob", m1, m2, m3))
	equalEvents(t, "range unknown user", f.rangeEvents("dave", 0, 0), nil)

	for user, want := range map[string]uint64{"alice": m3.FromVer, "bob": m3.ToVer, "carol": m4.ToVer, "dave": 0} {
		if got := f.head(user); got != want {
			t.Errorf("head %s: got %d, want %d", user, got, want)
		}
	}

	equalEvents(t, "history alice/bob", f.history("alice", "bob", 0, 0), events("alice", m3, m2, m1))
	equalEvents(t, "history bob/alice", f.history("bob", "alice", 0, 0), events("bob", m3, m2, m1))
	equalEvents(t, "history before m3", f.history("alice", "bob", m3.Msg.ID, 0), events("alice", m2, m1))
	equalEvents(t, "history before m2 limit 1", f.history("alice", "bob", m2.Msg.ID, 1), events("alice", m1))
	equalEvents(t, "history limit 1", f.history("alice", "bob", 0, 1), events("alice", m3))
	equalEvents(t, "history alice/carol", f.history("alice", "carol", 0, 0), events("alice", m4))
	equalEvents(t, "history carol/bob", f.history("carol", "bob", 0, 0), nil)

	wantConvs := map[string][]store.Conversation{
		"alice": {
			{User: "alice", Peer: "bob", Last: 104, LastTS: 3000, Ver: m3.FromVer, Unread: 1},
			{User: "alice", Peer: "carol", Last: 103, LastTS: 2500, Ver: m4.FromVer},
		},
		"bob":   {{User: "bob", Peer: "alice", Last: 104, LastTS: 3000, Ver: m3.ToVer, Unread: 2}},
		"carol": {{User: "carol", Peer: "alice", Last: 103, LastTS: 2500, Ver: m4.ToVer, Unread: 1}},
		"dave":  nil,
	}
	for user, want := range wantConvs {
		if got := f.convs(user); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
			t.Errorf("conversations %s:\n got %+v\nwant %+v", user, got, want)
		}
	}

	ack, err := LookupAck(f.ctx, f.messages, "alice", m1.Msg.CMID)
	if err != nil || ack != m1.Ack {
		t.Errorf("lookup ack: %+v, %v; want %+v", ack, err, m1.Ack)
	}
	_, err = LookupAck(f.ctx, f.messages, "bob", m1.Msg.CMID)
	wantErr(t, "lookup ack of another sender", err, store.ErrNotFound)
	_, err = LookupAck(f.ctx, f.messages, "alice", "nope")
	wantErr(t, "lookup unknown ack", err, store.ErrNotFound)

	// A batch's lookup: found and missing keys mixed, out of order, one twice.
	keys := []store.AckKey{{From: "carol", CMID: "x"}, {From: "bob", CMID: m2.Msg.CMID}, {From: "alice", CMID: "nope"},
		{From: "alice", CMID: m1.Msg.CMID}, {From: "bob", CMID: m1.Msg.CMID}, {From: "bob", CMID: m2.Msg.CMID}}
	found, err := f.messages.LookupAcks(f.ctx, keys)
	want := map[store.AckKey]store.Ack{keys[1]: m2.Ack, keys[3]: m1.Ack}
	if err != nil || !reflect.DeepEqual(found, want) {
		t.Errorf("lookup acks:\n got %+v, %v\nwant %+v", found, err, want)
	}
	if found, err := f.messages.LookupAcks(f.ctx, nil); err != nil || len(found) != 0 {
		t.Errorf("lookup of no acks: %+v, %v", found, err)
	}
}

func testGetMessages(t *testing.T, f *fixture) {
	m1 := f.send("alice", "bob", 101, 1000)
	m2 := f.send("bob", "alice", 102, 2000)
	m3 := f.send("alice", "carol", 103, 3000)
	for _, c := range []struct {
		ids  []int64
		want []store.Message
	}{
		{[]int64{103, 999, 101}, []store.Message{m3.Msg, m1.Msg}},
		{[]int64{102, 101, 103}, []store.Message{m2.Msg, m1.Msg, m3.Msg}},
		{[]int64{999, -1}, nil},
		{nil, nil},
	} {
		got, err := f.messages.GetMessages(f.ctx, c.ids)
		if err != nil {
			t.Fatalf("get messages %v: %v", c.ids, err)
		}
		if !(len(got) == 0 && len(c.want) == 0) && !reflect.DeepEqual(got, c.want) {
			t.Errorf("get messages %v:\n got %+v\nwant %+v", c.ids, got, c.want)
		}
	}
}

func testNoteToSelf(t *testing.T, f *fixture) {
	m := f.send("alice", "alice", 101, 1000)
	equalEvents(t, "range", f.rangeEvents("alice", 0, 0), events("alice", m))
	equalEvents(t, "history", f.history("alice", "alice", 0, 0), events("alice", m))
	want := store.Conversation{User: "alice", Peer: "alice", Last: 101, LastTS: 1000, Ver: m.FromVer}
	if got := f.convs("alice"); len(got) != 1 || got[0] != want {
		t.Errorf("conversations: got %+v, want [%+v]", got, want)
	}
	row, err := f.conversations.SetRead(f.ctx, "alice", "alice", 0)
	if err != nil || row.Unread != 0 || row.ReadUpto != 101 {
		t.Errorf("set read: %+v, %v", row, err)
	}
}

// snapshot is everything a replay must leave unchanged.
type snapshot struct {
	Alice, Bob         []store.Event
	AliceConv, BobConv []store.Conversation
	History            []store.Event
	Head               uint64
}

func (f *fixture) snapshot() snapshot {
	f.t.Helper()
	return snapshot{
		Alice: f.rangeEvents("alice", 0, 0), Bob: f.rangeEvents("bob", 0, 0),
		AliceConv: f.convs("alice"), BobConv: f.convs("bob"),
		History: f.history("bob", "alice", 0, 0),
		Head:    f.head("bob"),
	}
}

func testReplay(t *testing.T, f *fixture) {
	var b1 store.Batch
	m1 := f.add(&b1, "alice", "bob", 101, 1000)
	f.add(&b1, "bob", "alice", 102, 1500)
	f.commit(&b1)
	before := f.snapshot()
	f.commit(&b1)
	if after := f.snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("replay changed the store:\nbefore %+v\n after %+v", before, after)
	}

	m3 := f.send("alice", "bob", 103, 2000)
	before = f.snapshot()
	f.commit(&b1) // an old batch again, after a newer one
	after := f.snapshot()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("late replay changed the store:\nbefore %+v\n after %+v", before, after)
	}
	if len(after.Bob) != 3 || len(after.History) != 3 {
		t.Errorf("bob has %d events, %d history rows; want 3 and 3", len(after.Bob), len(after.History))
	}
	c := f.conv("bob", "alice")
	if c.Unread != 2 || c.Last != m3.Msg.ID || c.Ver != m3.ToVer {
		t.Errorf("bob's row after replays: %+v; want unread 2, last %d, ver %d", c, m3.Msg.ID, m3.ToVer)
	}
	if ack, err := LookupAck(f.ctx, f.messages, "alice", m1.Msg.CMID); err != nil || ack != m1.Ack {
		t.Errorf("ack after replay: %+v, %v", ack, err)
	}
}

func testEpoch(t *testing.T, f *fixture) {
	e := f.messages.Epoch()
	if e == "" {
		t.Fatal("empty epoch")
	}
	f.send("alice", "bob", 1, 1)
	if got := f.messages.Epoch(); got != e {
		t.Errorf("epoch changed from %q to %q", e, got)
	}
}

func testLimits(t *testing.T, f *fixture) {
	const n = 120
	var b store.Batch
	for i := range int64(n) {
		f.add(&b, "alice", "bob", 1001+i, 1+i)
	}
	f.commit(&b)
	for _, c := range []struct {
		limit, want int
	}{{0, store.DefaultLimit}, {-1, store.DefaultLimit}, {7, 7}, {500, n}} {
		if got := len(f.rangeEvents("alice", 0, c.limit)); got != c.want {
			t.Errorf("range limit %d: %d events, want %d", c.limit, got, c.want)
		}
		if got := len(f.history("alice", "bob", 0, c.limit)); got != c.want {
			t.Errorf("history limit %d: %d events, want %d", c.limit, got, c.want)
		}
	}
	page := f.rangeEvents("alice", 0, 0)
	if page[0].MsgID != 1001 || page[99].MsgID != 1100 {
		t.Errorf("first page spans %d..%d, want 1001..1100", page[0].MsgID, page[99].MsgID)
	}
	rest := f.rangeEvents("alice", page[len(page)-1].Ver, 0)
	if len(rest) != n-store.DefaultLimit || rest[0].MsgID != 1101 {
		t.Errorf("second page: %d events from %v", len(rest), msgIDs(rest[:1]))
	}
	newest := f.history("alice", "bob", 0, 7)
	if ids := msgIDs(newest); ids[0] != 1120 || ids[6] != 1114 {
		t.Errorf("history limit 7: %v, want 1120 down to 1114", ids)
	}
	older := f.history("bob", "alice", 1021, 0)
	if len(older) != 20 || older[0].MsgID != 1020 || older[19].MsgID != 1001 {
		t.Errorf("history before 1021: %d events %v", len(older), msgIDs(older))
	}
	if row := f.setRead("bob", "alice", 1100); row.Unread != 20 {
		t.Errorf("set read 1100: unread %d, want 20", row.Unread)
	}
}
