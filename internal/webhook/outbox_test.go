package webhook_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/mongotest"
	"github.com/imqtt/imqtt/internal/signature"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/pebble"
)

var secret = []byte("outbox-secret")

// receiver is a real HTTP receiver: it checks each request's signature,
// and records the events it took (answered 2xx), by lane, in order.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []webhook.Event
	times  []time.Time                                                       // of every request
	answer atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool] // false: not taken
	bad    atomic.Int64                                                      // requests not signed right
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signature.Verify(secret, r.Header.Get(signature.HeaderSignature), r.Header.Get(signature.HeaderTimestamp), body, time.Minute); err != nil {
			rc.bad.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.Type != r.Header.Get(webhook.HeaderEvent) || !strings.HasPrefix(ev.ID, "evt-") {
			rc.bad.Add(1)
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.times = append(rc.times, time.Now())
		rc.mu.Unlock()
		if f := rc.answer.Load(); f != nil && !(*f)(w, r) {
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, ev)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) set(f func(w http.ResponseWriter, r *http.Request) bool) { rc.answer.Store(&f) }

func (rc *receiver) events() []webhook.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.got) }

// counts is a Metrics that counts.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) Webhook(event, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[result]++
}
func (c *counts) WebhookLatency(time.Duration) {}
func (c *counts) WebhookOutbox(int64)          {}
func (c *counts) get(result string) int        { c.mu.Lock(); defer c.mu.Unlock(); return c.n[result] }

func openStore(t *testing.T, dir string) *pebble.Store {
	t.Helper()
	st, err := pebble.Open(dir, pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // after the outbox's (cleanups run last first)
	return st
}

// events makes n events in each of lanes, IDs growing in each lane.
func events(lanes []string, n int, ts int64) []store.WebhookEvent {
	var out []store.WebhookEvent
	id := int64(1000)
	for i := range n {
		for _, l := range lanes {
			id++
			out = append(out, store.WebhookEvent{ID: id, Lane: l, Type: webhook.UserOnline, TS: ts,
				Data: json.RawMessage(fmt.Sprintf(`{"lane":%q,"i":%d}`, l, i))})
		}
	}
	return out
}

func startOutbox(t *testing.T, st store.Webhooks, url string, m webhook.Metrics, mod func(*webhook.OutboxOptions)) *webhook.Outbox {
	t.Helper()
	o := webhook.OutboxOptions{Node: "n1", Metrics: m, Poll: 20 * time.Millisecond,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond }}
	if mod != nil {
		mod(&o)
	}
	if o.Client == nil {
		c, err := webhook.New(webhook.Options{URL: url, Secret: secret, MaxAnswer: -1})
		if err != nil {
			t.Fatal(err)
		}
		o.Client = c
	}
	w := webhook.NewOutbox(st, o)
	w.Start()
	t.Cleanup(func() { w.Close(t.Context()) })
	return w
}

// inOrder checks that got holds every event of want once, and each
// lane's in ID order.
func inOrder(t *testing.T, got []webhook.Event, want []store.WebhookEvent) {
	t.Helper()
	seen := map[string]int{}
	last := map[string]string{} // lane -> last id
	for _, ev := range got {
		seen[ev.ID]++
		var d struct{ Lane string }
		_ = json.Unmarshal(ev.Data, &d)
		if p, ok := last[d.Lane]; ok && !idLess(p, ev.ID) {
			t.Errorf("lane %s: %s after %s", d.Lane, ev.ID, p)
		}
		last[d.Lane] = ev.ID
	}
	for _, e := range want {
		id := fmt.Sprintf("evt-%d", e.ID)
		if seen[id] != 1 {
			t.Errorf("%s delivered %d times", id, seen[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d delivered, want %d", len(got), len(want))
	}
}

func idLess(a, b string) bool {
	return len(a) < len(b) || (len(a) == len(b) && a < b)
}

func depth(t *testing.T, st store.Webhooks) int64 {
	n, err := st.WebhookDepth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutboxDelivers: every event is posted once, signed, as SPEC §14's
// envelope, in order per lane; the outbox ends empty.
func TestOutboxDelivers(t *testing.T) {
	st := openStore(t, t.TempDir())
	rc := newReceiver(t)
	now := time.Now().UnixMilli()
	want := events([]string{"c:alice:bob", "g:team", "u:carol"}, 20, now)
	if err := st.AddWebhookEvents(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	m := &counts{}
	startOutbox(t, st, rc.URL, m, nil)
	wait.For(t, "60 events", 10*time.Second, func() bool { return rc.count() >= 60 })
	wait.For(t, "an empty outbox", 5*time.Second, func() bool { return depth(t, st) == 0 })
	got := rc.events()
	inOrder(t, got, want)
	if got[0].TS != now || got[0].Type != webhook.UserOnline || !strings.Contains(string(got[0].Data), `"i":0`) {
		t.Errorf("first event: %+v", got[0])
	}
	if rc.bad.Load() != 0 || m.get(webhook.ResultSent) != 60 {
		t.Errorf("bad requests %d, sent %d", rc.bad.Load(), m.get(webhook.ResultSent))
	}
}

// TestOutboxReceiverDownThenBack: while the receiver does not answer (its
// connections are cut) or answers 503, nothing is lost and each lane
// waits at its head; once it is back, everything arrives in order.
func TestOutboxReceiverDownThenBack(t *testing.T) {
	st := openStore(t, t.TempDir())
	rc := newReceiver(t)
	var down atomic.Int64 // 1: cut the connection, 2: 503
	down.Store(1)
	rc.set(func(w http.ResponseWriter, r *http.Request) bool {
		switch down.Load() {
		case 1:
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return false
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			return false
		}
		return true
	})
	want := events([]string{"c:a:b", "g:x"}, 10, time.Now().UnixMilli())
	if err := st.AddWebhookEvents(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	m := &counts{}
	startOutbox(t, st, rc.URL, m, nil)
	wait.For(t, "retries without an answer", 5*time.Second, func() bool { return m.get(webhook.ResultRetry) >= 4 })
	down.Store(2)
	n := m.get(webhook.ResultRetry)
	wait.For(t, "retries on 503", 5*time.Second, func() bool { return m.get(webhook.ResultRetry) >= n+4 })
	if depth(t, st) != int64(len(want)) {
		t.Fatalf("the outbox lost events while the receiver was down: %d", depth(t, st))
	}
	down.Store(0)
	wait.For(t, "everything once back", 10*time.Second, func() bool { return rc.count() >= len(want) })
	inOrder(t, rc.events(), want)
}

// TestOutboxRetries: a 500, an answer that is not HTTP, and an answer
// slower than the request's timeout are each attempted again (the same
// event, the same id), and a 429's Retry-After is waited out.
func TestOutboxRetries(t *testing.T) {
	for _, c := range []struct {
		name string
		fail func(w http.ResponseWriter, r *http.Request)
	}{
		{"status=500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }},
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			conn, buf, _ := w.(http.Hijacker).Hijack()
			_, _ = buf.WriteString("garbage, not HTTP\r\n\r\n")
			_ = buf.Flush()
			conn.Close()
		}},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select { // past the client's 200 ms
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}},
		{"status=429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			rc := newReceiver(t)
			var fails atomic.Int64
			rc.set(func(w http.ResponseWriter, r *http.Request) bool {
				if fails.Add(1) <= 2 {
					c.fail(w, r)
					return false
				}
				return true
			})
			want := events([]string{"u:a"}, 3, time.Now().UnixMilli())
			if err := st.AddWebhookEvents(t.Context(), want); err != nil {
				t.Fatal(err)
			}
			m := &counts{}
			client, _ := webhook.New(webhook.Options{URL: rc.URL, Secret: secret, Timeout: 200 * time.Millisecond, MaxAnswer: -1})
			startOutbox(t, st, rc.URL, m, func(o *webhook.OutboxOptions) { o.Client = client })
			wait.For(t, "delivery after the failures", 10*time.Second, func() bool { return rc.count() >= 3 })
			inOrder(t, rc.events(), want)
			if m.get(webhook.ResultRetry) != 2 || m.get(webhook.ResultSent) != 3 {
				t.Errorf("retry %d sent %d, want 2 and 3", m.get(webhook.ResultRetry), m.get(webhook.ResultSent))
			}
			if c.name == "status=429" {
				rc.mu.Lock()
				gap := rc.times[2].Sub(rc.times[1])
				rc.mu.Unlock()
				if gap < 900*time.Millisecond {
					t.Errorf("Retry-After: 1 was not waited out: %v", gap)
				}
			}
		})
	}
}

// TestOutboxDropsRefused: a 400 drops the event at once (counted, not
// attempted again) and its lane goes on; an event past the TTL is not
// posted at all.
func TestOutboxDropsRefused(t *testing.T) {
	st := openStore(t, t.TempDir())
	rc := newReceiver(t)
	var n atomic.Int64
	rc.set(func(w http.ResponseWriter, r *http.Request) bool {
		if n.Add(1) == 1 {
			http.Error(w, "no", http.StatusBadRequest)
			return false
		}
		return true
	})
	now := time.Now().UnixMilli()
	evs := events([]string{"u:a"}, 3, now)
	old := events([]string{"u:old"}, 1, now-2*time.Hour.Milliseconds())
	old[0].ID = 1
	if err := st.AddWebhookEvents(t.Context(), append(evs, old...)); err != nil {
		t.Fatal(err)
	}
	m := &counts{}
	startOutbox(t, st, rc.URL, m, func(o *webhook.OutboxOptions) { o.TTL = time.Hour })
	wait.For(t, "the rest of the lane", 10*time.Second, func() bool { return rc.count() >= 2 && depth(t, st) == 0 })
	inOrder(t, rc.events(), evs[1:])
	if m.get(webhook.ResultDropped) != 1 || m.get(webhook.ResultExpired) != 1 || m.get(webhook.ResultRetry) != 0 || n.Load() != 3 {
		t.Errorf("dropped %d expired %d retry %d requests %d", m.get(webhook.ResultDropped), m.get(webhook.ResultExpired), m.get(webhook.ResultRetry), n.Load())
	}
}

// TestOutboxTwoWorkers: two workers (two nodes) over one store deliver
// each event once, each lane in order.
func TestOutboxTwoWorkers(t *testing.T) {
	st := openStore(t, t.TempDir())
	rc := newReceiver(t)
	var lanes []string
	for i := range 40 {
		lanes = append(lanes, fmt.Sprintf("u:user%d", i))
	}
	want := events(lanes, 10, time.Now().UnixMilli())
	if err := st.AddWebhookEvents(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	m1, m2 := &counts{}, &counts{}
	startOutbox(t, st, rc.URL, m1, func(o *webhook.OutboxOptions) { o.Node, o.Lanes = "n1", 8 })
	startOutbox(t, st, rc.URL, m2, func(o *webhook.OutboxOptions) { o.Node, o.Lanes = "n2", 8 })
	wait.For(t, "every event", 20*time.Second, func() bool { return rc.count() >= len(want) && depth(t, st) == 0 })
	inOrder(t, rc.events(), want)
	if m1.get(webhook.ResultSent) == 0 || m2.get(webhook.ResultSent) == 0 {
		t.Errorf("one worker did all: %d and %d", m1.get(webhook.ResultSent), m2.get(webhook.ResultSent))
	}
}

// TestOutboxRestart: a worker stopped with a full outbox, its store
// closed and opened again: a new worker delivers the rest, and none twice.
func TestOutboxRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	rc := newReceiver(t)
	var lanes []string
	for i := range 10 {
		lanes = append(lanes, fmt.Sprintf("g:g%d", i))
	}
	want := events(lanes, 30, time.Now().UnixMilli())
	if err := st.AddWebhookEvents(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	rc.set(func(w http.ResponseWriter, r *http.Request) bool {
		time.Sleep(time.Millisecond) // a receiver that takes a little time, so that the stop comes mid-way
		return true
	})
	c, _ := webhook.New(webhook.Options{URL: rc.URL, Secret: secret, MaxAnswer: -1})
	w := webhook.NewOutbox(st, webhook.OutboxOptions{Node: "n1", Client: c, Lanes: 4})
	w.Start()
	wait.For(t, "some delivered", 10*time.Second, func() bool { return rc.count() >= 20 })
	w.Close(t.Context())
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	first := rc.count()
	if first >= len(want) {
		t.Fatalf("all %d delivered before the stop", first)
	}
	st = openStore(t, dir)
	if d := depth(t, st); d != int64(len(want)-first) {
		t.Errorf("after the restart the outbox holds %d, want %d", d, len(want)-first)
	}
	startOutbox(t, st, rc.URL, nil, func(o *webhook.OutboxOptions) { o.Node = "n2" })
	wait.For(t, "the rest", 10*time.Second, func() bool { return rc.count() >= len(want) && depth(t, st) == 0 })
	inOrder(t, rc.events(), want)
}

// TestOutboxTwoNodesMongo: two nodes, each with its own Store on one
// MongoDB (FerretDB here) and its own worker, deliver each event once,
// each lane in order: the lanes' claims are in the database.
func TestOutboxTwoNodesMongo(t *testing.T) {
	srv := mongotest.New(t)
	open := func() *mongo.Store {
		st, err := mongo.Open(t.Context(), srv.URI(), mongo.Options{Database: "outbox"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, b := open(), open()
	rc := newReceiver(t)
	var lanes []string
	for i := range 40 {
		lanes = append(lanes, fmt.Sprintf("g:group%d", i))
	}
	want := events(lanes, 3, time.Now().UnixMilli())
	if err := a.AddWebhookEvents(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	m1, m2 := &counts{}, &counts{}
	startOutbox(t, a, rc.URL, m1, func(o *webhook.OutboxOptions) { o.Node, o.Lanes = "a", 8 })
	startOutbox(t, b, rc.URL, m2, func(o *webhook.OutboxOptions) { o.Node, o.Lanes = "b", 8 })
	wait.For(t, "every event", 60*time.Second, func() bool { return rc.count() >= len(want) && depth(t, a) == 0 })
	inOrder(t, rc.events(), want)
	if m1.get(webhook.ResultSent) == 0 || m2.get(webhook.ResultSent) == 0 {
		t.Logf("one node did all: %d and %d", m1.get(webhook.ResultSent), m2.get(webhook.ResultSent))
	}
}
