package pebble

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
)

func TestMessageCodec(t *testing.T) {
	cases := []store.Message{
		{},
		{ID: 1, From: "alice", To: "bob", Type: "text", Body: "hi", CMID: "c1", TS: 1_700_000_000_000},
		{ID: 1 << 62, From: "alice", Group: "g", Seq: 1 << 40, Type: "image", Body: "", Media: "m-1",
			Meta: json.RawMessage(`{"n":1}`), TS: -5, Inline: &store.Inline{Type: "image/webp", Data: []byte{0, 1, 255}}},
		{ID: 2, Inline: &store.Inline{Type: "x", Data: []byte{}}},
		{ID: 3, Inline: &store.Inline{}},
		{ID: 4, Body: "héllo \x00 wörld", Meta: json.RawMessage(`[1,2]`)},
	}
	for _, m := range cases {
		val, err := appendMessage(nil, &m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		var got store.Message
		if err := decodeMessage(val, &got); err != nil {
			t.Fatalf("decode %+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
		// The JSON of older stores decodes to the same message.
		old, _ := json.Marshal(&m)
		var fromJSON store.Message
		if err := decodeMessage(old, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, got) {
			t.Errorf("JSON value: got %+v, %v; want %+v", fromJSON, err, got)
		}
		for n := range len(val) { // every truncation is caught
			if decodeMessage(val[:n], &store.Message{}) == nil {
				t.Errorf("%+v truncated to %d bytes decoded", m, n)
			}
		}
	}
}

func TestMessageCodecMeta(t *testing.T) {
	m := store.Message{ID: 1, Meta: json.RawMessage(`{ "a" : [1, 2] }`)}
	val, err := appendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	var got store.Message
	if err := decodeMessage(val, &got); err != nil || string(got.Meta) != `{"a":[1,2]}` {
		t.Errorf("meta %q, %v; want it compacted as json.Marshal did", got.Meta, err)
	}
	if _, err := appendMessage(nil, &store.Message{Meta: json.RawMessage(`{`)}); err == nil {
		t.Error("invalid meta encoded")
	}
	if _, err := appendMessage(nil, &store.Message{Meta: json.RawMessage{}}); err != nil {
		t.Errorf("empty meta: %v", err)
	}
}

// TestReadJSONMessages: a store written before the binary form serves its
// messages through Range, History and GetMessages.
func TestReadJSONMessages(t *testing.T) {
	ctx := t.Context()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := store.Message{ID: 7, From: "alice", To: "bob", Type: "text", Body: "old", TS: 1}
	b := &store.Batch{Messages: []store.Message{m},
		Entries: []store.Entry{{User: "bob", Ver: 1, Peer: "alice", MsgID: 7}}}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	old, _ := json.Marshal(&m)
	if err := s.db.Set(msgKey(nil, 7), old, nil); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Range(ctx, "bob", 0, 0)
	if err != nil || len(evs) != 1 || !reflect.DeepEqual(evs[0].Msg, m) {
		t.Fatalf("range: %+v, %v", evs, err)
	}
	hist, err := s.History(ctx, "bob", "alice", 0, 0)
	if err != nil || len(hist) != 1 || hist[0].Msg.Body != "old" {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	msgs, err := s.GetMessages(ctx, []int64{7})
	if err != nil || len(msgs) != 1 || msgs[0].Body != "old" {
		t.Fatalf("get messages: %+v, %v", msgs, err)
	}
}

// TestMessageCodecMentions: mentions round-trip; a value without them is
// the bytes of before (an old row decodes, with none); a truncated one is
// caught, but for the cut right before the mentions, which is that older
// form.
func TestMessageCodecMentions(t *testing.T) {
	m := store.Message{ID: 9, From: "alice", Group: "g", Seq: 3, Type: "text", Body: "hi @bob",
		TS: 7, Mentions: []string{"bob", "@all", "carol.x"}}
	val, err := appendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	var got store.Message
	if err := decodeMessage(val, &got); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, m)
	}
	before := m
	before.Mentions = nil
	old, err := appendMessage(nil, &before)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(val, old) {
		t.Fatalf("a value with mentions does not extend the one without: %x, %x", val, old)
	}
	for n := range len(val) {
		var got store.Message
		err := decodeMessage(val[:n], &got)
		if n == len(old) {
			if err != nil || got.Mentions != nil || !reflect.DeepEqual(got, before) {
				t.Errorf("the value of before: %+v, %v; want %+v", got, err, before)
			}
			continue
		}
		if err == nil {
			t.Errorf("truncated to %d bytes decoded: %+v", n, got)
		}
	}
	// A count past the bytes left is refused before anything is made.
	huge := binary.AppendUvarint(append([]byte(nil), old...), 1<<40)
	if err := decodeMessage(huge, &store.Message{}); err == nil {
		t.Error("a count of 2^40 mentions decoded")
	}
	// JSON (older stores) carries them too.
	js, _ := json.Marshal(&m)
	var fromJSON store.Message
	if err := decodeMessage(js, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, m) {
		t.Errorf("JSON value: %+v, %v", fromJSON, err)
	}
}

// TestMessageCodecLife: the lifecycle's fields round-trip; a message
// without them is the bytes of before (golden: what the release before
// them wrote), and a value with them extends that one, so every older row
// decodes as it did.
func TestMessageCodecLife(t *testing.T) {
	plain := store.Message{ID: 9, From: "alice", To: "bob", Type: "text", Body: "hi", Meta: json.RawMessage(`{"a":1}`),
		CMID: "c9", TS: 7, Mentions: []string{"bob"}}
	const golden = "010905616c69636503626f620000047465787402686900087b2261223a317d0263390e000103626f62"
	val, err := appendMessage(nil, &plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := hexString(val); got != golden {
		t.Fatalf("a message without the lifecycle's fields encodes to\n %s\nnot the bytes of before\n %s", got, golden)
	}
	cases := []store.Message{
		{ID: 10, From: "bob", To: "alice", Type: "text", TS: 8, ReplyTo: 9},
		{ID: 11, From: "bob", Group: "g", Seq: 4, Type: "image", TS: 8, Recalled: 12, RecalledBy: "alice", Mentions: []string{"x"}},
		{ID: 12, From: "bob", Type: "text", Body: "fixed", TS: 8, Edited: -3, Reacted: true},
		{ID: 13, Reacted: true},
		{ID: 14, From: "bob", To: "alice", TS: 9, Change: &store.Change{Kind: store.ChangeReaction, Target: 9, Emoji: "👍", Add: true}},
		{ID: 15, From: "bob", Group: "g", Seq: 5, TS: 9, Change: &store.Change{Kind: store.ChangeDelete, IDs: []int64{1, -2, 1 << 60}, Peer: "alice", Count: 1 << 33}},
		{ID: 16, Change: &store.Change{}},
	}
	for _, m := range cases {
		val, err := appendMessage(nil, &m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		var got store.Message
		if err := decodeMessage(val, &got); err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: %+v, %v\nwant %+v", got, err, m)
		}
		before := m
		before.ReplyTo, before.Recalled, before.RecalledBy, before.Edited, before.Reacted, before.Change = 0, 0, "", 0, false, nil
		old, _ := appendMessage(nil, &before)
		if !bytes.HasPrefix(val, old) {
			t.Errorf("%d: a value with the lifecycle's fields does not extend the one without", m.ID)
		}
		bare := before
		bare.Mentions = nil
		older, _ := appendMessage(nil, &bare) // before the mentions: an older form too
		for n := range len(val) {
			var got store.Message
			err := decodeMessage(val[:n], &got)
			if n == len(old) {
				if err != nil || !reflect.DeepEqual(got, before) {
					t.Errorf("%d: the value of before: %+v, %v", m.ID, got, err)
				}
				continue
			}
			if n == len(older) && err == nil && reflect.DeepEqual(got, bare) {
				continue
			}
			if err == nil {
				t.Errorf("%d truncated to %d bytes decoded: %+v", m.ID, n, got)
			}
		}
		js, _ := json.Marshal(&m)
		var fromJSON store.Message
		if err := decodeMessage(js, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, m) {
			t.Errorf("JSON value: %+v, %v", fromJSON, err)
		}
	}
	// Unknown flags (a later release's) and no flags are refused.
	base, _ := appendMessage(nil, &store.Message{ID: 1})
	for _, flags := range []uint64{0, 1 << 10} {
		v := binary.AppendUvarint(append(append([]byte(nil), base...), 0), flags)
		if err := decodeMessage(v, &store.Message{}); err == nil {
			t.Errorf("flags %#x decoded", flags)
		}
	}
}

func hexString(b []byte) string { return fmt.Sprintf("%x", b) }
