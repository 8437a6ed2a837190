package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// filterUsers registers alice and bob on the imqttd at base, puts them in
// group "team", and connects both over MQTT.
func filterUsers(t *testing.T, p *daemonProc) (alice, bob *device, bobTok string) {
	t.Helper()
	base := "http://" + p.http
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		if code := httpJSON(t, "POST", base+"/v1/users", "", wire.Register{User: u, Password: "secret-" + u}, nil); code != 201 {
			t.Fatalf("register %s: %d", u, code)
		}
		var sess wire.Session
		if code := httpJSON(t, "POST", base+"/v1/sessions", "", wire.Login{User: u, Password: "secret-" + u, Device: "web"}, &sess); code != 200 {
			t.Fatalf("login %s: %d", u, code)
		}
		tokens[u] = sess.Token
	}
	if code := httpJSON(t, "POST", base+"/v1/groups", tokens["alice"], wire.GroupCreate{ID: "team", Members: []string{"bob"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	return connect(t, p.mqtt, "alice", "phone", "secret-alice"), connect(t, p.mqtt, "bob", "phone", "secret-bob"), tokens["bob"]
}

// bodies are the bodies of the messages bob has stored (sync from 0).
func bodies(t *testing.T, p *daemonProc, bobTok string) []string {
	t.Helper()
	var out []string
	for _, m := range syncAll(t, "http://"+p.http, bobTok) {
		out = append(out, m.Body)
	}
	return out
}

// groupBodies are the bodies of the messages stored in group "team".
func groupBodies(t *testing.T, p *daemonProc, bobTok string) []string {
	t.Helper()
	var b wire.Sync
	if code := httpJSON(t, "GET", "http://"+p.http+"/v1/sync?group=team&since=0&limit=1000", bobTok, nil, &b); code != 200 {
		t.Fatalf("group sync: %d", code)
	}
	var out []string
	for _, m := range b.Items {
		out = append(out, m.Body)
	}
	return out
}

// wantRejected fails the test unless the reply is the error rejected.
func wantRejected(t *testing.T, what string, werr *wire.Error) {
	t.Helper()
	if werr == nil || werr.Code != wire.CodeRejected {
		t.Fatalf("%s: reply %+v, want error %s", what, werr, wire.CodeRejected)
	}
}

// TestContentFilter: a real imqttd with --filter-words, --filter-links
// deny and --filter-action reject refuses 1:1 and group texts carrying a
// term in any form, or a link, with rejected (over MQTT and HTTP) and
// stores nothing; SIGHUP
// swaps the term list without a restart, and a broken file at SIGHUP
// keeps the old list.
func TestContentFilter(t *testing.T) {
	dir := t.TempDir()
	words := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(words, []byte("# banned\nbadword\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := runDaemon(t, t.TempDir(), true, "--filter-words", words, "--filter-links", "deny")
	alice, bob, bobTok := filterUsers(t, p)

	for i, body := range []string{"a ＢＡＤＷＯＲＤ here", "b\u200badword", "see evil.example.com/x", "ｅｖｉｌ．ｃｏｍ"} {
		_, werr := alice.send("bob", "r"+string(rune('0'+i)), body)
		wantRejected(t, "1:1 text", werr)
	}
	_, werr := sendGroup(alice, "team", "g1", "BadWord to the team")
	wantRejected(t, "group text", werr)
	var herr wire.Error
	if code := httpJSON(t, "POST", "http://"+p.http+"/v1/messages", bobTok, wire.Send{CMID: "http1", To: "alice", Type: "text", Body: "ｂａｄｗｏｒｄ"}, &herr); code != 422 || herr.Code != wire.CodeRejected {
		t.Fatalf("HTTP text: %d %+v, want 422 %s", code, herr, wire.CodeRejected)
	}
	if _, werr := alice.send("bob", "ok1", "hello file.txt"); werr != nil {
		t.Fatalf("clean text: %+v", werr)
	}
	wait.For(t, "bob receives the clean text", 10*time.Second, func() bool { return len(bob.msgs()) == 1 })
	if got := bodies(t, p, bobTok); len(got) != 1 || got[0] != "hello file.txt" {
		t.Fatalf("bob's stored messages %q: want only the clean one", got)
	}
	if len(bob.msgs()) != 1 || bob.msgs()[0].Body != "hello file.txt" {
		t.Fatalf("bob received %+v", bob.msgs())
	}

	// SIGHUP: the new list, without a restart.
	if err := os.WriteFile(words, []byte("newword\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the reload's log line", 10*time.Second, func() bool { return strings.Contains(p.log(), "content filter reloaded") })
	_, werr = alice.send("bob", "h1", "a NEWWORD")
	wantRejected(t, "after SIGHUP, the new term", werr)
	if _, werr := alice.send("bob", "h2", "badword is fine now"); werr != nil {
		t.Fatalf("after SIGHUP, the old term: %+v", werr)
	}

	// A broken file at SIGHUP: logged, the old list stays, the node serves on.
	if err := os.Remove(words); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the failed reload's log line", 10*time.Second, func() bool { return strings.Contains(p.log(), "reload failed") })
	p.alive(t)
	if !strings.Contains(p.log(), words) {
		t.Errorf("the failed reload's log does not name %s", words)
	}
	_, werr = sendGroup(alice, "team", "g2", "newword")
	wantRejected(t, "after a failed reload", werr)
	if got := bodies(t, p, bobTok); len(got) != 2 {
		t.Fatalf("bob's stored messages %q: want the two clean ones", got)
	}
	if got := groupBodies(t, p, bobTok); len(got) != 0 {
		t.Fatalf("the group's stored messages %q: want none", got)
	}
	if strings.Contains(p.log(), "newword") || strings.Contains(p.log(), "BADWORD") {
		t.Error("the log quotes a term or a body")
	}
	_, metrics := getStatus(t, "http://"+p.http+"/metrics")
	for _, want := range []string{`imqtt_filter_total{result="rejected"} 8`, `imqtt_filter_total{result="pass"} 2`,
		`imqtt_filter_reloads_total{result="ok"} 1`, `imqtt_filter_reloads_total{result="error"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestContentFilterMask: with --filter-action mask a matching text is
// stored and delivered with '*' over each matched character, in 1:1 and
// group conversations.
func TestContentFilterMask(t *testing.T) {
	dir := t.TempDir()
	words := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(words, []byte("badword\n坏蛋\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := runDaemon(t, t.TempDir(), true, "--filter-words", words, "--filter-action", "mask")
	alice, bob, bobTok := filterUsers(t, p)

	if _, werr := alice.send("bob", "m1", "a ＢＡＤＷＯＲＤ, 你是坏蛋"); werr != nil {
		t.Fatalf("masked 1:1 text: %+v", werr)
	}
	if _, werr := sendGroup(alice, "team", "m2", "team: badword!"); werr != nil {
		t.Fatalf("masked group text: %+v", werr)
	}
	want := []string{"a *******, 你是**", "team: *******!"}
	wait.For(t, "bob receives both", 10*time.Second, func() bool { return len(bob.msgs()) == 2 })
	for i, m := range bob.msgs() {
		if m.Body != want[i] {
			t.Errorf("bob received %q, want %q", m.Body, want[i])
		}
	}
	if got := append(bodies(t, p, bobTok), groupBodies(t, p, bobTok)...); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// TestContentFilterStartup: a term or domain file that is missing or
// unreadable stops imqttd at start-up with a message naming the flag and
// the file.
func TestContentFilterStartup(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.txt")
	for _, c := range []struct{ flag, path string }{
		{"--filter-words", missing},
		{"--filter-links", missing},
		{"--filter-words", dir}, // a directory: unreadable as a list
	} {
		p := runDaemon(t, t.TempDir(), false, c.flag, c.path)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s %s: imqttd still running", c.flag, c.path)
		}
		if p.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(p.log(), c.flag) || !strings.Contains(p.log(), c.path) {
			t.Errorf("%s %s: exit %d, log %s: want a failure naming both", c.flag, c.path, p.cmd.ProcessState.ExitCode(), p.log())
		}
	}
}
