package main

import (
	"testing"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// TestE2ECLIGroups: create, show, add, send, sync by seq, leave — and the
// refusals a script can rely on (exit 1).
func TestE2ECLIGroups(t *testing.T) {
	s := testserver.Start(t)
	alice, bob, carol := newUser(t, s, "alice"), newUser(t, s, "bob"), newUser(t, s, "carol")
	for _, u := range []*user{alice, bob, carol} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	var g wire.Group
	mustJSON(t, alice.ok("groups", "create", "friends", "--id", "g1", "--members", "bob"), &g)
	if g.ID != "g1" || g.Count != 2 || g.Role != "owner" {
		t.Fatalf("created %+v", g)
	}
	mustJSON(t, alice.ok("groups", "add", "g1", "carol"), &g)
	if g.Count != 3 {
		t.Fatalf("after add: %+v", g)
	}
	var ack wire.Ack
	mustJSON(t, bob.ok("send", "--group", "g1", "hello friends"), &ack)
	if ack.Group != "g1" || ack.Seq != 1 {
		t.Fatalf("group ack %+v", ack)
	}
	var gs wire.Groups
	mustJSON(t, carol.ok("groups"), &gs)
	if len(gs.Groups) != 1 || gs.Groups[0].Seq != 1 {
		t.Fatalf("carol's groups: %+v", gs)
	}
	carol.ok("groups", "leave", "g1")
	if code, _, _ := runIn(t, carol.env, "groups", "show", "g1"); code != exitFailure {
		t.Fatalf("show after leaving: exit %d", code)
	}
	if code, _, _ := runIn(t, bob.env, "groups", "add", "g1", "carol"); code != exitFailure {
		t.Fatalf("a plain member adds: exit %d", code)
	}
	if code, _, _ := runIn(t, bob.env, "groups", "frobnicate"); code != exitUsage {
		t.Fatalf("unknown verb: exit %d", code)
	}
}
