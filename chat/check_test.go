package chat_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/wire"
)

func TestCheckSend(t *testing.T) {
	nest := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	ok := func() wire.Send { return wire.Send{CMID: "c1", To: "bob", Type: "text", Body: "hi"} }
	for _, tc := range []struct {
		name  string
		edit  func(*wire.Send)
		code  string // "" accepted
		limit string
	}{
		{"plain", func(*wire.Send) {}, "", ""},
		{"meta object", func(s *wire.Send) { s.Meta = json.RawMessage(`{"w":800,"h":600}`) }, "", ""},
		{"meta null is none", func(s *wire.Send) { s.Meta = json.RawMessage(`null`) }, "", ""},
		{"meta at its depth", func(s *wire.Send) { s.Meta = json.RawMessage(nest(wire.MaxMetaDepth)) }, "", ""},
		{"meta too deep", func(s *wire.Send) { s.Meta = json.RawMessage(nest(wire.MaxMetaDepth + 1)) }, wire.CodeBadRequest, "json_depth"},
		{"meta 9,998 deep", func(s *wire.Send) {
			s.Meta = json.RawMessage(`{"a":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}`)
		}, wire.CodeTooLarge, "meta_size"},
		{"meta 2,000 deep", func(s *wire.Send) { s.Meta = json.RawMessage(nest(1000)) }, wire.CodeBadRequest, "json_depth"},
		{"meta array", func(s *wire.Send) { s.Meta = json.RawMessage(`[1]`) }, wire.CodeBadRequest, ""},
		{"meta string", func(s *wire.Send) { s.Meta = json.RawMessage(`"x"`) }, wire.CodeBadRequest, ""},
		{"meta invalid", func(s *wire.Send) { s.Meta = json.RawMessage(`{"a":`) }, wire.CodeBadRequest, ""},
		{"meta at its size", func(s *wire.Send) {
			s.Meta = json.RawMessage(`{"a":"` + strings.Repeat("x", wire.MaxMeta-8) + `"}`)
		}, "", ""},
		{"meta over its size", func(s *wire.Send) {
			s.Meta = json.RawMessage(`{"a":"` + strings.Repeat("x", wire.MaxMeta-7) + `"}`)
		}, wire.CodeTooLarge, "meta_size"},
		{"body over", func(s *wire.Send) { s.Body = strings.Repeat("x", 64<<10+1) }, wire.CodeTooLarge, "message_size"},
		{"cmid over", func(s *wire.Send) { s.CMID = strings.Repeat("c", chat.MaxCMID+1) }, wire.CodeMissingCMID, "field_size"},
		{"media over", func(s *wire.Send) { s.Media = strings.Repeat("m", chat.MaxMediaID+1) }, wire.CodeBadRequest, "field_size"},
		{"bad group", func(s *wire.Send) { s.To, s.Group = "", strings.Repeat("g", 65) }, wire.CodeNotMember, ""},
	} {
		req := ok()
		tc.edit(&req)
		e, limit := chat.CheckSend(&req, 64<<10)
		code := ""
		if e != nil {
			code = e.Code
			if strings.Contains(e.Message, strings.Repeat("g", 65)) {
				t.Errorf("%s: the message echoes the bad group", tc.name)
			}
		}
		if code != tc.code || limit != tc.limit {
			t.Errorf("%s: %v %q, want code %q limit %q", tc.name, e, limit, tc.code, tc.limit)
		}
	}
	req := ok()
	req.Meta = json.RawMessage("null")
	if chat.CheckSend(&req, 64<<10); req.Meta != nil {
		t.Errorf("null meta kept as %q", req.Meta)
	}
}

func TestCheckRead(t *testing.T) {
	for _, tc := range []struct {
		req  wire.Read
		code string
	}{
		{wire.Read{Peer: "bob"}, ""},
		{wire.Read{Peer: "bob", Upto: "123"}, ""},
		{wire.Read{Group: "g1", Seq: 4}, ""},
		{wire.Read{}, wire.CodeBadRequest},
		{wire.Read{Peer: "bob", Upto: "-1"}, wire.CodeBadRequest},
		{wire.Read{Peer: "bob", Upto: "x"}, wire.CodeBadRequest},
		{wire.Read{Peer: strings.Repeat("b", 65)}, wire.CodeBadRequest},
		{wire.Read{Group: "g/1"}, wire.CodeNotMember},
	} {
		code := ""
		if e := chat.CheckRead(tc.req); e != nil {
			code = e.Code
		}
		if code != tc.code {
			t.Errorf("CheckRead(%+v) = %q, want %q", tc.req, code, tc.code)
		}
	}
}
