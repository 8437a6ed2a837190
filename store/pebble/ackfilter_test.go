package pebble_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// openFiltered opens the store in dir with o and waits for its ack filter.
func openFiltered(t *testing.T, dir string, o pebble.Options) *pebble.Store {
	t.Helper()
	s, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	wait.For(t, "ack filter built", 10*time.Second, s.AckFilterReady)
	return s
}

// commitAcks stores n sends of from with cmids prefix-0.. (acks only: the
// dedupe rows are what the filter covers).
func commitAcks(t *testing.T, s *pebble.Store, from, prefix string, n int) {
	t.Helper()
	for done := 0; done < n; {
		var b store.Batch
		for ; done < n && len(b.Acks) < 1000; done++ {
			b.Acks = append(b.Acks, store.Ack{From: from, CMID: fmt.Sprintf("%s-%d", prefix, done), ID: int64(done + 1), Ver: uint64(done + 1), TS: 7})
		}
		if err := s.Commit(t.Context(), &b); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
}

// lookupAll looks up from's cmids prefix-0..n-1 and returns what was found.
func lookupAll(t *testing.T, s *pebble.Store, from, prefix string, n int) map[store.AckKey]store.Ack {
	t.Helper()
	keys := make([]store.AckKey, n)
	for i := range keys {
		keys[i] = store.AckKey{From: from, CMID: fmt.Sprintf("%s-%d", prefix, i)}
	}
	found, err := s.LookupAcks(t.Context(), keys)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	return found
}

// checkStored fails unless every one of from's n sends of prefix is found
// with the ack it was stored with.
func checkStored(t *testing.T, s *pebble.Store, from, prefix string, n int) {
	t.Helper()
	found := lookupAll(t, s, from, prefix, n)
	if len(found) != n {
		t.Fatalf("found %d of %d stored acks: a resend would be stored twice", len(found), n)
	}
	for i := range n {
		a := found[store.AckKey{From: from, CMID: fmt.Sprintf("%s-%d", prefix, i)}]
		if a.ID != int64(i+1) || a.Ver != uint64(i+1) {
			t.Fatalf("ack of %s-%d is %+v, want ID and Ver %d", prefix, i, a, i+1)
		}
	}
}

// checkFewReads looks up n fresh cmids and fails unless the filter kept
// all but a few (its false positives) from the store.
func checkFewReads(t *testing.T, s *pebble.Store, n int) {
	t.Helper()
	before := s.AckReads()
	if found := lookupAll(t, s, "alice", "fresh", n); len(found) != 0 {
		t.Fatalf("found %d acks of sends never stored", len(found))
	}
	if reads := s.AckReads() - before; reads > int64(n)/20 {
		t.Errorf("%d of %d fresh cmids read from the store; the filter should rule out all but ~1%%", reads, n)
	}
}

// TestAckFilter: a fresh cmid is answered without a store read; a cmid
// stored after the filter was built is found (Commit adds it), with its
// old ack.
func TestAckFilter(t *testing.T) {
	s := openFiltered(t, t.TempDir(), pebble.Options{})
	defer s.Close()
	checkFewReads(t, s, 2000)
	commitAcks(t, s, "alice", "sent", 100)
	checkStored(t, s, "alice", "sent", 100)
	checkFewReads(t, s, 2000)
}

// TestAckFilterRestart: the acks stored before a restart (more than one
// scan chunk) are in the filter the restart builds, so a cmid replayed
// after days still gets its old ack, and fresh ones still skip the store.
// Lookups made while the filter is being built read the store.
func TestAckFilterRestart(t *testing.T) {
	dir := t.TempDir()
	s := openFiltered(t, dir, pebble.Options{})
	commitAcks(t, s, "alice", "sent", 10_000)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	checkStored(t, s, "alice", "sent", 10_000) // the filter may or may not be built yet
	wait.For(t, "ack filter built", 10*time.Second, s.AckFilterReady)
	checkStored(t, s, "alice", "sent", 10_000)
	checkFewReads(t, s, 2000)
}

// TestAckFilterCrash: a commit that returned survives a power loss right
// after it, and the filter the next open builds knows its acks.
func TestAckFilterCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openFiltered(t, "db", pebble.WithFS(pebble.Options{}, fs))
	defer s.Close()
	commitAcks(t, s, "alice", "sent", 50)
	crashed := openFiltered(t, "db", pebble.WithFS(pebble.Options{}, fs.CrashClone(vfs.CrashCloneCfg{})))
	defer crashed.Close()
	checkStored(t, crashed, "alice", "sent", 50)
}

// TestAckFilterCap: past its cap the filter answers "maybe" for every key,
// so lookups read the store as without it, and nothing stored is missed.
func TestAckFilterCap(t *testing.T) {
	s := openFiltered(t, t.TempDir(), pebble.Options{AckFilterMax: 10})
	defer s.Close()
	commitAcks(t, s, "alice", "sent", 30)
	checkStored(t, s, "alice", "sent", 30)
	before := s.AckReads()
	lookupAll(t, s, "alice", "fresh", 100)
	if reads := s.AckReads() - before; reads != 100 {
		t.Errorf("%d of 100 fresh cmids read from the store past the cap, want all", reads)
	}
}
