package e2e

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// sessionEvents returns every inbox event the program printed, any kind,
// with the QoS it came at.
func (p *sessionProc) events() []delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []delivery
	for _, l := range p.lines {
		var m wire.Msg
		if l.Step == "msg" && json.Unmarshal(l.Payload, &m) == nil {
			out = append(out, delivery{Msg: m, QoS: l.QoS})
		}
	}
	return out
}

// indexOf is the position of the first event of kind about id, or -1.
func indexOf(evs []delivery, kind, id string) int {
	for i, ev := range evs {
		if ev.Kind == kind && ev.ID == id {
			return i
		}
	}
	return -1
}

// TestLifeSession: a plain MQTT device with a persistent session
// (mosquitto_sub -c -q 1) gets a recall at QoS 1 after its message, live,
// and also when it was away at the time: replayed from the store, the
// message as a tombstone (never its body), then its recall, in order.
// Typing, never stored, comes at QoS 0.
func TestLifeSession(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	account(t, s, "bob", "x")
	alice := mqttActor{connect(t, s.MQTT, "alice", "phone", aliceTok)}
	ok := mustOK(t)
	mosq := mosquittoSub(false)

	d := startSession(t, mosq, s.MQTT, "bob", "iot", 1, false)
	d.waitReady(s)
	m1 := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "live, to be recalled"}))
	ok(alice.recall("r1", m1.ID))
	alice.typing(wire.Typing{Peer: "bob", State: wire.TypingStart})
	wait.ForErr(t, "bob/iot gets the message, its recall and the typing", sessionWait, func() error {
		evs := d.events()
		if indexOf(evs, wire.KindRecall, m1.ID) < 0 || len(evs) < 3 {
			return fmt.Errorf("so far %d events", len(evs))
		}
		return nil
	})
	evs := d.events()
	at, rat := indexOf(evs, wire.KindMsg, m1.ID), indexOf(evs, wire.KindRecall, m1.ID)
	if at < 0 || rat < at || evs[at].QoS != 1 || evs[rat].QoS != 1 || evs[rat].By != "alice" {
		t.Fatalf("live: message at %d, recall at %d: %+v\n%s", at, rat, evs, d.output())
	}
	for _, ev := range evs {
		if ev.Kind == wire.KindTyping && ev.QoS != 0 {
			t.Fatalf("typing at QoS %d", ev.QoS)
		}
	}
	if indexOf(evs, wire.KindTyping, "") < 0 {
		t.Fatalf("no typing: %+v", evs)
	}
	d.stop()
	waitGone(t, s, "bob/iot")

	// Away: a message and its recall, then another message.
	m2 := ok(alice.send(wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "missed, to be recalled"}))
	ok(alice.recall("r2", m2.ID))
	m3 := ok(alice.send(wire.Send{CMID: "a3", To: "bob", Type: "text", Body: "after"}))

	d = startSession(t, mosq, s.MQTT, "bob", "iot", 1, false)
	wait.ForErr(t, "bob/iot gets what it missed", sessionWait, func() error {
		if indexOf(d.events(), wire.KindMsg, m3.ID) < 0 {
			return fmt.Errorf("so far %d events", len(d.events()))
		}
		return nil
	})
	evs = d.events()
	at, rat, last := indexOf(evs, wire.KindMsg, m2.ID), indexOf(evs, wire.KindRecall, m2.ID), indexOf(evs, wire.KindMsg, m3.ID)
	if rat < 0 || rat > last || (at >= 0 && at > rat) {
		t.Fatalf("replayed: message at %d, recall at %d, next at %d\n%s", at, rat, last, d.output())
	}
	for _, ev := range evs {
		if ev.QoS != 1 {
			t.Errorf("replayed at QoS %d: %+v", ev.QoS, ev.Msg)
		}
		if ev.ID == m2.ID && ev.Body != "" {
			t.Errorf("the recalled body replayed: %+v", ev.Msg)
		}
	}
}
