package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestGroupHeads: a device asks once, over HTTP or MQTT, where each of its
// user's groups is (head, join and read positions), and learns of a group
// it was removed from by its absence.
func TestGroupHeads(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	account(t, s, "carol", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	for _, g := range []wire.GroupCreate{{ID: "g1", Members: []string{"bob", "carol"}}, {ID: "g2", Members: []string{"bob"}}} {
		if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, g, nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", g.ID, code)
		}
	}
	for i, g := range []string{"g1", "g1", "g1", "g2"} {
		if _, werr := sendGroup(alice, g, "h-"+string(rune('a'+i)), "hi"); werr != nil {
			t.Fatal(werr)
		}
	}
	// carol joins g2 at its head: she sees, and has unread, what comes after.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/g2/members", aliceTok, wire.GroupMembers{Users: []string{"carol"}}, nil); code != http.StatusOK {
		t.Fatalf("add carol: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/read", bobTok, wire.Read{Group: "g1", Seq: 2}, nil); code != http.StatusOK {
		t.Fatalf("bob reads g1: %d", code)
	}

	want := []wire.GroupHead{{Group: "g1", Seq: 3, Read: 2}, {Group: "g2", Seq: 1}}
	var h wire.Heads
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync?heads=1", bobTok, nil, &h); code != http.StatusOK || h.Kind != wire.KindHeads || !slices.Equal(h.Groups, want) {
		t.Fatalf("bob's heads over HTTP: %d %+v, want %+v", code, h, want)
	}
	carol := connect(t, s.MQTT, "carol", "phone", login(t, s, "carol", "phone"))
	carol.publish(wire.TopicSync, wire.SyncRequest{Heads: true})
	wait.For(t, "carol's heads over MQTT", 10*time.Second, func() bool { return len(carol.directOf(wire.KindHeads)) == 1 })
	mustUnmarshal(t, carol.directOf(wire.KindHeads)[0], &h)
	if want := []wire.GroupHead{{Group: "g1", Seq: 3}, {Group: "g2", Seq: 1, Join: 1, Read: 1}}; !slices.Equal(h.Groups, want) {
		t.Fatalf("carol's heads: %+v, want %+v", h.Groups, want)
	}

	// Removed from g2: it is no longer listed.
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g2/members/bob", aliceTok, nil, nil); code != http.StatusNoContent {
		t.Fatalf("remove bob: %d", code)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync?heads=1", bobTok, nil, &h); code != http.StatusOK || !slices.Equal(h.Groups, want[:1]) {
		t.Fatalf("bob's heads after leaving g2: %d %+v", code, h)
	}
}

// TestGroupSyncErrorNamesGroup: a device with several group syncs in flight
// learns which one failed: the error event names the group.
func TestGroupSyncErrorNamesGroup(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1"}, nil); code != http.StatusCreated {
		t.Fatalf("create g1: %d", code)
	}
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	bob.publish(wire.TopicSync, wire.SyncRequest{Group: "g1"})
	wait.For(t, "bob's error", 10*time.Second, func() bool { return len(bob.directOf(wire.KindError)) == 1 })
	var e wire.Error
	mustUnmarshal(t, bob.directOf(wire.KindError)[0], &e)
	if e.Code != wire.CodeNotMember || e.Group != "g1" {
		t.Fatalf("error %+v, want not_member naming g1", e)
	}
}
