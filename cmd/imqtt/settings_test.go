package main

import (
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// TestE2ECLIMute: imqtt mute and unmute, for a peer and a group, with
// --until; send --mention; the refusals a script
// relies on (usage 2, server 1).
func TestE2ECLIMute(t *testing.T) {
	s := testserver.Start(t)
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	bob.ok("send", "--to", "alice", "hi")
	var cs wire.ConvSettings
	mustJSON(t, alice.ok("mute", "bob"), &cs)
	if cs != (wire.ConvSettings{Peer: "bob", Mute: true}) {
		t.Fatalf("mute bob: %+v", cs)
	}
	var list wire.Conversations
	mustJSON(t, alice.ok("conversations"), &list)
	if len(list.Conversations) != 1 || !list.Conversations[0].Muted || list.TotalUnread != 0 {
		t.Fatalf("conversations after mute: %+v", list)
	}
	mustJSON(t, alice.ok("unmute", "bob"), &cs)
	if cs != (wire.ConvSettings{Peer: "bob"}) {
		t.Fatalf("unmute bob: %+v", cs)
	}

	alice.ok("groups", "create", "team", "--id", "team", "--members", "bob")
	before := time.Now()
	mustJSON(t, alice.ok("mute", "--group", "team", "--until", "8h"), &cs)
	lo, hi := before.Add(8*time.Hour).UnixMilli(), time.Now().Add(8*time.Hour).UnixMilli()
	if cs.Group != "team" || cs.Mute || cs.MuteUntil < lo || cs.MuteUntil > hi {
		t.Fatalf("mute team for 8h: %+v, want mute_until in [%d, %d]", cs, lo, hi)
	}

	var ack wire.Ack
	mustJSON(t, alice.ok("send", "--group", "team", "--mention", "bob,@all", "look"), &ack)
	if ack.Group != "team" {
		t.Fatalf("send with mentions: %+v", ack)
	}
	for _, c := range []struct {
		u    *user
		args []string
		code int
		says string
	}{
		{bob, []string{"send", "--group", "team", "--mention", "@all", "x"}, exitFailure, "forbidden"},
		{bob, []string{"send", "--to", "alice", "--mention", "alice", "x"}, exitUsage, "--mention is for a group"},
		{alice, []string{"mute"}, exitUsage, "exactly one of PEER or --group"},
		{alice, []string{"mute", "bob", "--group", "team"}, exitUsage, "exactly one of PEER or --group"},
		{alice, []string{"mute", "bob", "--until", "-1h"}, exitUsage, "--until"},
		{alice, []string{"mute", "nobody"}, exitFailure, "no_such_user"},
		{bob, []string{"unmute", "--group", "nope"}, exitFailure, "not_member"},
	} {
		code, _, stderr := runIn(t, c.u.env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: exit %d %q, want %d saying %q", c.args, code, stderr, c.code, c.says)
		}
	}
}
