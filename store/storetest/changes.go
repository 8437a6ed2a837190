package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// ChangeStore is what the Changes part opens: change records are
// committed as messages are (1:1 into inboxes with versions, into group
// logs with seqs), the Lives role reads what they did, and erasing a
// user takes their hidden rows and settings.
type ChangeStore interface {
	store.Versions
	store.Messages
	store.Conversations
	store.Groups
	store.Lives
	store.Erasure
}

// Changes tests the message lifecycle (store/change.go): change records,
// what Recalls, Edits, Reactions, Hides, Clears and Mentioned do, group
// heads of change records, members' ReadChanges and JoinChanges, and the
// Lives role.
func Changes(t *testing.T, open func(t *testing.T) ChangeStore) {
	run(t, open, []testCase{
		{"ChangeRecords", testChangeRecords},
		{"Recall", testRecall},
		{"RecallAndEdit", testRecallAndEdit},
		{"Reactions", testReactions},
		{"ReactionUsersCap", testReactionUsersCap},
		{"HideDirect", testHideDirect},
		{"HideGroup", testHideGroup},
		{"Clear", testClear},
		{"Mentions", testMentions},
		{"ChangeHeads", testChangeHeads},
		{"ReadChanges", testReadChanges},
		{"PeerRead", testPeerRead},
		{"UserSettings", testUserSettings},
		{"ReplyTo", testReplyTo},
		{"Idempotent", testChangesIdempotent},
		{"Erase", testChangesErase},
		{"RecallRacesEdit", testRecallRacesEdit},
		{"ConcurrentReactions", testConcurrentReactions},
		{"GroupAdmin", testGroupAdmin},
		{"GroupAdminReplay", testGroupAdminReplay},
		{"GroupDisband", testGroupDisband},
	})
}

// lives is the fixture's store in the Lives role.
func (f *fixture) lives() store.Lives {
	f.t.Helper()
	l, ok := f.store.(store.Lives)
	if !ok {
		f.t.Fatal("the store has no Lives role")
	}
	return l
}

// change1 is a 1:1 change record (id, by from, in the conversation with
// to) as the chat pipeline builds it: the record and an inbox entry at a
// new version for from, and for to unless mine (a delete-for-me).
func (f *fixture) change1(from, to string, id, ts int64, c store.Change, mine bool) (*store.Batch, sent) {
	f.t.Helper()
	s := sent{Msg: store.Message{ID: id, From: from, To: to, Type: c.Kind, CMID: "x" + strconv.FormatInt(id, 10), TS: ts, Change: &c}}
	s.FromVer = f.reserve(from, 1)
	b := &store.Batch{Messages: []store.Message{s.Msg},
		Acks:    []store.Ack{{From: from, CMID: s.Msg.CMID, ID: id, Ver: s.FromVer, TS: ts}},
		Entries: []store.Entry{{User: from, Ver: s.FromVer, Peer: to, Out: true, MsgID: id, Change: true}}}
	if !mine && to != from {
		s.ToVer = f.reserve(to, 1)
		b.Entries = append(b.Entries, store.Entry{User: to, Ver: s.ToVer, Peer: from, MsgID: id, Change: true})
	}
	return b, s
}

// groupChange is a group change record at seq, the group's count-th, with
// its head (MsgID 0).
func groupChange(group, from string, id int64, seq, count uint64, c store.Change) *store.Batch {
	c.Count = count
	m := store.Message{ID: id, From: from, Group: group, Seq: seq, Type: c.Kind, CMID: "x" + strconv.FormatInt(id, 10), TS: id, Change: &c}
	return &store.Batch{Messages: []store.Message{m},
		Acks:  []store.Ack{{From: from, CMID: m.CMID, ID: id, TS: id, Group: group, Seq: seq}},
		Heads: []store.GroupHead{{Group: group, Seq: seq, Changes: count}}}
}

// commitTwice commits b, then the same batch again: a replay changes
// nothing more.
func (f *fixture) commitTwice(b *store.Batch) {
	f.t.Helper()
	f.commit(b)
	b.Existing = nil
	f.commit(b)
}

func (f *fixture) message(id int64) store.Message {
	f.t.Helper()
	ms, err := f.messages.GetMessages(f.ctx, []int64{id})
	if err != nil || len(ms) != 1 {
		f.t.Fatalf("get message %d: %+v, %v", id, ms, err)
	}
	return ms[0]
}

func (f *fixture) member(group, user string) store.Member {
	f.t.Helper()
	m, err := f.groups.GetMember(f.ctx, group, user)
	if err != nil {
		f.t.Fatalf("member %s of %s: %v", user, group, err)
	}
	return m
}

func (f *fixture) groupHead(group string) store.GroupHead {
	f.t.Helper()
	h, err := f.groups.GroupHead(f.ctx, group)
	if err != nil {
		f.t.Fatalf("head of %s: %v", group, err)
	}
	return h
}

func (f *fixture) groupRange(group string, since uint64) []store.Message {
	f.t.Helper()
	ms, err := f.groups.GroupRange(f.ctx, group, since, 100)
	if err != nil {
		f.t.Fatalf("range of %s: %v", group, err)
	}
	return ms
}

func (f *fixture) createGroup(id string, users ...string) {
	f.t.Helper()
	ms := make([]store.Member, len(users))
	for i, u := range users {
		ms[i] = store.Member{User: u, Role: store.RoleMember}
	}
	ms[0].Role = store.RoleOwner
	if err := f.groups.CreateGroup(f.ctx, store.Group{ID: id, Owner: users[0], Created: 1}, ms); err != nil {
		f.t.Fatalf("create group %s: %v", id, err)
	}
}

// findEvent returns the event of message id in evs.
func findEvent(evs []store.Event, id int64) (store.Event, bool) {
	for _, e := range evs {
		if e.MsgID == id {
			return e, true
		}
	}
	return store.Event{}, false
}

// testChangeRecords: a 1:1 change record is in both inboxes at its own
// version, with its Change, but not in the history index; it moves no
// conversation row and no unread count.
func testChangeRecords(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	f.send("alice", "bob", 102, 2)
	before := map[string]store.Conversation{"alice": f.conv("alice", "bob"), "bob": f.conv("bob", "alice")}
	b, ch := f.change1("bob", "alice", 201, 3, store.Change{Kind: store.ChangeReaction, Target: 101, Emoji: "👍", Add: true}, false)
	b.Reactions = []store.Reaction{{MsgID: 101, User: "bob", Emoji: "👍", Add: true, TS: 3}}
	f.commit(b)

	for _, user := range []string{"alice", "bob"} {
		evs := f.rangeEvents(user, 0, 10)
		want := ch.event(user)
		want.Change = true
		if len(evs) != 3 || !reflect.DeepEqual(evs[2], want) {
			t.Errorf("%s's inbox: %+v\nwant the change record last: %+v", user, evs, want)
		}
		if h := f.head(user); h != want.Ver {
			t.Errorf("%s's head %d, want the change's version %d", user, h, want.Ver)
		}
		peer := map[string]string{"alice": "bob", "bob": "alice"}[user]
		if ids := msgIDs(f.history(user, peer, 0, 10)); !slices.Equal(ids, []int64{102, 101}) {
			t.Errorf("%s's history: %v, want [102 101] (no change record)", user, ids)
		}
		if c := f.conv(user, peer); c != before[user] {
			t.Errorf("%s's conversation moved by a change record:\n got %+v\nwant %+v", user, c, before[user])
		}
	}
	if got := f.message(201); !reflect.DeepEqual(got, ch.Msg) {
		t.Errorf("change record read back:\n got %+v\nwant %+v", got, ch.Msg)
	}
	// Unread, recounted, counts messages only.
	if row := f.setRead("bob", "alice", 101); row.Unread != 1 {
		t.Errorf("bob's unread after reading 101: %d, want 1 (102; not the change)", row.Unread)
	}
}

// recalled checks m is the tombstone of orig recalled by by at ts.
func recalled(t *testing.T, what string, m, orig store.Message, by string, ts int64) {
	t.Helper()
	want := orig
	want.Body, want.Media, want.Meta, want.Inline, want.Mentions = "", "", nil, nil, nil
	want.Recalled, want.RecalledBy = ts, by
	want.Edited = m.Edited // an edit before the recall may show; its body may not
	if !reflect.DeepEqual(m, want) {
		t.Errorf("%s: not the tombstone:\n got %+v\nwant %+v", what, m, want)
	}
}

// testRecall: a recall makes the message a tombstone in every read, keeps
// the first recall, and skips a target that does not exist.
func testRecall(t *testing.T, f *fixture) {
	var b store.Batch
	f.add(&b, "alice", "bob", 101, 1)
	b.Messages[0].Media = "m-1"
	b.Messages[0].Inline = &store.Inline{Type: "image/png", Data: []byte{1, 2}}
	f.commit(&b)
	orig := b.Messages[0]

	rb, _ := f.change1("alice", "bob", 201, 5, store.Change{Kind: store.ChangeRecall, Target: 101}, false)
	rb.Recalls = []store.Recall{{MsgID: 101, By: "alice", TS: 5}, {MsgID: 999, By: "alice", TS: 5}}
	f.commit(rb)
	recalled(t, "get messages", f.message(101), orig, "alice", 5)
	for _, user := range []string{"alice", "bob"} {
		if e, ok := findEvent(f.rangeEvents(user, 0, 10), 101); !ok {
			t.Errorf("%s's range lost 101", user)
		} else {
			recalled(t, user+"'s range", e.Msg, orig, "alice", 5)
		}
		peer := map[string]string{"alice": "bob", "bob": "alice"}[user]
		if evs := f.history(user, peer, 0, 10); len(evs) != 1 {
			t.Errorf("%s's history: %+v", user, evs)
		} else {
			recalled(t, user+"'s history", evs[0].Msg, orig, "alice", 5)
		}
	}
	if ms, err := f.messages.GetMessages(f.ctx, []int64{999}); err != nil || len(ms) != 0 {
		t.Errorf("a recall of no message made one: %+v, %v", ms, err)
	}

	// A second recall keeps the first.
	rb2, _ := f.change1("bob", "alice", 202, 9, store.Change{Kind: store.ChangeRecall, Target: 101}, false)
	rb2.Recalls = []store.Recall{{MsgID: 101, By: "bob", TS: 9}}
	f.commit(rb2)
	recalled(t, "after a second recall", f.message(101), orig, "alice", 5)

	// A recall in the batch of its message.
	var b3 store.Batch
	f.add(&b3, "bob", "alice", 102, 10)
	b3.Recalls = []store.Recall{{MsgID: 102, By: "bob", TS: 11}}
	f.commit(&b3)
	recalled(t, "recalled in its own batch", f.message(102), b3.Messages[0], "bob", 11)

	// A group message, with mentions, recalled by an admin.
	f.createGroup("g1", "alice", "bob")
	gm := store.Message{ID: 301, From: "bob", Group: "g1", Seq: 1, Type: "image", Body: "@alice look", Media: "m-2",
		Meta: json.RawMessage(`{"w":1}`), CMID: "g301", TS: 20, Mentions: []string{"alice"}, Inline: &store.Inline{Type: "image/png", Data: []byte{3}}}
	f.commit(&store.Batch{Messages: []store.Message{gm}, Heads: []store.GroupHead{{Group: "g1", Seq: 1, MsgID: 301, TS: 20}}})
	gb := groupChange("g1", "alice", 302, 2, 1, store.Change{Kind: store.ChangeRecall, Target: 301})
	gb.Recalls = []store.Recall{{MsgID: 301, By: "alice", TS: 21}}
	f.commit(gb)
	ms := f.groupRange("g1", 0)
	if len(ms) != 2 || ms[1].Change == nil || ms[1].Change.Kind != store.ChangeRecall {
		t.Fatalf("group log: %+v", ms)
	}
	recalled(t, "group range", ms[0], gm, "alice", 21)
	recalled(t, "group message", f.message(301), gm, "alice", 21)
}

// testRecallAndEdit: an edit replaces body and meta and sets Edited; a
// recall wins over an edit whichever is committed first.
func testRecallAndEdit(t *testing.T, f *fixture) {
	for _, id := range []int64{101, 102, 103, 104} {
		f.send("alice", "bob", id, id)
	}
	edit := func(id, ts int64) store.Edit {
		return store.Edit{MsgID: id, Body: "edited " + strconv.FormatInt(id, 10), Meta: json.RawMessage(`{"e":1}`), TS: ts}
	}
	commit := func(id int64, kind string, edits []store.Edit, recalls []store.Recall) {
		b, _ := f.change1("alice", "bob", id, id, store.Change{Kind: kind, Target: edits0(edits, recalls)}, false)
		b.Edits, b.Recalls = edits, recalls
		f.commit(b)
	}

	// A plain edit.
	orig := f.message(101)
	commit(201, store.ChangeEdit, []store.Edit{edit(101, 50)}, nil)
	want := orig
	want.Body, want.Meta, want.Edited = "edited 101", json.RawMessage(`{"e":1}`), 50
	if got := f.message(101); !reflect.DeepEqual(got, want) {
		t.Errorf("edited:\n got %+v\nwant %+v", got, want)
	}
	if e, _ := findEvent(f.rangeEvents("bob", 0, 20), 101); e.Msg.Body != "edited 101" || e.Msg.Edited != 50 {
		t.Errorf("bob's range shows %+v, want the edit", e.Msg)
	}
	if evs := f.history("bob", "alice", 0, 20); len(evs) != 4 || evs[3].Msg.Body != "edited 101" || evs[3].Msg.Edited != 50 {
		t.Errorf("bob's history: %+v, want the edit of 101", evs)
	}

	// Edit, then recall.
	orig = f.message(102)
	commit(202, store.ChangeEdit, []store.Edit{edit(102, 60)}, nil)
	commit(203, store.ChangeRecall, nil, []store.Recall{{MsgID: 102, By: "alice", TS: 61}})
	recalled(t, "edit then recall", f.message(102), orig, "alice", 61)

	// Recall, then edit (another node's edit committed late).
	orig = f.message(103)
	commit(204, store.ChangeRecall, nil, []store.Recall{{MsgID: 103, By: "alice", TS: 70}})
	commit(205, store.ChangeEdit, []store.Edit{edit(103, 71)}, nil)
	got := f.message(103)
	recalled(t, "recall then edit", got, orig, "alice", 70)
	if got.Edited != 0 {
		t.Errorf("an edit after the recall set Edited %d", got.Edited)
	}

	// Both in one batch, the edit listed last.
	orig = f.message(104)
	commit(206, store.ChangeRecall, []store.Edit{edit(104, 81)}, []store.Recall{{MsgID: 104, By: "alice", TS: 80}})
	recalled(t, "recall and edit in one batch", f.message(104), orig, "alice", 80)
	for _, e := range f.rangeEvents("bob", 0, 20) {
		if m := e.Msg; m.Recalled != 0 && (m.Body != "" || m.Meta != nil) {
			t.Errorf("bob's range shows a recalled body: %+v", m)
		}
	}

	// An edit of no message makes none.
	commit(207, store.ChangeEdit, []store.Edit{edit(999, 90)}, nil)
	if ms, err := f.messages.GetMessages(f.ctx, []int64{999}); err != nil || len(ms) != 0 {
		t.Errorf("an edit of no message made one: %+v, %v", ms, err)
	}
}

func edits0(es []store.Edit, rs []store.Recall) int64 {
	if len(rs) > 0 {
		return rs[0].MsgID
	}
	if len(es) > 0 {
		return es[0].MsgID
	}
	return 0
}

// reactions returns ReactionsOf ids with each emoji's users sorted.
func (f *fixture) reactions(ids ...int64) map[int64][]store.ReactionSum {
	f.t.Helper()
	got, err := f.lives().ReactionsOf(f.ctx, ids)
	if err != nil {
		f.t.Fatalf("reactions of %v: %v", ids, err)
	}
	for _, sums := range got {
		for i := range sums {
			slices.Sort(sums[i].Users)
		}
	}
	return got
}

func (f *fixture) userReactions(msg int64, user string) []string {
	f.t.Helper()
	got, err := f.lives().UserReactions(f.ctx, msg, user)
	if err != nil {
		f.t.Fatalf("reactions of %s on %d: %v", user, msg, err)
	}
	return got
}

// react commits a 1:1 reaction change record of user on msg (a message
// between alice and bob).
func (f *fixture) react(id int64, user string, msg int64, emoji string, add bool) {
	f.t.Helper()
	peer := map[string]string{"alice": "bob", "bob": "alice"}[user]
	if peer == "" {
		peer = "alice"
	}
	b, _ := f.change1(user, peer, id, id, store.Change{Kind: store.ChangeReaction, Target: msg, Emoji: emoji, Add: add}, false)
	b.Reactions = []store.Reaction{{MsgID: msg, User: user, Emoji: emoji, Add: add, TS: id}}
	f.commitTwice(b)
}

// testReactions: one reaction per (message, user, emoji); counts and users
// per emoji, ascending; Reacted set once a message has had one.
func testReactions(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	f.send("bob", "alice", 102, 2)
	const up, heart = "👍", "❤️"
	check := func(step string, want map[int64][]store.ReactionSum) {
		t.Helper()
		got := f.reactions(101, 102, 999)
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: reactions\n got %+v\nwant %+v", step, got, want)
		}
	}
	check("none yet", nil)
	if f.message(101).Reacted {
		t.Error("Reacted before any reaction")
	}

	f.react(201, "bob", 101, up, true)
	check("bob's 👍", map[int64][]store.ReactionSum{101: {{Emoji: up, Count: 1, Users: []string{"bob"}}}})
	if !f.message(101).Reacted {
		t.Error("Reacted not set by an add")
	}
	for _, user := range []string{"alice", "bob"} {
		if e, _ := findEvent(f.rangeEvents(user, 0, 20), 101); !e.Msg.Reacted {
			t.Errorf("%s's range: 101 not Reacted", user)
		}
	}
	if evs := f.history("alice", "bob", 0, 10); len(evs) != 2 || !evs[1].Msg.Reacted {
		t.Errorf("alice's history: 101 not Reacted: %+v", evs)
	}
	f.react(202, "bob", 101, up, true) // again: nothing more
	f.react(203, "alice", 101, up, true)
	f.react(204, "alice", 101, heart, true)
	f.react(205, "carol", 102, up, false) // removing what is not there
	check("three", map[int64][]store.ReactionSum{101: {
		{Emoji: heart, Count: 1, Users: []string{"alice"}},
		{Emoji: up, Count: 2, Users: []string{"alice", "bob"}},
	}})
	if got := f.userReactions(101, "alice"); !slices.Equal(got, []string{heart, up}) {
		t.Errorf("alice's reactions on 101: %q, want [%s %s]", got, heart, up)
	}
	if got := f.userReactions(101, "carol"); len(got) != 0 {
		t.Errorf("carol's reactions on 101: %q, want none", got)
	}
	if f.message(102).Reacted {
		t.Error("a remove of nothing set Reacted")
	}

	f.react(206, "bob", 101, up, false)
	f.react(207, "bob", 101, up, false)
	check("bob took his back", map[int64][]store.ReactionSum{101: {
		{Emoji: heart, Count: 1, Users: []string{"alice"}},
		{Emoji: up, Count: 1, Users: []string{"alice"}},
	}})
	f.react(208, "alice", 101, up, false)
	f.react(209, "alice", 101, heart, false)
	check("all gone", nil)
	if !f.message(101).Reacted {
		t.Error("Reacted cleared: it says the message has had one")
	}

	// Several in one batch: they apply in order.
	b, _ := f.change1("bob", "alice", 210, 210, store.Change{Kind: store.ChangeReaction, Target: 102, Emoji: up, Add: true}, false)
	b.Reactions = []store.Reaction{
		{MsgID: 102, User: "bob", Emoji: up, Add: true}, {MsgID: 102, User: "alice", Emoji: up, Add: true},
		{MsgID: 102, User: "alice", Emoji: heart, Add: true}, {MsgID: 102, User: "alice", Emoji: heart, Add: false},
		{MsgID: 102, User: "bob", Emoji: up, Add: true},
	}
	f.commitTwice(b)
	check("one batch", map[int64][]store.ReactionSum{102: {{Emoji: up, Count: 2, Users: []string{"alice", "bob"}}}})

	// A group message: the same rows.
	f.createGroup("g1", "alice", "bob", "carol")
	f.groupSend("g1", "alice", 301, 1)
	gb := groupChange("g1", "carol", 302, 2, 1, store.Change{Kind: store.ChangeReaction, Target: 301, Emoji: up, Add: true})
	gb.Reactions = []store.Reaction{{MsgID: 301, User: "carol", Emoji: up, Add: true, TS: 302}}
	f.commitTwice(gb)
	got := f.reactions(301)
	if want := map[int64][]store.ReactionSum{301: {{Emoji: up, Count: 1, Users: []string{"carol"}}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("group message's reactions: %+v, want %+v", got, want)
	}
	if ms := f.groupRange("g1", 0); len(ms) != 2 || !ms[0].Reacted || ms[1].Change == nil {
		t.Errorf("group log: %+v, want 301 Reacted then the change", ms)
	}
}

// testReactionUsersCap: past ReactionUsers reactors an emoji keeps its
// count and ReactionUsers of them.
func testReactionUsersCap(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	const party = "🎉"
	n := store.ReactionUsers + 5
	users := make([]string, n)
	b, _ := f.change1("alice", "bob", 201, 2, store.Change{Kind: store.ChangeReaction, Target: 101, Emoji: party, Add: true}, false)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
		b.Reactions = append(b.Reactions, store.Reaction{MsgID: 101, User: users[i], Emoji: party, Add: true, TS: 2})
	}
	f.commitTwice(b)
	check := func(step string, count int, reactors []string) {
		t.Helper()
		got := f.reactions(101)[101]
		if len(got) != 1 || got[0].Emoji != party || got[0].Count != int64(count) {
			t.Fatalf("%s: %+v, want %d %s", step, got, count, party)
		}
		if len(got[0].Users) != min(count, store.ReactionUsers) {
			t.Errorf("%s: %d users listed of %d, want %d", step, len(got[0].Users), count, min(count, store.ReactionUsers))
		}
		for _, u := range got[0].Users {
			if !slices.Contains(reactors, u) {
				t.Errorf("%s: %s listed, not a reactor", step, u)
			}
		}
		if c := slices.Compact(slices.Clone(got[0].Users)); len(c) != len(got[0].Users) {
			t.Errorf("%s: a user listed twice: %v", step, got[0].Users)
		}
	}
	check("all added", n, users)

	// Those listed take theirs back: the count follows, the list holds
	// only reactors.
	listed := f.reactions(101)[101][0].Users
	b2, _ := f.change1("alice", "bob", 202, 3, store.Change{Kind: store.ChangeReaction, Target: 101, Emoji: party}, false)
	for _, u := range listed[:10] {
		b2.Reactions = append(b2.Reactions, store.Reaction{MsgID: 101, User: u, Emoji: party, TS: 3})
	}
	f.commitTwice(b2)
	left := slices.DeleteFunc(slices.Clone(users), func(u string) bool { return slices.Contains(listed[:10], u) })
	check("ten removed", n-10, left)
	for _, u := range listed[:10] {
		if got := f.userReactions(101, u); len(got) != 0 {
			t.Errorf("%s's reactions after removing: %q", u, got)
		}
	}
	if got := f.userReactions(101, left[0]); !slices.Equal(got, []string{party}) {
		t.Errorf("%s's reactions: %q", left[0], got)
	}
}

// testHideDirect: a delete-for-me of 1:1 messages takes them from the
// user's inbox and history, moves the user's conversation row back to the
// newest message left, recounts its unread, and deletes it when none is
// left; the peer keeps everything.
func testHideDirect(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	f.send("bob", "alice", 102, 2)
	f.send("alice", "bob", 103, 3)
	f.send("bob", "alice", 104, 4)
	bobBefore := f.conv("bob", "alice")
	hide := func(id int64, ids ...int64) {
		t.Helper()
		b, _ := f.change1("alice", "bob", id, id, store.Change{Kind: store.ChangeDelete, IDs: ids}, true)
		for _, m := range ids {
			b.Hides = append(b.Hides, store.Hide{User: "alice", MsgID: m, Peer: "bob"})
		}
		f.commitTwice(b)
	}
	inbox := func() []int64 {
		var ids []int64
		for _, e := range f.rangeEvents("alice", 0, 50) {
			if !e.Change {
				ids = append(ids, e.MsgID)
			}
		}
		return ids
	}

	hide(201, 104, 999) // the newest, unread, and one that is not there
	if got := inbox(); !slices.Equal(got, []int64{101, 102, 103}) {
		t.Errorf("alice's inbox after hiding 104: %v", got)
	}
	if ids := msgIDs(f.history("alice", "bob", 0, 10)); !slices.Equal(ids, []int64{103, 102, 101}) {
		t.Errorf("alice's history after hiding 104: %v", ids)
	}
	if c := f.conv("alice", "bob"); c.Last != 103 || c.LastTS != 3 || c.Unread != 1 {
		t.Errorf("alice's row after hiding 104: %+v, want last 103 at 3, unread 1", c)
	}
	if evs := f.rangeEvents("alice", 0, 50); len(evs) != 4 || !evs[3].Change || evs[3].MsgID != 201 {
		t.Errorf("alice's inbox lacks the delete record: %+v", evs)
	}
	if evs := f.rangeEvents("bob", 0, 50); len(evs) != 4 {
		t.Errorf("bob's inbox changed by alice's delete: %+v", evs)
	}
	if c := f.conv("bob", "alice"); c != bobBefore {
		t.Errorf("bob's row changed by alice's delete: %+v, was %+v", c, bobBefore)
	}
	if ids := msgIDs(f.history("bob", "alice", 0, 10)); len(ids) != 4 {
		t.Errorf("bob's history: %v", ids)
	}

	f.setRead("alice", "bob", 0)
	hide(202, 101) // an older one: last stays
	if c := f.conv("alice", "bob"); c.Last != 103 || c.Unread != 0 || c.ReadUpto != 103 {
		t.Errorf("alice's row after hiding 101: %+v", c)
	}
	hide(203, 103, 102)
	if cs := f.convs("alice"); len(cs) != 0 {
		t.Errorf("alice's rows once every message is hidden: %+v", cs)
	}
	if ids := msgIDs(f.history("alice", "bob", 0, 10)); len(ids) != 0 {
		t.Errorf("alice's history once every message is hidden: %v", ids)
	}
	if got := inbox(); len(got) != 0 {
		t.Errorf("alice's inbox once every message is hidden: %v", got)
	}
	hide(204, 103) // again, with no row: no row made
	if cs := f.convs("alice"); len(cs) != 0 {
		t.Errorf("alice's rows after hiding again: %+v", cs)
	}

	// A new message starts the conversation anew.
	f.send("bob", "alice", 105, 5)
	if c := f.conv("alice", "bob"); c.Last != 105 || c.Unread != 1 {
		t.Errorf("alice's row after a new message: %+v", c)
	}
	if ms, err := f.messages.GetMessages(f.ctx, []int64{101, 104}); err != nil || len(ms) != 2 {
		t.Errorf("hidden messages are bob's still: %+v, %v", ms, err)
	}
}

// testHideGroup: a delete-for-me of a group message is a hidden row that
// Hidden reports, for that user only.
func testHideGroup(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	f.groupSend("g1", "alice", 101, 1)
	f.groupSend("g1", "alice", 102, 2)
	hidden := func(user string, ids ...int64) map[int64]bool {
		t.Helper()
		got, err := f.lives().Hidden(f.ctx, user, ids)
		if err != nil {
			t.Fatalf("hidden of %s: %v", user, err)
		}
		return got
	}
	if got := hidden("bob", 101, 102); len(got) != 0 {
		t.Errorf("hidden before any: %v", got)
	}
	b, _ := f.change1("bob", "bob", 201, 3, store.Change{Kind: store.ChangeDelete, IDs: []int64{101}}, true)
	b.Entries[0].Peer = "g1"
	b.Hides = []store.Hide{{User: "bob", MsgID: 101, Group: "g1"}}
	f.commitTwice(b)
	if got := hidden("bob", 101, 102, 999); !reflect.DeepEqual(got, map[int64]bool{101: true}) {
		t.Errorf("bob's hidden: %v, want 101", got)
	}
	if got := hidden("alice", 101, 102); len(got) != 0 {
		t.Errorf("alice's hidden: %v, want none", got)
	}
	if got := hidden("bob"); len(got) != 0 {
		t.Errorf("hidden of no IDs: %v", got)
	}
	if ms := f.groupRange("g1", 0); len(ms) != 2 {
		t.Errorf("the group log lost a hidden message: %+v", ms)
	}
}

// testClear: clearing a conversation takes every message up to Upto from
// the user's inbox and history, and the row; the peer's and other
// conversations stay, and a later message starts it anew even when the
// clear is committed again.
func testClear(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	f.send("bob", "alice", 102, 2)
	f.send("alice", "carol", 103, 3)
	f.send("bob", "alice", 104, 4)
	carol := f.conv("alice", "carol")
	bob := f.conv("bob", "alice")
	b, _ := f.change1("alice", "bob", 201, 5, store.Change{Kind: store.ChangeDelete, Peer: "bob"}, true)
	b.Clears = []store.Clear{{User: "alice", Peer: "bob", Upto: 104}}
	f.commitTwice(b)
	if ids := msgIDs(f.history("alice", "bob", 0, 10)); len(ids) != 0 {
		t.Errorf("alice's history with bob after the clear: %v", ids)
	}
	var left []int64
	for _, e := range f.rangeEvents("alice", 0, 50) {
		left = append(left, e.MsgID)
	}
	if !slices.Equal(left, []int64{103, 201}) {
		t.Errorf("alice's inbox after the clear: %v, want [103 201]", left)
	}
	if cs := f.convs("alice"); len(cs) != 1 || cs[0] != carol {
		t.Errorf("alice's rows after the clear: %+v, want only %+v", cs, carol)
	}
	if c := f.conv("bob", "alice"); c != bob {
		t.Errorf("bob's row after alice's clear: %+v", c)
	}
	if ids := msgIDs(f.history("bob", "alice", 0, 10)); len(ids) != 3 {
		t.Errorf("bob's history after alice's clear: %v", ids)
	}

	f.send("bob", "alice", 105, 6)
	f.commitTwice(b) // the clear again: 105 is after it
	if c := f.conv("alice", "bob"); c.Last != 105 || c.Unread != 1 {
		t.Errorf("alice's row after a new message and the clear again: %+v", c)
	}
	if ids := msgIDs(f.history("alice", "bob", 0, 10)); !slices.Equal(ids, []int64{105}) {
		t.Errorf("alice's history after a new message: %v", ids)
	}
}

// testMentions: Mentioned moves the named members' MentionSeq up (never
// back, non-members skipped); a head's MentionAll mentions everyone; both
// end with the member's read.
func testMentions(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob", "carol")
	m := store.Message{ID: 101, From: "alice", Group: "g1", Seq: 1, Type: "text", Body: "@bob", CMID: "m101", TS: 1, Mentions: []string{"bob", "zed"}}
	f.commitTwice(&store.Batch{Messages: []store.Message{m},
		Heads:     []store.GroupHead{{Group: "g1", Seq: 1, MsgID: 101, TS: 1}},
		Reads:     []store.GroupRead{{Group: "g1", User: "alice", Seq: 1}},
		Mentioned: []store.GroupRead{{Group: "g1", User: "bob", Seq: 1}, {Group: "g1", User: "zed", Seq: 1}}})
	h := f.groupHead("g1")
	if b := f.member("g1", "bob"); b.MentionSeq != 1 || !b.Mentioned(h) {
		t.Errorf("bob mentioned: %+v, head %+v", b, h)
	}
	if c := f.member("g1", "carol"); c.MentionSeq != 0 || c.Mentioned(h) {
		t.Errorf("carol not mentioned: %+v", c)
	}
	if _, err := f.groups.GetMember(f.ctx, "g1", "zed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a mention made zed a member: %v", err)
	}
	f.commit(&store.Batch{Mentioned: []store.GroupRead{{Group: "g1", User: "bob", Seq: 0}}})
	if b := f.member("g1", "bob"); b.MentionSeq != 1 {
		t.Errorf("bob's MentionSeq moved back: %+v", b)
	}
	if err := f.groups.SetGroupReads(f.ctx, []store.GroupRead{{Group: "g1", User: "bob", Seq: 1}}); err != nil {
		t.Fatal(err)
	}
	if b := f.member("g1", "bob"); b.Mentioned(f.groupHead("g1")) {
		t.Errorf("bob still mentioned after reading: %+v", b)
	}

	all := store.Message{ID: 102, From: "alice", Group: "g1", Seq: 2, Type: "text", Body: "@all", CMID: "m102", TS: 2, Mentions: []string{store.MentionAll}}
	f.commitTwice(&store.Batch{Messages: []store.Message{all},
		Heads: []store.GroupHead{{Group: "g1", Seq: 2, MsgID: 102, TS: 2, MentionAll: 2}}})
	f.groupSend("g1", "bob", 103, 3) // a later head without @all keeps it
	h = f.groupHead("g1")
	if h.MentionAll != 2 || h.Seq != 3 || h.MsgID != 103 {
		t.Errorf("head after @all and a message: %+v", h)
	}
	if c := f.member("g1", "carol"); !c.Mentioned(h) {
		t.Errorf("carol not mentioned by @all: %+v, head %+v", c, h)
	}
	if err := f.groups.SetGroupReads(f.ctx, []store.GroupRead{{Group: "g1", User: "carol", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	if c := f.member("g1", "carol"); c.Mentioned(h) {
		t.Errorf("carol still mentioned after reading past @all: %+v", c)
	}
}

// testChangeHeads: a change record's head (MsgID 0) moves Seq and Changes
// but leaves the last message; a message head moves the last message when
// its seq is above that message's, even behind a change's higher seq (a
// node that committed later).
func testChangeHeads(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	f.groupSend("g1", "alice", 101, 1)
	f.groupSend("g1", "bob", 102, 2)
	f.commitTwice(groupChange("g1", "bob", 201, 3, 1, store.Change{Kind: store.ChangeReaction, Target: 101, Emoji: "👍", Add: true}))
	want := store.GroupHead{Group: "g1", Seq: 3, MsgID: 102, TS: 102, Changes: 1}
	if h := f.groupHead("g1"); h != want {
		t.Errorf("head after a change: %+v, want %+v", h, want)
	}
	ms := f.groupRange("g1", 2)
	if len(ms) != 1 || ms[0].ID != 201 || ms[0].Change == nil || ms[0].Change.Count != 1 || ms[0].Change.Target != 101 {
		t.Errorf("range after 2: %+v, want the change record", ms)
	}

	// Another node: a change at seq 5 commits before a message at seq 4.
	f.commit(groupChange("g1", "bob", 202, 5, 2, store.Change{Kind: store.ChangeEdit, Target: 102}))
	f.groupSend("g1", "alice", 104, 4)
	want = store.GroupHead{Group: "g1", Seq: 5, MsgID: 104, TS: 104, Changes: 2}
	if h := f.groupHead("g1"); h != want {
		t.Errorf("head after a change at 5 then a message at 4: %+v, want %+v", h, want)
	}
	// Older heads move nothing back: a message head at 2, a change head
	// with fewer changes.
	f.commit(&store.Batch{Heads: []store.GroupHead{{Group: "g1", Seq: 2, MsgID: 102, TS: 102}, {Group: "g1", Seq: 3, Changes: 1}}})
	if h := f.groupHead("g1"); h != want {
		t.Errorf("head after older heads: %+v, want %+v", h, want)
	}
	hs, err := f.groups.GroupHeads(f.ctx, []string{"g1"})
	if err != nil || len(hs) != 1 || hs[0] != want {
		t.Errorf("heads: %+v, %v; want %+v", hs, err, want)
	}
	f.groupSend("g1", "alice", 106, 6)
	want = store.GroupHead{Group: "g1", Seq: 6, MsgID: 106, TS: 106, Changes: 2}
	if h := f.groupHead("g1"); h != want {
		t.Errorf("head after a message at 6: %+v, want %+v", h, want)
	}
}

// testReadChanges: a read sets ReadChanges from the change records up to
// it, a join sets JoinChanges from the head, and Unread counts messages,
// not changes.
func testReadChanges(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	if a := f.member("g1", "alice"); a.JoinChanges != 0 || a.ReadChanges != 0 {
		t.Errorf("a creator's changes: %+v", a)
	}
	react := store.Change{Kind: store.ChangeReaction, Target: 101, Emoji: "👍", Add: true}
	f.groupSend("g1", "alice", 101, 1)
	f.commit(groupChange("g1", "bob", 201, 2, 1, react))
	f.groupSend("g1", "alice", 103, 3)
	f.commit(groupChange("g1", "bob", 202, 4, 2, react))
	f.groupSend("g1", "alice", 105, 5)
	h := f.groupHead("g1")
	if n := f.member("g1", "bob").Unread(h); n != 3 {
		t.Errorf("bob's unread of 3 messages and 2 changes: %d", n)
	}
	steps := []struct {
		seq, readSeq, readChanges uint64
		unread                    int64
	}{
		{1, 1, 0, 2},
		{2, 2, 1, 2},
		{3, 3, 1, 1},
		{4, 4, 2, 1},
		{99, 5, 2, 0}, // past the head: at it
	}
	for _, s := range steps {
		if err := f.groups.SetGroupReads(f.ctx, []store.GroupRead{{Group: "g1", User: "bob", Seq: s.seq}}); err != nil {
			t.Fatal(err)
		}
		m := f.member("g1", "bob")
		if m.ReadSeq != s.readSeq || m.ReadChanges != s.readChanges || m.Unread(h) != s.unread {
			t.Errorf("bob read to %d: read_seq %d read_changes %d unread %d; want %d %d %d",
				s.seq, m.ReadSeq, m.ReadChanges, m.Unread(h), s.readSeq, s.readChanges, s.unread)
		}
	}

	// A join at the head: changes after it are not unread, messages are.
	added, err := f.groups.AddMembers(f.ctx, "g1", []store.Member{{User: "carol"}}, 0)
	if err != nil || len(added) != 1 || added[0].JoinSeq != 5 || added[0].JoinChanges != 2 {
		t.Fatalf("carol joins: %+v, %v; want join_seq 5, join_changes 2", added, err)
	}
	if c := f.member("g1", "carol"); c.JoinChanges != 2 {
		t.Errorf("carol's stored join: %+v", c)
	}
	// A change and the sender's read in one batch: the read sees it.
	cb := groupChange("g1", "alice", 206, 6, 3, react)
	cb.Reads = []store.GroupRead{{Group: "g1", User: "alice", Seq: 6}}
	f.commitTwice(cb)
	h = f.groupHead("g1")
	if n := f.member("g1", "carol").Unread(h); n != 0 {
		t.Errorf("carol's unread after a change: %d, want 0", n)
	}
	if a := f.member("g1", "alice"); a.ReadSeq != 6 || a.ReadChanges != 3 || a.Unread(h) != 0 {
		t.Errorf("alice read with her change: %+v", a)
	}
	f.groupSend("g1", "bob", 107, 7)
	h = f.groupHead("g1")
	if n := f.member("g1", "carol").Unread(h); n != 1 {
		t.Errorf("carol's unread after a message: %d, want 1", n)
	}
	if n := f.member("g1", "bob").Unread(h); n != 0 {
		t.Errorf("bob's unread after his own message: %d, want 0", n)
	}
	if n := f.member("g1", "alice").Unread(h); n != 1 {
		t.Errorf("alice's unread: %d, want 1", n)
	}
}

// testPeerRead: SetPeerRead moves a conversation row's PeerRead forward
// only, needs a row, and the rest of the row keeps it.
func testPeerRead(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	f.send("alice", "bob", 102, 2)
	l := f.lives()
	wantErr(t, "peer read without a row", l.SetPeerRead(f.ctx, "alice", "carol", 5), store.ErrNotFound)
	before := f.conv("alice", "bob")
	for _, s := range []struct{ upto, want int64 }{{101, 101}, {50, 101}, {102, 102}} {
		if err := l.SetPeerRead(f.ctx, "alice", "bob", s.upto); err != nil {
			t.Fatalf("set peer read %d: %v", s.upto, err)
		}
		c := f.conv("alice", "bob")
		want := before
		want.PeerRead = s.want
		if c != want {
			t.Errorf("after peer read %d: %+v, want %+v", s.upto, c, want)
		}
	}
	f.send("bob", "alice", 103, 3)
	f.setRead("alice", "bob", 0)
	if c := f.conv("alice", "bob"); c.PeerRead != 102 || c.Last != 103 || c.ReadUpto != 103 {
		t.Errorf("row after a message and a read: %+v, want peer_read 102 kept", c)
	}
	if c := f.conv("bob", "alice"); c.PeerRead != 0 {
		t.Errorf("bob's row has a peer read: %+v", c)
	}
}

// testUserSettings: none is the zero settings; a put replaces them.
func testUserSettings(t *testing.T, f *fixture) {
	l := f.lives()
	get := func(user string) store.UserSettings {
		t.Helper()
		s, err := l.GetUserSettings(f.ctx, user)
		if err != nil {
			t.Fatalf("get settings of %s: %v", user, err)
		}
		return s
	}
	if s := get("alice"); s != (store.UserSettings{User: "alice"}) {
		t.Errorf("no settings: %+v", s)
	}
	for _, s := range []store.UserSettings{{User: "alice", NoReadReceipts: true, Updated: 5},
		{User: "alice", AcceptFrom: store.AcceptContacts, Updated: 6},
		{User: "alice", Presence: store.PresenceNobody, NoReadReceipts: true, Updated: 7},
		{User: "alice", AcceptFrom: store.AcceptContacts, Presence: store.PresenceNobody, Updated: 8},
		{User: "alice", Updated: 9}} {
		if err := l.PutUserSettings(f.ctx, s); err != nil {
			t.Fatalf("put %+v: %v", s, err)
		}
		if got := get("alice"); got != s {
			t.Errorf("settings: %+v, want %+v", got, s)
		}
	}
	if err := l.PutUserSettings(f.ctx, store.UserSettings{User: "bob", NoReadReceipts: true, Updated: 7}); err != nil {
		t.Fatal(err)
	}
	if s := get("alice"); s.NoReadReceipts {
		t.Errorf("bob's settings are alice's: %+v", s)
	}
}

// testReplyTo: a reply keeps ReplyTo in every read.
func testReplyTo(t *testing.T, f *fixture) {
	f.send("alice", "bob", 101, 1)
	var b store.Batch
	f.add(&b, "bob", "alice", 102, 2)
	b.Messages[0].ReplyTo = 101
	f.commit(&b)
	if m := f.message(102); m.ReplyTo != 101 {
		t.Errorf("get messages: reply_to %d", m.ReplyTo)
	}
	if e, _ := findEvent(f.rangeEvents("alice", 0, 10), 102); e.Msg.ReplyTo != 101 {
		t.Errorf("range: reply_to %d", e.Msg.ReplyTo)
	}
	if evs := f.history("alice", "bob", 0, 1); len(evs) != 1 || evs[0].Msg.ReplyTo != 101 {
		t.Errorf("history: %+v", evs)
	}
	f.createGroup("g1", "alice", "bob")
	gm := store.Message{ID: 301, From: "bob", Group: "g1", Seq: 1, Type: "text", Body: "re", CMID: "g301", TS: 3, ReplyTo: 300}
	f.commit(&store.Batch{Messages: []store.Message{gm}, Heads: []store.GroupHead{{Group: "g1", Seq: 1, MsgID: 301, TS: 3}}})
	if ms := f.groupRange("g1", 0); len(ms) != 1 || !reflect.DeepEqual(ms[0], gm) {
		t.Errorf("group range: %+v, want %+v", ms, gm)
	}
}

// lifeState is everything the lifecycle's reads say, to compare before
// and after a replay.
type lifeState struct {
	Range     map[string][]store.Event
	History   []store.Event
	Convs     map[string][]store.Conversation
	Reactions map[int64][]store.ReactionSum
	Hidden    map[int64]bool
	Members   []store.Member
	Head      store.GroupHead
	Log       []store.Message
}

func (f *fixture) lifeState(ids []int64) lifeState {
	f.t.Helper()
	s := lifeState{Range: map[string][]store.Event{}, Convs: map[string][]store.Conversation{}}
	for _, u := range []string{"alice", "bob"} {
		s.Range[u] = f.rangeEvents(u, 0, 100)
		s.Convs[u] = f.convs(u)
	}
	s.History = f.history("bob", "alice", 0, 100)
	s.Reactions = f.reactions(ids...)
	var err error
	if s.Hidden, err = f.lives().Hidden(f.ctx, "bob", ids); err != nil {
		f.t.Fatal(err)
	}
	if s.Members, err = f.groups.Members(f.ctx, "g1", "", 100); err != nil {
		f.t.Fatal(err)
	}
	s.Head = f.groupHead("g1")
	s.Log = f.groupRange("g1", 0)
	return s
}

// testChangesIdempotent: a batch of every kind of change, committed again,
// changes nothing more.
func testChangesIdempotent(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob", "carol")
	for id := int64(101); id <= 105; id++ {
		f.send("alice", "bob", id, id)
	}
	f.send("bob", "alice", 106, 106)
	f.groupSend("g1", "alice", 301, 1)
	f.groupSend("g1", "alice", 302, 2)
	ids := []int64{101, 102, 103, 104, 105, 106, 301, 302}

	b, _ := f.change1("alice", "bob", 201, 200, store.Change{Kind: store.ChangeRecall, Target: 101}, false)
	b.Recalls = []store.Recall{{MsgID: 101, By: "alice", TS: 200}}
	b.Edits = []store.Edit{{MsgID: 102, Body: "fixed", TS: 200}}
	b.Reactions = []store.Reaction{{MsgID: 103, User: "bob", Emoji: "👍", Add: true}, {MsgID: 301, User: "carol", Emoji: "👍", Add: true}}
	b.Hides = []store.Hide{{User: "bob", MsgID: 106, Peer: "alice"}, {User: "bob", MsgID: 302, Group: "g1"}}
	b.Clears = []store.Clear{{User: "alice", Peer: "bob", Upto: 104}}
	gc := groupChange("g1", "carol", 303, 3, 1, store.Change{Kind: store.ChangeReaction, Target: 301, Emoji: "👍", Add: true})
	b.Messages = append(b.Messages, gc.Messages...)
	b.Acks = append(b.Acks, gc.Acks...)
	b.Heads = append(gc.Heads, store.GroupHead{Group: "g1", Seq: 2, MsgID: 302, TS: 302, MentionAll: 2})
	b.Reads = []store.GroupRead{{Group: "g1", User: "carol", Seq: 3}}
	b.Mentioned = []store.GroupRead{{Group: "g1", User: "bob", Seq: 2}}
	f.commit(b)
	once := f.lifeState(ids)
	b.Existing = nil
	f.commit(b)
	twice := f.lifeState(ids)
	if !reflect.DeepEqual(once, twice) {
		t.Errorf("the batch again changed the store:\nonce  %+v\ntwice %+v", once, twice)
	}
	// And it did what it says.
	if len(once.Reactions[103]) != 1 || once.Reactions[103][0].Count != 1 || !once.Hidden[302] ||
		once.Head.Changes != 1 || once.Head.MsgID != 302 || once.Head.MentionAll != 2 {
		t.Errorf("the batch's effects: %+v", once)
	}
	if c := f.member("g1", "carol"); c.ReadSeq != 3 || c.ReadChanges != 1 {
		t.Errorf("carol's read: %+v", c)
	}
	if m := f.member("g1", "bob"); m.MentionSeq != 2 {
		t.Errorf("bob's mention: %+v", m)
	}
}

// testChangesErase: erasing a user's inbox also takes their hidden rows
// and their settings; others' stay.
func testChangesErase(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	f.groupSend("g1", "alice", 101, 1)
	f.send("alice", "bob", 102, 2)
	l := f.lives()
	f.commit(&store.Batch{Hides: []store.Hide{{User: "alice", MsgID: 101, Group: "g1"}, {User: "bob", MsgID: 101, Group: "g1"}}})
	for _, u := range []string{"alice", "bob"} {
		if err := l.PutUserSettings(f.ctx, store.UserSettings{User: u, NoReadReceipts: true, Updated: 3}); err != nil {
			t.Fatal(err)
		}
	}
	er := f.erasure()
	for i := 0; ; i++ {
		n, err := er.DeleteUserInbox(f.ctx, "alice", 1)
		if err != nil {
			t.Fatalf("delete inbox: %v", err)
		}
		if n == 0 {
			break
		}
		if i > 20 {
			t.Fatal("delete inbox never ends")
		}
	}
	if h, err := l.Hidden(f.ctx, "alice", []int64{101}); err != nil || len(h) != 0 {
		t.Errorf("alice's hidden rows after erasure: %v, %v", h, err)
	}
	if s, err := l.GetUserSettings(f.ctx, "alice"); err != nil || s != (store.UserSettings{User: "alice"}) {
		t.Errorf("alice's settings after erasure: %+v, %v", s, err)
	}
	if h, err := l.Hidden(f.ctx, "bob", []int64{101}); err != nil || !h[101] {
		t.Errorf("bob's hidden rows after alice's erasure: %v, %v", h, err)
	}
	if s, err := l.GetUserSettings(f.ctx, "bob"); err != nil || !s.NoReadReceipts {
		t.Errorf("bob's settings after alice's erasure: %+v, %v", s, err)
	}
}

// testRecallRacesEdit: a recall and edits of one message committed at once
// (by several nodes, in a shared store) end with the message recalled and
// no body, whichever commits first.
func testRecallRacesEdit(t *testing.T, f *fixture) {
	const rounds, editors = 20, 4
	for r := range rounds {
		id := int64(1000 + r*10)
		f.send("alice", "bob", id, id)
		batches := []*store.Batch{}
		for e := range editors {
			b, _ := f.change1("alice", "bob", id+1+int64(e), id+1, store.Change{Kind: store.ChangeEdit, Target: id}, false)
			b.Edits = []store.Edit{{MsgID: id, Body: "edit " + strconv.Itoa(e), TS: id + 1 + int64(e)}}
			batches = append(batches, b)
		}
		b, _ := f.change1("alice", "bob", id+9, id+1, store.Change{Kind: store.ChangeRecall, Target: id}, false)
		b.Recalls = []store.Recall{{MsgID: id, By: "alice", TS: id + 1}}
		batches = append(batches, b)
		var wg sync.WaitGroup
		errs := make(chan error, len(batches))
		for _, b := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- f.messages.Commit(f.ctx, b)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: commit: %v", r, err)
			}
		}
		if m := f.message(id); m.Recalled == 0 || m.Body != "" {
			t.Fatalf("round %d: a recall raced by edits left %+v", r, m)
		}
		for _, user := range []string{"alice", "bob"} {
			if e, _ := findEvent(f.rangeEvents(user, 0, 1000), id); e.Msg.Body != "" {
				t.Fatalf("round %d: %s's range shows the body: %+v", r, user, e.Msg)
			}
		}
	}
}

// testConcurrentReactions: reactions committed at once each count once.
func testConcurrentReactions(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	f.groupSend("g1", "alice", 101, 1)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("u%02d", i)
			for _, add := range []bool{true, false, true} { // add, take back, add again
				errs <- f.messages.Commit(f.ctx, &store.Batch{Reactions: []store.Reaction{{MsgID: 101, User: u, Emoji: "👍", Add: add}}})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	got := f.reactions(101)[101]
	if len(got) != 1 || got[0].Count != n || len(got[0].Users) != store.ReactionUsers {
		t.Errorf("after %d concurrent reactions: %+v", n, got)
	}
}
