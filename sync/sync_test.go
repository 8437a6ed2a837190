package sync_test

import (
	"context"
	"testing"

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
	raw, err := imsync.Encode(wire.Sync{Kind: "sync"}, "gzip")
	if err != nil || len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("gzip: %q %v", raw, err)
	}
	if raw, _ := imsync.Encode(wire.Sync{Kind: "sync"}, ""); raw[0] != '{' {
		t.Fatalf("plain: %q", raw)
	}
}
