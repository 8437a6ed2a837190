package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/wire"
)

// realBackup is a BackupFunc on a real store in a fresh data directory,
// counting its calls.
func realBackup(t *testing.T, calls *atomic.Int32) api.BackupFunc {
	t.Helper()
	dir := t.TempDir()
	st, err := pebble.Open(filepath.Join(dir, backup.StoreDir), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.CreateUser(context.Background(), store.User{ID: "alice", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, w io.Writer) error {
		calls.Add(1)
		_, err := backup.Write(ctx, w, backup.Source{DataDir: dir, Store: st, Node: "n1"})
		return err
	}
}

// TestAdminBackup: the admin token gets a tar that restores, named after
// the node; no token is 401 and a user's 403, and neither starts a backup.
func TestAdminBackup(t *testing.T) {
	var calls atomic.Int32
	r := newRig(t, func(c *api.Config) { c.Admin.Backup = realBackup(t, &calls) })
	wantError(t, r.do("GET", "/v1/admin/backup", "", ""), http.StatusUnauthorized, wire.CodeUnauthorized)
	wantError(t, r.do("GET", "/v1/admin/backup", "tok-alice-phone", ""), http.StatusForbidden, wire.CodeForbidden)
	wantError(t, r.do("GET", "/v1/admin/backup?full=1", adminToken, ""), http.StatusBadRequest, wire.CodeBadRequest)
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d backups run for refused requests", n)
	}
	w := r.do("GET", "/v1/admin/backup", adminToken, "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-tar" ||
		!strings.HasPrefix(w.Header().Get("Content-Disposition"), `attachment; filename=imqtt-n1-`) {
		t.Fatalf("backup: %d %v", w.Code, w.Header())
	}
	res, err := backup.Restore(bytes.NewReader(w.Body.Bytes()), filepath.Join(t.TempDir(), "restored"))
	if err != nil || res.Node != "n1" || res.Users != 1 {
		t.Fatalf("restore the backup: %+v, %v", res.Manifest, err)
	}
}

// TestAdminBackupConflict: a second backup while one runs is 409; once it
// ends, the next one runs.
func TestAdminBackupConflict(t *testing.T) {
	var calls atomic.Int32
	real := realBackup(t, &calls)
	started, release := make(chan struct{}), make(chan struct{})
	r := newRig(t, func(c *api.Config) {
		c.Admin.Backup = func(ctx context.Context, w io.Writer) error {
			if calls.Load() == 0 {
				close(started)
				<-release
			}
			return real(ctx, w)
		}
	})
	first := make(chan int)
	go func() { first <- r.do("GET", "/v1/admin/backup", adminToken, "").Code }()
	<-started
	wantError(t, r.do("GET", "/v1/admin/backup", adminToken, ""), http.StatusConflict, wire.CodeBusy)
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first backup: %d", code)
	}
	if w := r.do("GET", "/v1/admin/backup", adminToken, ""); w.Code != http.StatusOK {
		t.Fatalf("a backup after the first: %d", w.Code)
	}
}

// TestAdminBackupScaleOut: a node without a backup of its own (MongoDB)
// says which tools back its store up.
func TestAdminBackupScaleOut(t *testing.T) {
	r := newRig(t, nil)
	w := r.do("GET", "/v1/admin/backup", adminToken, "")
	wantError(t, w, http.StatusNotImplemented, wire.CodeInternal)
	for _, want := range []string{"mongodump", "snapshot", "docs/operations.md#backup-and-restore"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("501 does not say %q: %s", want, w.Body)
		}
	}
}

// TestAdminBackupFails: a backup that fails before its first byte is an
// error answer; after, the connection is cut (http.ErrAbortHandler) rather
// than the body ended as if whole.
func TestAdminBackupFails(t *testing.T) {
	r := newRig(t, func(c *api.Config) {
		c.Admin.Backup = func(ctx context.Context, w io.Writer) error { return errors.New("checkpoint: disk full") }
	})
	wantError(t, r.do("GET", "/v1/admin/backup", adminToken, ""), http.StatusServiceUnavailable, wire.CodeUnavailable)

	r = newRig(t, func(c *api.Config) {
		c.Admin.Backup = func(ctx context.Context, w io.Writer) error {
			_, _ = w.Write(make([]byte, 512))
			return errors.New("read media: I/O error")
		}
	})
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Fatalf("a broken stream ended with %v, want the connection cut", p)
		}
	}()
	r.do("GET", "/v1/admin/backup", adminToken, "")
}
