package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// user is one person with their own imqtt home directory.
type user struct {
	t    *testing.T
	name string
	env  env
	home string
}

func newUser(t *testing.T, s *testserver.Server, name string) *user {
	home := filepath.Join(t.TempDir(), name)
	return &user{t: t, name: name, home: home, env: fakeEnv(t.TempDir(), map[string]string{
		"IMQTT_SERVER": s.HTTP, "IMQTT_HOME": home, "IMQTT_MQTT": s.MQTT,
	})}
}

// ok runs imqtt and fails the test unless it exits 0; it returns stdout.
func (u *user) ok(args ...string) string {
	u.t.Helper()
	code, stdout, stderr := runIn(u.t, u.env, args...)
	if code != exitOK {
		u.t.Fatalf("%s: imqtt %q: exit %d: %s", u.name, args, code, stderr)
	}
	return stdout
}

func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestE2ECLI(t *testing.T) {
	s := testserver.Start(t)
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
		st, err := os.Stat(filepath.Join(u.home, "session.json"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("session.json: %v %v", st, err)
		}
	}
	if code, _, stderr := runIn(t, alice.env, "login", "alice", "--password", "wrong"); code != exitFailure || !strings.Contains(stderr, wire.CodeUnauthorized) {
		t.Fatalf("login with a wrong password: exit %d, %q", code, stderr)
	}

	// Alice sends while bob is offline; bob's sync prints it once.
	var acks []wire.Ack
	for _, text := range []string{"hello bob", "are you there?"} {
		out := alice.ok("send", "--to", "bob", text)
		acks = append(acks, jsonLines[wire.Ack](t, out)...)
	}
	if len(acks) != 2 || acks[0].ID == "" || acks[0].Kind != wire.KindAck {
		t.Fatalf("acks %+v", acks)
	}
	msgs := jsonLines[wire.Msg](t, bob.ok("sync"))
	if len(msgs) != 2 || msgs[0].Body != "hello bob" || msgs[1].Body != "are you there?" || msgs[1].ID != acks[1].ID {
		t.Fatalf("bob's sync printed %+v", msgs)
	}
	if out := bob.ok("sync"); out != "" {
		t.Fatalf("a second sync printed %q", out)
	}
	if all := jsonLines[wire.Msg](t, bob.ok("sync", "--since", "0")); len(all) != 2 {
		t.Fatalf("sync --since 0 printed %d messages", len(all))
	}

	// Bob listens: alice's next message is printed once, and nothing from
	// before the cursor.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var listenOut, listenErr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, bob.env, []string{"listen"}, &listenOut, &listenErr) }()
	alice.ok("send", "--to", "bob", "live one")
	wait.For(t, "the listener's line", 15*time.Second, func() bool { return strings.Contains(listenOut.String(), "live one") })
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("listen exit %d: %s", code, listenErr.String())
	}
	evs := jsonLines[wire.Msg](t, listenOut.String())
	if len(evs) != 1 || evs[0].Body != "live one" || evs[0].Kind != wire.KindMsg {
		t.Fatalf("listen printed %q", listenOut.String())
	}
	if out := bob.ok("sync"); out != "" { // listen saved the cursor
		t.Fatalf("sync after listen printed %q", out)
	}

	// Conversations, history and read.
	var convs wire.Conversations
	mustJSON(t, bob.ok("conversations"), &convs)
	if convs.TotalUnread != 3 || len(convs.Conversations) != 1 || convs.Conversations[0].Peer != "alice" {
		t.Fatalf("conversations %+v", convs)
	}
	var hist wire.History
	mustJSON(t, bob.ok("history", "alice", "--limit", "2"), &hist)
	if len(hist.Messages) != 2 || hist.Messages[0].Body != "live one" {
		t.Fatalf("history %+v", hist)
	}
	mustJSON(t, bob.ok("history", "alice", "--before", hist.Messages[1].ID), &hist)
	if len(hist.Messages) != 1 || hist.Messages[0].Body != "hello bob" {
		t.Fatalf("history --before %+v", hist)
	}
	var u wire.Unread
	mustJSON(t, bob.ok("read", "alice"), &u)
	if u.Total != 0 || u.Count != 0 || u.Peer != "alice" {
		t.Fatalf("read %+v", u)
	}

	// Logout forgets the token, which no longer works.
	tok := readSession(t, alice.home).Token
	alice.ok("logout")
	if _, err := os.Stat(filepath.Join(alice.home, "session.json")); !os.IsNotExist(err) {
		t.Fatalf("session.json after logout: %v", err)
	}
	if code, _, stderr := runIn(t, alice.env, "send", "--to", "bob", "x"); code != exitFailure || !strings.Contains(stderr, "not logged in") {
		t.Fatalf("send after logout: exit %d %q", code, stderr)
	}
	if err := writeSession(alice.home, session{Server: s.HTTP, User: "alice", Device: "cli", Token: tok}); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runIn(t, alice.env, "send", "--to", "bob", "x"); code != exitFailure || !strings.Contains(stderr, wire.CodeUnauthorized) {
		t.Fatalf("send with a revoked token: exit %d %q", code, stderr)
	}
}

// TestE2ECLISendGroupPassesThrough: --group reaches the server, which
// refuses a group nobody created, and the CLI exits 1 without printing an ack.
func TestE2ECLISendGroupPassesThrough(t *testing.T) {
	s := testserver.Start(t)
	alice := newUser(t, s, "alice")
	alice.ok("register", "alice", "--password", "pw-alice")
	alice.ok("login", "alice", "--password", "pw-alice", "--device", "bot1")
	if sess := readSession(t, alice.home); sess.Device != "bot1" || sess.Server != s.HTTP {
		t.Fatalf("session %+v", sess)
	}
	code, stdout, stderr := runIn(t, alice.env, "send", "--group", "g1", "hi all")
	if code != exitFailure || stdout != "" || !strings.HasPrefix(stderr, "imqtt send: send c-") {
		t.Fatalf("send --group: exit %d, %q", code, stderr)
	}
}

func mustJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
}

func readSession(t *testing.T, home string) session {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s session
	mustJSON(t, string(b), &s)
	return s
}

func writeSession(home string, s session) error {
	c := &cli{g: globals{home: home}}
	return c.saveSession(s)
}
