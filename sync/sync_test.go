package sync_test

import (
	"context"
	"testing"
	"time"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// inbox makes a store where bob has messages at versions 1, 2, 3, 5, 6, 7
// (4 is a hole, as a crash leaves one).
func inbox(t *testing.T) store.Store {
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i, ver := range []uint64{1, 2, 3, 5, 6, 7} {
		id := int64(100 + i)
		b := store.Batch{Messages: []store.Message{{ID: id, From: "alice", To: "bob", Type: "text", TS: id}},
			Entries: []store.Entry{{User: "bob", Ver: ver, Peer: "alice", MsgID: id}}}
		if err := st.Commit(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func serve(t *testing.T, s *imsync.Syncer, req wire.SyncRequest) []wire.Sync {
	t.Helper()
	var out []wire.Sync
	if err := s.Serve(context.Background(), "bob", req, func(b wire.Sync) error { out = append(out, b); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBatchesAndLimit(t *testing.T) {
	st := inbox(t)
	s := imsync.New(st, imsync.Options{BatchItems: 2})
	got := serve(t, s, wire.SyncRequest{Since: 1, Limit: 3})
	if len(got) != 2 {
		t.Fatalf("%d batches, want 2", len(got))
	}
	if b := got[0]; b.Since != 1 || b.Upto != 3 || !b.More || len(b.Items) != 2 {
		t.Fatalf("first batch %+v", b)
	}
	// The limit stops the second batch after one item: more, and the hole at 4 is covered.
	if b := got[1]; b.Since != 3 || b.Upto != 5 || !b.More || len(b.Items) != 1 || b.Items[0].Ver != 5 {
		t.Fatalf("second batch %+v", b)
	}
	got = serve(t, s, wire.SyncRequest{Since: 5, Epoch: st.Epoch()})
	if b := got[len(got)-1]; b.Upto != 7 || b.More || b.Reset {
		t.Fatalf("to the end: %+v", b)
	}
	if got := serve(t, s, wire.SyncRequest{Since: 7}); len(got) != 1 || len(got[0].Items) != 0 || got[0].Upto != 7 || got[0].More {
		t.Fatalf("nothing new: %+v", got)
	}
}

func TestReset(t *testing.T) {
	st := inbox(t)
	s := imsync.New(st, imsync.Options{})
	for name, req := range map[string]wire.SyncRequest{
		"a cursor past the head":    {Since: 50, Epoch: st.Epoch()},
		"a cursor of another epoch": {Since: 3, Epoch: "gone"},
	} {
		got := serve(t, s, req)
		if len(got) != 1 || !got[0].Reset || got[0].Since != 0 || len(got[0].Items) != 6 || got[0].Epoch != st.Epoch() {
			t.Errorf("%s: %+v", name, got)
		}
	}
}

func TestEncodeGzip(t *testing.T) {
	raw, err := imsync.Encode(wire.Sync{Kind: "sync"}, imsync.Encoding{Compress: "gzip"})
	if err != nil || len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("gzip: %q %v", raw, err)
	}
	if raw, _ := imsync.Encode(wire.Sync{Kind: "sync"}, imsync.Encoding{}); raw[0] != '{' {
		t.Fatalf("plain: %q", raw)
	}
}

// commit puts one message from alice into bob's inbox at ver, and into group
// g at the same seq, stamped ts.
func commit(t *testing.T, st store.Store, ver uint64, ts int64) {
	t.Helper()
	id := int64(1000 + ver)
	b := store.Batch{Messages: []store.Message{{ID: id, From: "alice", To: "bob", Type: "text", TS: ts},
		{ID: id + 1_000_000, From: "alice", Group: "g", Seq: ver, Type: "text", TS: ts}},
		Entries: []store.Entry{{User: "bob", Ver: ver, Peer: "alice", MsgID: id}},
		Heads:   []store.GroupHead{{Group: "g", Seq: ver, MsgID: id + 1_000_000, TS: ts}}}
	if err := st.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

// afterFirstRange runs then after its first Range, on the reader's goroutine.
type afterFirstRange struct {
	imsync.Source
	then   func()
	ranges int
}

func (a *afterFirstRange) Range(ctx context.Context, user string, since uint64, limit int) ([]store.Event, error) {
	evs, err := a.Source.Range(ctx, user, since, limit)
	if a.ranges++; a.ranges == 1 {
		a.then()
	}
	return evs, err
}

// In scale-out a hole followed by a young item may still fill (another
// node's commit in flight): sync waits for it, and if it does not come in
// time answers only up to the hole, never moving the cursor past it.
func TestSettleYoungHole(t *testing.T) {
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UnixMilli()
	for _, v := range []uint64{1, 2, 3, 5, 6} {
		commit(t, st, v, now)
	}
	s := imsync.New(st, imsync.Options{Settle: time.Minute, SettleWait: 50 * time.Millisecond})
	got := serve(t, s, wire.SyncRequest{})
	if b := got[len(got)-1]; len(got) != 1 || b.Upto != 3 || b.More || len(b.Items) != 3 {
		t.Fatalf("young hole at 4: %+v, want items 1-3, upto 3", got)
	}
	var groups []wire.Sync
	if err := s.ServeGroup(context.Background(), "", "g", 0, wire.SyncRequest{}, func(b wire.Sync) error { groups = append(groups, b); return nil }); err != nil {
		t.Fatal(err)
	}
	if b := groups[len(groups)-1]; b.Upto != 3 || b.More {
		t.Fatalf("young group hole at 4: %+v, want upto 3 (not the head, 6)", b)
	}

	// The hole fills while sync waits: one answer with everything.
	// It fills right after sync's first read, which saw it.
	filled := &afterFirstRange{Source: st, then: func() { commit(t, st, 4, now) }}
	s = imsync.New(filled, imsync.Options{Settle: time.Minute, SettleWait: 5 * time.Second})
	got = serve(t, s, wire.SyncRequest{Since: 3})
	if b := got[len(got)-1]; b.Upto != 6 || len(b.Items) != 3 || b.Items[0].Ver != 4 {
		t.Fatalf("filled hole: %+v, want 4-6", got)
	}

	// Without Settle (one node) and for old holes, a hole is final.
	commit(t, st, 9, now-int64(2*time.Minute/time.Millisecond))
	for _, o := range []imsync.Options{{}, {Settle: time.Minute}} {
		got = serve(t, imsync.New(st, o), wire.SyncRequest{Since: 6})
		if b := got[len(got)-1]; b.Upto != 9 || len(b.Items) != 1 {
			t.Fatalf("final hole at 7-8 with %+v: %+v, want 9", o, got)
		}
	}
}
