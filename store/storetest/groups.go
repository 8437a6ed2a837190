package storetest

import (
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Groups tests the Groups role: groups, members, heads, ranges and read
// positions.
func Groups(t *testing.T, open func(t *testing.T) GroupStore) {
	run(t, open, []testCase{{"Groups", testGroups}, {"GroupMentions", testGroupMentions}})
}

// groupSend commits one group message at seq, with its head and the
// sender's read position, as the chat pipeline does.
func (f *fixture) groupSend(group, from string, id int64, seq uint64) {
	f.t.Helper()
	m := store.Message{ID: id, From: from, Group: group, Seq: seq, Type: "text", Body: "g", CMID: "g" + strconv.FormatInt(id, 10), TS: id}
	f.commit(&store.Batch{Messages: []store.Message{m},
		Acks:  []store.Ack{{From: from, CMID: m.CMID, ID: id, TS: id, Group: group, Seq: seq}},
		Heads: []store.GroupHead{{Group: group, Seq: seq, MsgID: id, TS: id}},
		Reads: []store.GroupRead{{Group: group, User: from, Seq: seq}}})
}

func testGroups(t *testing.T, f *fixture) {
	g := store.Group{ID: "g1", Name: "friends", Owner: "alice", Created: 1}
	members := []store.Member{{User: "alice", Role: store.RoleOwner}, {User: "bob", Role: store.RoleMember}}
	if err := f.groups.CreateGroup(f.ctx, g, members); err != nil {
		t.Fatal(err)
	}
	if err := f.groups.CreateGroup(f.ctx, g, members); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create twice: %v", err)
	}
	if got, err := f.groups.GetGroup(f.ctx, "g1"); err != nil || got.Members != 2 || got.Name != "friends" {
		t.Fatalf("get group: %+v %v", got, err)
	}
	if _, err := f.groups.GetGroup(f.ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	f.groupSend("g1", "alice", 100, 1)
	f.groupSend("g1", "bob", 101, 2)
	f.groupSend("g1", "alice", 102, 3)
	f.commit(&store.Batch{Heads: []store.GroupHead{{Group: "g1", Seq: 2, MsgID: 101}}}) // a head never goes back
	h, err := f.groups.GroupHead(f.ctx, "g1")
	if err != nil || h.Seq != 3 || h.MsgID != 102 {
		t.Fatalf("head: %+v %v", h, err)
	}
	hs, err := f.groups.GroupHeads(f.ctx, []string{"nope", "g1", "g1"})
	if err != nil || len(hs) != 3 || hs[0] != (store.GroupHead{Group: "nope"}) || hs[1] != h || hs[2] != h {
		t.Fatalf("heads of nope, g1, g1: %+v %v", hs, err)
	}
	if hs, err := f.groups.GroupHeads(f.ctx, nil); err != nil || len(hs) != 0 {
		t.Fatalf("heads of no group: %+v %v", hs, err)
	}
	msgs, err := f.groups.GroupRange(f.ctx, "g1", 1, 10)
	if err != nil || len(msgs) != 2 || msgs[0].Seq != 2 || msgs[1].ID != 102 {
		t.Fatalf("range since 1: %+v %v", msgs, err)
	}
	if m, _ := f.groups.GetMember(f.ctx, "g1", "alice"); m.ReadSeq != 3 {
		t.Fatalf("sender's read position: %+v", m)
	}

	// carol joins at the head: she sees what comes after.
	added, err := f.groups.AddMembers(f.ctx, "g1", []store.Member{{User: "carol"}, {User: "bob", Role: store.RoleAdmin}}, 3)
	if err != nil || len(added) != 1 || added[0].User != "carol" || added[0].JoinSeq != 3 || added[0].Role != store.RoleMember {
		t.Fatalf("add carol: %+v %v", added, err)
	}
	if m, _ := f.groups.GetMember(f.ctx, "g1", "bob"); m.Role != store.RoleAdmin || m.ReadSeq != 2 {
		t.Fatalf("bob after role change: %+v", m)
	}
	if _, err := f.groups.AddMembers(f.ctx, "g1", []store.Member{{User: "dave"}}, 3); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("past the limit: %v", err)
	}
	if _, err := f.groups.GetMember(f.ctx, "g1", "dave"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dave written despite the limit: %v", err)
	}
	if _, err := f.groups.AddMembers(f.ctx, "nope", []store.Member{{User: "dave"}}, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("add to unknown group: %v", err)
	}
	ms, err := f.groups.Members(f.ctx, "g1", "", 2)
	if err != nil || len(ms) != 2 || ms[0].User != "alice" || ms[1].User != "bob" {
		t.Fatalf("members page 1: %+v %v", ms, err)
	}
	if ms, _ = f.groups.Members(f.ctx, "g1", "bob", 10); len(ms) != 1 || ms[0].User != "carol" {
		t.Fatalf("members after bob: %+v", ms)
	}

	// Reads move forward only and stop at the head; non-members are skipped.
	if err := f.groups.SetGroupReads(f.ctx, []store.GroupRead{{Group: "g1", User: "bob", Seq: 99}, {Group: "g1", User: "bob", Seq: 1}, {Group: "g1", User: "zed", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.groups.GetMember(f.ctx, "g1", "bob"); m.ReadSeq != 3 {
		t.Fatalf("bob's read position: %+v", m)
	}

	if err := f.groups.RemoveMember(f.ctx, "g1", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := f.groups.RemoveMember(f.ctx, "g1", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if gs, _ := f.groups.UserGroups(f.ctx, "bob"); len(gs) != 0 {
		t.Fatalf("bob's groups after removal: %+v", gs)
	}
	if gs, _ := f.groups.UserGroups(f.ctx, "carol"); len(gs) != 1 || gs[0].Group != "g1" {
		t.Fatalf("carol's groups: %+v", gs)
	}
	for _, c := range []struct {
		user       string
		most, want int
	}{{"bob", 0, 0}, {"carol", 0, 1}, {"carol", 1, 1}, {"nobody", 5, 0}} {
		if n, err := f.groups.CountUserGroups(f.ctx, c.user, c.most); err != nil || n != c.want {
			t.Fatalf("CountUserGroups(%s, %d) = %d, %v; want %d", c.user, c.most, n, err, c.want)
		}
	}
	for _, id := range []string{"g2", "g3"} {
		if err := f.groups.CreateGroup(f.ctx, store.Group{ID: id, Owner: "carol"}, []store.Member{{User: "carol", Role: store.RoleOwner}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.groups.CountUserGroups(f.ctx, "carol", 2); err != nil || n != 2 {
		t.Fatalf("CountUserGroups(carol, 2) of 3 = %d, %v", n, err)
	}
	if n, err := f.groups.CountUserGroups(f.ctx, "carol", 0); err != nil || n != 3 {
		t.Fatalf("CountUserGroups(carol) = %d, %v", n, err)
	}
	if got, _ := f.groups.GetGroup(f.ctx, "g1"); got.Members != 2 {
		t.Fatalf("member count after removal: %d", got.Members)
	}
}

// testGroupMentions: a message's mentions are stored with it; one without
// reads back with none.
func testGroupMentions(t *testing.T, f *fixture) {
	with := store.Message{ID: 11, From: "alice", Group: "g1", Seq: 1, Type: "text", Body: "@bob", CMID: "m11", TS: 11,
		Mentions: []string{"bob", store.MentionAll}}
	without := store.Message{ID: 12, From: "alice", Group: "g1", Seq: 2, Type: "text", Body: "hi", CMID: "m12", TS: 12}
	f.commit(&store.Batch{Messages: []store.Message{with, without},
		Acks: []store.Ack{{From: "alice", CMID: with.CMID, ID: with.ID, TS: with.TS, Group: "g1", Seq: 1},
			{From: "alice", CMID: without.CMID, ID: without.ID, TS: without.TS, Group: "g1", Seq: 2}},
		Heads: []store.GroupHead{{Group: "g1", Seq: 2, MsgID: 12, TS: 12}}})
	got, err := f.messages.GetMessages(f.ctx, []int64{11, 12})
	if err != nil || len(got) != 2 {
		t.Fatalf("get messages: %+v %v", got, err)
	}
	if !reflect.DeepEqual(got[0], with) || got[1].Mentions != nil || !reflect.DeepEqual(got[1], without) {
		t.Fatalf("messages read back:\n got %+v\nwant %+v, %+v", got, with, without)
	}
}
