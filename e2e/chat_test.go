package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestLiveChat: alice sends over MQTT; the ack comes after the write with the
// sender's version; bob's devices and alice's other device see the message.
func TestLiveChat(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	alicePad := connect(t, s.MQTT, "alice", "pad", login(t, s, "alice", "pad")) // a token opens only its own device
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	bobLaptop := connect(t, s.MQTT, "bob", "laptop", "secret-bob") // the account password works too

	ack, werr := alice.send("bob", "c-1", "hi bob")
	if werr != nil {
		t.Fatalf("send: %v", werr)
	}
	if ack.Kind != "ack" || ack.CMID != "c-1" || ack.ID == "" || ack.Ver != 1 || ack.TS == 0 {
		t.Fatalf("ack = %+v", ack)
	}
	for _, d := range []*device{bob, bobLaptop, alice, alicePad} {
		wait.For(t, d.user+"/"+d.device+" gets the message", 10*time.Second, func() bool { return len(d.msgs()) == 1 })
		m := d.msgs()[0]
		if m.ID != ack.ID || m.From != "alice" || m.To != "bob" || m.Body != "hi bob" || m.Type != "text" || m.CMID != "c-1" {
			t.Fatalf("%s/%s got %+v", d.user, d.device, m)
		}
		wantVer := uint64(1)
		if m.Ver != wantVer {
			t.Fatalf("%s/%s ver = %d, want %d", d.user, d.device, m.Ver, wantVer)
		}
	}

	// bob answers; versions move on per user.
	ack2, werr := bob.send("alice", "b-1", "hi alice")
	if werr != nil || ack2.Ver != 2 {
		t.Fatalf("bob's ack = %+v %v, want ver 2", ack2, werr)
	}
	wait.For(t, "alice gets bob's answer", 10*time.Second, func() bool { return len(alice.msgs()) == 2 })
	if m := alice.msgs()[1]; m.Ver != 2 || m.From != "bob" {
		t.Fatalf("alice got %+v", m)
	}
}

// TestDuplicateCMID: the same cmid twice stores once and acks twice alike,
// also across a restart.
func TestDuplicateCMID(t *testing.T) {
	s := testserver.Start(t)
	account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	first, werr := alice.send("bob", "dup-1", "once")
	if werr != nil {
		t.Fatal(werr)
	}
	alice.publish(wire.TopicSend, wire.Send{CMID: "dup-1", To: "bob", Type: "text", Body: "once"})
	wait.For(t, "second ack", 10*time.Second, func() bool { return len(alice.directOf("ack")) == 2 })
	var second wire.Ack
	_ = json.Unmarshal(alice.directOf("ack")[1], &second)
	if second != first {
		t.Fatalf("second ack %+v != first %+v", second, first)
	}

	s.Restart(t)
	tok := login(t, s, "alice", "phone")
	var third wire.Ack
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", tok, wire.Send{CMID: "dup-1", To: "bob", Type: "text", Body: "once"}, &third); code != 200 {
		t.Fatalf("resend over HTTP: %d", code)
	}
	if third != first {
		t.Fatalf("ack after restart %+v != first %+v", third, first)
	}
	var sync wire.Sync
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync?since=0", login(t, s, "bob", "phone"), nil, &sync); code != 200 || len(sync.Items) != 1 {
		t.Fatalf("bob's sync: %d %+v", code, sync)
	}
}

// TestOfflineSync: bob is away while alice sends; on return he syncs by
// version in batches, plain and gzip, and gets each message once, in order.
func TestOfflineSync(t *testing.T) {
	s := testserver.Start(t)
	bobTok := account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	const n = 25
	for i := range n {
		if _, werr := alice.send("bob", fmt.Sprintf("c-%d", i), strconv.Itoa(i)); werr != nil {
			t.Fatal(werr)
		}
	}
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	bob.publish(wire.TopicSync, wire.SyncRequest{Since: 10, Limit: 10})
	wait.For(t, "sync batch", 10*time.Second, func() bool { return len(bob.directOf("sync")) == 1 })
	var b wire.Sync
	_ = json.Unmarshal(bob.directOf("sync")[0], &b)
	if b.Since != 10 || b.Upto != 20 || !b.More || len(b.Items) != 10 || b.Epoch == "" {
		t.Fatalf("batch = since %d upto %d more %v items %d epoch %q", b.Since, b.Upto, b.More, len(b.Items), b.Epoch)
	}
	for i, m := range b.Items {
		if m.Ver != uint64(11+i) || m.Body != strconv.Itoa(10+i) {
			t.Fatalf("item %d = %+v", i, m)
		}
	}
	bob.publish(wire.TopicSync, wire.SyncRequest{Since: b.Upto, Limit: 100, Epoch: b.Epoch})
	wait.For(t, "second sync batch", 10*time.Second, func() bool { return len(bob.directOf("sync")) == 2 })
	_ = json.Unmarshal(bob.directOf("sync")[1], &b)
	if b.Upto != n || b.More || len(b.Items) != n-20 {
		t.Fatalf("last batch = since %d upto %d more %v items %d", b.Since, b.Upto, b.More, len(b.Items))
	}
}

// TestGzipSync: a sync asked with "compress":"gzip" comes as gzip-compressed JSON.
func TestGzipSync(t *testing.T) {
	s := testserver.Start(t)
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	for i := range 3 {
		if _, werr := alice.send("bob", fmt.Sprint(i), strings.Repeat("compressible ", 50)); werr != nil {
			t.Fatal(werr)
		}
	}
	bob.publish(wire.TopicSync, wire.SyncRequest{Since: 0, Compress: "gzip"})
	wait.For(t, "gzip batch", 10*time.Second, func() bool { bob.mu.Lock(); defer bob.mu.Unlock(); return len(bob.direct) == 1 })
	raw := bob.direct[0]
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("reply is not gzip: %q", raw[:min(len(raw), 20)])
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var b wire.Sync
	if err := json.NewDecoder(zr).Decode(&b); err != nil {
		t.Fatal(err)
	}
	if b.Kind != "sync" || len(b.Items) != 3 || b.Upto != 3 || b.More {
		t.Fatalf("batch = %+v", b)
	}
}

// TestTakeover: the same {user}/{device} connecting again takes the session
// over: the old connection is closed, the new one gets the messages.
func TestTakeover(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "bob", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	old := connect(t, s.MQTT, "bob", "phone", tok)
	fresh := connect(t, s.MQTT, "bob", "phone", tok)
	wait.For(t, "old connection closed", 10*time.Second, func() bool { return !old.c.IsConnectionOpen() })
	if _, werr := alice.send("bob", "t1", "to the new one"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "new connection gets it", 10*time.Second, func() bool { return len(fresh.msgs()) == 1 })
	if len(old.msgs()) != 0 {
		t.Fatalf("old connection got %v", old.msgs())
	}
}
