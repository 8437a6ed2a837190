package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// storePoison commits, straight into the store (the server may refuse to
// take it from a sender), a message from `from` in user's inbox whose meta
// nests depth levels, at a version of its own, which it returns. Restart
// the server afterwards, so that its next versions come after it.
func storePoison(t *testing.T, s *testserver.Server, user, from string, depth int) uint64 {
	t.Helper()
	ctx := context.Background()
	ver, err := s.Store().ReserveVersions(ctx, user, 1)
	if err != nil {
		t.Fatal(err)
	}
	id := time.Now().UnixNano()
	meta := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	err = s.Store().Commit(ctx, &store.Batch{
		Messages: []store.Message{{ID: id, From: from, To: user, Type: "text", Body: "poison", Meta: json.RawMessage(meta),
			CMID: "c-poison", TS: time.Now().UnixMilli()}},
		Entries: []store.Entry{{User: user, Ver: ver, Peer: from, MsgID: id}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

// Why 4 (client side): a stored message whose meta nests 9,998 levels made
// `imqtt sync` fail on every retry (encoding/json's depth limit, for the
// whole reply) and `imqtt listen` deliver nothing more (its sync never
// ended). Both now skip the item, say so on stderr, and print the rest.
func TestAttackCLIPoisonItem(t *testing.T) {
	s := testserver.Start(t)
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	alice.ok("send", "--to", "bob", "before")
	storePoison(t, s, "bob", "alice", 9_998)
	s.Restart(t) // on a new port
	for _, u := range []*user{alice, bob} {
		u.env = fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": s.HTTP, "IMQTT_HOME": u.home, "IMQTT_MQTT": s.MQTT})
	}
	alice.ok("send", "--to", "bob", "after")

	code, stdout, stderr := runIn(t, bob.env, "sync")
	if code != exitOK {
		t.Fatalf("imqtt sync: exit %d: %s", code, stderr)
	}
	msgs := jsonLines[wire.Msg](t, stdout)
	if len(msgs) != 2 || msgs[0].Body != "before" || msgs[1].Body != "after" || !strings.Contains(stderr, "skipped") {
		t.Fatalf("imqtt sync printed %q, stderr %q", stdout, stderr)
	}
	if strings.Contains(stderr, `{"a":`) {
		t.Fatalf("the poison's payload was logged: %.200s", stderr)
	}

	// listen, from the start: its sync gets past the poison, and the live
	// message after it is printed.
	if err := os.Remove(bob.home + "/cursor.json"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var listenOut, listenErr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, bob.env, []string{"listen"}, &listenOut, &listenErr) }()
	waitFor(t, "listen's sync", func() bool { return strings.Contains(listenOut.String(), `"after"`) })
	alice.ok("send", "--to", "bob", "live")
	waitFor(t, "listen's live line", func() bool { return strings.Contains(listenOut.String(), `"live"`) })
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("listen exit %d: %s", code, listenErr.String())
	}
	evs := jsonLines[wire.Msg](t, listenOut.String())
	if len(evs) != 3 || evs[0].Body != "before" || evs[1].Body != "after" || evs[2].Body != "live" {
		t.Fatalf("listen printed %q", listenOut.String())
	}
	if !strings.Contains(listenErr.String(), "skipped") || strings.Contains(listenErr.String(), `{"a":`) {
		t.Fatalf("listen's stderr: %.300s", listenErr.String())
	}
}
