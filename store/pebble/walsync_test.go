package pebble_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestSyncInterval: in the interval durability mode commits return without
// a sync of the write-ahead log (none is made while the interval has not
// passed), the interval's sync makes them survive a power loss, and Close
// syncs what is left.
func TestSyncInterval(t *testing.T) {
	ctx := t.Context()
	fs := vfs.NewCrashableMem()
	s, err := pebble.Open("db", pebble.WithFS(pebble.Options{SyncInterval: time.Hour}, fs))
	if err != nil {
		t.Fatal(err)
	}
	commit := func(s *pebble.Store, id int64) {
		t.Helper()
		ver, err := s.ReserveVersions(ctx, "alice", 1)
		if err != nil {
			t.Fatal(err)
		}
		b := &store.Batch{
			Messages: []store.Message{{ID: id, From: "alice", To: "alice", Type: "text", Body: "hi", TS: 1}},
			Entries:  []store.Entry{{User: "alice", Ver: ver, Peer: "alice", Out: true, MsgID: id}},
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for id := range int64(50) {
		commit(s, id+1)
	}
	if n := s.WALSyncs(); n != 0 {
		t.Fatalf("%d syncs of the log for 50 commits inside the interval, want none", n)
	}
	// A power loss now loses them: they were not synced (the default mode
	// would keep all 50, TestCrash).
	early, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs.CrashClone(vfs.CrashCloneCfg{})))
	if err != nil {
		t.Fatal(err)
	}
	if evs, _ := early.Range(ctx, "alice", 0, 100); len(evs) == 50 {
		t.Fatal("all 50 commits survived a power loss before any sync: they were synced one by one")
	}
	early.Close()
	s.SyncWAL()
	if n := s.WALSyncs(); n != 1 {
		t.Fatalf("%d syncs after the interval's, want 1", n)
	}
	crashed, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs.CrashClone(vfs.CrashCloneCfg{})))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := crashed.Range(ctx, "alice", 0, 100)
	if err != nil || len(evs) != 50 {
		t.Fatalf("after a power loss that followed the interval's sync: %d of 50 commits, %v", len(evs), err)
	}
	crashed.Close()

	commit(s, 51) // then a clean Close: the log is synced as it closes
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs.CrashClone(vfs.CrashCloneCfg{})))
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if evs, err := after.Range(ctx, "alice", 0, 100); err != nil || len(evs) != 51 {
		t.Fatalf("after Close and a power loss: %d of 51 commits, %v", len(evs), err)
	}
}

// failingSyncFS fails the syncs of Pebble's log files while fail is set.
type failingSyncFS struct {
	vfs.FS
	fail *atomic.Bool
}

func (f failingSyncFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, cat)
	if err != nil || cat != "pebble-wal" {
		return file, err
	}
	return failingSyncFile{File: file, fail: f.fail}, nil
}

func (f failingSyncFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(oldname, newname, cat)
	if err != nil || cat != "pebble-wal" {
		return file, err
	}
	return failingSyncFile{File: file, fail: f.fail}, nil
}

type failingSyncFile struct {
	vfs.File
	fail *atomic.Bool
}

func (f failingSyncFile) SyncData() error {
	if f.fail.Load() {
		return errors.New("injected sync failure")
	}
	return f.File.SyncData()
}

func (f failingSyncFile) Sync() error { return f.SyncData() }

// TestSyncIntervalFailure: a failed interval sync makes the next commit
// fail (the store stops acking what it may not keep) instead of being
// forgotten, and the store takes writes again once syncs work.
func TestSyncIntervalFailure(t *testing.T) {
	ctx := t.Context()
	var fail atomic.Bool
	fs := failingSyncFS{FS: vfs.NewMem(), fail: &fail}
	s, err := pebble.Open("db", pebble.WithPoll(pebble.WithFS(pebble.Options{SyncInterval: time.Hour, MinFreeDisk: -1}, fs), 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commit := func(id int64) error {
		b := &store.Batch{Messages: []store.Message{{ID: id, From: "alice", To: "alice", Type: "text", Body: "hi", TS: 1}}}
		return s.Commit(ctx, b)
	}
	if err := commit(1); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	s.SyncWAL()
	if err := commit(2); err == nil {
		t.Fatal("a commit after a failed sync of the log was acked")
	}
	fail.Store(false)
	wait.ForErr(t, "writes to resume", 10*time.Second, func() error { return commit(3) })
}
