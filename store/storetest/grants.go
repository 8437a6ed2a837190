package storetest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Grants tests the Grants role: media grants committed with messages.
func Grants(t *testing.T, open func(t *testing.T) GrantStore) {
	run(t, open, []testCase{{"MediaGrants", testMediaGrants}})
}

// testMediaGrants: a message's grants are stored with it, listed per media
// object, idempotent; its inline bytes come back as they went in.
func testMediaGrants(t *testing.T, f *fixture) {
	var b store.Batch
	s := f.add(&b, "alice", "bob", 50, 500)
	b.Messages[0].Media, b.Messages[0].Inline = "m-1", &store.Inline{Type: "image/webp", Data: []byte{0, 1, 2, 255}}
	b.Grants = []store.Grant{{Media: "m-1", Principal: "u:bob"}, {Media: "m-1", Principal: "g:g1"}, {Media: "m-2", Principal: "u:carol"}}
	f.commit(&b)
	f.commit(&b) // a replay grants nothing new

	got, err := f.grants.MediaGrants(f.ctx, "m-1")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"g:g1", "u:bob"}) {
		t.Fatalf("grants of m-1: %q", got)
	}
	if got, err := f.grants.MediaGrants(f.ctx, "m-3"); err != nil || len(got) != 0 {
		t.Fatalf("grants of unknown media: %q %v", got, err)
	}
	if got, err := f.grants.MediaGrants(f.ctx, "m-"); err != nil || len(got) != 0 {
		t.Fatalf("grants of a prefix of another ID: %q %v", got, err)
	}
	msgs, err := f.messages.GetMessages(f.ctx, []int64{s.Msg.ID})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("get message: %v %v", msgs, err)
	}
	if in := msgs[0].Inline; in == nil || in.Type != "image/webp" || !bytes.Equal(in.Data, []byte{0, 1, 2, 255}) || msgs[0].Media != "m-1" {
		t.Fatalf("inline came back as %+v", msgs[0])
	}
}
