package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/wire"
)

// bodyTypes are the JSON request bodies the API decodes, by the fuzz
// input's first byte: decode's (users, sessions, messages, read, groups,
// members) and decodeStrict's (admin bans, notices, drain).
var bodyTypes = []struct {
	name   string
	new    func() any
	strict bool
}{
	{"register", func() any { return new(wire.Register) }, false},
	{"login", func() any { return new(wire.Login) }, false},
	{"send", func() any { return new(wire.Send) }, false},
	{"read", func() any { return new(wire.Read) }, false},
	{"group", func() any { return new(wire.GroupCreate) }, false},
	{"members", func() any { return new(wire.GroupMembers) }, false},
	{"ban", func() any { return new(banRequest) }, true},
	{"notice", func() any { return new(noticeRequest) }, true},
	{"drain", func() any { return new(drainRequest) }, true},
}

// FuzzHTTPBodies feeds arbitrary bodies through the API's decode path, and
// a send's and a read's through their checks. Properties: nothing panics; a
// refusal is a 400 or 413 with a JSON error code; what is accepted came
// within MaxBody and re-encodes within wire.MaxDepth (and, for a send,
// within its fields' bounds). Seeds: testdata/fuzz/FuzzHTTPBodies/.
func FuzzHTTPBodies(f *testing.F) {
	f.Add(byte(2), []byte(`{"cmid":"c1","to":"bob","type":"text","body":"hi","meta":{"w":1}}`))
	f.Add(byte(6), []byte(`{"user":"bob","seconds":60}`))
	const maxBody = 64 << 10
	a := &API{cfg: Config{MaxBody: maxBody, Metrics: metrics.New()}}
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		bt := bodyTypes[int(kind)%len(bodyTypes)]
		v := bt.new()
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/"+bt.name, bytes.NewReader(body))
		var ok bool
		if bt.strict {
			ok = a.decodeStrict(w, r, v, true)
		} else {
			ok = a.decode(w, r, v)
		}
		if !ok {
			var e wire.Error
			if w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge ||
				json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%s refused with %d %q", bt.name, w.Code, w.Body.Bytes())
			}
			return
		}
		if len(body) > maxBody {
			t.Fatalf("%s: accepted a body of %d bytes", bt.name, len(body))
		}
		switch req := v.(type) {
		case *wire.Send:
			if e, _ := chat.CheckSend(req, maxBody); e != nil {
				return
			}
			if len(req.Meta) > wire.MaxMeta || len(req.Meta) > 0 && wire.CheckDepth(req.Meta, wire.MaxMetaDepth) != nil {
				t.Fatalf("accepted meta %.200q", req.Meta)
			}
		case *wire.Read:
			if chat.CheckRead(*req) != nil {
				return
			}
		}
		raw, err := json.Marshal(v)
		if err != nil || wire.CheckDepth(raw, wire.MaxDepth) != nil {
			t.Fatalf("%s re-encoded: %v %.200q", bt.name, err, raw)
		}
	})
}
