package pebble_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

func openLife(t testing.TB) *pebble.Store {
	t.Helper()
	s, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustCommit(t testing.TB, s *pebble.Store, b *store.Batch) {
	t.Helper()
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// groupOf creates group g with n members (m0 the owner) and one message
// at seq 1.
func groupOf(t testing.TB, s *pebble.Store, n int) {
	t.Helper()
	ms := make([]store.Member, n)
	for i := range ms {
		ms[i] = store.Member{User: fmt.Sprintf("m%d", i), Role: store.RoleMember}
	}
	ms[0].Role = store.RoleOwner
	if err := s.CreateGroup(t.Context(), store.Group{ID: "g", Owner: "m0"}, ms); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, &store.Batch{Messages: []store.Message{{ID: 1, From: "m1", Group: "g", Seq: 1, Type: "text", Body: "hello", TS: 1}},
		Heads: []store.GroupHead{{Group: "g", Seq: 1, MsgID: 1, TS: 1}}})
}

// groupChanges are a reaction and a recall of message 1 in group g, as
// the chat pipeline commits them: one change record each, with its head.
func groupChanges() []*store.Batch {
	react := store.Change{Kind: store.ChangeReaction, Target: 1, Emoji: "👍", Add: true, Count: 1}
	recall := store.Change{Kind: store.ChangeRecall, Target: 1, Count: 2}
	return []*store.Batch{
		{Messages: []store.Message{{ID: 2, From: "m2", Group: "g", Seq: 2, Type: "reaction", TS: 2, Change: &react}},
			Heads:     []store.GroupHead{{Group: "g", Seq: 2, Changes: 1}},
			Reactions: []store.Reaction{{MsgID: 1, User: "m2", Emoji: "👍", Add: true, TS: 2}}},
		{Messages: []store.Message{{ID: 3, From: "m0", Group: "g", Seq: 3, Type: "recall", TS: 3, Change: &recall}},
			Heads:   []store.GroupHead{{Group: "g", Seq: 3, Changes: 2}},
			Recalls: []store.Recall{{MsgID: 1, By: "m0", TS: 3}}},
	}
}

// TestGroupChangeWrites: a reaction or a recall in a group of 10,000
// members writes what it does in a group of 2 — no row per member.
func TestGroupChangeWrites(t *testing.T) {
	written := func(members int) []uint64 {
		s := openLife(t)
		groupOf(t, s, members)
		var out []uint64
		for _, b := range groupChanges() {
			before := s.WALBytesIn()
			mustCommit(t, s, b)
			out = append(out, s.WALBytesIn()-before)
		}
		if ms, err := s.GroupRange(t.Context(), "g", 0, 10); err != nil || len(ms) != 3 || ms[0].Recalled != 3 || !ms[0].Reacted {
			t.Fatalf("log of %d members: %+v, %v", members, ms, err)
		}
		return out
	}
	small, large := written(2), written(10_000)
	t.Logf("WAL bytes of a reaction and a recall: %v with 2 members, %v with 10,000", small, large)
	for i := range small {
		if large[i] != small[i] || large[i] > 1024 {
			t.Errorf("change %d wrote %d bytes in a group of 10,000, %d in one of 2", i, large[i], small[i])
		}
	}
}

// TestReactionWriteFlat: a reaction to a message that has 5,000 writes
// what one to a message that has 100 does (the count row with its listed
// users, and the user's two rows): no write grows with the reactions.
func TestReactionWriteFlat(t *testing.T) {
	s := openLife(t)
	mustCommit(t, s, &store.Batch{Messages: []store.Message{{ID: 1, From: "a", To: "b", Type: "text", Body: "x", TS: 1}}})
	react := func(user string, add bool) uint64 {
		before := s.WALBytesIn()
		mustCommit(t, s, &store.Batch{Reactions: []store.Reaction{{MsgID: 1, User: user, Emoji: "👍", Add: add, TS: 1}}})
		return s.WALBytesIn() - before
	}
	many := func(from, to int) {
		var b store.Batch
		for i := from; i < to; i++ {
			b.Reactions = append(b.Reactions, store.Reaction{MsgID: 1, User: fmt.Sprintf("u%05d", i), Emoji: "👍", Add: true, TS: 1})
		}
		mustCommit(t, s, &b)
	}
	many(0, 100)
	at100 := react("u99998", true)
	many(100, 5000)
	at5000 := react("u99999", true)
	t.Logf("WAL bytes of a reaction: %d with 100 before it, %d with 5,000", at100, at5000)
	if at5000 > at100+2 { // the count's varint may take a byte more
		t.Errorf("a reaction wrote %d bytes with 5,000 before it, %d with 100", at5000, at100)
	}
	sums, err := s.ReactionsOf(t.Context(), []int64{1})
	if err != nil || len(sums[1]) != 1 || sums[1][0].Count != 5002 || len(sums[1][0].Users) != store.ReactionUsers {
		t.Fatalf("reactions: %+v, %v", sums, err)
	}
	// Removing a listed user lists another, still ReactionUsers.
	react(sums[1][0].Users[0], false)
	sums, _ = s.ReactionsOf(t.Context(), []int64{1})
	if sums[1][0].Count != 5001 || len(sums[1][0].Users) != store.ReactionUsers {
		t.Errorf("after a listed user's remove: %+v", sums)
	}
}

// TestLifeExport: the lifecycle's rows are exported, each kind whole.
func TestLifeExport(t *testing.T) {
	ctx := t.Context()
	s := openLife(t)
	groupOf(t, s, 3)
	mustCommit(t, s, &store.Batch{
		Reactions: []store.Reaction{{MsgID: 1, User: "m1", Emoji: "👍", Add: true, TS: 5}, {MsgID: 1, User: "m2", Emoji: "👍", Add: true, TS: 6},
			{MsgID: 1, User: "m2", Emoji: "🎉", Add: true, TS: 7}},
		Hides: []store.Hide{{User: "m2", MsgID: 1, Group: "g"}}})
	if err := s.PutUserSettings(ctx, store.UserSettings{User: "m1", NoReadReceipts: true, Updated: 9}); err != nil {
		t.Fatal(err)
	}
	var rs []store.Reaction
	if err := pebble.Export(ctx, s, pebble.Reactions, nil, func(_ []byte, r store.Reaction) error { rs = append(rs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	wantRs := []store.Reaction{{MsgID: 1, User: "m2", Emoji: "🎉", Add: true, TS: 7},
		{MsgID: 1, User: "m1", Emoji: "👍", Add: true, TS: 5}, {MsgID: 1, User: "m2", Emoji: "👍", Add: true, TS: 6}}
	slices.SortFunc(rs, func(a, b store.Reaction) int { return int(a.TS - b.TS) })
	slices.SortFunc(wantRs, func(a, b store.Reaction) int { return int(a.TS - b.TS) })
	if !reflect.DeepEqual(rs, wantRs) {
		t.Errorf("reactions: %+v\nwant %+v", rs, wantRs)
	}
	var sums []pebble.ReactionSumRow
	if err := pebble.Export(ctx, s, pebble.ReactionSums, nil, func(_ []byte, r pebble.ReactionSumRow) error { sums = append(sums, r); return nil }); err != nil {
		t.Fatal(err)
	}
	wantSums := []pebble.ReactionSumRow{{MsgID: 1, ReactionSum: store.ReactionSum{Emoji: "🎉", Count: 1, Users: []string{"m2"}}},
		{MsgID: 1, ReactionSum: store.ReactionSum{Emoji: "👍", Count: 2, Users: []string{"m1", "m2"}}}}
	if !reflect.DeepEqual(sums, wantSums) {
		t.Errorf("reaction sums: %+v\nwant %+v", sums, wantSums)
	}
	var hs []store.Hide
	if err := pebble.Export(ctx, s, pebble.Hides, nil, func(_ []byte, h store.Hide) error { hs = append(hs, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []store.Hide{{User: "m2", MsgID: 1, Group: "g"}}; !reflect.DeepEqual(hs, want) {
		t.Errorf("hides: %+v, want %+v", hs, want)
	}
	var us []store.UserSettings
	if err := pebble.Export(ctx, s, pebble.UserSettings, nil, func(_ []byte, u store.UserSettings) error { us = append(us, u); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []store.UserSettings{{User: "m1", NoReadReceipts: true, Updated: 9}}; !reflect.DeepEqual(us, want) {
		t.Errorf("user settings: %+v, want %+v", us, want)
	}
}

// TestOldHead: a head of 24 bytes (written before change records) reads
// with no changes and its message at its seq, and moves on from there.
func TestOldHead(t *testing.T) {
	ctx := t.Context()
	s := openLife(t)
	val := binary.BigEndian.AppendUint64(nil, 3)
	val = binary.BigEndian.AppendUint64(val, 103)
	val = binary.BigEndian.AppendUint64(val, 1003)
	if err := s.SetRaw([]byte("gh/g"), val); err != nil {
		t.Fatal(err)
	}
	want := store.GroupHead{Group: "g", Seq: 3, MsgID: 103, TS: 1003}
	if h, err := s.GroupHead(ctx, "g"); err != nil || h != want {
		t.Fatalf("old head: %+v, %v; want %+v", h, err, want)
	}
	var exported []store.GroupHead
	if err := pebble.Export(ctx, s, pebble.Heads, nil, func(_ []byte, h store.GroupHead) error { exported = append(exported, h); return nil }); err != nil ||
		len(exported) != 1 || exported[0] != want {
		t.Fatalf("old head exported: %+v, %v", exported, err)
	}
	// A message head at 2 (below the old head's message) moves nothing;
	// a change at 5 then a message at 4 (another node's) move on.
	mustCommit(t, s, &store.Batch{Heads: []store.GroupHead{{Group: "g", Seq: 2, MsgID: 102, TS: 1002}}})
	if h, err := s.GroupHead(ctx, "g"); err != nil || h != want {
		t.Fatalf("old head after a message head at 2: %+v, %v; want %+v", h, err, want)
	}
	mustCommit(t, s, &store.Batch{Heads: []store.GroupHead{{Group: "g", Seq: 5, Changes: 1}}})
	mustCommit(t, s, &store.Batch{Heads: []store.GroupHead{{Group: "g", Seq: 4, MsgID: 104, TS: 1004}}})
	want = store.GroupHead{Group: "g", Seq: 5, MsgID: 104, TS: 1004, Changes: 1}
	if h, err := s.GroupHead(ctx, "g"); err != nil || h != want {
		t.Fatalf("head: %+v, %v; want %+v", h, err, want)
	}
}

// TestEraseKeepsChange: erasing a user's sent messages keeps what their
// change records are (sync replays them as changes, not as empty
// messages) and the state of their messages, without their name.
func TestEraseKeepsChange(t *testing.T) {
	ctx := t.Context()
	s := openLife(t)
	groupOf(t, s, 3)
	c := store.Change{Kind: store.ChangeRecall, Target: 5, Count: 1}
	m := store.Message{ID: 5, From: "m1", Group: "g", Seq: 2, Type: "text", Body: "oops", CMID: "c5", TS: 5, ReplyTo: 1}
	rec := store.Message{ID: 6, From: "m1", Group: "g", Seq: 3, Type: "recall", CMID: "c6", TS: 6, Change: &c}
	mustCommit(t, s, &store.Batch{Messages: []store.Message{m, rec},
		Acks:    []store.Ack{{From: "m1", CMID: "c5", ID: 5, TS: 5, Group: "g", Seq: 2}, {From: "m1", CMID: "c6", ID: 6, TS: 6, Group: "g", Seq: 3}},
		Heads:   []store.GroupHead{{Group: "g", Seq: 2, MsgID: 5, TS: 5}, {Group: "g", Seq: 3, Changes: 1}},
		Recalls: []store.Recall{{MsgID: 5, By: "m1", TS: 6}}})
	if n, _, err := s.EraseSentMessages(ctx, "m1", 0); err != nil || n != 2 {
		t.Fatalf("erase: %d, %v", n, err)
	}
	got, err := s.GetMessages(ctx, []int64{5, 6})
	if err != nil || len(got) != 2 {
		t.Fatalf("messages: %+v, %v", got, err)
	}
	wantM := store.Message{ID: 5, From: store.DeletedSender, Group: "g", Seq: 2, Type: "text", TS: 5, ReplyTo: 1,
		Recalled: 6, RecalledBy: store.DeletedSender}
	wantRec := store.Message{ID: 6, From: store.DeletedSender, Group: "g", Seq: 3, Type: "recall", TS: 6, Change: &c}
	if !reflect.DeepEqual(got[0], wantM) || !reflect.DeepEqual(got[1], wantRec) {
		t.Errorf("erased:\n got %+v\n     %+v\nwant %+v\n     %+v", got[0], got[1], wantM, wantRec)
	}
}

// TestLifeInvalid: what the key layout cannot hold is refused, with
// nothing written.
func TestLifeInvalid(t *testing.T) {
	s := openLife(t)
	for _, b := range []*store.Batch{
		{Reactions: []store.Reaction{{MsgID: 1, User: "a\x00b", Emoji: "👍", Add: true}}},
		{Reactions: []store.Reaction{{MsgID: 1, User: "a", Emoji: "x\x00", Add: true}}},
		{Reactions: []store.Reaction{{MsgID: 1, User: "a", Add: true}}},
		{Reactions: []store.Reaction{{MsgID: -1, User: "a", Emoji: "👍", Add: true}}},
		{Hides: []store.Hide{{User: "a", MsgID: 1, Group: "g\x00"}}},
		{Hides: []store.Hide{{User: "a\x00", MsgID: 1, Peer: "b"}}},
		{Clears: []store.Clear{{User: "a", Peer: "b\x00", Upto: 5}}},
		{Mentioned: []store.GroupRead{{Group: "g\x00", User: "a", Seq: 1}}},
		{Recalls: []store.Recall{{MsgID: -5}}},
		{Edits: []store.Edit{{MsgID: -5}}},
	} {
		if err := s.Commit(t.Context(), b); !errors.Is(err, pebble.ErrInvalid) {
			t.Errorf("commit %+v: %v, want ErrInvalid", b, err)
		}
	}
	if err := s.PutUserSettings(t.Context(), store.UserSettings{User: "a\x00"}); !errors.Is(err, pebble.ErrInvalid) {
		t.Errorf("settings of a\\x00: %v", err)
	}
	if n, err := pebble.Count(t.Context(), s, pebble.Hides); err != nil || n != 0 {
		t.Errorf("hidden rows written: %d, %v", n, err)
	}
}
