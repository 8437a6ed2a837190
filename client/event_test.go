package client

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

func gz(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(p)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecompress(t *testing.T) {
	plain := []byte(`{"kind":"sync","since":1,"upto":2,"more":false,"epoch":"e","items":[{"kind":"msg","id":"7","ver":2,"from":"a","to":"b","type":"text","body":"hi","ts":1}]}`)
	got, err := Decompress(plain)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("plain JSON: %q, %v", got, err)
	}
	got, err = Decompress(gz(t, plain))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("gzip: %q, %v", got, err)
	}
	if _, err := Decompress([]byte{0x1f, 0x8b, 1, 2, 3}); err == nil {
		t.Fatal("a broken gzip stream decoded without error")
	}
}

func TestDecodeSyncGzip(t *testing.T) {
	want := wire.Sync{Kind: wire.KindSync, Since: 3, Upto: 9, More: true, Epoch: "ep", Items: []wire.Msg{
		{Kind: wire.KindMsg, ID: "100", Ver: 4, From: "alice", To: "bob", Type: "text", Body: "hi", TS: 5, Meta: json.RawMessage(`{"w":1}`)},
		{Kind: wire.KindMsg, ID: "101", Ver: 9, From: "bob", To: "alice", Type: "text", Body: "yo", TS: 6},
	}}
	raw, _ := json.Marshal(want)
	p, err := Decompress(gz(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	b, items, _, err := decodeSync(p)
	if err != nil {
		t.Fatal(err)
	}
	if b.Since != 3 || b.Upto != 9 || !b.More || b.Epoch != "ep" || len(items) != 2 {
		t.Fatalf("batch %+v with %d items", b, len(items))
	}
	for i, it := range items {
		if !it.Synced || it.Kind != wire.KindMsg || it.Ver != want.Items[i].Ver || it.Msg == nil || it.Msg.Body != want.Items[i].Body {
			t.Fatalf("item %d = %+v", i, it)
		}
	}
	if !strings.Contains(string(items[0].Raw), `"meta":{"w":1}`) {
		t.Fatalf("raw item lost fields: %s", items[0].Raw)
	}
}

func TestDecodeEventKinds(t *testing.T) {
	ev, err := decodeEvent(json.RawMessage(`{"kind":"unread","total":3,"peer":"bob","count":0}`), false)
	if err != nil || ev.Kind != wire.KindUnread || ev.Unread == nil || ev.Unread.Total != 3 || ev.Ver != 0 {
		t.Fatalf("unread: %+v, %v", ev, err)
	}
	ev, err = decodeEvent(json.RawMessage(`{"kind":"recall","ver":5,"id":"9"}`), false)
	if err != nil || ev.Kind != "recall" || ev.Ver != 5 || ev.Msg != nil {
		t.Fatalf("unknown kind: %+v, %v", ev, err)
	}
	if _, err := decodeEvent(json.RawMessage(`{"kind":`), false); err == nil {
		t.Fatal("broken JSON decoded")
	}
}

func TestRetryable(t *testing.T) {
	for code, want := range map[string]bool{
		wire.CodeUnavailable: true, wire.CodeBusy: true,
		wire.CodeNotMember: false, wire.CodeBadType: false, wire.CodeInternal: false,
	} {
		if got := Retryable(wire.NewError(code, "x")); got != want {
			t.Errorf("Retryable(%s) = %v", code, got)
		}
	}
	if Retryable(errors.New("busy")) {
		t.Error("a plain error is retryable")
	}
}

func TestNewCMID(t *testing.T) {
	a, b := NewCMID(), NewCMID()
	if a == b || !strings.HasPrefix(a, "c-") || len(a) != 26 {
		t.Fatalf("NewCMID gave %q and %q", a, b)
	}
}

// An event of a kind this SDK does not know is delivered even when one of
// its fields has a name the SDK uses with another type.
func TestDecodeEventUnknownKindOtherTypes(t *testing.T) {
	ev, err := decodeEvent(json.RawMessage(`{"kind":"poll","ver":6,"body":{"q":"?"},"total":"many"}`), true)
	if err != nil || ev.Kind != "poll" || ev.Ver != 6 || ev.Msg != nil || ev.Unread != nil || !ev.Synced {
		t.Fatalf("unknown kind: %+v, %v", ev, err)
	}
	if _, err := decodeEvent(json.RawMessage(`{"kind":"msg","ver":6,"body":{"q":"?"}}`), false); err == nil {
		t.Fatal("a msg with an object body decoded")
	}
	ev, err = decodeEvent(json.RawMessage(`{"ver":2,"id":"1","from":"a","type":"text","body":"x","ts":1}`), true)
	if err != nil || ev.Kind != wire.KindMsg || ev.Msg == nil || ev.Msg.Kind != wire.KindMsg || ev.Msg.Body != "x" {
		t.Fatalf("sync item without kind: %+v, %v", ev, err)
	}
}

// syncBatch is a sync reply of n 64-byte messages as the server encodes it.
func syncBatch(n int) []byte {
	b := wire.Sync{Kind: wire.KindSync, Since: 0, Upto: uint64(n), More: true, Epoch: "ep"}
	for i := range n {
		b.Items = append(b.Items, wire.Msg{Kind: wire.KindMsg, ID: "7340000000000000000", Ver: uint64(i + 1), From: "bench-sender",
			To: "bench-receiver", Type: "text", Body: strings.Repeat("b", 64), TS: 1_700_000_000_000, CMID: "c-0123456789abcdef01234567"})
	}
	p, _ := json.Marshal(b)
	return p
}

func BenchmarkDecodeSync(b *testing.B) {
	p := syncBatch(500)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for range b.N {
		if _, items, _, err := decodeSync(p); err != nil || len(items) != 500 {
			b.Fatal(len(items), err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkDecodeEvent(b *testing.B) {
	p, _ := json.Marshal(wire.Msg{Kind: wire.KindMsg, ID: "7340000000000000000", Ver: 42, From: "bench-sender",
		To: "bench-receiver", Type: "text", Body: strings.Repeat("b", 64), TS: 1_700_000_000_000, CMID: "c-0123456789abcdef01234567"})
	b.ReportAllocs()
	for range b.N {
		if ev, err := decodeEvent(p, false); err != nil || ev.Msg == nil {
			b.Fatal(err)
		}
	}
}

// A batch big enough to be decoded on several goroutines keeps its order,
// and one bad item fails it; the pooled gzip readers serve one payload
// after another.
func TestDecodeSyncBigBatch(t *testing.T) {
	for range 3 {
		p, err := Decompress(gz(t, syncBatch(300)))
		if err != nil {
			t.Fatal(err)
		}
		_, items, _, err := decodeSync(p)
		if err != nil || len(items) != 300 {
			t.Fatalf("%d items, %v", len(items), err)
		}
		for i, it := range items {
			if it.Ver != uint64(i+1) || it.Msg == nil || !it.Synced {
				t.Fatalf("item %d = %+v", i, it)
			}
		}
	}
	// One bad item is left out, and only it: it used to fail the whole
	// batch, which the client then asked for again, forever.
	bad := bytes.Replace(syncBatch(300), []byte(`"ver":250,`), []byte(`"ver":"x",`), 1)
	b, items, skipped, err := decodeSync(bad)
	if err != nil || len(items) != 299 || len(skipped) != 1 || b.Upto != 300 {
		t.Fatalf("upto %d, %d items, skipped %v, %v", b.Upto, len(items), skipped, err)
	}
	for i, it := range items {
		if want := uint64(i + 1 + i/249); it.Ver != want {
			t.Fatalf("item %d has ver %d, want %d", i, it.Ver, want)
		}
	}
}

// poisonMeta is a message whose meta nests n levels deep.
func poisonItem(ver uint64, n int) string {
	return fmt.Sprintf(`{"kind":"msg","id":"%d","ver":%d,"from":"mallory","to":"bob","type":"text","body":"x","ts":1,"meta":%s%s}`,
		100+ver, ver, strings.Repeat(`{"a":`, n), strings.Repeat(`}`, n))
}

// Attack finding 4: a batch with a poison item (meta nested 9,998 levels,
// past encoding/json's and go-json's own limits for the whole document)
// still gives its header and every other item; an item past wire.MaxDepth
// but within the decoder's limits is skipped too.
func TestDecodeSyncPoisonItem(t *testing.T) {
	for _, depth := range []int{wire.MaxDepth + 1, 9_998, 100_000} {
		p := []byte(`{"kind":"sync","since":4,"upto":8,"more":true,"epoch":"ep","items":[` +
			`{"kind":"msg","id":"105","ver":5,"from":"alice","to":"bob","type":"text","body":"a","ts":1},` +
			poisonItem(6, depth) + `, {"ver":7,"id":"107","from":"alice","body":"[\"],{"}` + "\n ]}")
		b, items, skipped, err := decodeSync(p)
		if err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		if b.Since != 4 || b.Upto != 8 || !b.More || b.Epoch != "ep" || len(skipped) != 1 || len(items) != 2 ||
			items[0].Ver != 5 || items[1].Ver != 7 || items[1].Msg.Body != `["],{` {
			t.Fatalf("depth %d: batch %+v, items %+v, skipped %v", depth, b, items, skipped)
		}
		if !errors.Is(skipped[0], wire.ErrTooDeep) || strings.Contains(skipped[0].Error(), `{"a"`) {
			t.Fatalf("depth %d: skipped because %v", depth, skipped[0])
		}
		d, err := decodeDevice(p)
		if err != nil || d.Kind != wire.KindSync || len(d.Items) != 3 || d.Upto != 8 {
			t.Fatalf("depth %d: device event %+v, %v", depth, d.Sync, err)
		}
	}
	if _, err := decodeEvent(json.RawMessage(poisonItem(6, 9_998)), false); !errors.Is(err, wire.ErrTooDeep) {
		t.Fatalf("poison event: %v", err)
	}
}

// splitSync finds the items the way a decoder would, or refuses.
func TestSplitSync(t *testing.T) {
	for in, want := range map[string][]string{
		`{"items":[]}`: nil,
		` { "kind" : "sync" , "items" : [ 1 , "a]" , {"items":[9]} , [ ] ] } `: {`1`, `"a]"`, `{"items":[9]}`, `[ ]`},
		`{"items":[1],"x":{"items":[2]},"items":[3]}`:                          {`3`},
		`{"a":"items","b":[1]}`:                                                nil,
	} {
		rs, err := splitSync([]byte(in))
		if want == nil && in != `{"items":[]}` {
			if err == nil {
				t.Errorf("%s: split into %q", in, rs.Items)
			}
			continue
		}
		if err != nil || len(rs.Items) != len(want) {
			t.Errorf("%s: %q, %v", in, rs.Items, err)
			continue
		}
		for i := range want {
			if string(rs.Items[i]) != want[i] {
				t.Errorf("%s: item %d is %q, want %q", in, i, rs.Items[i], want[i])
			}
		}
	}
	for _, in := range []string{``, `[]`, `{"items":[1}`, `{"items":[1]`, `{"items":"[1]"}`, `{"items":[1]}}`, `{"items":["]}`} {
		if rs, err := splitSync([]byte(in)); err == nil {
			t.Errorf("%s: split into %q", in, rs.Items)
		}
	}
}

// BenchmarkDecompress unzips a 500-item sync batch as the server sends it,
// with bodies like those of `imqtt bench sync`.
func BenchmarkDecompress(b *testing.B) {
	batch := wire.Sync{Kind: wire.KindSync, Upto: 500, More: true, Epoch: "ep"}
	for i := range 500 {
		body := fmt.Sprintf("0123abcd:0:%d:%d:", i, 1_700_000_000_000_000_000+int64(i)*20_000)
		batch.Items = append(batch.Items, wire.Msg{Kind: wire.KindMsg, ID: fmt.Sprint(7340000000000000000 + i), Ver: uint64(i + 1),
			From: "bench-sender", To: "bench-receiver", Type: "text", Body: body + strings.Repeat("x", 64-len(body)),
			TS: 1_700_000_000_000 + int64(i), CMID: fmt.Sprintf("0123abcd-%d", i)})
	}
	raw, _ := json.Marshal(batch)
	p, err := encodeSync(batch, "gzip")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for range b.N {
		if out, err := Decompress(p); err != nil || len(out) != len(raw) {
			b.Fatal(len(out), err)
		}
	}
}
