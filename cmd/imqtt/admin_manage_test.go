package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
)

// TestAdminManage: imqtt admin finds users and groups, shows them, bans
// and unbans, revokes a user's tokens, deletes a user, removes a member,
// disbands a group, lists and kicks clients and reads the cluster's
// stats, against a real server; the irreversible ones want --yes, bad
// arguments are usage errors, the server's refusals exit 1 with its code.
func TestAdminManage(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.AdminToken = "adm-secret" })
	for _, name := range []string{"kyle", "lou", "kim"} { // kim last: her group takes the others
		u := newUser(t, s, name)
		u.ok("register", name, "--password", "pw-"+name)
		u.ok("login", name, "--password", "pw-"+name)
		if name == "kim" {
			u.ok("groups", "create", "Kim's", "--id", "kgroup", "--members", "kyle,lou")
		}
	}
	admin := &user{t: t, name: "operator", env: fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": s.HTTP, "IMQTT_ADMIN_TOKEN": "adm-secret"})}
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
	}
	var users struct {
		Users []struct{ ID string }
		Next  string `json:"next_after"`
	}
	decode(admin.ok("admin", "users", "search", "k", "--limit", "1"), &users)
	if len(users.Users) != 1 || users.Users[0].ID != "kim" || users.Next != "kim" {
		t.Fatalf("users search k: %+v", users)
	}
	users.Next = ""
	decode(admin.ok("admin", "users", "search", "k", "--after", "kim"), &users)
	if len(users.Users) != 1 || users.Users[0].ID != "kyle" || users.Next != "" {
		t.Fatalf("users search k after kim: %+v", users)
	}
	var shown struct {
		ID     string
		Groups []struct{ Group string }
		Bans   []struct{ ID string }
	}
	decode(admin.ok("admin", "users", "show", "kim"), &shown)
	if shown.ID != "kim" || len(shown.Groups) != 1 || shown.Groups[0].Group != "kgroup" {
		t.Fatalf("users show kim: %+v", shown)
	}
	admin.ok("admin", "users", "ban", "lou", "--for", "1h", "--reason", "spam")
	decode(admin.ok("admin", "users", "show", "lou"), &shown)
	if len(shown.Bans) != 1 {
		t.Fatalf("lou's bans after the ban: %+v", shown)
	}
	if out := admin.ok("admin", "users", "unban", "lou"); !strings.Contains(out, shown.Bans[0].ID) {
		t.Errorf("unban lou: %s", out)
	}
	decode(admin.ok("admin", "users", "show", "lou"), &shown)
	if len(shown.Bans) != 0 {
		t.Fatalf("lou's bans after the unban: %+v", shown)
	}
	var rev struct{ Revoked int }
	if decode(admin.ok("admin", "users", "revoke", "kyle"), &rev); rev.Revoked != 1 {
		t.Errorf("revoke kyle: %+v", rev)
	}

	var grp struct {
		Members int
		List    []struct{ User string } `json:"member_list"`
	}
	decode(admin.ok("admin", "groups", "show", "kgroup"), &grp)
	if grp.Members != 3 || len(grp.List) != 3 {
		t.Fatalf("groups show: %+v", grp)
	}
	admin.ok("admin", "groups", "remove-member", "kgroup", "lou")
	if out := admin.ok("admin", "groups", "search", "kg"); !strings.Contains(out, `"members":2`) {
		t.Errorf("groups search after the removal: %s", out)
	}
	for _, args := range [][]string{{"admin", "groups", "disband", "kgroup"}, {"admin", "users", "delete", "lou"},
		{"admin", "users"}, {"admin", "nothing"}, {"admin", "clients", "kick", "nodevice"}, {"admin", "users", "ban", "lou", "--for", "1ms"}} {
		if code, _, stderr := runIn(t, admin.env, args...); code != exitUsage {
			t.Errorf("imqtt %q: exit %d, want usage: %s", args, code, stderr)
		}
	}
	// An ID goes into the URL's path: ".." or "a/b" would name another
	// route (GET /v1/admin/users/.. is the user search).
	for _, args := range [][]string{{"admin", "users", "show", ".."}, {"admin", "users", "revoke", "a/b"},
		{"admin", "users", "delete", "..", "--yes"}, {"admin", "groups", "show", "."}, {"admin", "groups", "remove-member", "kgroup", "../kim"},
		{"admin", "groups", "disband", "a/b", "--yes"}, {"admin", "clients", "kick", "kim/.."}} {
		if code, _, stderr := runIn(t, admin.env, args...); code != exitUsage || !strings.Contains(stderr, "ID") {
			t.Errorf("imqtt %q: exit %d, want a bad ID: %s", args, code, stderr)
		}
	}
	admin.ok("admin", "groups", "disband", "kgroup", "--yes")
	if code, _, stderr := runIn(t, admin.env, "admin", "groups", "disband", "kgroup", "--yes"); code != exitFailure || !strings.Contains(stderr, "group_gone") {
		t.Errorf("disband again: exit %d: %s", code, stderr)
	}
	if out := admin.ok("admin", "users", "delete", "lou", "--yes"); !strings.Contains(out, `"deleted"`) {
		t.Errorf("delete lou: %s", out)
	}
	if code, _, stderr := runIn(t, admin.env, "admin", "users", "show", "lou"); code != exitFailure || !strings.Contains(stderr, "no_such_user") {
		t.Errorf("show deleted lou: exit %d: %s", code, stderr)
	}

	var stats struct {
		Total struct{ Nodes, Up int }
		Nodes []struct{ Node string }
	}
	if decode(admin.ok("admin", "stats"), &stats); stats.Total.Nodes != 1 || stats.Total.Up != 1 || stats.Nodes[0].Node != "test" {
		t.Errorf("stats: %+v", stats)
	}
	var clients struct{ Total int }
	if decode(admin.ok("admin", "clients", "--user", "k"), &clients); clients.Total != 0 {
		t.Errorf("clients: %+v", clients)
	}
	if code, _, stderr := runIn(t, admin.env, "admin", "clients", "kick", "kim/phone"); code != exitFailure || !strings.Contains(stderr, "not_found") {
		t.Errorf("kick a client not connected: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runIn(t, admin.env, "admin", "stats", "--admin-token", "wrong"); code != exitFailure || !strings.Contains(stderr, "401") {
		t.Errorf("a wrong token: exit %d: %s", code, stderr)
	}

	// The token from stdin, out of sight of ps; not with --admin-token too.
	piped := fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": s.HTTP})
	piped.stdin = strings.NewReader("adm-secret\n")
	if code, out, stderr := runIn(t, piped, "admin", "stats", "--admin-token-stdin"); code != exitOK || !strings.Contains(out, `"nodes"`) {
		t.Errorf("--admin-token-stdin: exit %d: %s %s", code, out, stderr)
	}
	piped.stdin = strings.NewReader("adm-secret\n")
	if code, _, stderr := runIn(t, piped, "admin", "stats", "--admin-token-stdin", "--admin-token", "adm-secret"); code != exitUsage || !strings.Contains(stderr, "not both") {
		t.Errorf("both: exit %d: %s", code, stderr)
	}
	if _, _, help := runIn(t, piped, "admin", "--help"); !strings.Contains(help, "visible to ps") {
		t.Errorf("admin --help does not warn that --admin-token shows in ps:\n%s", help)
	}
}
