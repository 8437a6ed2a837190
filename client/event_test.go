package client

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

func gz(t *testing.T, p []byte) []byte {
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
	b, items, err := decodeSync(p)
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
