package bench

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/webhook"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
)

// The sink is spoken to by imqttd's own webhook pusher, so that a change
// of the signature or of SPEC §13's body on either side fails here.

// startSink runs a sink whose clock reads now(); it is closed when the test ends.
func startSink(t *testing.T, o SinkOptions) *Sink {
	t.Helper()
	s, err := NewSink(o)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return s
}

func pusher(t *testing.T, url, secret string) *webhook.Client {
	t.Helper()
	c, err := webhook.New(webhook.Options{URL: url, Secret: []byte(secret), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// idAt is a snowflake ID made at ms (unix milliseconds), as chat's batcher makes them.
func idAt(ms int64, seq int64) string {
	return strconv.FormatInt((ms-snowflake.Epoch)<<22|seq, 10)
}

func note(token, id string) push.Notification {
	return push.Notification{Device: store.PushDevice{User: "bob", Device: "phone", Provider: "webhook", Token: token},
		Title: "alice", Body: "alice sent you a message", Conversation: "u:alice", MessageID: id, Count: 1}
}

func TestSinkCountsAndTimesPushes(t *testing.T) {
	committed := time.UnixMilli(1_765_069_200_000)
	arrivals := []time.Duration{150 * time.Millisecond, 40 * time.Millisecond, 1500 * time.Millisecond}
	now := make(chan time.Time, len(arrivals))
	s := startSink(t, SinkOptions{Secret: []byte("s3cret"), Now: func() time.Time {
		select {
		case n := <-now:
			return n
		default:
			return committed.Add(2 * time.Second)
		}
	}})
	s.Stats(true) // the start read the clock
	p := pusher(t, s.URL(), "s3cret")
	for i, d := range arrivals {
		now <- committed.Add(d)
		if err := p.Push(context.Background(), note("bench-bob", idAt(committed.UnixMilli(), int64(i)))); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	st := s.Stats(false)
	if st.Pushes != 3 || st.Duplicates != 0 || st.BadSignature != 0 || st.BadBody != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Nearest rank over 40, 150, 1500 ms: p50 150, p99 1500.
	if st.Latency != (SinkLatency{P50: 150, P99: 1500, Max: 1500}) {
		t.Fatalf("latency %+v, want p50 150 p99 1500 max 1500", st.Latency)
	}
	// Three arrivals from +150 ms to +1500 ms: two intervals in 1.35 s.
	if want := 2 / 1.35; st.PerSec < want-1e-9 || st.PerSec > want+1e-9 {
		t.Fatalf("per_sec %v, want %v", st.PerSec, want)
	}

	// The same message to the same token again is a duplicate; to another token it is not.
	now <- committed.Add(time.Second)
	if err := p.Push(context.Background(), note("bench-bob", idAt(committed.UnixMilli(), 0))); err != nil {
		t.Fatal(err)
	}
	now <- committed.Add(time.Second)
	if err := p.Push(context.Background(), note("bench-carol", idAt(committed.UnixMilli(), 0))); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(false); st.Pushes != 5 || st.Duplicates != 1 {
		t.Fatalf("after a repeat: %+v", st)
	}
}

func TestSinkRefusesBadPushes(t *testing.T) {
	s := startSink(t, SinkOptions{Secret: []byte("s3cret")})
	id := idAt(time.Now().UnixMilli(), 0)

	// Signed with another secret: 401, a refusal the pusher does not retry.
	err := pusher(t, s.URL(), "other").Push(context.Background(), note("bench-bob", id))
	var retry *push.RetryError
	if err == nil || errors.As(err, &retry) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	// Unsigned, and signed but not SPEC §13's body.
	resp, err := http.Post(s.URL(), "application/json", strings.NewReader(`{"token":"t","message_id":"`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", resp.StatusCode)
	}
	good := pusher(t, s.URL(), "s3cret")
	for name, n := range map[string]push.Notification{
		"no token":        note("", id),
		"no message_id":   note("bench-bob", ""),
		"a bad id":        note("bench-bob", "12ab"),
		"a negative id":   note("bench-bob", "-5"),
		"a zero id":       note("bench-bob", "0"),
		"a too long body": {Device: store.PushDevice{Token: "t"}, Body: strings.Repeat("x", maxPushBody), MessageID: id},
	} {
		want := "400"
		if name == "a too long body" {
			want = "413"
		}
		if err := good.Push(context.Background(), n); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a %s", name, err, want)
		}
	}
	st := s.Stats(false)
	if st.Pushes != 0 || st.BadSignature != 2 || st.BadBody != 6 || st.PerSec != 0 || st.Latency != (SinkLatency{}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestSinkAnswersWithStatus(t *testing.T) {
	id := idAt(time.Now().UnixMilli(), 0)
	for status, want := range map[int]func(error) bool{
		http.StatusGone: func(err error) bool { return errors.Is(err, push.ErrInvalidToken) },
		http.StatusServiceUnavailable: func(err error) bool {
			var r *push.RetryError
			return errors.As(err, &r)
		},
	} {
		s := startSink(t, SinkOptions{Secret: []byte("s3cret"), Status: status})
		err := pusher(t, s.URL(), "s3cret").Push(context.Background(), note("bench-bob", id))
		if !want(err) {
			t.Errorf("status %d: the pusher says %v", status, err)
		}
		if st := s.Stats(false); st.Pushes != 1 {
			t.Errorf("status %d: %d pushes counted, want 1 (it arrived)", status, st.Pushes)
		}
	}
	for _, o := range []SinkOptions{{}, {Secret: []byte("s"), Status: 99}, {Secret: []byte("s"), Delay: -time.Second}} {
		if _, err := NewSink(o); err == nil {
			t.Errorf("NewSink(%+v) accepted", o)
		}
	}
}

// TestSinkDelaysAnswers: a push is counted on arrival and answered only
// after the delay (the test's timer: nothing here depends on how fast the
// machine is), or at once when the sink closes.
func TestSinkDelaysAnswers(t *testing.T) {
	s, err := NewSink(SinkOptions{Secret: []byte("s3cret"), Delay: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan time.Duration, 2)
	fire := make(chan time.Time)
	s.after = func(d time.Duration) <-chan time.Time { asked <- d; return fire }
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	p := pusher(t, s.URL(), "s3cret")
	send := func() chan error {
		answered := make(chan error, 1)
		go func() {
			answered <- p.Push(context.Background(), note("bench-bob", idAt(time.Now().UnixMilli(), 0)))
		}()
		return answered
	}
	first := send()
	var d time.Duration
	wait.For(t, "the answer's delay asked for", 10*time.Second, func() bool {
		select {
		case d = <-asked:
			return true
		default:
			return false
		}
	})
	if d != 500*time.Millisecond || s.Stats(false).Pushes != 1 {
		t.Fatalf("delay %v, stats %+v: want 500ms and the push counted before the answer", d, s.Stats(false))
	}
	select {
	case err := <-first:
		t.Fatalf("answered before the delay: %v", err)
	default:
	}
	fire <- time.Now()
	if err := <-first; err != nil {
		t.Fatalf("the answer after the delay: %v", err)
	}

	second := send()
	wait.For(t, "the second push waiting", 10*time.Second, func() bool { return len(asked) == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("answer at close: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestSinkStatsEndpoint(t *testing.T) {
	s := startSink(t, SinkOptions{Secret: []byte("s3cret")})
	if err := pusher(t, s.URL(), "s3cret").Push(context.Background(), note("bench-bob", idAt(time.Now().UnixMilli(), 0))); err != nil {
		t.Fatal(err)
	}
	get := func(q string) SinkStats {
		t.Helper()
		resp, err := http.Get(s.URL() + "/stats" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st SinkStats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := get("?reset=1"); st.Pushes != 1 {
		t.Fatalf("first read: %+v", st)
	}
	if st := get(""); st.Pushes != 0 || st.Latency != (SinkLatency{}) {
		t.Fatalf("after the reset: %+v", st)
	}
}

// TestP2PPushDevices: p2p --push-devices against an imqttd pushing to a
// sink: every phone (two per receiver) registered, every message still
// delivered live, and each phone pushed to (a burst collapses into a few
// pushes per phone), never twice for one message.
func TestP2PPushDevices(t *testing.T) {
	sink := startSink(t, SinkOptions{Secret: []byte("s3cret")})
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Push.Pushers = []push.Pusher{pusher(t, sink.URL(), "s3cret")}
	})
	target := Target{Server: s.HTTP, MQTT: s.MQTT}
	r, err := P2P(context.Background(), P2POptions{Target: target, Pairs: 2, Messages: 40, InFlight: 4, PushDevices: true, PushPhones: 2})
	passed(t, r, err, 40)
	if !strings.Contains(r.Case, "push-phones=2") || r.Extra["ack_p99_ms"] <= 0 || r.Extra["ack_p50_ms"] > r.Extra["ack_p99_ms"] {
		t.Fatalf("case %q, extra %v", r.Case, r.Extra)
	}
	wait.For(t, "a push to each of the 4 phones", 20*time.Second, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		tokens := map[string]bool{}
		for k := range sink.stats.seen {
			tokens[k.token] = true
		}
		return len(tokens) == 4
	})
	st := sink.Stats(false)
	if st.Duplicates != 0 || st.BadSignature != 0 || st.BadBody != 0 || st.Pushes > 40*2 {
		t.Fatalf("sink %+v", st)
	}
	sink.mu.Lock()
	for k := range sink.stats.seen {
		if !strings.HasPrefix(k.token, "bench-") {
			t.Errorf("token %q", k.token)
		}
	}
	sink.mu.Unlock()

	// Without a webhook provider on the server the phones cannot register: the run fails before sending.
	if _, err := P2P(context.Background(), P2POptions{Target: imqttd(t), Pairs: 1, Messages: 1, PushDevices: true}); err == nil ||
		!strings.Contains(err.Error(), "push token") {
		t.Fatalf("no provider: %v", err)
	}
	if _, err := P2P(context.Background(), P2POptions{Target: mochi(t), Pairs: 1, Messages: 1, PushDevices: true}); err == nil {
		t.Fatal("plain target with push devices accepted")
	}
}
