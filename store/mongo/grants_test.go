package mongo_test

import (
	"testing"

	"github.com/imqtt/imqtt/store"
)

// TestSendOnTwoNodesGrant: a resend stored by another node writes no grant
// of its own message, which is never stored: the grant is the first
// message's, and a sweep of that message takes it.
func TestSendOnTwoNodesGrant(t *testing.T) {
	db := newDB(t)
	a, b := open(t, db), open(t, db)
	defer a.Close()
	defer b.Close()
	withMedia := func(bt *store.Batch) *store.Batch {
		bt.Messages[0].Media = "m-1"
		bt.Grants = []store.Grant{{Media: "m-1", Principal: "u:bob", MsgID: bt.Messages[0].ID}}
		return bt
	}
	first := withMedia(send(t, a, "alice", "bob", 100, 1000))
	commit(t, a, first)
	second := withMedia(send(t, b, "alice", "bob", 300, 3000)) // its ID is younger
	second.Messages[0].CMID, second.Acks[0].CMID = first.Messages[0].CMID, first.Messages[0].CMID
	commit(t, b, second)
	if got, ok := second.Existing[0]; !ok || got.ID != 100 {
		t.Fatalf("resend's Existing: %+v, want message 100's ack", second.Existing)
	}
	if _, err := a.SweepMessages(t.Context(), 101, 0); err != nil {
		t.Fatal(err)
	}
	if p, err := a.MediaGrants(t.Context(), "m-1"); err != nil || len(p) != 0 {
		t.Errorf("grants after the only stored message went: %q, %v", p, err)
	}
}
