package storetest

import (
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Conversations tests the Conversations role: rows moved by Commit, their
// order, unread counts and read positions.
func Conversations(t *testing.T, open func(t *testing.T) MessageStore) {
	run(t, open, []testCase{
		{"AccumulateInBatch", testAccumulateInBatch},
		{"ConversationOrder", testConversationOrder},
		{"SetRead", testSetRead},
		{"SetReadLateMessage", testSetReadLateMessage},
	})
}

// setRead calls SetRead and checks the returned row against the stored one.
func (f *fixture) setRead(user, peer string, upto int64) store.Conversation {
	f.t.Helper()
	row, err := f.conversations.SetRead(f.ctx, user, peer, upto)
	if err != nil {
		f.t.Fatalf("set read %s/%s upto %d: %v", user, peer, upto, err)
	}
	if stored := f.conv(user, peer); stored != row {
		f.t.Errorf("set read returned %+v, stored %+v", row, stored)
	}
	return row
}

func testSetRead(t *testing.T, f *fixture) {
	f.send("alice", "bob", 10, 100)
	f.send("bob", "alice", 11, 110)
	f.send("alice", "bob", 12, 120)
	f.send("alice", "bob", 13, 130)
	if c := f.conv("bob", "alice"); c.Unread != 3 {
		t.Fatalf("bob's unread before reading: %d, want 3", c.Unread)
	}
	steps := []struct {
		upto     int64
		readUpto int64
		unread   int64
		why      string
	}{
		{10, 10, 2, "own message 11 is not counted"},
		{5, 10, 2, "the position never moves back"},
		{12, 12, 1, "forward"},
	}
	for _, s := range steps {
		row := f.setRead("bob", "alice", s.upto)
		if row.ReadUpto != s.readUpto || row.Unread != s.unread {
			t.Errorf("set read upto %d (%s): read_upto %d unread %d; want %d and %d",
				s.upto, s.why, row.ReadUpto, row.Unread, s.readUpto, s.unread)
		}
	}
	f.send("alice", "bob", 14, 140)
	if c := f.conv("bob", "alice"); c.Unread != 2 || c.ReadUpto != 12 {
		t.Errorf("after a new message: %+v; want unread 2, read_upto 12", c)
	}
	if row := f.setRead("bob", "alice", 0); row.ReadUpto != 14 || row.Unread != 0 {
		t.Errorf("set read 0 (the last message): %+v; want read_upto 14, unread 0", row)
	}
	if c := f.conv("alice", "bob"); c.Unread != 1 {
		t.Errorf("alice's unread: %d, want 1 (message 11 only)", c.Unread)
	}
	if row := f.setRead("alice", "bob", 0); row.ReadUpto != 14 || row.Unread != 0 {
		t.Errorf("alice set read 0: %+v", row)
	}
	// A position past the last message is the last message: later messages still count.
	if row := f.setRead("bob", "alice", 1<<62); row.ReadUpto != 14 || row.Unread != 0 {
		t.Errorf("set read past the end: %+v; want read_upto 14", row)
	}
	f.send("alice", "bob", 15, 150)
	if c := f.conv("bob", "alice"); c.Unread != 1 {
		t.Errorf("after reading past the end, a new message: unread %d, want 1", c.Unread)
	}
	_, err := f.conversations.SetRead(f.ctx, "bob", "zoe", 0)
	wantErr(t, "set read of no conversation", err, store.ErrNotFound)
	_, err = f.conversations.SetRead(f.ctx, "nobody", "alice", 5)
	wantErr(t, "set read of unknown user", err, store.ErrNotFound)
}

// testSetReadLateMessage commits a message whose ID is at or below the read
// position after the position moved: it is not unread.
func testSetReadLateMessage(t *testing.T, f *fixture) {
	f.send("alice", "bob", 100, 1000)
	f.setRead("bob", "alice", 0)
	f.send("alice", "bob", 50, 1001)
	if c := f.conv("bob", "alice"); c.Unread != 0 {
		t.Errorf("unread after a late message below the read position: %d, want 0", c.Unread)
	}
	if row := f.setRead("bob", "alice", 100); row.Unread != 0 {
		t.Errorf("recount: unread %d, want 0", row.Unread)
	}
	f.send("alice", "bob", 101, 1002)
	if row := f.setRead("bob", "alice", 100); row.Unread != 1 {
		t.Errorf("recount after message 101: unread %d, want 1", row.Unread)
	}
}

func testAccumulateInBatch(t *testing.T, f *fixture) {
	var b store.Batch
	m1 := f.add(&b, "alice", "bob", 101, 1000)
	m2 := f.add(&b, "alice", "bob", 102, 1001)
	m3 := f.add(&b, "bob", "alice", 103, 1002)
	m4 := f.add(&b, "alice", "bob", 104, 1003)
	m5 := f.add(&b, "alice", "carol", 105, 1004)
	f.commit(&b)

	want := map[[2]string]store.Conversation{
		{"alice", "bob"}:   {User: "alice", Peer: "bob", Last: 104, LastTS: 1003, Ver: m4.FromVer, Unread: 1},
		{"bob", "alice"}:   {User: "bob", Peer: "alice", Last: 104, LastTS: 1003, Ver: m4.ToVer, Unread: 3},
		{"alice", "carol"}: {User: "alice", Peer: "carol", Last: 105, LastTS: 1004, Ver: m5.FromVer},
		{"carol", "alice"}: {User: "carol", Peer: "alice", Last: 105, LastTS: 1004, Ver: m5.ToVer, Unread: 1},
	}
	for k, w := range want {
		if got := f.conv(k[0], k[1]); got != w {
			t.Errorf("row %s/%s: got %+v, want %+v", k[0], k[1], got, w)
		}
	}
	if n := len(f.convs("bob")); n != 1 {
		t.Errorf("bob has %d conversation rows, want 1", n)
	}
	equalEvents(t, "range bob", f.rangeEvents("bob", 0, 0), events("bob", m1, m2, m3, m4))
	equalEvents(t, "history alice/bob", f.history("alice", "bob", 0, 0), events("alice", m4, m3, m2, m1))
}

func testConversationOrder(t *testing.T, f *fixture) {
	f.send("alice", "bob", 10, 100)
	f.send("alice", "carol", 11, 200)
	f.send("alice", "dave", 12, 200) // same time as carol, higher ID
	f.send("alice", "erin", 9, 50)
	peers := func() []string {
		var ps []string
		for _, c := range f.convs("alice") {
			ps = append(ps, c.Peer)
		}
		return ps
	}
	if got, want := peers(), []string{"dave", "carol", "bob", "erin"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order: got %v, want %v", got, want)
	}
	f.send("erin", "alice", 13, 300)
	if got, want := peers(), []string{"erin", "dave", "carol", "bob"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order after erin wrote: got %v, want %v", got, want)
	}
}
