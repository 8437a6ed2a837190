package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/signature"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/wire"
)

// moderationBackend is a real HTTP receiver of message.before_send, as an
// operator's moderation service would be: it checks each request's
// signature (with a replay window) and answers by the body's text.
type moderationBackend struct {
	t       *testing.T
	secret  []byte
	release chan struct{} // a send whose body is "hold" waits for it

	mu       sync.Mutex
	seen     []string // before_send bodies, as they came
	heldDone bool     // the held send's request has ended (released, or given up by imqttd)
}

func (b *moderationBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := signature.Verify(b.secret, r.Header.Get(signature.HeaderSignature), r.Header.Get(signature.HeaderTimestamp), body, time.Minute); err != nil {
		b.t.Errorf("a webhook with a bad signature: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.Header.Get(webhook.HeaderEvent) != webhook.BeforeSend {
		return // another event: heard
	}
	var ev struct {
		Data struct{ Body, Group string }
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		b.t.Errorf("before_send body %s: %v", body, err)
	}
	b.mu.Lock()
	b.seen = append(b.seen, ev.Data.Body)
	b.mu.Unlock()
	switch text := ev.Data.Body; {
	case text == "hold":
		select {
		case <-b.release:
		case <-r.Context().Done(): // imqttd's deadline
		}
		b.mu.Lock()
		b.heldDone = true
		b.mu.Unlock()
	case strings.Contains(text, "spam"):
		_, _ = io.WriteString(w, `{"action":"reject","message":"looks like spam"}`)
	case strings.Contains(text, "darn"):
		_, _ = io.WriteString(w, `{"action":"modify","body":"`+strings.ReplaceAll(text, "darn", "d**n")+`"}`)
	case text == "crash":
		w.WriteHeader(http.StatusInternalServerError)
	case text == "slow":
		select { // past the deadline
		case <-time.After(6 * time.Second):
		case <-r.Context().Done():
		}
	case text == "garbage":
		_, _ = io.WriteString(w, "<html>")
	default:
		_, _ = io.WriteString(w, `{"action":"allow"}`)
	}
}

// TestBeforeSendWebhook: a real server asks a real HTTP backend about each
// MQTT send before storing it. Allowed is delivered; rejected reaches the
// sender as rejected and is not stored; modified is stored and delivered
// modified; a backend that fails, answers garbage or is slow past
// --webhook-timeout leaves the send to --webhook-fail (open here: stored
// as sent); a group text is asked about too; and a send held in the hook
// holds up no other user's.
func TestBeforeSendWebhook(t *testing.T) {
	secret := []byte("moderation-secret")
	b := &moderationBackend{t: t, secret: secret, release: make(chan struct{})}
	srv := httptest.NewServer(b)
	defer srv.Close()
	defer close(b.release)
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Webhook = daemon.WebhookOptions{URL: srv.URL, Secret: secret, Events: map[string]bool{webhook.BeforeSend: true},
			Timeout: 5 * time.Second, Fail: chat.FailOpen}
	})
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	carol := connect(t, s.MQTT, "carol", "phone", account(t, s, "carol", "phone"))

	if _, e := alice.send("bob", "m1", "hello"); e != nil {
		t.Fatalf("allowed: %+v", e)
	}
	if _, e := alice.send("bob", "m2", "buy spam now"); e == nil || e.Code != wire.CodeRejected || e.Message != "looks like spam" {
		t.Fatalf("rejected: %+v", e)
	}
	if _, e := alice.send("bob", "m3", "darn it"); e != nil {
		t.Fatalf("modified: %+v", e)
	}
	for _, text := range []string{"crash", "garbage", "slow"} {
		if _, e := alice.send("bob", "f-"+text, text); e != nil {
			t.Fatalf("%s, fail open: %+v", text, e)
		}
	}

	// Held in the hook: alice's next send to bob waits; carol's does not.
	alice.publish(wire.TopicSend, wire.Send{CMID: "h1", To: "carol", Type: "text", Body: "hold"})
	wait.For(t, "the held send in the backend", 5*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.seen[len(b.seen)-1] == "hold"
	})
	if _, e := carol.send("bob", "c1", "carol here"); e != nil {
		t.Fatalf("carol's send while alice's is held: %+v", e)
	}
	b.mu.Lock()
	held := !b.heldDone
	b.mu.Unlock()
	if !held {
		t.Error("carol's send was acked only after alice's held one left the hook")
	}

	var got []string
	wait.For(t, "bob's messages", 5*time.Second, func() bool {
		got = got[:0]
		for _, m := range bob.msgs() {
			got = append(got, m.Body)
		}
		return len(got) == 6
	})
	want := []string{"hello", "d**n it", "crash", "garbage", "slow", "carol here"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("bob got %q, want %q (spam never)", got, want)
	}
	var h wire.History
	bobTok := login(t, s, "bob", "laptop")
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations/alice/messages", bobTok, nil, &h); code != 200 {
		t.Fatalf("history: %d", code)
	}
	for _, m := range h.Messages {
		if strings.Contains(m.Body, "spam") || m.Body == "darn it" {
			t.Errorf("stored: %q", m.Body)
		}
	}

	// A group's text goes through the hook too.
	aliceTok := login(t, s, "alice", "laptop")
	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "g", Members: []string{"bob"}}, &g); code != 201 {
		t.Fatalf("group: %d", code)
	}
	if _, e := sendGroup(alice, "g1", "g-1", "group spam"); e == nil || e.Code != wire.CodeRejected {
		t.Fatalf("group rejected: %+v", e)
	}

	metrics := scrape(t, s.HTTP)
	for _, result := range []string{"allow", "reject", "modify", "timeout", "error", "bad_verdict"} {
		if !strings.Contains(metrics, `imqtt_before_send_total{result="`+result+`"}`) {
			t.Errorf("no imqtt_before_send_total{result=%q}", result)
		}
	}
}

// scrape reads the server's /metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}
