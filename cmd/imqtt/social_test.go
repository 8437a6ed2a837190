package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// The new commands check their arguments before any request (exit 2), and
// with good ones need a session (exit 1).
func TestSocialExitCodes(t *testing.T) {
	e := fakeEnv(t.TempDir(), nil)
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"contacts", "add"}, exitUsage, "contacts [add USER"},
		{[]string{"contacts", "befriend", "bob"}, exitUsage, "contacts [add USER"},
		{[]string{"contacts", "add", ".."}, exitUsage, "bad user ID"},
		{[]string{"contacts", "--after", "a/b"}, exitUsage, "bad user ID"},
		{[]string{"contacts", "add", "bob"}, exitFailure, "not logged in"},
		{[]string{"block"}, exitUsage, "missing arguments"},
		{[]string{"block", "a", "b"}, exitUsage, "unexpected arguments"},
		{[]string{"unblock", "a/b"}, exitUsage, "bad user ID"},
		{[]string{"blocks", "x"}, exitUsage, "unexpected arguments"},
		{[]string{"block", "bob"}, exitFailure, "not logged in"},
		{[]string{"presence"}, exitUsage, "missing arguments"},
		{[]string{"presence", "bob", "a,b"}, exitUsage, "bad user ID"},
		{[]string{"presence", "bob"}, exitFailure, "not logged in"},
		{[]string{"settings", "--accept-from", "friends"}, exitUsage, "--accept-from wants"},
		{[]string{"settings", "--presence", "all"}, exitUsage, "--presence wants"},
		{[]string{"settings", "--read-receipts", "yes"}, exitUsage, "--read-receipts wants"},
		{[]string{"settings", "--presence", "nobody"}, exitFailure, "not logged in"},
		{[]string{"pin"}, exitUsage, "exactly one of PEER or --group"},
		{[]string{"unpin", "bob", "--group", "g"}, exitUsage, "exactly one of PEER or --group"},
		{[]string{"pin", "bob"}, exitFailure, "not logged in"},
		{[]string{"send", "--to", "bob", "--ttl", "soon", "hi"}, exitUsage, "bad --ttl"},
		{[]string{"send", "--to", "bob", "--ttl", "0", "hi"}, exitUsage, "--ttl 0: from 1s"},
		{[]string{"send", "--to", "bob", "--ttl", "1500ms", "hi"}, exitUsage, "bad --ttl"},
		{[]string{"send", "--to", "bob", "--ttl", "8d", "hi"}, exitUsage, "bad --ttl"},
		{[]string{"send", "--to", "bob", "--ttl", "200h", "hi"}, exitUsage, "from 1s to 168h"},
		{[]string{"send", "--group", "g", "--ttl", "30", "hi"}, exitUsage, "--ttl is for a 1:1"},
		{[]string{"send", "--to", "bob", "--ttl", "5m", "hi"}, exitFailure, "not logged in"},
		{[]string{"groups", "rename", "g"}, exitUsage, "groups rename wants G NAME"},
		{[]string{"groups", "rename", "..", "x"}, exitUsage, "bad group ID"},
		{[]string{"groups", "disband"}, exitUsage, "groups disband wants G"},
		{[]string{"groups", "transfer", "g", "a/b"}, exitUsage, "bad user ID"},
		{[]string{"groups", "mute", "g"}, exitUsage, "USER or --all"},
		{[]string{"groups", "mute", "g", "bob", "--all"}, exitUsage, "USER or --all"},
		{[]string{"groups", "mute", "g", "bob"}, exitUsage, "--until DURATION"},
		{[]string{"groups", "mute", "g", "--all", "--until", "1h"}, exitUsage, "--until is for one member"},
		{[]string{"groups", "unmute", "g", "bob", "--until", "1h"}, exitUsage, "--until is for mute"},
		{[]string{"groups", "update", "g"}, exitUsage, "changes nothing"},
		{[]string{"groups", "update", "g", "--muted", "maybe"}, exitUsage, "--muted wants"},
		{[]string{"groups", "update", "g", "--notice", ""}, exitFailure, "not logged in"},
		{[]string{"groups", "mute", "g", "bob", "--until", "tomorrow"}, exitUsage, "want a duration (8h) or a time"},
		{[]string{"groups", "mute", "g", "bob", "--until", "2001-01-01T00:00:00Z"}, exitUsage, "--until must be ahead"},
		{[]string{"mute", "bob", "--until", "2001-01-01T00:00:00Z"}, exitUsage, "--until must be ahead"},
		{[]string{"mute", "bob", "--until", "2099-01-01T00:00:00Z"}, exitFailure, "not logged in"},
		{[]string{"groups", "mute", "g", "bob", "--until", "1h"}, exitFailure, "not logged in"},
	} {
		code, _, stderr := runIn(t, e, c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("imqtt %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.err)
		}
	}
}

// loggedIn registers and logs in users on s.
func loggedIn(t *testing.T, s *testserver.Server, names ...string) []*user {
	var us []*user
	for _, n := range names {
		u := newUser(t, s, n)
		u.ok("register", n, "--password", "pw-"+n)
		u.ok("login", n, "--password", "pw-"+n)
		us = append(us, u)
	}
	return us
}

// fails runs imqtt and fails the test unless it exits with code and says
// says on stderr.
func (u *user) fails(code int, says string, args ...string) {
	u.t.Helper()
	got, _, stderr := runIn(u.t, u.env, args...)
	if got != code || !strings.Contains(stderr, says) {
		u.t.Errorf("%s: imqtt %q: exit %d %q, want %d saying %q", u.name, args, got, stderr, code, says)
	}
}

// TestE2ECLIPin: pin and unpin, for a peer and a group; a pin keeps the
// mute and a mute keeps the pin; the list puts the pinned first.
func TestE2ECLIPin(t *testing.T) {
	s := testserver.Start(t)
	us := loggedIn(t, s, "alice", "bob", "carol")
	alice, bob, carol := us[0], us[1], us[2]
	bob.ok("send", "--to", "alice", "first")
	carol.ok("send", "--to", "alice", "second")
	alice.ok("groups", "create", "team", "--id", "team", "--members", "bob")
	alice.ok("mute", "bob")
	var cs wire.ConvSettings
	mustJSON(t, alice.ok("pin", "bob"), &cs)
	if cs != (wire.ConvSettings{Peer: "bob", Mute: true, Pin: true}) {
		t.Fatalf("pin bob: %+v", cs)
	}
	cs = wire.ConvSettings{}
	mustJSON(t, alice.ok("pin", "--group", "team"), &cs)
	if cs != (wire.ConvSettings{Group: "team", Pin: true}) {
		t.Fatalf("pin team: %+v", cs)
	}
	var list wire.Conversations
	mustJSON(t, alice.ok("conversations"), &list)
	var order []string
	for _, c := range list.Conversations {
		order = append(order, c.Peer+c.Group)
	}
	if len(order) != 3 || order[2] != "carol" {
		t.Fatalf("conversations %v: want the pinned bob and team before carol", order)
	}
	cs = wire.ConvSettings{}
	mustJSON(t, alice.ok("unpin", "bob"), &cs)
	if cs != (wire.ConvSettings{Peer: "bob", Mute: true}) {
		t.Fatalf("unpin bob: %+v (the mute must stay)", cs)
	}
	cs = wire.ConvSettings{}
	at := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	mustJSON(t, alice.ok("mute", "carol", "--until", at.Format(time.RFC3339)), &cs)
	if want := at.UnixMilli(); cs.MuteUntil != want || cs.Mute {
		t.Fatalf("mute carol until a time: %+v, want mute_until %d", cs, want)
	}
	alice.fails(exitFailure, "no_such_user", "pin", "nobody")
	carol.fails(exitFailure, "not_member", "pin", "--group", "team")
}

// TestE2ECLISettings: imqtt settings shows and changes the privacy
// settings, a flag at a time, the others kept.
func TestE2ECLISettings(t *testing.T) {
	s := testserver.Start(t)
	alice := loggedIn(t, s, "alice")[0]
	var us wire.UserSettings
	mustJSON(t, alice.ok("settings", "--read-receipts", "off"), &us)
	if us.ReadReceipts == nil || *us.ReadReceipts {
		t.Fatalf("receipts off: %+v", us)
	}
	mustJSON(t, alice.ok("settings", "--accept-from", "contacts", "--presence", "nobody"), &us)
	if us.AcceptFrom != wire.AcceptContacts || us.Presence != wire.PresenceNobody || us.ReadReceipts == nil || *us.ReadReceipts {
		t.Fatalf("accept from contacts, presence nobody: %+v", us)
	}
	mustJSON(t, alice.ok("settings"), &us)
	if us.AcceptFrom != wire.AcceptContacts || us.Presence != wire.PresenceNobody {
		t.Fatalf("settings read back: %+v", us)
	}
}

// listenUntil runs `imqtt listen` as u until its output holds each of
// until, and returns it. It runs start once listen has printed ready (a
// stored message: the SDK syncs only once subscribed, so from then on
// live events reach it).
func listenUntil(t *testing.T, u *user, ready string, start func(), until ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, u.env, []string{"listen"}, &out, &errOut) }()
	wait.For(t, "listen to print "+ready, 15*time.Second, func() bool { return strings.Contains(out.String(), ready) })
	start()
	wait.For(t, "listen to print "+strings.Join(until, ", "), 15*time.Second, func() bool {
		for _, s := range until {
			if !strings.Contains(out.String(), s) {
				return false
			}
		}
		return true
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("listen exit %d: %s", code, errOut.String())
	}
	return out.String()
}

// TestE2ECLIContacts: a request, its acceptance and a removal through the
// CLI, each printed and seen by both sides (listen prints the contact
// events); blocks; the refusals a script relies on.
func TestE2ECLIContacts(t *testing.T) {
	s := testserver.Start(t)
	us := loggedIn(t, s, "alice", "bob", "eve")
	alice, bob, eve := us[0], us[1], us[2]

	var ct wire.Contact
	alice.ok("send", "--to", "bob", "ready")
	out := listenUntil(t, bob, `"body":"ready"`, func() {
		mustJSON(t, alice.ok("contacts", "add", "bob"), &ct)
	}, `"kind":"contact"`, `"action":"request"`, `"user":"alice"`)
	if ct.User != "bob" || ct.State != wire.ContactPendingOut {
		t.Fatalf("alice's request: %+v (listen printed %s)", ct, out)
	}
	var list wire.Contacts
	mustJSON(t, bob.ok("contacts"), &list)
	if len(list.Contacts) != 1 || list.Contacts[0].User != "alice" || list.Contacts[0].State != wire.ContactPendingIn {
		t.Fatalf("bob's contacts: %+v", list)
	}
	mustJSON(t, bob.ok("contacts", "accept", "alice"), &ct)
	if ct.User != "alice" || ct.State != wire.ContactAccepted {
		t.Fatalf("bob accepts: %+v", ct)
	}
	mustJSON(t, alice.ok("contacts"), &list)
	if len(list.Contacts) != 1 || list.Contacts[0].State != wire.ContactAccepted {
		t.Fatalf("alice's contacts: %+v", list)
	}
	alice.ok("contacts", "remove", "bob")
	mustJSON(t, alice.ok("contacts"), &list)
	if len(list.Contacts) != 0 {
		t.Fatalf("after remove: %+v", list)
	}

	alice.ok("block", "eve")
	alice.ok("block", "eve") // twice changes nothing
	var bl wire.Blocks
	mustJSON(t, alice.ok("blocks"), &bl)
	if len(bl.Blocks) != 1 || bl.Blocks[0].User != "eve" {
		t.Fatalf("blocks: %+v", bl)
	}
	eve.fails(exitFailure, wire.CodeBlocked, "send", "--to", "alice", "hi")
	alice.ok("unblock", "eve")
	mustJSON(t, alice.ok("blocks"), &bl)
	if len(bl.Blocks) != 0 {
		t.Fatalf("blocks after unblock: %+v", bl)
	}
	eve.ok("send", "--to", "alice", "hi again")

	alice.ok("settings", "--accept-from", "contacts")
	eve.fails(exitFailure, wire.CodeNotContact, "send", "--to", "alice", "hi")

	alice.fails(exitFailure, wire.CodeSelf, "contacts", "add", "alice")
	alice.fails(exitFailure, wire.CodeSelf, "block", "alice")
	alice.fails(exitFailure, wire.CodeNoSuchUser, "contacts", "add", "nobody")
	alice.fails(exitFailure, wire.CodeNoSuchUser, "block", "nobody")
	alice.fails(exitFailure, wire.CodeNoRequest, "contacts", "accept", "eve")
}

// TestE2ECLIPresence: presence shows a contact who shares it, and nobody
// else.
func TestE2ECLIPresence(t *testing.T) {
	s := testserver.Start(t)
	us := loggedIn(t, s, "alice", "bob", "carol")
	alice, bob := us[0], us[1]
	alice.ok("contacts", "add", "bob")
	bob.ok("contacts", "accept", "alice")
	var pl wire.PresenceList
	mustJSON(t, alice.ok("presence", "bob", "carol", "nobody"), &pl)
	if len(pl.Presence) != 1 || pl.Presence[0].User != "bob" || pl.Presence[0].Online {
		t.Fatalf("presence: %+v, want bob alone, offline", pl)
	}
	bob.ok("settings", "--presence", "nobody")
	mustJSON(t, alice.ok("presence", "bob"), &pl)
	if len(pl.Presence) != 0 {
		t.Fatalf("presence of bob, who shows it to nobody: %+v", pl)
	}
}

// TestE2ECLIGroupAdmin: rename, update, mute a member and everyone,
// transfer and disband through the CLI; listen prints the group's stored
// changes; the refusals a script relies on.
func TestE2ECLIGroupAdmin(t *testing.T) {
	s := testserver.Start(t)
	us := loggedIn(t, s, "alice", "bob", "carol")
	alice, bob, carol := us[0], us[1], us[2]
	alice.ok("groups", "create", "team", "--id", "team", "--members", "bob,carol")
	bob.ok("send", "--group", "team", "hello") // bob's listen knows the group from here

	var g wire.Group
	out := listenUntil(t, bob, `"body":"hello"`, func() {
		mustJSON(t, alice.ok("groups", "rename", "team", "The Team"), &g)
	}, `"kind":"group"`, `"action":"updated"`, `"name":"The Team"`)
	if g.Name != "The Team" {
		t.Fatalf("rename: %+v (listen printed %s)", g, out)
	}
	mustJSON(t, alice.ok("groups", "update", "team", "--notice", "be kind", "--avatar", "https://example.com/a.png"), &g)
	if g.Notice != "be kind" || g.Avatar != "https://example.com/a.png" || g.Name != "The Team" {
		t.Fatalf("update: %+v", g)
	}
	alice.ok("groups", "mute", "team", "carol", "--until", "1h")
	carol.fails(exitFailure, wire.CodeMuted, "send", "--group", "team", "x")
	alice.ok("groups", "unmute", "team", "carol")
	carol.ok("send", "--group", "team", "back")
	mustJSON(t, alice.ok("groups", "mute", "team", "--all"), &g)
	if !g.Muted {
		t.Fatalf("mute --all: %+v", g)
	}
	carol.fails(exitFailure, wire.CodeMuted, "send", "--group", "team", "x")
	alice.ok("send", "--group", "team", "the owner still may")
	alice.ok("groups", "unmute", "team", "--all")

	bob.fails(exitFailure, wire.CodeNotAllowed, "groups", "rename", "team", "mine")
	alice.fails(exitFailure, wire.CodeNotMember, "groups", "transfer", "team", "nobody")
	alice.fails(exitUsage, "USER or --all", "groups", "mute", "team")
	alice.fails(exitUsage, "--until", "groups", "mute", "team", "carol")
	alice.fails(exitUsage, "changes nothing", "groups", "update", "team")
	alice.fails(exitUsage, "--muted wants", "groups", "update", "team", "--muted", "maybe")

	mustJSON(t, alice.ok("groups", "transfer", "team", "bob"), &g)
	if g.ID != "" && g.Owner != "bob" {
		t.Fatalf("transfer: %+v", g)
	}
	alice.fails(exitFailure, wire.CodeNotAllowed, "groups", "disband", "team") // an admin now
	bob.ok("groups", "disband", "team")
	bob.fails(exitFailure, wire.CodeGroupGone, "groups", "disband", "team")
	carol.fails(exitFailure, wire.CodeGroupGone, "send", "--group", "team", "anyone?")
	mustJSON(t, carol.ok("groups", "show", "team"), &g)
	if g.Disbanded == 0 {
		t.Fatalf("show after disband: %+v", g)
	}
	// The history up to the disband stays readable, and ends with it.
	items := jsonLines[wire.Msg](t, carol.ok("sync"))
	var actions []string
	for _, m := range items {
		if m.Kind == wire.KindGroup {
			actions = append(actions, m.Action)
		}
	}
	if len(actions) == 0 || actions[len(actions)-1] != wire.GroupDisbanded || !slices.Contains(actions, wire.GroupOwner) {
		t.Fatalf("carol's sync of the group's changes: %v", actions)
	}
}

// TestE2ECLIBurn: send --ttl makes a message that carries its ttl.
func TestE2ECLIBurn(t *testing.T) {
	s := testserver.Start(t)
	us := loggedIn(t, s, "alice", "bob")
	alice, bob := us[0], us[1]
	var ack wire.Ack
	mustJSON(t, alice.ok("send", "--to", "bob", "--ttl", "1m", "read me once"), &ack)
	items := jsonLines[wire.Msg](t, bob.ok("sync"))
	if len(items) != 1 || items[0].TTL != 60 || items[0].ID != ack.ID {
		t.Fatalf("bob's sync: %+v, want the message with ttl 60", items)
	}
}
