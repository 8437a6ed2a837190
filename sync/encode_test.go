package sync_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/imqtt/imqtt/internal/wiretest"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// oddMsg is a message with every field set or left empty at random, and
// the kinds of meta and inline media clients send.
func oddMsg(r *rand.Rand) wire.Msg {
	m := wire.Msg{Kind: wire.KindMsg, ID: wiretest.OddString(r), Ver: r.Uint64() >> r.IntN(64), From: wiretest.OddString(r), To: wiretest.OddString(r),
		Group: wiretest.OddString(r), Seq: r.Uint64() >> r.IntN(65), Type: wiretest.OddString(r), Body: wiretest.OddString(r), Media: wiretest.OddString(r),
		TS: r.Int64() - r.Int64(), CMID: wiretest.OddString(r)}
	switch r.IntN(5) {
	case 0:
		m.Meta = json.RawMessage(`{"w": 800, "s":"\u00e9\ud83d\ude00 <x>", "a":[1, 2.5e3, -0, true, null, {}]}`)
	case 1:
		m.Meta = json.RawMessage(`"str"`)
	case 2:
		m.Meta = json.RawMessage("[ ]\n")
	}
	if r.IntN(2) == 0 {
		m.Inline = &wire.Inline{Type: wiretest.OddString(r)}
		if r.IntN(5) > 0 {
			m.Inline.Data = make([]byte, r.IntN(40))
			for i := range m.Inline.Data {
				m.Inline.Data[i] = byte(r.IntN(256))
			}
		}
	}
	return m
}

// oddBatches are sync batches with odd messages, empty and nil items.
func oddBatches() []wire.Sync {
	r := rand.New(rand.NewPCG(6, 100_000))
	out := []wire.Sync{{Kind: wire.KindSync}, {Kind: wire.KindSync, Items: []wire.Msg{}}, benchBatch(3)}
	for range 500 {
		b := wire.Sync{Kind: wire.KindSync, Group: wiretest.OddString(r), Since: r.Uint64(), Upto: r.Uint64(), More: r.IntN(2) == 0,
			Epoch: wiretest.OddString(r), Reset: r.IntN(2) == 0}
		for range r.IntN(6) {
			b.Items = append(b.Items, oddMsg(r))
		}
		out = append(out, b)
	}
	return out
}

// Encode's JSON is byte for byte encoding/json's (clients may compare or
// hash payloads, and the SDK's fast paths look at prefixes), and its gzip
// is a standard stream that compress/gzip reads.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	for i, b := range oddBatches() {
		want, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := imsync.Encode(b, "")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("batch %d: Encode gave\n%q, %v\nencoding/json\n%q", i, got, err, want)
		}
		z, err := imsync.Encode(b, "gzip")
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatalf("batch %d: not gzip: %v", i, err)
		}
		if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("batch %d: gunzipped\n%q, %v\nwant\n%q", i, got, err, want)
		}
	}
}
