package main

import (
	"bytes"
	"context"
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

	// A terminal on stdout is refused (no tar to read there); one on
	// stderr has a person waiting, who sees the progress line.
	var stdout, stderrTTY bytes.Buffer
	for _, tty := range []*bytes.Buffer{&stdout, &stderrTTY} {
		e := admin
		e.isTerminal = func(f any) bool { return f == tty }
		stdout.Reset()
		stderrTTY.Reset()
		code = runContext(context.Background(), e, []string{"admin", "backup"}, &stdout, &stderrTTY)
		switch {
		case tty == &stdout && (code != exitUsage || stdout.Len() != 0 || !strings.Contains(stderrTTY.String(), "refusing to write a tar to a terminal")):
			t.Errorf("backup to a terminal: exit %d, %d bytes: %s", code, stdout.Len(), stderrTTY.String())
		case tty == &stderrTTY && (code != exitOK || !strings.HasPrefix(stderrTTY.String(), "\rbackup: ") || !strings.Contains(stderrTTY.String(), "\x1b[K\nbackup of node test")):
			t.Errorf("backup with stderr on a terminal: exit %d: %q", code, stderrTTY.String())
		}
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("progress with stderr piped: %q", stderr)
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
