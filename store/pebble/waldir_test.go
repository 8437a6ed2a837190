package pebble_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// commitOne commits one message to alice's inbox and returns its version.
func commitOne(t *testing.T, s *pebble.Store, id int64, body string) uint64 {
	t.Helper()
	ctx := t.Context()
	ver, err := s.ReserveVersions(ctx, "alice", 1)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	b := &store.Batch{
		Messages: []store.Message{{ID: id, From: "alice", To: "alice", Type: "text", Body: body, TS: 1}},
		Entries:  []store.Entry{{User: "alice", Ver: ver, Peer: "alice", Out: true, MsgID: id}},
		Convs:    []store.ConvUpdate{{User: "alice", Peer: "alice", MsgID: id, TS: 1, Ver: ver}},
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return ver
}

// bodies is alice's inbox, oldest first.
func bodies(t *testing.T, s *pebble.Store) []string {
	t.Helper()
	evs, err := s.Range(context.Background(), "alice", 0, 0)
	if err != nil {
		t.Fatalf("range: %v", err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Msg.Body)
	}
	return out
}

func logs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustOpen(t *testing.T, dir string, o pebble.Options) *pebble.Store {
	t.Helper()
	s, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

// TestWALDir: with WALDir the log is written there, not beside the tables;
// a store left with unflushed commits in that log reopens with them, and
// refuses to open without the directory rather than lose them.
func TestWALDir(t *testing.T) {
	dir, walDir := filepath.Join(t.TempDir(), "pebble"), t.TempDir()
	o := pebble.Options{WALDir: walDir, MinFreeDisk: -1}
	s := mustOpen(t, dir, o)
	commitOne(t, s, 1, "one")
	if len(logs(t, walDir)) == 0 || len(logs(t, dir)) != 0 {
		t.Fatalf("logs in the WAL dir %v, in the store's %v: want them in the WAL dir only", logs(t, walDir), logs(t, dir))
	}
	if err := s.Close(); err != nil { // Pebble's Close does not flush: "one" is in the log only
		t.Fatal(err)
	}

	_, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if !errors.Is(err, pebble.ErrWALDir) || !strings.Contains(err.Error(), "--wal-dir "+walDir) {
		t.Fatalf("open without the WAL dir: %v, want ErrWALDir naming %s", err, walDir)
	}
	_, err = pebble.Open(dir, pebble.Options{WALDir: t.TempDir(), MinFreeDisk: -1})
	if !errors.Is(err, pebble.ErrWALDir) {
		t.Fatalf("open with another WAL dir: %v, want ErrWALDir", err)
	}
	s = mustOpen(t, dir, o)
	defer s.Close()
	if got := bodies(t, s); len(got) != 1 || got[0] != "one" {
		t.Fatalf("after reopening: %q, want [one]", got)
	}
}

// TestWALDirAdopted: a store that ran without a log directory and was left
// with commits in its own log keeps them when started with one.
func TestWALDirAdopted(t *testing.T) {
	dir, walDir := filepath.Join(t.TempDir(), "pebble"), t.TempDir()
	s := mustOpen(t, dir, pebble.Options{MinFreeDisk: -1})
	commitOne(t, s, 1, "before")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, pebble.Options{WALDir: walDir, MinFreeDisk: -1})
	defer s.Close()
	commitOne(t, s, 2, "after")
	if got := bodies(t, s); strings.Join(got, ",") != "before,after" {
		t.Fatalf("inbox %q, want [before after]", got)
	}
}

// TestWALDirCheckpoint: a checkpoint of a store with a log directory holds
// its logs and opens, read-only and read-write (Restamp, as a restore
// does), without the directory; the unflushed commit is in it.
func TestWALDirCheckpoint(t *testing.T) {
	dir, walDir := filepath.Join(t.TempDir(), "pebble"), t.TempDir()
	s := mustOpen(t, dir, pebble.Options{WALDir: walDir, MinFreeDisk: -1})
	defer s.Close()
	commitOne(t, s, 1, "kept")
	cp := filepath.Join(t.TempDir(), "cp")
	if err := s.Checkpoint(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	ro, err := pebble.OpenReadOnly(cp, pebble.Options{})
	if err != nil {
		t.Fatalf("open the checkpoint read-only: %v", err)
	}
	if got := bodies(t, ro); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("checkpoint holds %q, want [kept]", got)
	}
	ro.Close()
	if _, err := pebble.Restamp(cp); err != nil {
		t.Fatalf("restamp the checkpoint: %v", err)
	}
	// The restored store then runs with a log directory of its own; the
	// old one, still holding the original store's log, is refused.
	if _, err := pebble.Open(cp, pebble.Options{WALDir: walDir, MinFreeDisk: -1}); !errors.Is(err, pebble.ErrWALDir) ||
		!strings.Contains(err.Error(), "another store") {
		t.Fatalf("restored store on the original's WAL dir: %v, want ErrWALDir (another store)", err)
	}
	r := mustOpen(t, cp, pebble.Options{WALDir: t.TempDir(), MinFreeDisk: -1})
	defer r.Close()
	if got := bodies(t, r); len(got) != 1 || got[0] != "kept" {
		t.Fatalf("restored store holds %q, want [kept]", got)
	}
}

// TestWALDirReadOnly: a stopped store whose log is in its log directory
// reads whole read-only with it (a migration's source).
func TestWALDirReadOnly(t *testing.T) {
	dir, walDir := filepath.Join(t.TempDir(), "pebble"), t.TempDir()
	s := mustOpen(t, dir, pebble.Options{WALDir: walDir, MinFreeDisk: -1})
	commitOne(t, s, 1, "one")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pebble.OpenReadOnly(dir, pebble.Options{}); !errors.Is(err, pebble.ErrWALDir) {
		t.Fatalf("read-only without the WAL dir: %v, want ErrWALDir", err)
	}
	ro, err := pebble.OpenReadOnly(dir, pebble.Options{WALDir: walDir})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := bodies(t, ro); len(got) != 1 || got[0] != "one" {
		t.Fatalf("read-only: %q, want [one]", got)
	}
}

// TestWALDirRefused: each bad log directory is refused before Pebble opens,
// with ErrWALDir and what is wrong, and nothing is left behind in it.
func TestWALDirRefused(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stray := t.TempDir()
	if err := os.WriteFile(filepath.Join(stray, "000002.log"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "pebble")
	for _, c := range []struct{ name, walDir, want string }{
		{"missing", filepath.Join(root, "nope"), "does not exist"},
		{"a file", file, "not a directory"},
		{"the store's own", dir, "store's own directory"},
		{"stray logs", stray, "no known store"},
		// /proc/self is a directory nobody, root included, can create files in.
		{"not writable", "/proc/self", "not writable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := pebble.Open(dir, pebble.Options{WALDir: c.walDir, MinFreeDisk: -1})
			if !errors.Is(err, pebble.ErrWALDir) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want ErrWALDir saying %q", err, c.want)
			}
		})
	}
	if got := logs(t, stray); len(got) != 1 {
		t.Fatalf("stray dir now holds %v", got)
	}
	// And then a good one works.
	s := mustOpen(t, dir, pebble.Options{WALDir: t.TempDir(), MinFreeDisk: -1})
	defer s.Close()
	commitOne(t, s, 1, "ok")
}

// TestWALDirTmpfsWarns: a log directory in memory works (a measurement's
// stand-in for a device) but is logged as losing commits on a reboot.
func TestWALDirTmpfsWarns(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "imqtt-wal-test")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(shm)
	var log bytes.Buffer
	s := mustOpen(t, filepath.Join(t.TempDir(), "pebble"), pebble.Options{WALDir: shm, MinFreeDisk: -1,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	defer s.Close()
	commitOne(t, s, 1, "one")
	if !strings.Contains(log.String(), "tmpfs") {
		t.Fatalf("no warning about tmpfs in %q", log.String())
	}
}
