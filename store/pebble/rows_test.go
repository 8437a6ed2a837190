package pebble_test

import (
	"strings"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestFormat2Rows: the format-1 fixture upgrades to format 2 with its JSON
// ack and conversation rows as they were, all still read (dedupe, the
// conversation list, read positions, export); a new send writes binary
// rows, a JSON row it moves becomes binary, and both kinds read back alike.
func TestFormat2Rows(t *testing.T) {
	dir := fixtureStore(t)
	s, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	checkAcks := func(want map[string]store.Ack) {
		t.Helper()
		var keys []store.AckKey
		for cmid := range want {
			keys = append(keys, store.AckKey{From: "alice", CMID: cmid})
		}
		found, err := s.LookupAcks(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for cmid, w := range want {
			if got := found[store.AckKey{From: "alice", CMID: cmid}]; got != w {
				t.Errorf("ack of %s: %+v, want %+v", cmid, got, w)
			}
		}
	}
	old := map[string]store.Ack{}
	found, err := s.LookupAcks(ctx, []store.AckKey{{From: "alice", CMID: "c1"}, {From: "alice", CMID: "c3"}, {From: "alice", CMID: "g1"}})
	if err != nil || len(found) != 3 {
		t.Fatalf("format-1 acks after the upgrade: %+v, %v", found, err)
	}
	for k, a := range found {
		old[k.CMID] = a
	}
	if g := old["g1"]; g.Group != "g1" || g.Seq != 1 || g.ID != 200 || g.TS != 5000 {
		t.Errorf("format-1 group ack %+v", g)
	}

	from, _ := s.ReserveVersions(ctx, "alice", 1)
	to, _ := s.ReserveVersions(ctx, "bob", 1)
	m := store.Message{ID: 104, From: "alice", To: "bob", Type: "text", Body: "m4", CMID: "c4", TS: 4000}
	ack := store.Ack{From: "alice", CMID: "c4", ID: 104, Ver: from, TS: 4000}
	gack := store.Ack{From: "alice", CMID: "g2", ID: 201, TS: -1, Group: "g1", Seq: 1 << 40}
	if err := s.Commit(ctx, &store.Batch{Messages: []store.Message{m}, Acks: []store.Ack{ack, gack},
		Entries: []store.Entry{{User: "alice", Ver: from, Peer: "bob", Out: true, MsgID: 104}, {User: "bob", Ver: to, Peer: "alice", MsgID: 104}},
		Convs: []store.ConvUpdate{{User: "alice", Peer: "bob", MsgID: 104, TS: 4000, Ver: from},
			{User: "bob", Peer: "alice", MsgID: 104, TS: 4000, Ver: to, Incoming: true}}}); err != nil {
		t.Fatal(err)
	}
	old["c4"], old["g2"] = ack, gack
	checkAcks(old)
	convs, err := s.Conversations(ctx, "bob")
	if err != nil || len(convs) != 1 || convs[0] != (store.Conversation{User: "bob", Peer: "alice", Last: 104, LastTS: 4000, Ver: to, Unread: 4}) {
		t.Fatalf("bob's conversation moved from a JSON row: %+v, %v", convs, err)
	}
	row, err := s.SetRead(ctx, "bob", "alice", 102)
	if err != nil || row.Unread != 2 || row.ReadUpto != 102 || row.User != "bob" || row.Peer != "alice" {
		t.Fatalf("set read on a binary row: %+v, %v", row, err)
	}
	if convs, err := s.Conversations(ctx, "bob"); err != nil || len(convs) != 1 || convs[0] != row {
		t.Fatalf("bob's conversation after read: %+v, %v; want %+v", convs, err, row)
	}

	acks := map[string]store.Ack{}
	if err := pebble.Export(ctx, s, pebble.Acks, nil, func(_ []byte, a store.Ack) error { acks[a.CMID] = a; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(acks) != 6 || acks["c4"] != ack || acks["g2"] != gack || acks["c1"] != old["c1"] {
		t.Errorf("exported acks %+v", acks)
	}
	n := 0
	if err := pebble.Export(ctx, s, pebble.Conversations, nil, func(_ []byte, c store.Conversation) error {
		if c.User == "" || c.Peer == "" || c.Last != 104 {
			t.Errorf("exported conversation %+v", c)
		}
		n++
		return nil
	}); err != nil || n != 2 {
		t.Errorf("exported %d conversations, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if f := readKey(t, dir, "meta/format"); f != "2" {
		t.Errorf("format %q after the upgrade, want 2", f)
	}
	if v := readKey(t, dir, "d/alice\x00c1"); !strings.HasPrefix(v, "{") {
		t.Errorf("format-1 ack rewritten: %q", v)
	}
	if v := readKey(t, dir, "d/alice\x00c4"); strings.HasPrefix(v, "{") || len(v) > 24 {
		t.Errorf("new ack not binary: %q", v)
	}
	if v := readKey(t, dir, "c/bob\x00alice"); strings.HasPrefix(v, "{") || len(v) > 24 {
		t.Errorf("moved conversation row not binary: %q", v)
	}
}

// TestReadOnlyFormat1: OpenReadOnly (migrate's source) reads a format-1
// store as it is, JSON rows and all, without the upgrade it cannot make.
func TestReadOnlyFormat1(t *testing.T) {
	s, err := pebble.OpenReadOnly(fixtureStore(t), pebble.Options{})
	if err != nil {
		t.Fatalf("read-only open of format 1: %v", err)
	}
	defer s.Close()
	var acks []store.Ack
	if err := pebble.Export(t.Context(), s, pebble.Acks, nil, func(_ []byte, a store.Ack) error { acks = append(acks, a); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(acks) != 4 || acks[0].From != "alice" || acks[0].CMID != "c1" || acks[0].ID != 101 {
		t.Errorf("format-1 acks %+v", acks)
	}
	var convs []store.Conversation
	if err := pebble.Export(t.Context(), s, pebble.Conversations, nil, func(_ []byte, c store.Conversation) error { convs = append(convs, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(convs) != 2 || convs[1] != (store.Conversation{User: "bob", Peer: "alice", Last: 103, LastTS: 3000, Ver: convs[1].Ver, Unread: 3}) {
		t.Errorf("format-1 conversations %+v", convs)
	}
}
