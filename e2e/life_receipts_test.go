package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// receipts returns the receipt events d received.
func (d *device) receipts() []wire.Receipt {
	var out []wire.Receipt
	for _, raw := range d.inboxOf(wire.KindReceipt) {
		var r wire.Receipt
		if json.Unmarshal(raw, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// typings returns the typing events d received.
func (d *device) typings() []wire.TypingEvent {
	var out []wire.TypingEvent
	for _, raw := range d.inboxOf(wire.KindTyping) {
		var ev wire.TypingEvent
		if json.Unmarshal(raw, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// readAndSettle has a read r by reader, whose device d sees it done (its
// unread event: the receipt, if any, is published just before it is).
func readAndSettle(t *testing.T, reader actor, d *device, r wire.Read) {
	t.Helper()
	before := len(d.inboxOf(wire.KindUnread))
	reader.read(r)
	wait.For(t, d.user+"'s read done", 10*time.Second, func() bool { return len(d.inboxOf(wire.KindUnread)) > before })
}

// TestLifeReceipts: over MQTT and HTTP, bob's read of alice's message
// sends alice's live device a receipt and sets peer_read in her list;
// with read_receipts:false (PUT /v1/me/settings) neither bob's reads nor
// alice's tell anyone, and neither list shows peer_read.
func TestLifeReceipts(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		ok := mustOK(t)
		alice, alicePhone := act("alice")
		bob, bobPhone := act("bob")
		aliceTok, bobTok := login(t, s, "alice", "web"), login(t, s, "bob", "web")
		peerRead := func(token, peer string) string {
			t.Helper()
			c, _ := conv(conversations(t, s, token), peer)
			return c.PeerRead
		}

		m := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "read me"}))
		bobPhone.await(wire.KindMsg, m.ID)
		readAndSettle(t, bob, bobPhone, wire.Read{Peer: "alice", Upto: m.ID})
		wait.For(t, "alice's receipt", 10*time.Second, func() bool { return len(alicePhone.receipts()) == 1 })
		if r := alicePhone.receipts()[0]; r.Kind != wire.KindReceipt || r.Peer != "bob" || r.Upto != m.ID || r.TS == 0 {
			t.Fatalf("receipt %+v", r)
		}
		if got := peerRead(aliceTok, "bob"); got != m.ID {
			t.Fatalf("alice's peer_read %q, want %q", got, m.ID)
		}
		if n := len(bobPhone.receipts()); n != 0 {
			t.Fatalf("bob, the reader, got %d receipts", n)
		}

		// bob turns receipts off: both ways.
		off := false
		var set wire.UserSettings
		if code := httpJSON(t, "PUT", s.HTTP+"/v1/me/settings", bobTok, wire.UserSettings{ReadReceipts: &off}, &set); code != 200 || set.ReadReceipts == nil || *set.ReadReceipts {
			t.Fatalf("PUT settings: %d %+v", code, set)
		}
		var got wire.UserSettings
		if code := httpJSON(t, "GET", s.HTTP+"/v1/me/settings", bobTok, nil, &got); code != 200 || got.ReadReceipts == nil || *got.ReadReceipts {
			t.Fatalf("GET settings: %d %+v", code, got)
		}
		m2 := ok(alice.send(wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "unseen"}))
		bobPhone.await(wire.KindMsg, m2.ID)
		readAndSettle(t, bob, bobPhone, wire.Read{Peer: "alice", Upto: m2.ID})
		// A message after the read comes after any receipt it would have caused.
		b := ok(bob.send(wire.Send{CMID: "b1", To: "alice", Type: "text", Body: "marker"}))
		alicePhone.await(wire.KindMsg, b.ID)
		readAndSettle(t, alice, alicePhone, wire.Read{Peer: "bob", Upto: b.ID})
		a := ok(alice.send(wire.Send{CMID: "a3", To: "bob", Type: "text", Body: "marker"}))
		bobPhone.await(wire.KindMsg, a.ID)
		if n := len(alicePhone.receipts()); n != 1 {
			t.Errorf("alice got %d receipts, want only the one before bob turned them off", n)
		}
		if n := len(bobPhone.receipts()); n != 0 {
			t.Errorf("bob, receipts off, got %d", n)
		}
		if pr := peerRead(aliceTok, "bob"); pr != "" {
			t.Errorf("alice sees bob's peer_read %q with his receipts off", pr)
		}
		if pr := peerRead(bobTok, "alice"); pr != "" {
			t.Errorf("bob, receipts off, sees peer_read %q", pr)
		}
	})
}

// TestLifeTyping: over MQTT and HTTP, typing reaches the peer's live
// device; a burst of 50 relays 1 or 2 (one a second), the rest dropped
// and counted in imqtt_limit_refusals_total{limit="typing_rate"} (docs/protocol.md says imqtt_refused_total).
func TestLifeTyping(t *testing.T) {
	const dropped = `imqtt_limit_refusals_total{limit="typing_rate"}`
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		_, alicePhone := act("alice")
		bob, _ := act("bob")
		before := metric(t, s, dropped)
		const burst = 50
		for range burst {
			bob.typing(wire.Typing{Peer: "alice", State: wire.TypingStart})
		}
		wait.For(t, "each typing relayed or dropped", 10*time.Second, func() bool {
			return len(alicePhone.typings())+int(metric(t, s, dropped)-before) == burst
		})
		evs := alicePhone.typings()
		if len(evs) < 1 || len(evs) > 2 {
			t.Fatalf("%d typing events relayed of a burst of %d", len(evs), burst)
		}
		if ev := evs[0]; ev.From != "bob" || ev.State != wire.TypingStart || ev.Group != "" {
			t.Fatalf("typing event %+v", ev)
		}
		// Never stored: alice's sync has nothing.
		if b := getSync(t, s, login(t, s, "alice", "web"), "", 0); len(b.Items) != 0 {
			t.Fatalf("typing stored: %s", kinds(b.Items))
		}
	})
}
