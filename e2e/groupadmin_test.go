package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// groupItem waits for d's first live "group" item of action after seq.
func (d *device) groupItem(action string, after uint64) wire.Msg {
	d.t.Helper()
	var got wire.Msg
	wait.For(d.t, fmt.Sprintf("%s/%s gets group %s after %d", d.user, d.device, action, after), 10*time.Second, func() bool {
		for _, m := range d.events() {
			if m.Kind == wire.KindGroup && m.Action == action && m.Seq > after {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// adminCall is an administration request that must be refused with code,
// at its status, and write nothing (the group's seq stays).
func adminRefused(t *testing.T, s *testserver.Server, token, method, path string, body any, code string) {
	t.Helper()
	var e wire.Error
	var before, after wire.Group
	httpJSON(t, "GET", s.HTTP+"/v1/groups/g1", token, nil, &before)
	if got := httpJSON(t, method, s.HTTP+path, token, body, &e); got != wire.HTTPStatus(code) || e.Code != code {
		t.Fatalf("%s %s %v: %d %+v, want %d %s", method, path, body, got, e, wire.HTTPStatus(code), code)
	}
	httpJSON(t, "GET", s.HTTP+"/v1/groups/g1", token, nil, &after)
	if after.Seq != before.Seq || after.Name != before.Name || after.Owner != before.Owner {
		t.Fatalf("%s %s %v was refused but the group changed: %+v, was %+v", method, path, body, after, before)
	}
}

// TestGroupAdmin: over HTTP, the owner and admins rename the group, set
// its notice and avatar, mute everyone or one member, hand it over and
// disband it; each change reaches the members' MQTT connections as a
// "group" item, and dave, who was away, gets all of them from a sync
// from before them. Every bad input gets its code and writes nothing;
// after the disband nothing more is stored and sync says gone.
func TestGroupAdmin(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	carolTok := account(t, s, "carol", "phone")
	daveTok := account(t, s, "dave", "phone")
	eveTok := account(t, s, "eve", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	carol := connect(t, s.MQTT, "carol", "phone", carolTok)
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"bob", "carol", "dave"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/g1/members", aliceTok, wire.GroupMembers{Users: []string{"bob"}, Role: "admin"}, nil); code != 200 {
		t.Fatalf("make bob an admin: %d", code)
	}
	m1, werr := sendGroup(carol, "g1", "c1", "before the changes")
	if werr != nil {
		t.Fatal(werr)
	}
	cursor := m1.Seq

	// Bad input: each a code, nothing written.
	adminRefused(t, s, carolTok, "PATCH", "/v1/groups/g1", wire.GroupPatch{Name: strp("mine")}, wire.CodeNotAllowed)
	adminRefused(t, s, aliceTok, "PATCH", "/v1/groups/g1", map[string]any{}, wire.CodeBadRequest)
	adminRefused(t, s, aliceTok, "PATCH", "/v1/groups/g1", wire.GroupPatch{Name: strp(strings.Repeat("n", wire.MaxGroupName+1))}, wire.CodeTooLarge)
	adminRefused(t, s, aliceTok, "PATCH", "/v1/groups/g1", wire.GroupPatch{Notice: strp(strings.Repeat("n", wire.MaxGroupNotice+1))}, wire.CodeTooLarge)
	adminRefused(t, s, aliceTok, "PATCH", "/v1/groups/g1", map[string]any{"name": 5}, wire.CodeBadRequest)
	adminRefused(t, s, eveTok, "PATCH", "/v1/groups/g1", wire.GroupPatch{Name: strp("x")}, wire.CodeNotMember)
	adminRefused(t, s, aliceTok, "PATCH", "/v1/groups/nope", wire.GroupPatch{Name: strp("x")}, wire.CodeNotMember)
	adminRefused(t, s, bobTok, "POST", "/v1/groups/g1/owner", wire.GroupTransfer{User: "bob"}, wire.CodeNotAllowed)
	adminRefused(t, s, aliceTok, "POST", "/v1/groups/g1/owner", wire.GroupTransfer{User: "eve"}, wire.CodeNotMember)
	adminRefused(t, s, bobTok, "PUT", "/v1/groups/g1/members/alice", wire.MemberMute{MuteUntil: time.Now().Add(time.Hour).UnixMilli()}, wire.CodeNotAllowed)
	adminRefused(t, s, carolTok, "PUT", "/v1/groups/g1/members/dave", wire.MemberMute{MuteUntil: time.Now().Add(time.Hour).UnixMilli()}, wire.CodeNotAllowed)
	adminRefused(t, s, bobTok, "PUT", "/v1/groups/g1/members/eve", wire.MemberMute{MuteUntil: 1}, wire.CodeNotMember)
	adminRefused(t, s, bobTok, "PUT", "/v1/groups/g1/members/carol", wire.MemberMute{MuteUntil: -5}, wire.CodeBadRequest)
	adminRefused(t, s, bobTok, "DELETE", "/v1/groups/g1", nil, wire.CodeNotAllowed)

	// An admin renames it and sets its notice and avatar.
	var g wire.Group
	if code := httpJSON(t, "PATCH", s.HTTP+"/v1/groups/g1", bobTok, wire.GroupPatch{Name: strp("renamed"), Notice: strp("be kind"), Avatar: strp("https://a.example/x.png")}, &g); code != 200 {
		t.Fatalf("patch: %d", code)
	}
	if g.Name != "renamed" || g.Notice != "be kind" || g.Avatar != "https://a.example/x.png" {
		t.Fatalf("patched group %+v", g)
	}
	if it := carol.groupItem(wire.GroupUpdated, cursor); it.From != "bob" || it.Group != "g1" || it.Name == nil || *it.Name != "renamed" || *it.Notice != "be kind" {
		t.Fatalf("carol's live update %+v", it)
	}

	// Everyone muted: a plain member's send is refused, an admin's is not.
	if code := httpJSON(t, "PATCH", s.HTTP+"/v1/groups/g1", aliceTok, wire.GroupPatch{Muted: boolp(true)}, &g); code != 200 || !g.Muted {
		t.Fatalf("mute all: %d %+v", code, g)
	}
	carol.groupItem(wire.GroupMuteAll, cursor)
	if _, werr := sendGroup(carol, "g1", "c2", "muted?"); werr == nil || werr.Code != wire.CodeMuted {
		t.Fatalf("carol's send to the muted group: %+v", werr)
	}
	if _, werr := sendGroup(bob, "g1", "b1", "admins speak"); werr != nil {
		t.Fatalf("bob's send to the muted group: %+v", werr)
	}
	if code := httpJSON(t, "PATCH", s.HTTP+"/v1/groups/g1", aliceTok, wire.GroupPatch{Muted: boolp(false)}, nil); code != 200 {
		t.Fatalf("unmute all: %d", code)
	}

	// carol muted for a moment: refused until it passes, then allowed.
	until := time.Now().Add(time.Second).UnixMilli()
	var mm wire.Member
	if code := httpJSON(t, "PUT", s.HTTP+"/v1/groups/g1/members/carol", bobTok, wire.MemberMute{MuteUntil: until}, &mm); code != 200 || mm.MuteUntil != until {
		t.Fatalf("mute carol: %d %+v", code, mm)
	}
	if it := carol.groupItem(wire.GroupMuteMember, cursor); it.User != "carol" || it.Until != until || it.From != "bob" {
		t.Fatalf("carol's live mute %+v", it)
	}
	if _, werr := sendGroup(carol, "g1", "c3", "muted?"); werr == nil || werr.Code != wire.CodeMuted {
		t.Fatalf("muted carol's send: %+v", werr)
	}
	var shown wire.Group
	httpJSON(t, "GET", s.HTTP+"/v1/groups/g1", carolTok, nil, &shown)
	for _, m := range shown.Members {
		if (m.User == "carol") != (m.MuteUntil == until) {
			t.Errorf("member %+v in GET: only carol has mute_until %d", m, until)
		}
	}
	n := 0
	wait.For(t, "carol's mute to pass", 10*time.Second, func() bool {
		n++
		_, werr := sendGroup(carol, "g1", fmt.Sprintf("c4-%d", n), "unmuted")
		return werr == nil
	})
	var later wire.Group
	httpJSON(t, "GET", s.HTTP+"/v1/groups/g1", carolTok, nil, &later)
	for _, m := range later.Members {
		if m.MuteUntil != 0 {
			t.Errorf("member %+v in GET after the mute passed", m)
		}
	}

	// alice hands the group to bob and becomes an admin.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/g1/owner", aliceTok, wire.GroupTransfer{User: "bob"}, &g); code != 200 || g.Owner != "bob" || g.Role != "admin" {
		t.Fatalf("transfer: %d %+v", code, g)
	}
	if it := carol.groupItem(wire.GroupOwner, cursor); it.User != "bob" || it.From != "alice" {
		t.Fatalf("carol's live transfer %+v", it)
	}
	adminRefused(t, s, aliceTok, "DELETE", "/v1/groups/g1", nil, wire.CodeNotAllowed)

	// bob disbands it: every member told, nothing more stored.
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g1", bobTok, nil, nil); code != 204 {
		t.Fatalf("disband: %d", code)
	}
	for _, d := range []*device{alice, bob, carol} {
		d.groupItem(wire.GroupDisbanded, cursor)
		wait.For(t, d.user+" gets the disbanded group event", 10*time.Second, func() bool {
			for _, raw := range d.inboxOf(wire.KindGroup) {
				var ev wire.GroupEvent
				if json.Unmarshal(raw, &ev) == nil && ev.Action == wire.GroupDisbanded && ev.By == "bob" {
					return true
				}
			}
			return false
		})
	}
	var head wire.Group
	httpJSON(t, "GET", s.HTTP+"/v1/groups/g1", daveTok, nil, &head)
	if head.Disbanded == 0 {
		t.Fatalf("GET after the disband: %+v", head)
	}
	if _, werr := sendGroup(carol, "g1", "c5", "anyone?"); werr == nil || werr.Code != wire.CodeGroupGone {
		t.Fatalf("send after the disband: %+v", werr)
	}
	if _, werr := (mqttActor{alice}).recall("r1", m1.ID); werr == nil || werr.Code != wire.CodeGroupGone {
		t.Fatalf("recall after the disband: %+v", werr)
	}
	if _, werr := sendGroup(connect(t, s.MQTT, "eve", "phone", eveTok), "g1", "e1", "hi"); werr == nil || werr.Code != wire.CodeNotMember {
		t.Fatalf("a stranger's send after the disband: %+v", werr)
	}
	adminRefused(t, s, bobTok, "DELETE", "/v1/groups/g1", nil, wire.CodeGroupGone)
	adminRefused(t, s, bobTok, "POST", "/v1/groups/g1/members", wire.GroupMembers{Users: []string{"eve"}}, wire.CodeGroupGone)
	adminRefused(t, s, bobTok, "DELETE", "/v1/groups/g1/members/carol", nil, wire.CodeGroupGone)
	adminRefused(t, s, bobTok, "PATCH", "/v1/groups/g1", wire.GroupPatch{Name: strp("again")}, wire.CodeGroupGone)

	// dave was away: a sync from before the changes replays them all, the
	// disband last, and says the group is gone; the history stays.
	want := "group:updated,group:mute_all,msg:,group:mute_all,group:mute,group:owner,group:disbanded"
	viaHTTP, _ := syncGroup(t, s, daveTok, "g1", cursor)
	viaMQTT := mqttSync(t, s, "dave", "tablet", wire.SyncRequest{Group: "g1", Since: cursor, Limit: 1000})
	for name, b := range map[string]wire.Sync{"GET /v1/sync": viaHTTP, "im/sync": viaMQTT} {
		var got []string
		for _, it := range b.Items {
			if it.Kind == wire.KindMsg && it.From == "carol" {
				continue // carol's send once her mute passed
			}
			got = append(got, it.Kind+":"+it.Action)
		}
		if strings.Join(got, ",") != want || !b.Gone || b.Upto != head.Seq {
			t.Errorf("%s from %d: %v gone %v upto %d; want %s, gone, upto %d", name, cursor, got, b.Gone, b.Upto, want, head.Seq)
		}
	}
	full, _ := syncGroup(t, s, daveTok, "g1", 0)
	if _, ok := byID(full.Items)[m1.ID]; !ok {
		t.Errorf("dave's history lost carol's message: %+v", full.Items)
	}
	var gs wire.Groups
	httpJSON(t, "GET", s.HTTP+"/v1/groups", daveTok, nil, &gs)
	if len(gs.Groups) != 1 || gs.Groups[0].Disbanded == 0 || gs.Groups[0].Name != "renamed" || gs.Groups[0].Owner != "bob" {
		t.Errorf("dave's groups %+v", gs)
	}
	var cs wire.Conversations
	httpJSON(t, "GET", s.HTTP+"/v1/conversations", daveTok, nil, &cs)
	if c, ok := conv(cs, "g1"); !ok || c.Unread != int64(len(full.Items)-6) {
		t.Errorf("dave's unread %+v: the changes counted (%d items, 6 of them changes)", c, len(full.Items))
	}
}

// TestClusterGroupAdmin: three nodes on one store; alice administers the
// group through n1, and bob on n2 and carol on n3 get each change live;
// a mute and the disband made on n1 hold for sends on n3.
func TestClusterGroupAdmin(t *testing.T) {
	c := newCluster(t, sharedPebble(t))
	n1, n2, n3 := c.start("n1"), c.start("n2"), c.start("n3")
	aliceTok := account(t, n1, "alice", "phone")
	bobTok := account(t, n2, "bob", "phone")
	carolTok := account(t, n3, "carol", "phone")
	bob := connect(t, n2.MQTT, "bob", "phone", bobTok)
	carol := connect(t, n3.MQTT, "carol", "phone", carolTok)
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"bob", "carol"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	// n3's fan-out index has carol in g1 once her added event is out.
	wait.For(t, "carol hears she was added", 10*time.Second, func() bool { return len(carol.inboxOf(wire.KindGroup)) == 1 })
	m1, werr := sendGroup(carol, "g1", "c1", "hi")
	if werr != nil {
		t.Fatal(werr)
	}
	if code := httpJSON(t, "PATCH", n1.HTTP+"/v1/groups/g1", aliceTok, wire.GroupPatch{Name: strp("renamed")}, nil); code != 200 {
		t.Fatalf("patch: %d", code)
	}
	for _, d := range []*device{bob, carol} {
		if it := d.groupItem(wire.GroupUpdated, m1.Seq); it.Name == nil || *it.Name != "renamed" || it.From != "alice" {
			t.Fatalf("%s's update on its node %+v", d.user, it)
		}
	}
	if code := httpJSON(t, "PUT", n1.HTTP+"/v1/groups/g1/members/carol", aliceTok, wire.MemberMute{MuteUntil: time.Now().Add(time.Hour).UnixMilli()}, nil); code != 200 {
		t.Fatalf("mute carol: %d", code)
	}
	bob.groupItem(wire.GroupMuteMember, m1.Seq)
	if _, werr := sendGroup(carol, "g1", "c2", "muted?"); werr == nil || werr.Code != wire.CodeMuted {
		t.Fatalf("carol's send on n3 after her mute on n1: %+v", werr)
	}
	if code := httpJSON(t, "DELETE", n1.HTTP+"/v1/groups/g1", aliceTok, nil, nil); code != 204 {
		t.Fatalf("disband: %d", code)
	}
	for _, d := range []*device{bob, carol} {
		d.groupItem(wire.GroupDisbanded, m1.Seq)
	}
	if _, werr := sendGroup(bob, "g1", "b1", "anyone?"); werr == nil || werr.Code != wire.CodeGroupGone {
		t.Fatalf("bob's send on n2 after the disband on n1: %+v", werr)
	}
}
