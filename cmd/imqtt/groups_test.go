package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
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

// TestE2ECLIListenCatchesUpGroups is issue 22's "Why" as a new user would
// try it: bob's `imqtt listen` is stopped, alice sends five messages to
// each of two groups, and the next `imqtt listen` prints all ten, once,
// in order within each group; `imqtt sync` after it prints nothing new,
// and a sync from another home catches the groups up over HTTP.
func TestE2ECLIListenCatchesUpGroups(t *testing.T) {
	s := testserver.Start(t)
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	alice.ok("groups", "create", "one", "--id", "g1", "--members", "bob")
	alice.ok("groups", "create", "two", "--id", "g2", "--members", "bob")

	listen := func(until ...string) string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errOut syncbuf.Buffer
		done := make(chan int, 1)
		go func() { done <- runContext(ctx, bob.env, []string{"listen"}, &out, &errOut) }()
		wait.For(t, fmt.Sprint("listen to print ", until), 15*time.Second, func() bool {
			for _, u := range until {
				if !strings.Contains(out.String(), u) {
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
	alice.ok("send", "--group", "g1", "first")
	listen(`"body":"first"`) // bob's cursor now knows both groups

	var want1, want2 []string
	for i := range 5 {
		b1, b2 := fmt.Sprint("one-", i), fmt.Sprint("two-", i)
		alice.ok("send", "--group", "g1", b1)
		alice.ok("send", "--group", "g2", b2)
		want1, want2 = append(want1, b1), append(want2, b2)
	}
	printed := jsonLines[wire.Msg](t, listen(`"body":"one-4"`, `"body":"two-4"`))
	got := map[string][]string{}
	for _, m := range printed {
		got[m.Group] = append(got[m.Group], m.Body)
	}
	if !slices.Equal(got["g1"], want1) || !slices.Equal(got["g2"], want2) || len(printed) != 10 {
		t.Fatalf("listen printed %+v", printed)
	}
	if out := bob.ok("sync"); out != "" {
		t.Fatalf("sync after listen printed %q", out)
	}

	// Another home (a second device) catches the groups up over HTTP.
	other := newUser(t, s, "bob")
	other.ok("login", "bob", "--password", "pw-bob")
	msgs := jsonLines[wire.Msg](t, other.ok("sync"))
	if len(msgs) != 11 || msgs[0].Body != "first" {
		t.Fatalf("sync from a new home printed %d messages: %+v", len(msgs), msgs)
	}
	if out := other.ok("sync"); out != "" {
		t.Fatalf("a second sync printed %q", out)
	}
}
