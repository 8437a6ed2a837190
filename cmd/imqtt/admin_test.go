package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
)

// TestAdminBackup: imqtt admin backup writes a tar that restores, with
// progress and a summary on stderr; a wrong token is the server's error
// and exit 1; a stream cut short, even one that ends cleanly, is reported
// as truncated and exit 1.
func TestAdminBackup(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.AdminToken = "adm-secret" })
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	alice.ok("send", "--to", "bob", "before the backup")

	admin := fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": s.HTTP, "IMQTT_ADMIN_TOKEN": "adm-secret"})
	code, tarball, stderr := runIn(t, admin, "admin", "backup")
	if code != exitOK || !strings.Contains(stderr, "verified") {
		t.Fatalf("admin backup: exit %d: %s", code, stderr)
	}
	res, err := backup.Restore(strings.NewReader(tarball), filepath.Join(t.TempDir(), "data"))
	if err != nil || res.Users != 2 || res.Node != "test" {
		t.Fatalf("restore the CLI's backup: %+v %v", res.Manifest, err)
	}

	code, _, stderr = runIn(t, admin, "admin", "backup", "--admin-token", "wrong")
	if code != exitFailure || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "wrong admin token") {
		t.Errorf("wrong token: exit %d: %s", code, stderr)
	}
	code, _, stderr = runIn(t, fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": s.HTTP}), "admin", "backup")
	if code != exitUsage || !strings.Contains(stderr, "IMQTT_ADMIN_TOKEN") {
		t.Errorf("no token: exit %d: %s", code, stderr)
	}

	// A proxy that cuts the stream and ends the response as if whole.
	for _, cut := range []int{100, len(tarball) / 2, len(tarball) - 1500} {
		short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-tar")
			_, _ = w.Write([]byte(tarball[:cut]))
		}))
		env := fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": short.URL, "IMQTT_ADMIN_TOKEN": "adm-secret"})
		code, out, stderr := runIn(t, env, "admin", "backup")
		if code != exitFailure || !strings.Contains(stderr, "truncated") || !bytes.Equal([]byte(out), []byte(tarball[:cut])) {
			t.Errorf("cut at %d: exit %d: %s", cut, code, stderr)
		}
		short.Close()
	}
}
