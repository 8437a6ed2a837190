package storetest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Group administration (store/change.go ChangeGroup): a record in the
// group's log committed with the GroupUpdates and MemberUpdates it made.

// adminChange is a group administration record at seq, the group's
// count-th change, with what it does to the rows.
func adminChange(group, from string, id int64, seq, count uint64, gc store.GroupChange,
	gu *store.GroupUpdate, mus ...store.MemberUpdate) *store.Batch {
	b := groupChange(group, from, id, seq, count, store.Change{Kind: store.ChangeGroup, Admin: &gc})
	if gu != nil {
		gu.MsgID, gu.Group, gu.Seq = id, group, seq
		b.GroupUpdates = append(b.GroupUpdates, *gu)
		b.Heads[0].Disbanded = gu.Disbanded // the disband's head says so
	}
	for _, u := range mus {
		u.MsgID, u.Group, u.Seq = id, group, seq
		b.MemberUpdates = append(b.MemberUpdates, u)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func (f *fixture) group(id string) store.Group {
	f.t.Helper()
	g, err := f.groups.GetGroup(f.ctx, id)
	if err != nil {
		f.t.Fatalf("get group %s: %v", id, err)
	}
	return g
}

// testGroupAdmin: an update, a member's mute and a transfer each change
// their rows with the record, once however often the batch is
// committed; the records are in the log with what they did, as changes:
// no last message, no unread.
func testGroupAdmin(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob", "carol")
	f.groupSend("g1", "alice", 101, 1)

	gc := store.GroupChange{Action: "updated", Name: ptr("new name"), Notice: ptr("be kind"), Avatar: ptr("m-1"), Muted: ptr(true)}
	f.commitTwice(adminChange("g1", "alice", 201, 2, 1, gc,
		&store.GroupUpdate{Name: gc.Name, Notice: gc.Notice, Avatar: gc.Avatar, Muted: gc.Muted}))
	g := f.group("g1")
	if g.Name != "new name" || g.Notice != "be kind" || g.Avatar != "m-1" || !g.Muted || g.Changed != 2 || g.Members != 3 {
		t.Errorf("group after an update: %+v", g)
	}
	ms := f.groupRange("g1", 1)
	if len(ms) != 1 || ms[0].ID != 201 || ms[0].Change == nil || ms[0].Change.Kind != store.ChangeGroup ||
		!reflect.DeepEqual(ms[0].Change.Admin, &gc) {
		t.Fatalf("range after 1: %+v, want the record with %+v", ms, gc)
	}
	if h := f.groupHead("g1"); h.Seq != 2 || h.MsgID != 101 || h.Changes != 1 {
		t.Errorf("head after the record: %+v, want seq 2, msg 101, changes 1", h)
	}
	if n := f.member("g1", "bob").Unread(f.groupHead("g1")); n != 1 {
		t.Errorf("bob's unread: %d, want 1 (the message, not the record)", n)
	}

	// An update of some fields keeps the others.
	f.commit(adminChange("g1", "alice", 202, 3, 2, store.GroupChange{Action: "mute_all", Muted: ptr(false)},
		&store.GroupUpdate{Muted: ptr(false)}))
	if g := f.group("g1"); g.Muted || g.Name != "new name" || g.Notice != "be kind" || g.Changed != 3 {
		t.Errorf("group after unmuting: %+v", g)
	}

	// A member's mute; a non-member's is skipped, not created.
	f.commitTwice(adminChange("g1", "alice", 203, 4, 3, store.GroupChange{Action: "mute", User: "bob", Until: 5000}, nil,
		store.MemberUpdate{User: "bob", MuteUntil: ptr(int64(5000))}, store.MemberUpdate{User: "zed", MuteUntil: ptr(int64(5000))}))
	if b := f.member("g1", "bob"); b.MuteUntil != 5000 || b.Role != store.RoleMember || b.Changed != 4 {
		t.Errorf("bob after the mute: %+v", b)
	}
	if _, err := f.groups.GetMember(f.ctx, "g1", "zed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a non-member's mute made a member: %v", err)
	}

	// A transfer: the group's owner and both roles, in one record.
	f.commitTwice(adminChange("g1", "alice", 204, 5, 4, store.GroupChange{Action: "owner", User: "bob"},
		&store.GroupUpdate{Owner: "bob"}, store.MemberUpdate{User: "bob", Role: store.RoleOwner},
		store.MemberUpdate{User: "alice", Role: store.RoleAdmin}))
	if g := f.group("g1"); g.Owner != "bob" {
		t.Errorf("owner after the transfer: %q", g.Owner)
	}
	if b, a := f.member("g1", "bob"), f.member("g1", "alice"); b.Role != store.RoleOwner || b.MuteUntil != 5000 || a.Role != store.RoleAdmin {
		t.Errorf("roles after the transfer: bob %+v, alice %+v", b, a)
	}
	us, err := f.groups.UserGroups(f.ctx, "bob")
	if err != nil || len(us) != 1 || us[0].Role != store.RoleOwner || us[0].MuteUntil != 5000 {
		t.Errorf("bob's groups: %+v, %v", us, err)
	}
}

// testGroupAdminReplay: a batch committed again after a newer one (a
// claim finishing a commit cut short) changes nothing back.
func testGroupAdminReplay(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	old := adminChange("g1", "alice", 201, 1, 1, store.GroupChange{Action: "updated", Name: ptr("old")},
		&store.GroupUpdate{Name: ptr("old")}, store.MemberUpdate{User: "bob", MuteUntil: ptr(int64(100))})
	f.commit(old)
	f.commit(adminChange("g1", "alice", 202, 2, 2, store.GroupChange{Action: "updated", Name: ptr("new")},
		&store.GroupUpdate{Name: ptr("new")}, store.MemberUpdate{User: "bob", MuteUntil: ptr(int64(0))}))
	old.Existing = nil
	f.commit(old)
	if g := f.group("g1"); g.Name != "new" || g.Changed != 2 {
		t.Errorf("group after an old batch again: %+v, want name new", g)
	}
	if b := f.member("g1", "bob"); b.MuteUntil != 0 || b.Changed != 2 {
		t.Errorf("bob after an old batch again: %+v, want unmuted", b)
	}
}

// testGroupDisband: a disband sets the group's Disbanded and its head's
// (GroupHeads tells it without the row); members keep their rows and
// the log; adds are ErrGone, removals (an erased account) still work.
func testGroupDisband(t *testing.T, f *fixture) {
	f.createGroup("g1", "alice", "bob")
	f.createGroup("g2", "alice", "bob")
	f.groupSend("g1", "bob", 101, 1)
	f.commitTwice(adminChange("g1", "alice", 201, 2, 1, store.GroupChange{Action: "disbanded"},
		&store.GroupUpdate{Disbanded: 7000}))
	if g := f.group("g1"); g.Disbanded != 7000 || g.Members != 2 {
		t.Errorf("group after the disband: %+v", g)
	}
	if h := f.groupHead("g1"); h.Disbanded != 7000 || h.Seq != 2 || h.MsgID != 101 {
		t.Errorf("head after the disband: %+v", h)
	}
	hs, err := f.groups.GroupHeads(f.ctx, []string{"g1", "g2"})
	if err != nil || len(hs) != 2 || hs[0].Disbanded != 7000 || hs[1].Disbanded != 0 {
		t.Errorf("heads: %+v, %v", hs, err)
	}
	if ms := f.groupRange("g1", 0); len(ms) != 2 || ms[1].Change == nil || ms[1].Change.Admin.Action != "disbanded" {
		t.Errorf("log after the disband: %+v", ms)
	}
	f.member("g1", "bob")
	_, err = f.groups.AddMembers(f.ctx, "g1", []store.Member{{User: "carol"}}, 0)
	if !errors.Is(err, store.ErrGone) {
		t.Errorf("add to a disbanded group: %v, want ErrGone", err)
	}
	if _, err := f.groups.GetMember(f.ctx, "g1", "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("carol is a member of a disbanded group: %v", err)
	}
	f.member("g1", "bob")
	if g := f.group("g1"); g.Members != 2 {
		t.Errorf("members after a refused add: %d", g.Members)
	}
	// An erased account still leaves it.
	if err := f.groups.RemoveMember(f.ctx, "g1", "bob"); err != nil {
		t.Errorf("remove from a disbanded group: %v", err)
	}
	// A later disband (two nodes at once) keeps the first time.
	f.commit(adminChange("g1", "alice", 202, 3, 2, store.GroupChange{Action: "disbanded"}, &store.GroupUpdate{Disbanded: 9000}))
	if g := f.group("g1"); g.Disbanded != 7000 {
		t.Errorf("disbanded after a second disband: %d, want 7000", g.Disbanded)
	}
}
