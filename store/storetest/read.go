package storetest

import (
	"testing"

	"github.com/imqtt/imqtt/store"
)

// setRead calls SetRead and checks the returned row against the stored one.
func (f *fixture) setRead(user, peer string, upto int64) store.Conversation {
	f.t.Helper()
	row, err := f.s.SetRead(f.ctx, user, peer, upto)
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
	_, err := f.s.SetRead(f.ctx, "bob", "zoe", 0)
	wantErr(t, "set read of no conversation", err, store.ErrNotFound)
	_, err = f.s.SetRead(f.ctx, "nobody", "alice", 5)
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
