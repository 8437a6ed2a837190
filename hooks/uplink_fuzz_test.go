package hooks

import (
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/chat"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// The uplink fuzz targets feed arbitrary payloads to the decode and check
// path of each uplink topic, as OnPublish runs it. Properties: nothing
// panics; a refusal is a bad_request (or not_member) error with a message;
// whatever is accepted re-encodes within the bounds, in the deepest event
// that carries it. Seeds: testdata/fuzz/<Target>/.

const fuzzMaxBody = 64 << 10 // chat.Options' default

func refusal(t *testing.T, e *wire.Error, codes ...string) {
	t.Helper()
	for _, c := range codes {
		if e.Code == c && e.Message != "" {
			return
		}
	}
	t.Fatalf("refusal %+v, want one of %v with a message", e, codes)
}

// withinDepth fails unless v marshals to JSON nested at most wire.MaxDepth.
func withinDepth(t *testing.T, what string, v any) []byte {
	t.Helper()
	raw, err := wire.Marshal(v)
	if err != nil {
		t.Fatalf("%s: marshal: %v", what, err)
	}
	if err := wire.CheckDepth(raw, wire.MaxDepth); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return raw
}

func FuzzUplinkSend(f *testing.F) {
	f.Add([]byte(`{"cmid":"c-123","to":"bob","type":"text","body":"hi"}`))
	f.Add([]byte(`{"cmid":"c-124","group":"g1","type":"image","body":"","media":"m-8f2","meta":{"w":800}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, e, limit := DecodeSend(payload)
		if e != nil {
			refusal(t, e, wire.CodeBadRequest)
			if limit != "" && limit != "json_depth" {
				t.Fatalf("limit %q", limit)
			}
			return
		}
		if err, _ := chat.CheckSend(&req, fuzzMaxBody); err != nil {
			refusal(t, chat.WireError(err, ""), wire.CodeBadRequest, wire.CodeMissingCMID, wire.CodeMissingTo, wire.CodeNotMember,
				wire.CodeBadType, wire.CodeTooLarge, wire.CodeNoSuchUser)
			return
		}
		switch {
		case req.CMID == "" || len(req.CMID) > chat.MaxCMID, len(req.Media) > chat.MaxMediaID,
			len(req.Meta) > wire.MaxMeta, len(req.Body)+len(req.Meta)+len(req.Media) > fuzzMaxBody,
			!wire.MessageTypes[req.Type], !wire.ValidUser(req.To) && !wire.ValidUser(req.Group):
			t.Fatalf("accepted out of bounds: %.200q", payload)
		case len(req.Meta) > 0 && (req.Meta[0] != '{' || wire.CheckDepth(req.Meta, wire.MaxMetaDepth) != nil):
			t.Fatalf("accepted meta %.200q", req.Meta)
		}
		msg := wire.Msg{Kind: wire.KindMsg, ID: "1", From: "alice", To: req.To, Group: req.Group, Type: req.Type,
			Body: req.Body, Media: req.Media, Meta: req.Meta, CMID: req.CMID}
		withinDepth(t, "send", req)
		withinDepth(t, "sync batch", wire.Sync{Kind: wire.KindSync, Items: []wire.Msg{msg}})
		withinDepth(t, "conversation list", wire.Conversations{Conversations: []wire.Conversation{{Peer: "bob", Last: &msg}}})
	})
}

func FuzzUplinkSync(f *testing.F) {
	f.Add([]byte(`{"since":41,"limit":500}`))
	f.Add([]byte(`{"group":"g1","since":3,"compress":"gzip"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, e, _ := imsync.DecodeRequest(payload)
		if e != nil {
			refusal(t, e, wire.CodeBadRequest, wire.CodeNotMember)
			return
		}
		if req.Group != "" && !wire.ValidUser(req.Group) || len(req.Epoch) > imsync.MaxEpoch {
			t.Fatalf("accepted out of bounds: %+v", req)
		}
		if l := imsync.New(nil, imsync.Options{}).Limit(req); l < 1 || l > 5000 {
			t.Fatalf("limit %d from %d", l, req.Limit)
		}
		withinDepth(t, "sync request", req)
	})
}

func FuzzUplinkRead(f *testing.F) {
	f.Add([]byte(`{"peer":"bob","upto":"123"}`))
	f.Add([]byte(`{"group":"g1","seq":7}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, e, _ := DecodeRead(payload)
		if e != nil {
			refusal(t, e, wire.CodeBadRequest, wire.CodeNotMember)
			return
		}
		if req.Group != "" {
			if !wire.ValidUser(req.Group) {
				t.Fatalf("accepted group %q", req.Group)
			}
		} else if !wire.ValidUser(req.Peer) {
			t.Fatalf("accepted peer %q", req.Peer)
		} else if req.Upto != "" {
			if n, err := strconv.ParseInt(req.Upto, 10, 64); err != nil || n <= 0 {
				t.Fatalf("accepted upto %q", req.Upto)
			}
		}
		withinDepth(t, "read", req)
	})
}
