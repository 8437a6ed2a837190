package chat_test

import (
	"encoding/json"
	"errors"
	"fmt"
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
		want  error // nil: accepted
		limit string
	}{
		{"plain", func(*wire.Send) {}, nil, ""},
		{"meta object", func(s *wire.Send) { s.Meta = json.RawMessage(`{"w":800,"h":600}`) }, nil, ""},
		{"meta null is none", func(s *wire.Send) { s.Meta = json.RawMessage(`null`) }, nil, ""},
		{"meta at its depth", func(s *wire.Send) { s.Meta = json.RawMessage(nest(wire.MaxMetaDepth)) }, nil, ""},
		{"meta too deep", func(s *wire.Send) { s.Meta = json.RawMessage(nest(wire.MaxMetaDepth + 1)) }, chat.ErrBadRequest, "json_depth"},
		{"meta 9,998 deep", func(s *wire.Send) {
			s.Meta = json.RawMessage(`{"a":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}`)
		}, chat.ErrTooLarge, "meta_size"},
		{"meta 2,000 deep", func(s *wire.Send) { s.Meta = json.RawMessage(nest(1000)) }, chat.ErrBadRequest, "json_depth"},
		{"meta array", func(s *wire.Send) { s.Meta = json.RawMessage(`[1]`) }, chat.ErrBadRequest, ""},
		{"meta string", func(s *wire.Send) { s.Meta = json.RawMessage(`"x"`) }, chat.ErrBadRequest, ""},
		{"meta invalid", func(s *wire.Send) { s.Meta = json.RawMessage(`{"a":`) }, chat.ErrBadRequest, ""},
		{"meta at its size", func(s *wire.Send) {
			s.Meta = json.RawMessage(`{"a":"` + strings.Repeat("x", wire.MaxMeta-8) + `"}`)
		}, nil, ""},
		{"meta over its size", func(s *wire.Send) {
			s.Meta = json.RawMessage(`{"a":"` + strings.Repeat("x", wire.MaxMeta-7) + `"}`)
		}, chat.ErrTooLarge, "meta_size"},
		{"body over", func(s *wire.Send) { s.Body = strings.Repeat("x", 64<<10+1) }, chat.ErrTooLarge, "message_size"},
		{"cmid over", func(s *wire.Send) { s.CMID = strings.Repeat("c", chat.MaxCMID+1) }, chat.ErrMissingCMID, "field_size"},
		{"media over", func(s *wire.Send) { s.Media = strings.Repeat("m", chat.MaxMediaID+1) }, chat.ErrBadRequest, "field_size"},
		{"bad group", func(s *wire.Send) { s.To, s.Group = "", strings.Repeat("g", 65) }, chat.ErrNotMember, ""},
		{"no cmid", func(s *wire.Send) { s.CMID = "" }, chat.ErrMissingCMID, ""},
		{"no to", func(s *wire.Send) { s.To = "" }, chat.ErrMissingTo, ""},
		{"to and group", func(s *wire.Send) { s.Group = "g1" }, chat.ErrBadRequest, ""},
		{"bad type", func(s *wire.Send) { s.Type = "gif" }, chat.ErrBadType, ""},
		{"bad to", func(s *wire.Send) { s.To = "a/b" }, chat.ErrNoSuchUser, ""},
	} {
		req := ok()
		tc.edit(&req)
		err, limit := chat.CheckSend(&req, 64<<10)
		if strings.Contains(fmt.Sprint(err), strings.Repeat("g", 65)) {
			t.Errorf("%s: the message echoes the bad group", tc.name)
		}
		if !errors.Is(err, tc.want) || limit != tc.limit {
			t.Errorf("%s: %v %q, want %v limit %q", tc.name, err, limit, tc.want, tc.limit)
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
		want error
	}{
		{wire.Read{Peer: "bob"}, nil},
		{wire.Read{Peer: "bob", Upto: "123"}, nil},
		{wire.Read{Group: "g1", Seq: 4}, nil},
		{wire.Read{}, chat.ErrBadRequest},
		{wire.Read{Peer: "bob", Upto: "-1"}, chat.ErrBadRequest},
		{wire.Read{Peer: "bob", Upto: "x"}, chat.ErrBadRequest},
		{wire.Read{Peer: strings.Repeat("b", 65)}, chat.ErrBadRequest},
		{wire.Read{Group: "g/1"}, chat.ErrNotMember},
	} {
		if err := chat.CheckRead(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("CheckRead(%+v) = %v, want %v", tc.req, err, tc.want)
		}
	}
}
