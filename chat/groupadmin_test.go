package chat_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

func ptr[T any](v T) *T { return &v }

// adminGroup is g1 owned by alice with bob an admin and carol and dave
// members, everyone online here.
func adminGroup(t *testing.T, o chat.Options) (*lifeEnv, string) {
	t.Helper()
	e := newLife(t, o)
	if err := e.st.CreateUser(e.ctx, store.User{ID: "eve", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	g := e.group("alice", "bob", "carol", "dave")
	if _, err := e.svc.AddMembers(e.ctx, "alice", g, wire.GroupMembers{Users: []string{"bob"}, Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if err := e.svc.DeviceOnline(e.ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return e, g
}

// groupItems are the group administration items of action user got live.
func (e *lifeEnv) groupItems(user, action string) []wire.Msg {
	var out []wire.Msg
	for _, m := range e.ev.of(user, wire.KindGroup) {
		if m.Action == action {
			out = append(out, m)
		}
	}
	return out
}

func (e *lifeEnv) trySend(user, group, cmid string) error {
	_, err := e.svc.Send(e.ctx, from(user), wire.Send{CMID: cmid, Group: group, Type: "text", Body: "hi"})
	return err
}

func (e *lifeEnv) head(group string) uint64 {
	e.t.Helper()
	h, err := e.st.GroupHead(e.ctx, group)
	if err != nil {
		e.t.Fatal(err)
	}
	return h.Seq
}

// TestGroupPatch: the owner and admins rename and set the notice and
// avatar; a member may not; bad input writes nothing; the change is a
// "group" item members get live and sync replays, which moves no unread.
func TestGroupPatch(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	m := e.send("carol", wire.Send{CMID: "m1", Group: g, Body: "hi"})
	seq := e.head(g)
	_, err := e.svc.PatchGroup(e.ctx, from("carol"), g, wire.GroupPatch{Name: ptr("mine")})
	wantCode(t, err, wire.CodeNotAllowed)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{})
	wantCode(t, err, wire.CodeBadRequest)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{Name: ptr(strings.Repeat("n", wire.MaxGroupName+1))})
	wantCode(t, err, wire.CodeTooLarge)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{Notice: ptr(strings.Repeat("n", wire.MaxGroupNotice+1))})
	wantCode(t, err, wire.CodeTooLarge)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{Avatar: ptr(strings.Repeat("n", wire.MaxGroupAvatar+1))})
	wantCode(t, err, wire.CodeTooLarge)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{Name: ptr("bad \xff")})
	wantCode(t, err, wire.CodeBadRequest)
	_, err = e.svc.PatchGroup(e.ctx, from("eve"), g, wire.GroupPatch{Name: ptr("x")})
	wantCode(t, err, wire.CodeNotMember)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), "nope", wire.GroupPatch{Name: ptr("x")})
	wantCode(t, err, wire.CodeNotMember)
	if e.head(g) != seq {
		t.Fatalf("refused patches moved the head from %d to %d", seq, e.head(g))
	}

	got, err := e.svc.PatchGroup(e.ctx, from("bob"), g, wire.GroupPatch{Name: ptr("renamed"), Notice: ptr("be nice"), Avatar: ptr("m-1")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "renamed" || got.Notice != "be nice" || got.Avatar != "m-1" || got.Seq != seq+1 {
		t.Errorf("group after the patch: %+v", got)
	}
	wait.For(t, "the update live", 5*time.Second, func() bool { return len(e.groupItems("dave", wire.GroupUpdated)) == 1 })
	it := e.groupItems("dave", wire.GroupUpdated)[0]
	if it.From != "bob" || it.Group != g || it.Seq != seq+1 || *it.Name != "renamed" || *it.Notice != "be nice" || it.Muted != nil {
		t.Errorf("live update item %+v", it)
	}
	items := e.syncGroup("dave", g)
	if last := items[len(items)-1]; last.Kind != wire.KindGroup || last.Action != wire.GroupUpdated || *last.Avatar != "m-1" || last.Seq != seq+1 {
		t.Errorf("synced update %+v", last)
	}
	if find(items, wire.KindMsg, m.ID) == nil {
		t.Error("sync lost the message")
	}
	convs, _ := e.svc.Conversations(e.ctx, "dave")
	if convs.TotalUnread != 1 || convs.Conversations[0].Last == nil || convs.Conversations[0].Last.ID != m.ID {
		t.Errorf("dave's list %+v: the update counted as unread or as the last message", convs)
	}
	gs, err := e.svc.Groups(e.ctx, "dave")
	if err != nil || len(gs.Groups) != 1 || gs.Groups[0].Name != "renamed" || gs.Groups[0].Notice != "be nice" {
		t.Errorf("dave's groups %+v %v", gs, err)
	}
}

// TestGroupMuteMember: a muted member's sends are refused muted until the
// time passes; an admin mutes members only; nobody mutes the owner.
func TestGroupMuteMember(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	until := time.Now().Add(time.Hour).UnixMilli()
	before := e.send("carol", wire.Send{CMID: "c0", Group: g, Body: "said before the mute"})
	seq := e.head(g)
	for _, c := range []struct {
		by, user string
		code     string
	}{
		{"carol", "dave", wire.CodeNotAllowed},
		{"bob", "alice", wire.CodeNotAllowed},
		{"alice", "alice", wire.CodeBadRequest},
		{"bob", "eve", wire.CodeNotMember},
		{"bob", "bad id!", wire.CodeNotMember},
	} {
		_, err := e.svc.MuteMember(e.ctx, from(c.by), g, c.user, wire.MemberMute{MuteUntil: until})
		wantCode(t, err, c.code)
	}
	e2, g2 := adminGroup(t, chat.Options{})
	if _, err := e2.svc.AddMembers(e2.ctx, "alice", g2, wire.GroupMembers{Users: []string{"carol"}, Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	_, err := e2.svc.MuteMember(e2.ctx, from("bob"), g2, "carol", wire.MemberMute{MuteUntil: until})
	wantCode(t, err, wire.CodeNotAllowed) // an admin does not mute another admin
	_, err = e.svc.MuteMember(e.ctx, from("bob"), g, "carol", wire.MemberMute{MuteUntil: -1})
	wantCode(t, err, wire.CodeBadRequest)
	if e.head(g) != seq {
		t.Fatalf("refused mutes moved the head")
	}

	m, err := e.svc.MuteMember(e.ctx, from("bob"), g, "carol", wire.MemberMute{MuteUntil: until})
	if err != nil || m.MuteUntil != until || m.User != "carol" {
		t.Fatalf("mute: %+v %v", m, err)
	}
	wantCode(t, e.trySend("carol", g, "c1"), wire.CodeMuted)
	_, err = e.edit("carol", "x1", before.ID, "edited while muted")
	wantCode(t, err, wire.CodeMuted) // a muted member changes nothing she said
	if _, err := e.recall("carol", "r1", before.ID); err != nil {
		t.Errorf("a muted member's recall of her own message: %v", err)
	}
	if err := e.trySend("dave", g, "d1"); err != nil {
		t.Errorf("dave's send: %v", err)
	}
	wait.For(t, "the mute live", 5*time.Second, func() bool { return len(e.groupItems("carol", wire.GroupMuteMember)) == 1 })
	if it := e.groupItems("carol", wire.GroupMuteMember)[0]; it.User != "carol" || it.Until != until || it.From != "bob" {
		t.Errorf("live mute %+v", it)
	}
	shown, err := e.svc.Group(e.ctx, "carol", g, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range shown.Members {
		if (mm.User == "carol") != (mm.MuteUntil == until) {
			t.Errorf("member %+v: only carol is muted until %d", mm, until)
		}
	}

	// A mute that runs out: refused until then, allowed after.
	soon := time.Now().Add(300 * time.Millisecond).UnixMilli()
	if _, err := e.svc.MuteMember(e.ctx, from("alice"), g, "carol", wire.MemberMute{MuteUntil: soon}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.trySend("carol", g, "c2"), wire.CodeMuted)
	wait.For(t, "the mute to run out", 5*time.Second, func() bool { return e.trySend("carol", g, "c3") == nil })
	// Unmuting with 0.
	if _, err := e.svc.MuteMember(e.ctx, from("alice"), g, "dave", wire.MemberMute{MuteUntil: until}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.trySend("dave", g, "d2"), wire.CodeMuted)
	if _, err := e.svc.MuteMember(e.ctx, from("alice"), g, "dave", wire.MemberMute{}); err != nil {
		t.Fatal(err)
	}
	if err := e.trySend("dave", g, "d3"); err != nil {
		t.Errorf("dave unmuted: %v", err)
	}
}

// TestGroupMuteAll: a muted group takes sends from its owner and admins
// only.
func TestGroupMuteAll(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	_, err := e.svc.PatchGroup(e.ctx, from("carol"), g, wire.GroupPatch{Muted: ptr(true)})
	wantCode(t, err, wire.CodeNotAllowed)
	got, err := e.svc.PatchGroup(e.ctx, from("bob"), g, wire.GroupPatch{Muted: ptr(true)})
	if err != nil || !got.Muted {
		t.Fatalf("mute all: %+v %v", got, err)
	}
	wantCode(t, e.trySend("carol", g, "c1"), wire.CodeMuted)
	for _, u := range []string{"alice", "bob"} {
		if err := e.trySend(u, g, u+"1"); err != nil {
			t.Errorf("%s's send to the muted group: %v", u, err)
		}
	}
	wait.For(t, "mute_all live", 5*time.Second, func() bool { return len(e.groupItems("carol", wire.GroupMuteAll)) == 1 })
	if it := e.groupItems("carol", wire.GroupMuteAll)[0]; it.Muted == nil || !*it.Muted || it.Name != nil {
		t.Errorf("live mute_all %+v", it)
	}
	if _, err := e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{Muted: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if err := e.trySend("carol", g, "c2"); err != nil {
		t.Errorf("carol's send after unmuting: %v", err)
	}
}

// TestGroupTransfer: the owner hands over to a member and becomes an
// admin; nobody else may; a non-member cannot receive it.
func TestGroupTransfer(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	_, err := e.svc.TransferGroup(e.ctx, from("bob"), g, wire.GroupTransfer{User: "bob"})
	wantCode(t, err, wire.CodeNotAllowed)
	_, err = e.svc.TransferGroup(e.ctx, from("alice"), g, wire.GroupTransfer{User: "eve"})
	wantCode(t, err, wire.CodeNotMember)
	_, err = e.svc.TransferGroup(e.ctx, from("alice"), g, wire.GroupTransfer{User: ""})
	wantCode(t, err, wire.CodeNotMember)
	_, err = e.svc.TransferGroup(e.ctx, from("alice"), g, wire.GroupTransfer{User: "alice"})
	wantCode(t, err, wire.CodeBadRequest)

	// carol is muted: as the owner she is not any more.
	if _, err := e.svc.MuteMember(e.ctx, from("alice"), g, "carol", wire.MemberMute{MuteUntil: time.Now().Add(time.Hour).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.TransferGroup(e.ctx, from("alice"), g, wire.GroupTransfer{User: "Carol"})
	if err != nil || got.Owner != "carol" || got.Role != store.RoleAdmin {
		t.Fatalf("transfer: %+v %v", got, err)
	}
	roles := map[string]string{}
	for _, m := range got.Members {
		roles[m.User] = m.Role
	}
	if roles["carol"] != store.RoleOwner || roles["alice"] != store.RoleAdmin || roles["bob"] != store.RoleAdmin {
		t.Errorf("roles after the transfer %v", roles)
	}
	if err := e.trySend("carol", g, "c1"); err != nil {
		t.Errorf("the new owner, muted before, sends: %v", err)
	}
	wait.For(t, "the transfer live", 5*time.Second, func() bool { return len(e.groupItems("dave", wire.GroupOwner)) == 1 })
	if it := e.groupItems("dave", wire.GroupOwner)[0]; it.User != "carol" || it.From != "alice" {
		t.Errorf("live owner item %+v", it)
	}
	// The old owner is an admin now: it may not disband; the new one may.
	wantCode(t, e.svc.DisbandGroup(e.ctx, from("alice"), g), wire.CodeNotAllowed)
	if err := e.svc.DisbandGroup(e.ctx, from("carol"), g); err != nil {
		t.Fatal(err)
	}
}

// TestGroupDisband: after a disband nothing more is stored in the group:
// sends, changes, typing, membership changes and administration get
// group_gone; members read the history up to the disband, whose record
// is the last item, and sync says the group is gone.
func TestGroupDisband(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	m := e.send("carol", wire.Send{CMID: "m1", Group: g, Body: "hi"})
	wantCode(t, e.svc.DisbandGroup(e.ctx, from("bob"), g), wire.CodeNotAllowed)
	wantCode(t, e.svc.DisbandGroup(e.ctx, from("eve"), g), wire.CodeNotMember)
	if err := e.svc.DisbandGroup(e.ctx, from("alice"), g); err != nil {
		t.Fatal(err)
	}
	seq := e.head(g)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		wait.For(t, u+" told of the disband", 5*time.Second, func() bool {
			return len(e.groupItems(u, wire.GroupDisbanded)) == 1 && len(e.ev.other(u, wire.KindGroup)) > 0
		})
	}
	var told bool
	for _, ev := range e.ev.other("dave", wire.KindGroup) {
		if ge, ok := ev.(wire.GroupEvent); ok && ge.Action == wire.GroupDisbanded && ge.By == "alice" && ge.Group == g {
			told = true
		}
	}
	if !told {
		t.Error("dave got no disbanded group event")
	}

	wantCode(t, e.svc.DisbandGroup(e.ctx, from("alice"), g), wire.CodeGroupGone)
	wantCode(t, e.trySend("carol", g, "c2"), wire.CodeGroupGone)
	wantCode(t, e.trySend("alice", g, "a2"), wire.CodeGroupGone)
	wantCode(t, e.trySend("eve", g, "e2"), wire.CodeNotMember) // a stranger learns nothing
	_, err := e.svc.SendAs(e.ctx, chat.SystemUser, wire.Send{CMID: "s1", Group: g, Type: "text", Body: "from the backend"})
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.recall("alice", "r1", m.ID)
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.edit("carol", "x1", m.ID, "edited")
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.react("dave", "x2", m.ID, "👍", wire.ReactAdd)
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.svc.Typing(e.ctx, "carol", wire.Typing{Group: g, State: wire.TypingStart})
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.svc.AddMembers(e.ctx, "alice", g, wire.GroupMembers{Users: []string{"eve"}})
	wantCode(t, err, wire.CodeGroupGone)
	wantCode(t, e.svc.RemoveMember(e.ctx, "alice", g, "dave"), wire.CodeGroupGone)
	wantCode(t, e.svc.RemoveMember(e.ctx, "dave", g, "dave"), wire.CodeGroupGone)
	_, err = e.svc.PatchGroup(e.ctx, from("alice"), g, wire.GroupPatch{Name: ptr("x")})
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.svc.MuteMember(e.ctx, from("alice"), g, "dave", wire.MemberMute{MuteUntil: 1})
	wantCode(t, err, wire.CodeGroupGone)
	_, err = e.svc.TransferGroup(e.ctx, from("alice"), g, wire.GroupTransfer{User: "bob"})
	wantCode(t, err, wire.CodeGroupGone)
	if e.head(g) != seq {
		t.Fatalf("the head moved after the disband: %d, was %d", e.head(g), seq)
	}

	var batches []wire.Sync
	if err := e.svc.Sync(e.ctx, "dave", wire.SyncRequest{Group: g}, func(b wire.Sync) error {
		batches = append(batches, b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	last := batches[len(batches)-1]
	if !last.Gone || last.Upto != seq {
		t.Errorf("sync's last batch %+v: want gone, upto %d", last, seq)
	}
	items := last.Items
	if it := items[len(items)-1]; it.Kind != wire.KindGroup || it.Action != wire.GroupDisbanded || it.Seq != seq {
		t.Errorf("last item %+v: want the disband", it)
	}
	if find(e.syncGroup("dave", g), wire.KindMsg, m.ID) == nil {
		t.Error("dave lost the group's history")
	}
	heads, err := e.svc.GroupHeads(e.ctx, "dave")
	if err != nil || len(heads.Groups) != 1 || !heads.Groups[0].Gone || heads.Groups[0].Seq != seq {
		t.Errorf("heads %+v %v: want the group gone at %d", heads, err, seq)
	}
	gs, err := e.svc.Groups(e.ctx, "dave")
	if err != nil || len(gs.Groups) != 1 || gs.Groups[0].Disbanded == 0 {
		t.Errorf("groups %+v %v: want the group listed, disbanded", gs, err)
	}
	// An erased account still leaves it (DELETE /v1/server/users).
	if n, err := e.svc.LeaveGroups(e.ctx, "dave"); n != 1 || err != nil {
		t.Errorf("dave's erasure left %d groups, %v; want 1", n, err)
	}
}

// TestGroupAdminEndsBatch: sends queued right behind a disband are
// checked against the disbanded group, never stored after its record.
func TestGroupAdminEndsBatch(t *testing.T) {
	e, g := adminGroup(t, chat.Options{})
	done := make(chan error, 1)
	go func() { done <- e.svc.DisbandGroup(e.ctx, from("alice"), g) }()
	results := make(chan error, 50)
	for i := range 50 {
		go func() { results <- e.trySend("carol", g, "c"+string(rune('a'+i%26))+string(rune('a'+i/26))) }()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := <-results; err != nil {
			wantCode(t, err, wire.CodeGroupGone)
		}
	}
	items := e.syncGroup("carol", g)
	if last := items[len(items)-1]; last.Action != wire.GroupDisbanded {
		t.Errorf("the last item is %+v, not the disband", last)
	}
}

// changedHook records the webhook's group.changed calls.
type changedHook struct {
	mu    sync.Mutex
	calls []string
}

func (h *changedHook) AfterSend([]store.Message) []store.WebhookEvent { return nil }
func (h *changedHook) Committed()                                     {}
func (h *changedHook) Recalled(store.Message, string, time.Time) (store.WebhookEvent, bool) {
	return store.WebhookEvent{}, false
}
func (h *changedHook) GroupChanged(group, action, by string, users []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, group+" "+action+" "+by+" "+strings.Join(users, ","))
}

// TestGroupAdminWebhook: each administration is told to the operator's
// backend as group.changed, with the action and the member it concerns;
// a refused one is not.
func TestGroupAdminWebhook(t *testing.T) {
	h := &changedHook{}
	e, g := adminGroup(t, chat.Options{Webhooks: h})
	h.mu.Lock()
	h.calls = nil
	h.mu.Unlock()
	_, err := e.svc.PatchGroup(e.ctx, from("carol"), g, wire.GroupPatch{Name: ptr("x")})
	wantCode(t, err, wire.CodeNotAllowed)
	if _, err := e.svc.PatchGroup(e.ctx, from("bob"), g, wire.GroupPatch{Name: ptr("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.MuteMember(e.ctx, from("bob"), g, "carol", wire.MemberMute{MuteUntil: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.TransferGroup(e.ctx, from("alice"), g, wire.GroupTransfer{User: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DisbandGroup(e.ctx, from("bob"), g); err != nil {
		t.Fatal(err)
	}
	want := []string{"g1 updated bob ", "g1 mute bob carol", "g1 owner alice bob", "g1 disbanded bob "}
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.Join(h.calls, "|") != strings.Join(want, "|") {
		t.Errorf("group.changed calls %q, want %q", h.calls, want)
	}
}
