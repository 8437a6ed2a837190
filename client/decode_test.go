package client

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	gojson "github.com/goccy/go-json"

	"github.com/imqtt/imqtt/wire/wiretest"
	"github.com/klauspost/compress/gzip"

	"github.com/imqtt/imqtt/wire"
)

// The SDK decodes with go-json; these tests hold it to what encoding/json
// makes of the same payloads, the reference the SDK was written against.

// refDecodeSync is decodeSync done with encoding/json.
func refDecodeSync(t *testing.T, p []byte) (wire.Sync, []Event) {
	t.Helper()
	var rs rawSync
	if err := json.Unmarshal(p, &rs); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	evs := make([]Event, len(rs.Items))
	for i, raw := range rs.Items {
		e := new(eventJSON)
		if err := json.Unmarshal(raw, e); err != nil {
			t.Fatalf("encoding/json item %d: %v", i, err)
		}
		evs[i] = Event{Kind: wire.KindMsg, Ver: e.Ver, Raw: raw, Synced: true, Msg: &e.Msg}
		e.Msg.Kind = wire.KindMsg
	}
	return rs.Sync, evs
}

// A sync batch, whether encoded by encoding/json or by the server's
// sync.Encode (gzip or not), decodes to exactly what encoding/json reads
// from it: header, every field of every item, meta as sent, inline bytes,
// and each item's raw JSON.
func TestDecodeSyncMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 200_000))
	for i := range 400 {
		b := wire.Sync{Kind: wire.KindSync, Group: wiretest.OddString(r), Since: r.Uint64(), Upto: r.Uint64(), More: r.IntN(2) == 0,
			Epoch: wiretest.OddString(r), Reset: r.IntN(2) == 0}
		n := r.IntN(6)
		if i%50 == 0 {
			n = 200 // decoded on several goroutines
		}
		for range n {
			b.Items = append(b.Items, wiretest.OddMsg(r))
		}
		std, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := encodeSync(b, "")
		if err != nil {
			t.Fatal(err)
		}
		zipped, err := encodeSync(b, "gzip")
		if err != nil {
			t.Fatal(err)
		}
		wantSync, want := refDecodeSync(t, std)
		for name, p := range map[string][]byte{"encoding/json": std, "wire.Marshal": enc, "wire.Marshal gzip": zipped} {
			p, err := Decompress(p)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			gotSync, got, _, err := decodeSync(p)
			if err != nil {
				t.Fatalf("batch %d from %s: %v", i, name, err)
			}
			if !reflect.DeepEqual(gotSync, wantSync) {
				t.Fatalf("batch %d from %s: header\n%+v\nwant\n%+v", i, name, gotSync, wantSync)
			}
			if len(got) != len(want) {
				t.Fatalf("batch %d from %s: %d items, want %d", i, name, len(got), len(want))
			}
			for j := range got {
				if !reflect.DeepEqual(got[j], want[j]) {
					t.Fatalf("batch %d from %s, item %d:\n%+v\n%+v\nwant\n%+v\n%+v", i, name, j, got[j], got[j].Msg, want[j], want[j].Msg)
				}
			}
			// and that is what was sent (meta compacted and escaped; strings are
			// compared above: invalid UTF-8 comes back as U+FFFD).
			for j, m := range b.Items {
				gm := got[j].Msg
				var compact, meta bytes.Buffer
				if m.Meta != nil {
					json.Compact(&compact, m.Meta)
					json.HTMLEscape(&meta, compact.Bytes())
				}
				if !bytes.Equal(gm.Meta, meta.Bytes()) || gm.Ver != m.Ver || gm.Seq != m.Seq || gm.TS != m.TS ||
					(gm.Inline == nil) != (m.Inline == nil) || (m.Inline != nil && !bytes.Equal(gm.Inline.Data, m.Inline.Data)) {
					t.Fatalf("batch %d from %s, item %d:\n%+v\nsent\n%+v", i, name, j, gm, m)
				}
			}
		}
	}
}

// Events a server or a newer server may send, well formed or not, decode
// (or fail) as they do with encoding/json; device events too.
func TestDecodeOddEventsMatchEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"kind":"msg","id":"1","ver":2,"from":"a","to":"b","type":"text","body":"hi","ts":1,"cmid":"c"}`,
		`{"kind":"msg","ver":6,"body":{"q":"?"}}`,
		`{"kind":"poll","ver":6,"body":{"q":"?"},"total":"many"}`,
		`{"ver":2,"id":"1","from":"a","type":"text","body":"x","ts":1}`,
		`{"kind":"msg","ver":"x"}`,
		`{"kind":"msg","ver":-1}`,
		`{"kind":"msg","ver":1.5}`,
		`{"kind":"msg","ver":18446744073709551615}`,
		`{"kind":"msg","ver":18446744073709551616}`,
		`{"kind":"msg","body":"\ud800x\udc00\u0000\u00e9\ud83d\ude00","meta":null,"inline":null}`,
		`{"kind":"msg","meta":  { "a" : 1 } ,"inline":{"type":"t","data":"AAE="}}`,
		`{"kind":"msg","inline":{"type":"t","data":"not base64!"}}`,
		`{"kind":"msg","inline":{"type":"t","data":"AAE"}}`,
		`{"kind":"msg","inline":{"type":"t","data":null}}`,
		`{"KIND":"msg","Body":"case","VER":3}`,
		`{"kind":"msg","body":"dup","body":"second"}`,
		`{"kind":"msg","unknown":[1,{"x":2}],"body":"u"}`,
		`{"kind":"msg"} trailing`,
		`{"kind":"msg"`,
		` {"kind":"msg","body":"\/"} `,
		`{"kind":"unread","total":3,"peer":"bob","count":0}`,
		`{"kind":"unread","total":3,"group":"g","count":-2}`,
		`{"kind":"recall","ver":5,"id":"9"}`,
		`{"kind":"recall","id":"9","by":"a","group":"g","seq":4,"ts":1}`,
		`{"kind":"edit","id":"9","body":"b","meta":{"x":[1]},"edited":3,"ver":6}`,
		`{"kind":"reaction","id":"9","from":"a","emoji":"\ud83d\udc4d","op":"add","ver":7}`,
		`{"kind":"delete","ids":["1","2"],"ver":8}`,
		`{"kind":"delete","peer":"bob","ver":9}`,
		`{"kind":"delete","ids":[1],"ver":9}`,
		`{"kind":"receipt","peer":"bob","upto":"9","ts":3,"ver":4}`,
		`{"kind":"receipt","peer":"bob","upto":9}`,
		`{"kind":"typing","from":"bob","group":"g","state":"start"}`,
		`{"kind":"group","group":"g","action":"added","by":"a"}`,
		`{"kind":"settings","peer":"bob","mute":true,"mute_until":0,"pin":false}`,
		`{"kind":"group","group":"g","seq":4,"from":"a","action":"updated","name":"n","notice":null,"muted":false}`,
		`{"kind":"group","group":"g","seq":"4"}`,
		`{"kind":"contact","action":"request","user":"bob","since":1,"ver":3}`,
		`{"kind":"contact","user":["bob"]}`,
		`{"kind":"block","user":"eve","blocked":true}`,
		`{"kind":"presence","user":"bob","online":false,"last_seen":9,"ver":2}`,
		`{"kind":"presence","last_seen":"yesterday"}`,
		`{"kind":"recall","id":"9","expired":true,"ver":5}`,
		`{"kind":"msg","id":"9","ver":5,"recalled":true,"edited":4,"reply_to":"8","quote":{"from":"a","body":"q"},"reactions":{"x":{"count":1,"users":["a"]}}}`,
		`null`,
		`[]`,
		`""`,
	} {
		got, gotErr := decodeEvent(json.RawMessage(in), true)
		want, wantErr := refDecodeEvent(json.RawMessage(in))
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("event %s:\n%+v %v\nencoding/json\n%+v %v", in, got, gotErr, want, wantErr)
		}
	}
	for _, in := range []string{
		`{"kind":"error","cmid":"c","code":"busy","message":"later"}`,
		`{"kind":"error","code":1,"message":"odd"}`,
		`{"kind":"ack","cmid":"c","id":"1","ver":4,"ts":9,"group":"g","seq":3}`,
		`{"kind":"sync","since":1,"upto":3,"more":false,"epoch":"e","items":[{"ver":2},{"ver":3}]}`,
		`{"kind":"sync","since":"x"}`,
		`{"kind":"sync","items":null}`,
		`{"kind":"future","items":{}}`,
	} {
		var got, want deviceJSON
		gotErr := gojson.Unmarshal([]byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("device event %s:\n%+v %v\nencoding/json\n%+v %v", in, got, gotErr, want, wantErr)
		}
		var gr, wr replyJSON
		gotErr = gojson.Unmarshal([]byte(in), &gr)
		wantErr = json.Unmarshal([]byte(in), &wr)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && gr != wr) {
			t.Errorf("reply %s:\n%+v %v\nencoding/json\n%+v %v", in, gr, gotErr, wr, wantErr)
		}
	}
}

// refDecodeEvent is decodeEvent done with encoding/json.
func refDecodeEvent(raw json.RawMessage) (Event, error) {
	e := new(eventJSON)
	if err := json.Unmarshal(raw, e); err != nil {
		var env envelope
		if json.Unmarshal(raw, &env) != nil {
			return Event{}, err
		}
		switch env.Kind {
		case wire.KindMsg, "", wire.KindUnread, wire.KindRecall, wire.KindEdit, wire.KindReaction, wire.KindDelete,
			wire.KindReceipt, wire.KindTyping, wire.KindGroup, wire.KindContact, wire.KindBlock, wire.KindPresence:
			return Event{}, err
		}
		return Event{Kind: env.Kind, Ver: env.Ver, Raw: raw, Synced: true}, nil
	}
	ev := Event{Kind: e.Kind, Ver: e.Ver, Raw: raw, Synced: true}
	switch e.Kind {
	case wire.KindMsg, "":
		e.Msg.Kind = wire.KindMsg
		ev.Kind, ev.Msg = wire.KindMsg, &e.Msg
	case wire.KindRecall:
		ev.Recall = &e.Msg
	case wire.KindEdit:
		ev.Edit = &e.Msg
	case wire.KindReaction:
		ev.Reaction = &e.Msg
	case wire.KindDelete:
		ev.Delete = &e.Msg
	case wire.KindUnread:
		ev.Unread = &wire.Unread{Kind: e.Kind, Total: e.Total, Peer: e.Peer, Group: e.Group, Count: e.Count}
	case wire.KindGroup:
		if e.Seq > 0 && e.Group != "" {
			ev.GroupChange = &e.Msg
		} else {
			ev.Group = &wire.GroupEvent{Kind: e.Kind, Group: e.Group, Action: e.Action, By: e.By}
		}
	case wire.KindSettings:
		ev.Settings = &wire.ConvSettings{Kind: e.Kind, Peer: e.Peer, Group: e.Group, Mute: e.Mute, MuteUntil: e.MuteUntil, Pin: e.Pin}
	case wire.KindReceipt:
		ev.Ver, ev.Receipt = 0, &wire.Receipt{Kind: e.Kind, Peer: e.Peer, Upto: e.Upto, TS: e.TS}
	case wire.KindTyping:
		ev.Ver, ev.Typing = 0, &wire.TypingEvent{Kind: e.Kind, From: e.From, Peer: e.Peer, Group: e.Group, State: e.State}
	case wire.KindContact:
		ev.Ver, ev.Contact = 0, &wire.ContactEvent{Kind: e.Kind, Action: e.Action, User: e.User, Since: e.Since}
	case wire.KindBlock:
		ev.Ver, ev.Block = 0, &wire.BlockEvent{Kind: e.Kind, User: e.User, Blocked: e.Blocked}
	case wire.KindPresence:
		ev.Ver, ev.Presence = 0, &wire.PresenceEvent{Kind: e.Kind, User: e.User, Online: e.Online, LastSeen: e.LastSeen}
	}
	return ev, nil
}

// encodeSync is a sync batch as the server encodes it (sync.Encode):
// wire.Marshal's JSON, gzip-compressed when compress is "gzip".
func encodeSync(b wire.Sync, compress string) ([]byte, error) {
	raw, err := wire.Marshal(b)
	if err != nil || compress != "gzip" {
		return raw, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
