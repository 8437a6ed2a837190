package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/wire"
)

// TestLifeWebhook: with --webhook-url, a recall posts message.recalled
// (who sent it, who recalled it), signed, once; the changes (an edit, a
// reaction, a delete, a recall) post no message.after_send — only the two
// sends do.
func TestLifeWebhook(t *testing.T) {
	const secret = "life-secret"
	sink := newEventSink(t, secret)
	events, err := webhook.ParseEvents("message.after_send,message.recalled")
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Webhook = daemon.WebhookOptions{URL: sink.URL + "/events", Secret: []byte(secret), Events: events}
	})
	ok := mustOK(t)
	alice := mqttActor{connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))}
	bob := httpActor{t, s.HTTP, account(t, s, "bob", "phone")}
	m1 := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "to be changed"}))
	m2 := ok(alice.send(wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "to be recalled"}))
	ok(alice.edit("e1", m1.ID, "changed"))
	ok(bob.react("x1", m1.ID, "👍", wire.ReactAdd))
	ok(bob.del("d1", []string{m1.ID}))
	ok(alice.recall("r1", m2.ID))

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, ev := range sink.evs {
			t.Logf("%s %s", ev.Type, ev.Data)
		}
	})
	wait.For(t, "message.recalled", 10*time.Second, func() bool {
		return len(sink.of(webhook.Recalled, map[string]string{"id": m2.ID})) == 1
	})
	var d webhook.RecalledData
	if err := json.Unmarshal(sink.of(webhook.Recalled, nil)[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != m2.ID || d.From != "alice" || d.To != "bob" || d.By != "alice" || d.TS == 0 {
		t.Fatalf("message.recalled %+v", d)
	}
	// The sends' after_send came before the recall's event (one lane per
	// conversation): the changes' would have by now.
	sends := sink.of(webhook.AfterSend, nil)
	if len(sends) != 2 || len(sink.of(webhook.Recalled, nil)) != 1 {
		t.Fatalf("%d message.after_send (want the 2 sends), %d message.recalled", len(sends), len(sink.of(webhook.Recalled, nil)))
	}
	for _, ev := range sends {
		var m map[string]any
		_ = json.Unmarshal(ev.Data, &m)
		if m["id"] != m1.ID && m["id"] != m2.ID {
			t.Errorf("after_send of a change: %s", ev.Data)
		}
	}
	sink.mu.Lock()
	bad := sink.bad
	sink.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d badly signed requests", bad)
	}
}
