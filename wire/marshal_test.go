package wire_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

// TestMarshalMatchesEncodingJSON: what the server publishes is byte for
// byte encoding/json's, for each event kind and the text encoders disagree on.
func TestMarshalMatchesEncodingJSON(t *testing.T) {
	odd := []string{"", "a", "é", "\u2028", "\u2029", "<b>&", `"\`, "\x00\x1f\x7f\t\n\r", "日本😀", "\xff\xc3", "\xed\xa0\x80",
		"\u00a0\ufeff\ufffd", "/"}
	var vs []any
	for i, s := range odd {
		vs = append(vs,
			wire.Msg{Kind: wire.KindMsg, ID: "1", Ver: uint64(i), From: s, To: s, Group: s, Seq: uint64(i) * 3, Type: "text", Body: s,
				Media: s, Meta: json.RawMessage("{ \"w\" : 800 ,\n\"t\":\"<a&b>\u2028\" }"), TS: int64(i) - 5, CMID: s,
				Inline: &wire.Inline{Type: s, Data: []byte(s)}},
			wire.Msg{Kind: wire.KindMsg, Body: s},
			wire.Ack{Kind: wire.KindAck, CMID: s, ID: s, Ver: uint64(i), TS: int64(i), Group: s, Seq: uint64(i)},
			&wire.Error{Kind: wire.KindError, CMID: s, Code: s, Message: s},
			wire.Unread{Kind: wire.KindUnread, Total: int64(i), Peer: s, Group: s, Count: int64(i)},
			wire.GroupEvent{Kind: wire.KindGroup, Group: s, Action: s, By: s},
			wire.Notice{Kind: wire.KindNotice, Text: s, TS: int64(i)},
		)
	}
	for _, v := range vs {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.Marshal(v)
		if err != nil {
			t.Fatalf("%+v: %v", v, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T:\n got %s\nwant %s", v, got, want)
		}
	}
}
