package pebble_test

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// dirSum hashes every file of dir (names and bytes).
func dirSum(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// TestOpenReadOnlyExports: the fixture store read whole, read-only, is
// left byte for byte as it was, and every kind comes out typed.
func TestOpenReadOnlyExports(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/format1", dir)
	before := dirSum(t, dir)
	s, err := pebble.OpenReadOnly(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var msgs []store.Message
	var keys [][]byte
	if err := pebble.Export(ctx, s, pebble.Messages, nil, func(k []byte, m store.Message) error {
		msgs, keys = append(msgs, m), append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 || msgs[0].Body != "m1" {
		t.Fatalf("messages %+v", msgs)
	}
	// Resumed behind the second key: the rest, nothing twice.
	var rest []store.Message
	if err := pebble.Export(ctx, s, pebble.Messages, keys[1], func(_ []byte, m store.Message) error {
		rest = append(rest, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rest) != 2 || rest[0].ID != msgs[2].ID {
		t.Fatalf("resumed %+v", rest)
	}
	if err := pebble.Export(ctx, s, pebble.Users, keys[1], func([]byte, store.User) error { return nil }); !errors.Is(err, pebble.ErrInvalid) {
		t.Fatalf("a message key as a users position: %v", err)
	}
	var inbox []store.Entry
	_ = pebble.Export(ctx, s, pebble.Inbox, nil, func(_ []byte, e store.Entry) error { inbox = append(inbox, e); return nil })
	var res []pebble.Reservation
	_ = pebble.Export(ctx, s, pebble.Reservations, nil, func(_ []byte, r pebble.Reservation) error { res = append(res, r); return nil })
	var log []pebble.GroupLogEntry
	_ = pebble.Export(ctx, s, pebble.GroupLog, nil, func(_ []byte, g pebble.GroupLogEntry) error { log = append(log, g); return nil })
	users, _ := pebble.Count(ctx, s, pebble.Users)
	heads, _ := pebble.Count(ctx, s, pebble.Heads)
	if len(inbox) != 6 || len(res) == 0 || len(log) != 1 || users != 2 || heads != 1 {
		t.Fatalf("inbox %d reservations %d group log %d users %d heads %d", len(inbox), len(res), len(log), users, heads)
	}
	if _, err := s.ReserveVersions(ctx, "alice", 1); err == nil {
		t.Fatal("a read-only store wrote")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if dirSum(t, dir) != before {
		t.Fatal("reading the store read-only changed its files")
	}
}

// TestOpenReadOnlyRefuses: a store in use (its LOCK held by a running
// process), a store of a newer format and a directory that is not there.
func TestOpenReadOnlyRefuses(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/format1", dir)
	s, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pebble.OpenReadOnly(dir, pebble.Options{}); !errors.Is(err, pebble.ErrInUse) {
		t.Fatalf("open of a store in use: %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	setFormat(t, dir, "3")
	if _, err := pebble.OpenReadOnly(dir, pebble.Options{}); !errors.Is(err, store.ErrFormat) {
		t.Fatalf("open of a newer format: %v, want ErrFormat", err)
	}
	// An older format: only a read-write Open upgrades it.
	setFormat(t, dir, "2")
	pebble.SetFormat(t, 3, func(*cpebble.DB, *cpebble.Batch) error { return nil }, func(*cpebble.DB, *cpebble.Batch) error { return nil })
	if _, err := pebble.OpenReadOnly(dir, pebble.Options{}); !errors.Is(err, store.ErrFormat) ||
		!strings.Contains(err.Error(), "older") {
		t.Fatalf("open of an older format: %v, want ErrFormat", err)
	}
	if _, err := pebble.OpenReadOnly(filepath.Join(dir, "nothing"), pebble.Options{}); err == nil {
		t.Fatal("opened a directory that does not exist")
	}
}

// TestExportCorruptRow: a row that does not decode stops the export with
// an error naming its key, except a token's (its hash is a secret).
func TestExportCorruptRow(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/format1", dir)
	db, err := cpebble.Open(dir, &cpebble.Options{FormatMajorVersion: cpebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Set([]byte("m/\x00\x00\x00\x00\x00\x00\x00\x01"), []byte{0x01, 0xff}, cpebble.Sync)
	_ = db.Set([]byte("t/secrethash"), []byte("{not json"), cpebble.Sync)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := pebble.OpenReadOnly(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	err = pebble.Export(t.Context(), s, pebble.Messages, nil, func([]byte, store.Message) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), `m/\x00`) || n != 0 {
		t.Fatalf("export of a corrupt message: %v after %d rows", err, n)
	}
	err = pebble.Export(t.Context(), s, pebble.Tokens, nil, func([]byte, store.Token) error { return nil })
	if err == nil || strings.Contains(err.Error(), "secrethash") {
		t.Fatalf("export of a corrupt token: %v", err)
	}
}
