package storetest

import (
	"errors"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// EraseStore is what the DeleteUser part opens: a user's account, tokens,
// 1:1 and group messages, inbox and conversations, and their erasure.
type EraseStore interface {
	store.Accounts
	store.Versions
	store.Messages
	store.Conversations
	store.Groups
	store.Erasure
}

// DeleteUser tests the Erasure role.
func DeleteUser(t *testing.T, open func(t *testing.T) EraseStore) {
	run(t, open, []testCase{
		{"UserTombstone", testTombstone},
		{"EraseUser", testErase},
	})
}

// testTombstone: a tombstone hides the account and keeps its ID taken.
func testTombstone(t *testing.T, f *fixture) {
	er := f.erasure()
	wantErr(t, "tombstone of no one", er.TombstoneUser(f.ctx, "nobody", 5), store.ErrNotFound)
	if err := f.users.CreateUser(f.ctx, store.User{ID: "Alice", Display: "Alice", PasswordHash: "h", Created: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := er.UserTombstone(f.ctx, "alice")
	wantErr(t, "tombstone of a live account", err, store.ErrNotFound)
	if err := er.TombstoneUser(f.ctx, "alice", 5); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if err := er.TombstoneUser(f.ctx, "ALICE", 9); err != nil { // idempotent, keeps the first date
		t.Fatalf("tombstone again: %v", err)
	}
	if at, err := er.UserTombstone(f.ctx, "alice"); err != nil || at != 5 {
		t.Errorf("tombstone date: %d, %v; want 5", at, err)
	}
	_, err = f.users.GetUser(f.ctx, "alice")
	wantErr(t, "get a tombstone", err, store.ErrNotFound)
	wantErr(t, "register a tombstoned ID", f.users.CreateUser(f.ctx, store.User{ID: "alice", PasswordHash: "x"}), store.ErrExists)
}

// testErase: every step removes or anonymises the user's rows and nothing
// of anyone else's, in batches of its limit, and a step run again once
// done does nothing.
func testErase(t *testing.T, f *fixture) {
	er := f.erasure()
	for _, u := range []string{"alice", "bob"} {
		if err := f.users.CreateUser(f.ctx, store.User{ID: u, PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, tk := range []store.Token{
		{Hash: "a1", User: "alice", Device: "d1", Expires: 1 << 50}, {Hash: "a2", User: "alice", Device: "d2", Expires: 1 << 50},
		{Hash: "a3", User: "alice", Device: "d3", Expires: 1 << 50}, {Hash: "b1", User: "bob", Device: "d1", Expires: 1 << 50},
	} {
		tk.Created = int64(i)
		if err := f.tokens.PutToken(f.ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	a1 := f.send("alice", "bob", 101, 1)
	b1 := f.send("bob", "alice", 102, 2)
	a2 := f.send("alice", "bob", 103, 3)
	self := f.send("alice", "alice", 104, 4)
	bc := f.send("bob", "carol", 105, 5)
	if err := f.groups.CreateGroup(f.ctx, store.Group{ID: "g1", Owner: "bob"},
		[]store.Member{{User: "bob", Role: store.RoleOwner}, {User: "alice", Role: store.RoleMember}}); err != nil {
		t.Fatal(err)
	}
	gm := store.Message{ID: 201, From: "alice", Group: "g1", Seq: 1, Type: "image", Body: "hi all", Media: "m-1",
		Meta: []byte(`{"k":1}`), CMID: "g-1", TS: 6, Mentions: []string{"bob"}, Inline: &store.Inline{Type: "image/png", Data: []byte{1}}}
	f.commit(&store.Batch{Messages: []store.Message{gm}, Acks: []store.Ack{{From: "alice", CMID: "g-1", ID: 201, TS: 6, Group: "g1", Seq: 1}},
		Heads: []store.GroupHead{{Group: "g1", Seq: 1, MsgID: 201, TS: 6}}})

	// Tokens, two at a time.
	var hashes []string
	for range 4 {
		hs, err := er.DeleteUserTokens(f.ctx, "alice", 2)
		if err != nil {
			t.Fatalf("delete tokens: %v", err)
		}
		if len(hs) > 2 {
			t.Errorf("delete tokens: %d past the limit 2", len(hs))
		}
		hashes = append(hashes, hs...)
	}
	if len(hashes) != 3 {
		t.Errorf("deleted tokens %v, want alice's three", hashes)
	}
	for _, h := range []string{"a1", "a2", "a3"} {
		_, err := f.tokens.GetToken(f.ctx, h)
		wantErr(t, "token "+h+" after deletion", err, store.ErrNotFound)
	}
	if _, err := f.tokens.GetToken(f.ctx, "b1"); err != nil {
		t.Errorf("bob's token went too: %v", err)
	}

	// Sent messages, one at a time: 101, 103, 104 and the group's 201.
	total, sentMedia := 0, []string(nil)
	for {
		n, media, err := er.EraseSentMessages(f.ctx, "alice", 1)
		if err != nil {
			t.Fatalf("erase: %v", err)
		}
		if n > 1 {
			t.Errorf("erase: %d past the limit 1", n)
		}
		if n == 0 {
			break
		}
		total += n
		sentMedia = append(sentMedia, media...)
		if total > 10 {
			t.Fatal("erase never ends")
		}
	}
	if total != 4 || len(sentMedia) != 1 || sentMedia[0] != "m-1" {
		t.Errorf("erased %d messages referring to %v; want 4 and [m-1]", total, sentMedia)
	}
	got, err := f.messages.GetMessages(f.ctx, []int64{101, 102, 103, 104, 105, 201})
	if err != nil || len(got) != 6 {
		t.Fatalf("messages after erasure: %d, %v", len(got), err)
	}
	for _, m := range []store.Message{got[0], got[2], got[3], got[5]} {
		if m.From != store.DeletedSender || m.Body != "" || len(m.Meta) != 0 || m.Media != "" || m.Inline != nil ||
			len(m.Mentions) != 0 || m.CMID != "" {
			t.Errorf("message %d not anonymised: %+v", m.ID, m)
		}
	}
	if g := got[5]; g.Group != "g1" || g.Seq != 1 || g.Type != "image" || g.TS != 6 {
		t.Errorf("the group message lost its place: %+v", g)
	}
	if m := got[0]; m.To != "bob" || m.TS != 1 {
		t.Errorf("a 1:1 message lost its place: %+v", m)
	}
	for i, want := range []sent{b1, bc} {
		if m := got[[]int{1, 4}[i]]; m.From != want.Msg.From || m.Body != want.Msg.Body {
			t.Errorf("bob's message %d changed: %+v", want.Msg.ID, m)
		}
	}
	if _, err := LookupAck(f.ctx, f.messages, "alice", a1.Msg.CMID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice's dedupe row outlived the erasure: %v", err)
	}
	if _, err := LookupAck(f.ctx, f.messages, "bob", b1.Msg.CMID); err != nil {
		t.Errorf("bob's dedupe row went: %v", err)
	}
	if ms, err := f.groups.GroupRange(f.ctx, "g1", 0, 10); err != nil || len(ms) != 1 || ms[0].From != store.DeletedSender {
		t.Errorf("group log after erasure: %+v, %v", ms, err)
	}
	// Bob's side of the conversation keeps its versions, now anonymised.
	if evs := f.rangeEvents("bob", 0, 10); len(evs) != 4 || evs[0].Msg.From != store.DeletedSender || evs[1].Msg.From != "bob" {
		t.Errorf("bob's inbox after erasure: %+v", evs)
	}

	// The inbox, two rows at a time, then the conversations.
	for i := 0; ; i++ {
		n, err := er.DeleteUserInbox(f.ctx, "alice", 2)
		if err != nil {
			t.Fatalf("delete inbox: %v", err)
		}
		if n == 0 {
			break
		}
		if i > 10 {
			t.Fatal("delete inbox never ends")
		}
	}
	if evs := f.rangeEvents("alice", 0, 100); len(evs) != 0 {
		t.Errorf("alice's inbox after deletion: %+v", evs)
	}
	if cs := f.convs("alice"); len(cs) != 0 {
		t.Errorf("alice's conversations after deletion: %+v", cs)
	}
	if evs := f.history("alice", "bob", 0, 100); len(evs) != 0 {
		t.Errorf("alice's history after deletion: %+v", evs)
	}
	if cs := f.convs("bob"); len(cs) != 2 {
		t.Errorf("bob's conversations after alice's deletion: %+v", cs)
	}
	if evs := f.history("bob", "alice", 0, 100); len(evs) != 3 {
		t.Errorf("bob's history with alice: %d events, want 3", len(evs))
	}
	_, _ = a2, self

	// Once done, each step finds nothing.
	if hs, err := er.DeleteUserTokens(f.ctx, "alice", 0); err != nil || len(hs) != 0 {
		t.Errorf("tokens again: %v, %v", hs, err)
	}
	if n, _, err := er.EraseSentMessages(f.ctx, "alice", 0); err != nil || n != 0 {
		t.Errorf("erase again: %d, %v", n, err)
	}
	if n, err := er.DeleteUserInbox(f.ctx, "alice", 0); err != nil || n != 0 {
		t.Errorf("inbox again: %d, %v", n, err)
	}
}

// erasure is the fixture's store in the Erasure role.
func (f *fixture) erasure() store.Erasure {
	f.t.Helper()
	er, ok := f.store.(store.Erasure)
	if !ok {
		f.t.Fatal("the store has no Erasure role")
	}
	return er
}
