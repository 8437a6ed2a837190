package sync_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
	"github.com/imqtt/imqtt/wire/wiretest"
)

// oddBatches are sync batches with odd messages, empty and nil items.
func oddBatches() []wire.Sync {
	r := rand.New(rand.NewPCG(6, 100_000))
	out := []wire.Sync{{Kind: wire.KindSync}, {Kind: wire.KindSync, Items: []wire.Msg{}}, benchBatch(3)}
	for range 500 {
		b := wire.Sync{Kind: wire.KindSync, Group: wiretest.OddString(r), Since: r.Uint64(), Upto: r.Uint64(), More: r.IntN(2) == 0,
			Epoch: wiretest.OddString(r), Reset: r.IntN(2) == 0}
		for range r.IntN(6) {
			b.Items = append(b.Items, wiretest.OddMsg(r))
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
		got, err := imsync.Encode(b, imsync.Encoding{})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("batch %d: Encode gave\n%q, %v\nencoding/json\n%q", i, got, err, want)
		}
		z, err := imsync.Encode(b, imsync.Encoding{Compress: "gzip"})
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

// TestEncodeLineMatchesHTTP: an HTTP body (Line) is byte for byte what
// GET /v1/sync wrote before it shared Encode with the MQTT uplink:
// json.Encoder's output, and gzip.BestSpeed's compression of it. The MQTT
// payload's gzip is likewise what a fresh BestSpeed writer makes.
func TestEncodeLineMatchesHTTP(t *testing.T) {
	for i, b := range oddBatches() {
		var want, wantZ, wantMQTTZ bytes.Buffer
		if err := json.NewEncoder(&want).Encode(b); err != nil {
			t.Fatal(err)
		}
		zw, _ := kgzip.NewWriterLevel(&wantZ, kgzip.BestSpeed)
		if err := json.NewEncoder(zw).Encode(b); err != nil || zw.Close() != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(b)
		zw, _ = kgzip.NewWriterLevel(&wantMQTTZ, kgzip.BestSpeed)
		if _, err := zw.Write(raw); err != nil || zw.Close() != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			enc  imsync.Encoding
			want []byte
		}{
			{imsync.Encoding{Line: true}, want.Bytes()},
			{imsync.Encoding{Line: true, Compress: "gzip"}, wantZ.Bytes()},
			{imsync.Encoding{Compress: "gzip"}, wantMQTTZ.Bytes()},
		} {
			got, err := imsync.Encode(b, c.enc)
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("batch %d, %+v: Encode gave\n%q, %v\nwant\n%q", i, c.enc, got, err, c.want)
			}
		}
	}
}
