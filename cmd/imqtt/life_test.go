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

// TestE2ECLILifecycle: send --reply-to, react, edit, recall, delete,
// delete --peer, typing and receipts against a real server; sync prints
// the changes in version order after the messages as they are now, listen
// prints a typing notice; a refusal exits 1 with its code.
func TestE2ECLILifecycle(t *testing.T) {
	s := testserver.Start(t)
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	var first, reply, oops, ack wire.Ack
	mustJSON(t, alice.ok("send", "--to", "bob", "helo bob"), &first)
	mustJSON(t, bob.ok("send", "--to", "alice", "--reply-to", first.ID, "hi"), &reply)
	mustJSON(t, bob.ok("react", first.ID, "👍"), &ack)
	if ack.ID == "" || ack.ID == first.ID || ack.Ver == 0 {
		t.Fatalf("react ack %+v: want the change's own ID and version", ack)
	}
	mustJSON(t, alice.ok("edit", first.ID, "hello", "bob"), &ack)
	mustJSON(t, alice.ok("send", "--to", "bob", "oops"), &oops)
	mustJSON(t, alice.ok("recall", oops.ID), &ack)
	if ack.Kind != wire.KindAck || ack.Ver == 0 {
		t.Fatalf("recall ack %+v", ack)
	}

	items := jsonLines[wire.Msg](t, bob.ok("sync"))
	var got []string
	for _, m := range items {
		got = append(got, m.Kind)
	}
	if want := []string{"msg", "msg", "reaction", "edit", "msg", "recall"}; !slices.Equal(got, want) {
		t.Fatalf("bob's sync printed kinds %v, want %v", got, want)
	}
	if m := items[0]; m.ID != first.ID || m.Body != "hello bob" || m.Edited == 0 || m.Reactions["👍"].Count != 1 {
		t.Fatalf("the edited message as it is now: %+v", m)
	}
	if m := items[1]; m.ReplyTo != first.ID || m.Quote == nil || m.Quote.From != "alice" {
		t.Fatalf("the reply: %+v", m)
	}
	if m := items[4]; m.ID != oops.ID || !m.Recalled || m.Body != "" {
		t.Fatalf("the recalled message: %+v", m)
	}
	if r := items[5]; r.ID != oops.ID || r.By != "alice" {
		t.Fatalf("the recall: %+v", r)
	}

	// Refusals: someone else's message, one's own recalled one.
	for _, c := range []struct {
		u    *user
		args []string
		says string
	}{
		{alice, []string{"recall", reply.ID}, wire.CodeNotAllowed},
		{bob, []string{"edit", first.ID, "mine now"}, wire.CodeNotAllowed},
		{alice, []string{"edit", oops.ID, "back"}, wire.CodeNotAllowed},
	} {
		code, stdout, stderr := runIn(t, c.u.env, c.args...)
		if code != exitFailure || stdout != "" || !strings.Contains(stderr, c.says) {
			t.Errorf("%s %v: exit %d %q %q, want 1 saying %q", c.u.name, c.args, code, stdout, stderr, c.says)
		}
	}

	// Delete for me hides the reply from bob, not from alice; clearing
	// the conversation empties bob's list.
	mustJSON(t, bob.ok("delete", reply.ID), &ack)
	var hist wire.History
	mustJSON(t, bob.ok("history", "alice"), &hist)
	for _, m := range hist.Messages {
		if m.ID == reply.ID {
			t.Fatalf("bob's history still has the deleted reply: %+v", hist.Messages)
		}
	}
	mustJSON(t, alice.ok("history", "bob"), &hist)
	if !slices.ContainsFunc(hist.Messages, func(m wire.Msg) bool { return m.ID == reply.ID }) {
		t.Fatalf("alice lost bob's reply: %+v", hist.Messages)
	}
	mustJSON(t, bob.ok("delete", "--peer", "alice"), &ack)
	var convs wire.Conversations
	mustJSON(t, bob.ok("conversations"), &convs)
	if len(convs.Conversations) != 0 {
		t.Fatalf("bob's list after clearing: %+v", convs)
	}

	// Typing reaches bob's listener as it came.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var listenOut, listenErr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, bob.env, []string{"listen"}, &listenOut, &listenErr) }()
	wait.For(t, "the typing notice", 15*time.Second, func() bool {
		alice.ok("typing", "bob") // the server relays one a second
		return strings.Contains(listenOut.String(), `"kind":"typing"`)
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("listen exit %d: %s", code, listenErr.String())
	}
	for _, ev := range jsonLines[wire.TypingEvent](t, listenOut.String()) {
		if ev.Kind == wire.KindTyping && (ev.From != "alice" || ev.State != wire.TypingStart) {
			t.Fatalf("typing notice %+v", ev)
		}
	}

	var us wire.UserSettings
	mustJSON(t, alice.ok("receipts", "off"), &us)
	if us.ReadReceipts == nil || *us.ReadReceipts {
		t.Fatalf("receipts off: %+v", us)
	}
}
