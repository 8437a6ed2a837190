package sync_test

import (
	"testing"

	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// FuzzSyncRequest feeds arbitrary im/sync payloads to DecodeRequest. It
// must not panic; a refusal is bad_request or not_member with a message;
// what it accepts is within the bounds and re-encodes within wire.MaxDepth.
// Seeds: testdata/fuzz/FuzzSyncRequest/.
func FuzzSyncRequest(f *testing.F) {
	f.Add([]byte(`{"since":41,"limit":500}`))
	f.Add([]byte(`{"group":"g1","since":3,"epoch":"ABCDEFGHIJKLMNOPQRSTUVWXYZ"}`))
	s := imsync.New(nil, imsync.Options{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, e, limit := imsync.DecodeRequest(payload)
		if e != nil {
			if e.Message == "" || e.Code != wire.CodeBadRequest && e.Code != wire.CodeNotMember {
				t.Fatalf("refusal %+v", e)
			}
			if limit != "" && limit != "json_depth" {
				t.Fatalf("limit %q", limit)
			}
			return
		}
		if req.Group != "" && !wire.ValidUser(req.Group) || len(req.Epoch) > imsync.MaxEpoch {
			t.Fatalf("accepted out of bounds: %+v", req)
		}
		if l := s.Limit(req); l < 1 || l > 5000 {
			t.Fatalf("limit %d from %d", l, req.Limit)
		}
		raw, err := wire.Marshal(req)
		if err != nil || wire.CheckDepth(raw, wire.MaxDepth) != nil {
			t.Fatalf("re-encoded: %v %q", err, raw)
		}
	})
}
