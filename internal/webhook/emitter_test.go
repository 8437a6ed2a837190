package webhook_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/store"
)

// writes counts the writes of a real store, and can hold them.
type writes struct {
	store.Webhooks
	n    atomic.Int64
	hold chan struct{} // nil: none
}

func (w *writes) AddWebhookEvents(ctx context.Context, evs []store.WebhookEvent) error {
	if w.hold != nil {
		<-w.hold
	}
	w.n.Add(1)
	return w.Webhooks.AddWebhookEvents(ctx, evs)
}

// TestEmitterGroupCommit: a burst of presence events is written in a few
// store writes, not one each, every event in its user's lane with a
// unique id.
func TestEmitterGroupCommit(t *testing.T) {
	st := &writes{Webhooks: openStore(t, t.TempDir())}
	var woken atomic.Int64
	e, err := webhook.NewEmitter(st, webhook.EmitterOptions{Node: 3, FlushEvery: 50 * time.Millisecond, Written: func() { woken.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	now := time.Now()
	for i := range 100 {
		e.Online("alice", "phone", "n1", now.Add(time.Duration(i)*3*time.Second)) // within alice's presence bound
	}
	e.Offline("bob", "web", "n1", now)
	e.Close(t.Context())
	if n := st.n.Load(); n == 0 || n > 10 {
		t.Errorf("%d writes for 101 events", n)
	}
	if woken.Load() != st.n.Load() {
		t.Errorf("woken %d times for %d writes", woken.Load(), st.n.Load())
	}
	evs, err := st.WebhookEvents(t.Context(), "u:alice", 1000)
	if err != nil || len(evs) != 100 {
		t.Fatalf("alice's lane: %d %v", len(evs), err)
	}
	ids := map[int64]bool{}
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	if len(ids) != 100 {
		t.Errorf("%d unique ids of 100", len(ids))
	}
	var d webhook.PresenceData
	if err := json.Unmarshal(evs[0].Data, &d); err != nil || d != (webhook.PresenceData{User: "alice", Device: "phone", Node: "n1", TS: now.UnixMilli()}) {
		t.Errorf("data %s: %v", evs[0].Data, err)
	}
	if bob, _ := st.WebhookEvents(t.Context(), "u:bob", 10); len(bob) != 1 || bob[0].Type != webhook.UserOffline {
		t.Errorf("bob's lane: %+v", bob)
	}
}

// TestEmitterQueueFull: with the store stuck, the callers never block;
// what does not fit the queue is dropped and counted.
func TestEmitterQueueFull(t *testing.T) {
	st := &writes{Webhooks: openStore(t, t.TempDir()), hold: make(chan struct{})}
	m := &counts{}
	e, err := webhook.NewEmitter(st, webhook.EmitterOptions{Queue: 4, FlushMax: 1, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	done := make(chan struct{})
	go func() {
		for range 20 {
			e.Online("alice", "phone", "n1", time.Now())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Online blocked on a stuck store")
	}
	if n := m.get(webhook.ResultOverflow); n < 15 {
		t.Errorf("overflow counted %d, want at least 15", n)
	}
	close(st.hold)
	e.Close(t.Context())
	wait.For(t, "the queued events written", 5*time.Second, func() bool { return depth(t, st) == int64(20-m.get(webhook.ResultOverflow)) })
}

// TestEmitterEvents: only --webhook-events are emitted; after_send is each
// message as a client sees it, in its conversation's lane.
func TestEmitterEvents(t *testing.T) {
	only, _ := webhook.ParseEvents("message.after_send")
	e, err := webhook.NewEmitter(openStore(t, t.TempDir()), webhook.EmitterOptions{Events: only})
	if err != nil {
		t.Fatal(err)
	}
	if e.Wants(webhook.UserOnline) || !e.Wants(webhook.AfterSend) {
		t.Error("Wants does not follow Events")
	}
	ms := []store.Message{{ID: 7, From: "bob", To: "alice", Type: "text", Body: "hi", Meta: json.RawMessage(`{"k":1}`), CMID: "c1", TS: 5},
		{ID: 8, From: "carol", Group: "team", Seq: 3, Type: "text", Body: "yo", TS: 6}}
	evs := e.AfterSend(ms)
	if len(evs) != 2 || evs[0].Lane != "c:alice:bob" || evs[1].Lane != "g:team" || evs[0].MsgID != 7 || evs[0].TS != 5 || evs[0].Type != webhook.AfterSend {
		t.Fatalf("events %+v", evs)
	}
	var msg map[string]any
	if err := json.Unmarshal(evs[0].Data, &msg); err != nil || msg["id"] != "7" || msg["from"] != "bob" || msg["to"] != "alice" ||
		msg["body"] != "hi" || msg["cmid"] != "c1" || msg["meta"].(map[string]any)["k"] != 1.0 {
		t.Errorf("data %s", evs[0].Data)
	}
	var nilE *webhook.Emitter
	if nilE.AfterSend(ms) != nil || nilE.Wants(webhook.AfterSend) {
		t.Error("a nil emitter emitted")
	}
	nilE.Online("a", "b", "c", time.Now()) // no panic
}

// TestEmitterWritesAtOnce: user.registered and group.changed are in the
// outbox when the call returns (no writer running), so that a message to
// a group just created comes after its group.changed in the lane.
func TestEmitterWritesAtOnce(t *testing.T) {
	st := openStore(t, t.TempDir())
	e, err := webhook.NewEmitter(st, webhook.EmitterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.Registered("alice", time.Now())
	e.GroupChanged("team", "created", "alice", []string{"alice", "bob"})
	msg := e.AfterSend([]store.Message{{ID: 9, From: "alice", Group: "team", Type: "text", Body: "hi", TS: 1}})
	if err := st.AddWebhookEvents(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if n := depth(t, st); n != 3 {
		t.Fatalf("depth %d, want 3", n)
	}
	evs, err := st.WebhookEvents(t.Context(), "g:team", 10)
	if err != nil || len(evs) != 2 || evs[0].Type != webhook.GroupChanged || evs[1].Type != webhook.AfterSend {
		t.Fatalf("the group's lane: %+v %v", evs, err)
	}
	var g webhook.GroupData
	if err := json.Unmarshal(evs[0].Data, &g); err != nil || g.Group != "team" || g.Action != "created" || g.By != "alice" || len(g.Users) != 2 {
		t.Errorf("group.changed data %s", evs[0].Data)
	}
}

// BenchmarkAfterSend is the batcher's share of message.after_send: an
// event (its ID, lane and JSON data) per message of a batch.
func BenchmarkAfterSend(b *testing.B) {
	e, err := webhook.NewEmitter(nil, webhook.EmitterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ms := make([]store.Message, 64)
	for i := range ms {
		ms[i] = store.Message{ID: int64(1e18) + int64(i), From: "user-12", To: "user-345", Type: "text",
			Body: "a message of about sixty bytes, as most of them are, give or take", CMID: "c-1234567", TS: 1765000000000}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(e.AfterSend(ms)) != len(ms) {
			b.Fatal("events missing")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ms)), "ns/msg")
}

// TestEmitterPresenceBound: one user's presence events past the bound (a
// burst of 32, then one every 3 s) are dropped and counted, and do not
// take the queue from another user's.
func TestEmitterPresenceBound(t *testing.T) {
	st := openStore(t, t.TempDir())
	m := &counts{}
	e, err := webhook.NewEmitter(st, webhook.EmitterOptions{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	now := time.Now()
	for i := range 1000 { // a device reconnecting in a loop, within one second
		if i%2 == 0 {
			e.Online("mallory", "phone", "n1", now)
		} else {
			e.Offline("mallory", "phone", "n1", now)
		}
	}
	e.Online("alice", "phone", "n1", now)
	e.Online("mallory", "phone", "n1", now.Add(3*time.Second)) // the bound refills
	e.Close(t.Context())
	if n := m.get(webhook.ResultRateLimited); n != 1000-32 {
		t.Errorf("rate limited %d, want %d", n, 1000-32)
	}
	if evs, err := st.WebhookEvents(t.Context(), "u:mallory", 1000); err != nil || len(evs) != 33 {
		t.Errorf("mallory's lane: %d events, %v; want 33", len(evs), err)
	}
	if evs, err := st.WebhookEvents(t.Context(), "u:alice", 10); err != nil || len(evs) != 1 {
		t.Errorf("alice's lane: %d events, %v", len(evs), err)
	}
}
