package sync_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		in, code, limit string
	}{
		{`{"since":41,"limit":500}`, "", ""},
		{`{"group":"g1","since":3,"compress":"gzip","epoch":"ABCDEFGHIJKLMNOPQRSTUVWXYZ"}`, "", ""},
		{`{"since":-1}`, wire.CodeBadRequest, ""},
		{`{"since":"1"}`, wire.CodeBadRequest, ""},
		{`{"since":1,"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`, wire.CodeBadRequest, "json_depth"},
		{`{"group":"a/b"}`, wire.CodeNotMember, ""},
		{`{"epoch":"` + strings.Repeat("e", imsync.MaxEpoch+1) + `"}`, wire.CodeBadRequest, ""},
		{`nonsense`, wire.CodeBadRequest, ""},
	} {
		_, e, limit := imsync.DecodeRequest([]byte(tc.in))
		code := ""
		if e != nil {
			code = e.Code
		}
		if code != tc.code || limit != tc.limit {
			t.Errorf("DecodeRequest(%.40q) = %v %q, want %q %q", tc.in, e, limit, tc.code, tc.limit)
		}
	}
}

// TestSyncSkipsPoisonedMeta: a message stored before sends were bounded,
// its meta nested 9,998 deep, syncs without its meta, and the batch stays
// within wire.MaxDepth, so the clients that sync it keep working.
func TestSyncSkipsPoisonedMeta(t *testing.T) {
	st := inbox(t)
	deep := json.RawMessage(`{"a":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}`)
	b := store.Batch{Messages: []store.Message{{ID: 200, From: "alice", To: "bob", Type: "text", TS: 200, Meta: deep},
		{ID: 201, From: "alice", To: "bob", Type: "text", TS: 201, Meta: json.RawMessage(`{"w":1}`)}},
		Entries: []store.Entry{{User: "bob", Ver: 8, Peer: "alice", MsgID: 200}, {User: "bob", Ver: 9, Peer: "alice", MsgID: 201}}}
	if err := st.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	var got []wire.Sync
	err := imsync.New(st, imsync.Options{}).Serve(context.Background(), "bob", wire.SyncRequest{Since: 7},
		func(b wire.Sync) error { got = append(got, b); return nil })
	if err != nil || len(got) != 1 || len(got[0].Items) != 2 {
		t.Fatalf("sync: %v %+v", err, got)
	}
	if it := got[0].Items; it[0].Meta != nil || string(it[1].Meta) != `{"w":1}` {
		t.Errorf("metas %q and %q, want none and the small one", it[0].Meta, it[1].Meta)
	}
	raw, err := imsync.Encode(got[0], imsync.Encoding{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.CheckDepth(raw, wire.MaxDepth); err != nil {
		t.Errorf("the batch: %v", err)
	}
}
