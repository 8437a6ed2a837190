package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// groupMsgs returns the inbox msg events of one group.
func (d *device) groupMsgs(group string) []wire.Msg {
	var out []wire.Msg
	for _, m := range d.msgs() {
		if m.Group == group {
			out = append(out, m)
		}
	}
	return out
}

// syncGroup asks over HTTP for a group's messages after since.
func syncGroup(t *testing.T, s *testserver.Server, token, group string, since uint64) (wire.Sync, int) {
	t.Helper()
	var b wire.Sync
	code := httpJSON(t, "GET", fmt.Sprintf("%s/v1/sync?group=%s&since=%d", s.HTTP, group, since), token, nil, &b)
	return b, code
}

// TestGroupChat: one stored message per group send with the next seq, live
// to every online member's devices, by sync for the others, from the join
// onward; unread from seqs, never counting one's own.
func TestGroupChat(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	carolTok := account(t, s, "carol", "phone")
	daveTok := account(t, s, "dave", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	bobPad := connect(t, s.MQTT, "bob", "pad", login(t, s, "bob", "pad"))
	dave := connect(t, s.MQTT, "dave", "phone", daveTok)

	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"bob", "carol"}}, &g); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	if g.ID != "g1" || g.Owner != "alice" || g.Count != 3 || g.Role != "owner" || len(g.Members) != 3 {
		t.Fatalf("group = %+v", g)
	}
	wait.For(t, "bob hears he was added", 10*time.Second, func() bool { return len(bob.inboxOf(wire.KindGroup)) == 1 })

	ack, werr := sendGroup(alice, "g1", "ga-1", "hello group")
	if werr != nil || ack.Group != "g1" || ack.Seq != 1 || ack.Ver != 0 {
		t.Fatalf("group ack = %+v %v", ack, werr)
	}
	for _, d := range []*device{alice, bob, bobPad} {
		wait.For(t, d.user+"/"+d.device+" gets the group message", 10*time.Second, func() bool { return len(d.groupMsgs("g1")) == 1 })
		if m := d.groupMsgs("g1")[0]; m.Seq != 1 || m.From != "alice" || m.Body != "hello group" || m.ID != ack.ID {
			t.Fatalf("%s got %+v", d.user, m)
		}
	}
	if _, werr := sendGroup(bob, "g1", "gb-1", "hi all"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "alice gets bob's", 10*time.Second, func() bool { return len(alice.groupMsgs("g1")) == 2 })

	// carol was offline: she syncs by seq.
	b, code := syncGroup(t, s, carolTok, "g1", 0)
	if code != 200 || b.Group != "g1" || len(b.Items) != 2 || b.Upto != 2 || b.More || b.Items[1].Seq != 2 {
		t.Fatalf("carol's sync: %d %+v", code, b)
	}
	// Unread: carol 2; alice 1 (bob's); bob 0: sending marks a group read
	// through one's own message, so one's own are never counted.
	for user, want := range map[string]int64{"carol": 2, "bob": 0, "alice": 1} {
		tok := map[string]string{"alice": aliceTok, "bob": bobTok, "carol": carolTok}[user]
		var list wire.Conversations
		httpJSON(t, "GET", s.HTTP+"/v1/conversations", tok, nil, &list)
		if list.TotalUnread != want || len(list.Conversations) != 1 || list.Conversations[0].Group != "g1" ||
			list.Conversations[0].Unread != want || list.Conversations[0].Last == nil || list.Conversations[0].Last.Body != "hi all" {
			t.Fatalf("%s's list: %+v", user, list)
		}
	}
	// carol reads up to seq 1 over MQTT; her unread event says 1 left.
	carol := connect(t, s.MQTT, "carol", "phone", carolTok)
	carol.publish(wire.TopicRead, wire.Read{Group: "g1", Seq: 1})
	wait.For(t, "carol's unread event", 10*time.Second, func() bool { return len(carol.inboxOf(wire.KindUnread)) == 1 })
	var u wire.Unread
	mustUnmarshal(t, carol.inboxOf(wire.KindUnread)[0], &u)
	if u.Group != "g1" || u.Count != 1 || u.Total != 1 {
		t.Fatalf("carol's unread: %+v", u)
	}

	// dave joins after seq 2: he sees what comes after, live and by sync.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/g1/members", aliceTok, wire.GroupMembers{Users: []string{"dave"}}, &g); code != 200 || g.Count != 4 {
		t.Fatalf("add dave: %d %+v", code, g)
	}
	wait.For(t, "dave hears he was added", 10*time.Second, func() bool { return len(dave.inboxOf(wire.KindGroup)) == 1 })
	if _, werr := sendGroup(carol, "g1", "gc-1", "welcome dave"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "dave gets it live", 10*time.Second, func() bool { return len(dave.groupMsgs("g1")) == 1 })
	if b, _ := syncGroup(t, s, daveTok, "g1", 0); len(b.Items) != 1 || b.Items[0].Seq != 3 || b.Since != 2 {
		t.Fatalf("dave's sync from 0: %+v", b)
	}

	// bob is removed: nothing after it reaches him, live or by sync; he cannot send.
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g1/members/bob", aliceTok, nil, nil); code != 204 {
		t.Fatalf("remove bob: %d", code)
	}
	before := len(bob.groupMsgs("g1"))
	if _, werr := sendGroup(alice, "g1", "ga-2", "after bob left"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "dave gets the next one", 10*time.Second, func() bool { return len(dave.groupMsgs("g1")) == 2 })
	if n := len(bob.groupMsgs("g1")) + len(bobPad.groupMsgs("g1")); n != 2*before {
		t.Fatalf("removed bob's devices got %d group messages, had %d each", n, before)
	}
	if _, code := syncGroup(t, s, bobTok, "g1", 0); code != 403 {
		t.Fatalf("removed bob's sync: %d", code)
	}
	if _, werr := sendGroup(bob, "g1", "gb-2", "let me in"); werr == nil || werr.Code != wire.CodeNotMember {
		t.Fatalf("removed bob's send: %v", werr)
	}
	var mine wire.Groups
	httpJSON(t, "GET", s.HTTP+"/v1/groups", bobTok, nil, &mine)
	if len(mine.Groups) != 0 {
		t.Fatalf("bob's groups after removal: %+v", mine)
	}
	httpJSON(t, "GET", s.HTTP+"/v1/groups", daveTok, nil, &mine)
	if len(mine.Groups) != 1 || mine.Groups[0].Seq != 4 || mine.Groups[0].Role != "member" {
		t.Fatalf("dave's groups: %+v", mine)
	}
}

func sendGroup(d *device, group, cmid, body string) (wire.Ack, *wire.Error) {
	d.t.Helper()
	d.publish(wire.TopicSend, wire.Send{CMID: cmid, Group: group, Type: "text", Body: body})
	return d.awaitReply(cmid)
}

// TestGroupRefusals: non-members, unknown groups, roles and the member limit
// get clear codes, and nothing leaks to a non-member.
func TestGroupRefusals(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.MaxGroupMembers = 3 })
	aliceTok := account(t, s, "alice", "x")
	bobTok := account(t, s, "bob", "x")
	account(t, s, "carol", "x")
	eveTok := account(t, s, "eve", "x")
	eve := connect(t, s.MQTT, "eve", "x", eveTok)
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Members: []string{"bob", "carol"}}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"create taken id", "POST", "/v1/groups", bobTok, wire.GroupCreate{ID: "g1"}, 409, wire.CodeExists},
		{"create with unknown member", "POST", "/v1/groups", bobTok, wire.GroupCreate{Members: []string{"zed"}}, 404, wire.CodeNoSuchUser},
		{"create past the limit", "POST", "/v1/groups", bobTok, wire.GroupCreate{Members: []string{"alice", "carol", "eve"}}, 409, wire.CodeGroupFull},
		{"add past the limit", "POST", "/v1/groups/g1/members", aliceTok, wire.GroupMembers{Users: []string{"eve"}}, 409, wire.CodeGroupFull},
		{"member adds", "POST", "/v1/groups/g1/members", bobTok, wire.GroupMembers{Users: []string{"eve"}}, 403, wire.CodeForbidden},
		{"non-member adds", "POST", "/v1/groups/g1/members", eveTok, wire.GroupMembers{Users: []string{"eve"}}, 403, wire.CodeNotMember},
		{"non-member shows", "GET", "/v1/groups/g1", eveTok, nil, 403, wire.CodeNotMember},
		{"unknown group shows", "GET", "/v1/groups/nope", aliceTok, nil, 403, wire.CodeNotMember},
		{"non-member syncs", "GET", "/v1/sync?group=g1", eveTok, nil, 403, wire.CodeNotMember},
		{"non-member sends", "POST", "/v1/messages", eveTok, wire.Send{CMID: "e1", Group: "g1", Type: "text"}, 403, wire.CodeNotMember},
		{"non-member reads", "POST", "/v1/read", eveTok, wire.Read{Group: "g1", Seq: 1}, 403, wire.CodeNotMember},
		{"member removes member", "DELETE", "/v1/groups/g1/members/carol", bobTok, nil, 403, wire.CodeForbidden},
		{"owner leaves", "DELETE", "/v1/groups/g1/members/alice", aliceTok, nil, 403, wire.CodeForbidden},
		{"remove non-member", "DELETE", "/v1/groups/g1/members/eve", aliceTok, nil, 404, wire.CodeNotFound},
		{"member sets roles", "POST", "/v1/groups/g1/members", bobTok, wire.GroupMembers{Users: []string{"carol"}, Role: "admin"}, 403, wire.CodeForbidden},
		{"bad group id", "POST", "/v1/groups", bobTok, wire.GroupCreate{ID: "a/b"}, 400, wire.CodeBadRequest},
		{"name too long", "POST", "/v1/groups", bobTok, wire.GroupCreate{Name: strings.Repeat("n", 300)}, 400, wire.CodeBadRequest},
		{"bad role", "POST", "/v1/groups/g1/members", aliceTok, wire.GroupMembers{Users: []string{"bob"}, Role: "king"}, 400, wire.CodeBadRequest},
		{"no users", "POST", "/v1/groups/g1/members", aliceTok, wire.GroupMembers{}, 400, wire.CodeBadRequest},
		{"member page too big", "GET", "/v1/groups/g1?limit=5000", aliceTok, nil, 400, wire.CodeBadRequest},
		{"to and group", "POST", "/v1/messages", aliceTok, wire.Send{CMID: "a1", To: "bob", Group: "g1", Type: "text"}, 400, wire.CodeBadRequest},
	} {
		var e wire.Error
		if status := httpJSON(t, c.method, s.HTTP+c.path, c.token, c.body, &e); status != c.status || e.Code != c.code {
			t.Errorf("%s: %d %+v, want %d %s", c.name, status, e, c.status, c.code)
		}
	}
	// Roles: the owner makes bob admin; bob may then remove carol but not alice.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/g1/members", aliceTok, wire.GroupMembers{Users: []string{"bob"}, Role: "admin"}, nil); code != 200 {
		t.Fatalf("make bob admin: %d", code)
	}
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g1/members/carol", bobTok, nil, nil); code != 204 {
		t.Fatalf("admin removes member: %d", code)
	}
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g1/members/alice", bobTok, nil, nil); code != 403 {
		t.Fatalf("admin removes owner: %d", code)
	}
	// A member leaves on its own.
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g1/members/bob", bobTok, nil, nil); code != 204 {
		t.Fatalf("bob leaves: %d", code)
	}
	// Over MQTT the same refusal, and eve never saw a group message.
	var ack wire.Ack
	httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "a2", Group: "g1", Type: "text", Body: "secret"}, &ack)
	if ack.Seq != 1 {
		t.Fatalf("alice's group send: %+v", ack)
	}
	eve.publish(wire.TopicSync, wire.SyncRequest{Group: "g1"})
	wait.For(t, "eve's refusal", 10*time.Second, func() bool { return len(eve.directOf(wire.KindError)) == 1 })
	var e wire.Error
	mustUnmarshal(t, eve.directOf(wire.KindError)[0], &e)
	if e.Code != wire.CodeNotMember || len(eve.groupMsgs("g1")) != 0 {
		t.Fatalf("eve: %+v, saw %d", e, len(eve.groupMsgs("g1")))
	}
	raw, _ := json.Marshal(eve.directOf(wire.KindSync))
	if len(eve.directOf(wire.KindSync)) != 0 {
		t.Fatalf("eve got a sync batch: %s", raw)
	}
}

// TestGroupRestart: seqs never go back across a restart, and a device's
// cursor past the head (history lost) is answered with reset.
func TestGroupRestart(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "x")
	account(t, s, "bob", "x")
	httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Members: []string{"bob"}}, nil)
	var first, second wire.Ack
	httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "1", Group: "g1", Type: "text"}, &first)
	s.Restart(t)
	aliceTok = login(t, s, "alice", "x")
	httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "2", Group: "g1", Type: "text"}, &second)
	if first.Seq == 0 || second.Seq <= first.Seq {
		t.Fatalf("seq after restart %d, before %d", second.Seq, first.Seq)
	}
	bobTok := login(t, s, "bob", "x")
	b, _ := syncGroup(t, s, bobTok, "g1", 0)
	if len(b.Items) != 2 || b.Upto != second.Seq || b.More {
		t.Fatalf("bob's sync: %+v", b)
	}
	b, _ = syncGroup(t, s, bobTok, "g1", second.Seq+100)
	if !b.Reset || len(b.Items) != 2 {
		t.Fatalf("sync past the head: %+v", b)
	}
}

// TestGroupsPerUserLimit: a stranger cannot put a user in groups without
// end (each one a heads entry and a cursor on every device): past
// --max-groups-per-user the add is 409 too_many_groups, and the user's
// heads stay bounded.
func TestGroupsPerUserLimit(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.MaxGroupsPerUser = 2 })
	account(t, s, "bob", "x")
	eveTok := account(t, s, "eve", "x")
	malTok := account(t, s, "mal", "x")
	for _, tok := range []string{eveTok, malTok} {
		if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", tok, wire.GroupCreate{Members: []string{"bob"}}, nil); code != 201 {
			t.Fatalf("create: %d", code)
		}
	}
	var e wire.Error
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", eveTok, wire.GroupCreate{Members: []string{"bob"}}, &e); code != 409 || e.Code != wire.CodeTooManyGroups {
		t.Fatalf("a third group with bob: %d %+v", code, e)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", eveTok, wire.GroupCreate{ID: "e1"}, nil); code != 201 {
		t.Fatalf("eve's own second group: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/e1/members", eveTok, wire.GroupMembers{Users: []string{"bob"}}, &e); code != 409 || e.Code != wire.CodeTooManyGroups {
		t.Fatalf("add bob to a third group: %d %+v", code, e)
	}
	var heads wire.Heads
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync?heads=1", login(t, s, "bob", "x"), nil, &heads); code != 200 || len(heads.Groups) != 2 {
		t.Fatalf("bob's heads: %d %+v", code, heads)
	}
}
