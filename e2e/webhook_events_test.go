package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/signature"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/wire"
)

// eventSink is the operator's receiver: a real HTTP server that checks
// each request's signature (with a replay window) and keeps the events.
type eventSink struct {
	*httptest.Server
	mu  sync.Mutex
	evs []webhook.Event
	bad int
}

func newEventSink(t *testing.T, secret string) *eventSink {
	s := &eventSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var ev webhook.Event
		err := signature.Verify([]byte(secret), r.Header.Get(signature.HeaderSignature), r.Header.Get(signature.HeaderTimestamp), body, 5*time.Minute)
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil || ev.Type != r.Header.Get(webhook.HeaderEvent) {
			s.bad++
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		s.evs = append(s.evs, ev)
	}))
	t.Cleanup(s.Close)
	return s
}

// of returns the events of type typ whose data has each of the fields.
func (s *eventSink) of(typ string, fields map[string]string) []webhook.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []webhook.Event
	for _, ev := range s.evs {
		if ev.Type != typ {
			continue
		}
		var d map[string]any
		_ = json.Unmarshal(ev.Data, &d)
		ok := true
		for k, v := range fields {
			if s, _ := d[k].(string); s != v {
				ok = false
			}
		}
		if ok {
			out = append(out, ev)
		}
	}
	return out
}

func (s *eventSink) index(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ev := range s.evs {
		if ev.ID == id {
			return i
		}
	}
	return -1
}

// TestWebhookEvents: a real imqttd with --webhook-url, real MQTT clients
// (paho, and mosquitto_pub as a client nobody here wrote) and a real HTTP
// receiver: registrations, a device online and offline, a 1:1 message and
// a group message (after_send, the message as a client sees it), and a
// group's creation reach the receiver signed, each once, the group's
// change before its message.
func TestWebhookEvents(t *testing.T) {
	mosquittoPub := requireTool(t, "mosquitto_pub")
	const secret = "events-secret"
	sink := newEventSink(t, secret)
	events, err := webhook.ParseEvents("message.after_send,user.online,user.offline,user.registered,group.changed")
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Webhook = daemon.WebhookOptions{URL: sink.URL + "/events", Secret: []byte(secret), Events: events}
		c.ServerKeys = []string{strings.Repeat("k", 32)}
	})
	aliceTok := account(t, s, "alice", "phone")
	account(t, s, "bob", "phone")
	// A user the backend creates through the server API is registered too.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/server/users", strings.Repeat("k", 32), map[string]string{"user": "carol"}, nil); code != 201 {
		t.Fatalf("server API create carol: %d", code)
	}
	wait.For(t, "user.registered of alice, bob and carol", 10*time.Second, func() bool {
		return len(sink.of(webhook.UserRegistered, map[string]string{"user": "alice"})) == 1 &&
			len(sink.of(webhook.UserRegistered, map[string]string{"user": "bob"})) == 1 &&
			len(sink.of(webhook.UserRegistered, map[string]string{"user": "carol"})) == 1
	})

	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	wait.For(t, "user.online of alice/phone", 10*time.Second, func() bool {
		return len(sink.of(webhook.UserOnline, map[string]string{"user": "alice", "device": "phone", "node": "test"})) == 1
	})
	ack, werr := alice.send("bob", "c-1", "hello bob")
	if werr != nil {
		t.Fatalf("send: %+v", werr)
	}
	wait.For(t, "message.after_send of the 1:1 message", 10*time.Second, func() bool {
		return len(sink.of(webhook.AfterSend, map[string]string{"id": ack.ID, "from": "alice", "to": "bob", "body": "hello bob", "cmid": "c-1"})) == 1
	})

	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "team", Members: []string{"bob"}}, &g); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	cliTok := login(t, s, "alice", "cli") // a token is one device's
	host, port := hostPort(s.MQTT)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, mosquittoPub, "-h", host, "-p", port, "-i", "alice/cli", "-u", "alice", "-P", cliTok,
		"-q", "1", "-t", wire.TopicSend, "-m", `{"cmid":"g-1","group":"team","type":"text","body":"hello team"}`).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	wait.For(t, "group.changed and the group message", 10*time.Second, func() bool {
		return len(sink.of(webhook.GroupChanged, map[string]string{"group": "team", "action": "created", "by": "alice"})) == 1 &&
			len(sink.of(webhook.AfterSend, map[string]string{"group": "team", "from": "alice", "body": "hello team"})) == 1
	})
	changed := sink.of(webhook.GroupChanged, map[string]string{"group": "team"})[0]
	msg := sink.of(webhook.AfterSend, map[string]string{"group": "team"})[0]
	if sink.index(changed.ID) > sink.index(msg.ID) {
		t.Error("the group's message reached the receiver before its creation")
	}
	var gd webhook.GroupData
	if err := json.Unmarshal(changed.Data, &gd); err != nil || strings.Join(gd.Users, ",") != "alice,bob" {
		t.Errorf("group.changed users: %s", changed.Data)
	}

	alice.c.Disconnect(50)
	wait.For(t, "user.offline of alice/phone and alice/cli", 10*time.Second, func() bool {
		return len(sink.of(webhook.UserOffline, map[string]string{"user": "alice", "device": "phone"})) == 1 &&
			len(sink.of(webhook.UserOffline, map[string]string{"user": "alice", "device": "cli"})) == 1
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range sink.evs {
		if seen[ev.ID] || !strings.HasPrefix(ev.ID, "evt-") || ev.TS == 0 {
			t.Errorf("event %+v: a repeated or malformed id", ev)
		}
		seen[ev.ID] = true
	}
	if sink.bad != 0 {
		t.Errorf("%d requests failed the signature check", sink.bad)
	}
}
