package pebble_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestCrash keeps only what was synced (a power loss, not a clean Close) and
// checks that a returned Commit survived, and that a reservation followed
// by a Commit survived with it although it was written without sync.
func TestCrash(t *testing.T) {
	ctx := t.Context()
	fs := vfs.NewCrashableMem()
	s, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()

	used, err := s.ReserveVersions(ctx, "alice", 10)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	b := &store.Batch{
		Messages: []store.Message{{ID: 7, From: "alice", To: "alice", Type: "text", Body: "hi", TS: 1}},
		Entries:  []store.Entry{{User: "alice", Ver: used, Peer: "alice", Out: true, MsgID: 7}},
		Convs:    []store.ConvUpdate{{User: "alice", Peer: "alice", MsgID: 7, TS: 1, Ver: used}},
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("commit: %v", err)
	}

	crashed, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs.CrashClone(vfs.CrashCloneCfg{})))
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	defer crashed.Close()
	if crashed.Epoch() != s.Epoch() {
		t.Errorf("epoch after crash %q, want %q", crashed.Epoch(), s.Epoch())
	}
	evs, err := crashed.Range(ctx, "alice", 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Ver != used || evs[0].Msg.Body != "hi" {
		t.Fatalf("committed batch lost in the crash: %+v, %v", evs, err)
	}
	first, err := crashed.ReserveVersions(ctx, "alice", 1)
	if err != nil {
		t.Fatalf("reserve after crash: %v", err)
	}
	if first < used+10 {
		t.Errorf("reserved %d after crash, inside the block [%d,+10) a commit used", first, used)
	}
}
