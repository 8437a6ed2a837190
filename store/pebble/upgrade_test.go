package pebble_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// fixtureStore copies testdata/format1 into DATA/pebble of a new data
// directory, as the daemon lays it out, and returns the store's path.
func fixtureStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pebble")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "testdata/format1", dir)
	return dir
}

// readKey reads key of the closed store in dir ("" if absent).
func readKey(t *testing.T, dir, key string) string {
	t.Helper()
	db, err := cpebble.Open(dir, &cpebble.Options{FormatMajorVersion: cpebble.FormatNewest, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	val, closer, err := db.Get([]byte(key))
	if errors.Is(err, cpebble.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return string(val)
}

// backups lists DATA/pebble-backups of the store in dir.
func backups(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(filepath.Dir(dir), "pebble-backups"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// countingStep is a step that counts its runs and writes key=val, or
// fails with fail.
type countingStep struct {
	runs     int
	key, val string
	fail     error
}

func (c *countingStep) step(db *cpebble.DB, b *cpebble.Batch) error {
	c.runs++
	if err := b.Set([]byte(c.key), []byte(c.val), nil); err != nil {
		return err
	}
	return c.fail
}

var opts = pebble.Options{MinFreeDisk: -1}

// TestUpgrade: a build whose format is 2 opens the format-1 fixture: it
// takes a backup next to the store, runs the step once, stamps 2 and
// keeps every row and the epoch; the backup opens as the fixture, at
// format 1; a second open runs nothing.
func TestUpgrade(t *testing.T) {
	want := fixtureWant(t)
	dir := fixtureStore(t)
	up := &countingStep{key: "test/upgraded", val: "yes"}
	pebble.SetFormat(t, 2, up.step)

	s, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, s, want)
	s.Close()
	if up.runs != 1 {
		t.Fatalf("step ran %d times, want 1", up.runs)
	}
	if f, v := readKey(t, dir, "meta/format"), readKey(t, dir, "test/upgraded"); f != "2" || v != "yes" {
		t.Fatalf("after the upgrade: format %q, the step's write %q", f, v)
	}
	names := backups(t, dir)
	if len(names) != 1 || !strings.HasPrefix(names[0], "format-1-") {
		t.Fatalf("backups %v, want one format-1-*", names)
	}
	s, err = pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if up.runs != 1 || len(backups(t, dir)) != 1 {
		t.Fatalf("a second open of the upgraded store ran the step again (%d runs) or took a backup (%v)", up.runs, backups(t, dir))
	}

	// The backup is the store as it was: format 1, the fixture's rows,
	// without the step's write. Rolling back opens it with a format-1
	// build (a copy: opening writes).
	backup := filepath.Join(filepath.Dir(dir), "pebble-backups", names[0])
	if f, v := readKey(t, backup, "meta/format"), readKey(t, backup, "test/upgraded"); f != "1" || v != "" {
		t.Fatalf("the backup: format %q, the step's write %q; want 1 and none", f, v)
	}
	pebble.SetFormat(t, 1)
	old := t.TempDir()
	copyDir(t, backup, old)
	s, err = pebble.Open(old, opts)
	if err != nil {
		t.Fatalf("open the backup with a format-1 build: %v", err)
	}
	defer s.Close()
	checkFixture(t, s, want)
}

// TestUpgradeStepFails: a step that fails refuses the store with its
// error, leaves it at format 1 without the step's writes, and keeps the
// backup; a build whose step works upgrades it afterwards.
func TestUpgradeStepFails(t *testing.T) {
	dir := fixtureStore(t)
	boom := errors.New("boom")
	bad := &countingStep{key: "test/half", val: "x", fail: boom}
	pebble.SetFormat(t, 2, bad.step)
	if s, err := pebble.Open(dir, opts); !errors.Is(err, boom) || !strings.Contains(err.Error(), "stays at 1") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with a failing step: %v", err)
	}
	if f, v := readKey(t, dir, "meta/format"), readKey(t, dir, "test/half"); f != "1" || v != "" {
		t.Fatalf("after a failed step: format %q, its write %q; want 1 and none", f, v)
	}
	if names := backups(t, dir); len(names) != 1 {
		t.Fatalf("backups after a failed step: %v", names)
	}

	good := &countingStep{key: "test/upgraded", val: "yes"}
	pebble.SetFormat(t, 2, good.step)
	s, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, s, fixtureWant(t))
	s.Close()
	if f := readKey(t, dir, "meta/format"); f != "2" || good.runs != 1 {
		t.Fatalf("after the retry: format %q, %d runs", f, good.runs)
	}
}

// TestUpgradeResumes: with two steps, a crash of the second (it fails)
// leaves the first committed with its stamp; the next open runs only the
// second, after a backup of format 2.
func TestUpgradeResumes(t *testing.T) {
	dir := fixtureStore(t)
	one := &countingStep{key: "test/one", val: "1"}
	two := &countingStep{key: "test/two", val: "2", fail: errors.New("crash")}
	pebble.SetFormat(t, 3, one.step, two.step)
	if s, err := pebble.Open(dir, opts); err == nil || !strings.Contains(err.Error(), "crash") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with a failing second step: %v", err)
	}
	if f, v1, v2 := readKey(t, dir, "meta/format"), readKey(t, dir, "test/one"), readKey(t, dir, "test/two"); f != "2" || v1 != "1" || v2 != "" {
		t.Fatalf("after the second step failed: format %q, writes %q %q; want 2, 1 and none", f, v1, v2)
	}
	two.fail = nil
	s, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, s, fixtureWant(t))
	s.Close()
	if one.runs != 1 || two.runs != 2 {
		t.Fatalf("runs: step 1→2 %d (want 1), step 2→3 %d (want 2: failed, then resumed)", one.runs, two.runs)
	}
	if f := readKey(t, dir, "meta/format"); f != "3" {
		t.Fatalf("format %q after resuming, want 3", f)
	}
	names := backups(t, dir)
	if len(names) != 2 || !strings.HasPrefix(names[0], "format-1-") || !strings.HasPrefix(names[1], "format-2-") {
		t.Fatalf("backups %v, want format-1-* and format-2-*", names)
	}
}

// TestUpgradeStamps: a store written before stamps (no meta/format, but
// data) is format 1 and is upgraded; a new store is stamped with today's
// format and runs no step.
func TestUpgradeStamps(t *testing.T) {
	dir := fixtureStore(t)
	setFormat(t, dir, "")
	up := &countingStep{key: "test/upgraded", val: "yes"}
	pebble.SetFormat(t, 2, up.step)
	s, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if f := readKey(t, dir, "meta/format"); f != "2" || up.runs != 1 {
		t.Fatalf("unstamped store: format %q after %d runs, want 2 after 1", f, up.runs)
	}

	fresh := filepath.Join(t.TempDir(), "pebble")
	s, err = pebble.Open(fresh, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if f := readKey(t, fresh, "meta/format"); f != "2" || up.runs != 1 || backups(t, fresh) != nil {
		t.Fatalf("new store: format %q, %d runs, backups %v; want 2, no run, none", f, up.runs, backups(t, fresh))
	}
}

// TestUpgradeNoBackup: Open refuses to upgrade when it cannot take its
// backup, and leaves the store at format 1: the backups directory cannot
// be made, or the checkpoint leaves less free space than the store keeps
// (it is removed).
func TestUpgradeNoBackup(t *testing.T) {
	up := &countingStep{key: "test/upgraded", val: "yes"}
	pebble.SetFormat(t, 2, up.step)

	dir := fixtureStore(t)
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "pebble-backups"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := pebble.Open(dir, opts); err == nil || !strings.Contains(err.Error(), "back up store format 1") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open without room for a backup directory: %v", err)
	}
	if f := readKey(t, dir, "meta/format"); f != "1" || up.runs != 0 {
		t.Fatalf("format %q, %d runs after a failed backup; want 1, none", f, up.runs)
	}

	dir = fixtureStore(t)
	fs := &fullAfterBackup{FS: vfs.Default, backups: filepath.Join(filepath.Dir(dir), "pebble-backups")}
	_, err := pebble.Open(dir, pebble.WithFS(pebble.Options{MinFreeDisk: 1 << 20}, fs))
	if !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("open when the backup fills the disk: %v", err)
	}
	if f := readKey(t, dir, "meta/format"); f != "1" || up.runs != 0 {
		t.Fatalf("format %q, %d runs after a backup with no room; want 1, none", f, up.runs)
	}
	if names := backups(t, dir); len(names) != 0 {
		t.Fatalf("the backup that left no room is still there: %v", names)
	}
}

// fullAfterBackup reports a full disk once the backups directory has
// anything in it, as if the checkpoint had copied the tables.
type fullAfterBackup struct {
	vfs.FS
	backups string
}

func (f *fullAfterBackup) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	u, err := f.FS.GetDiskUsage(path)
	if ents, _ := os.ReadDir(f.backups); len(ents) > 0 {
		u.AvailBytes = 0
	}
	return u, err
}

// TestUpgradeStepMissing: a build whose format has no step from the
// store's refuses it before taking a backup or writing anything.
func TestUpgradeStepMissing(t *testing.T) {
	dir := fixtureStore(t)
	up := &countingStep{key: "test/upgraded", val: "yes"}
	pebble.SetFormat(t, 3, up.step) // no step 2→3
	if s, err := pebble.Open(dir, opts); !errors.Is(err, store.ErrFormat) || !strings.Contains(err.Error(), "step is missing") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with a step missing: %v", err)
	}
	if f := readKey(t, dir, "meta/format"); f != "1" || up.runs != 0 || backups(t, dir) != nil {
		t.Fatalf("format %q, %d runs, backups %v; want 1, none, none", f, up.runs, backups(t, dir))
	}
}

// TestUpgradeWALDir: the self-backup of a store whose log is in a log
// directory of its own opens alone (its log copied in, its OPTIONS no
// longer naming the directory), at format 1, as a rollback needs.
func TestUpgradeWALDir(t *testing.T) {
	dir := fixtureStore(t)
	up := &countingStep{key: "test/upgraded", val: "yes"}
	pebble.SetFormat(t, 2, up.step)
	s, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1, WALDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	names := backups(t, dir)
	if up.runs != 1 || len(names) != 1 {
		t.Fatalf("step runs %d, backups %v", up.runs, names)
	}
	backup := filepath.Join(filepath.Dir(dir), "pebble-backups", names[0])
	if f, v := readKey(t, backup, "meta/format"), readKey(t, backup, "test/upgraded"); f != "1" || v != "" {
		t.Fatalf("the backup: format %q, the step's write %q; want 1 and none", f, v)
	}
}
