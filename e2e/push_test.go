package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/pushtest"
	"github.com/imqtt/imqtt/internal/push/webhook"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestPushClusterMongo is offline push in scale-out: two nodes, each with
// its own Store on one MongoDB (FerretDB here) and presence in Redis, each
// running a push worker. Each message reaches each offline device once,
// whichever node stored it and whichever node's worker claimed it; a
// device connected to the other node is online for both (presence), so it
// gets no push.
func TestPushClusterMongo(t *testing.T) {
	sink := pushtest.NewWebhook(t, "cluster-secret")
	c := newCluster(t, mongoURI(devMongo(t).Addr()))
	c.edit = func(cfg *daemon.Config) {
		h, err := webhook.New(webhook.Options{URL: sink.URL, Secret: []byte("cluster-secret")})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Push.Pushers = []push.Pusher{h}
	}
	a, b := c.start("a"), c.start("b")
	ctx := context.Background()
	login := func(server, user, device string) *client.HTTP {
		t.Helper()
		h := &client.HTTP{Server: server}
		_ = h.Register(ctx, user, "pw-"+user+"-123")
		s, err := h.Login(ctx, user, "pw-"+user+"-123", device)
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		h.Token = s.Token
		return h
	}
	aliceA, aliceB := login(a.HTTP, "alice", "web"), login(b.HTTP, "alice", "web2")
	const n = 8
	for i := range n {
		u := login(a.HTTP, "u"+strconv.Itoa(i), "phone")
		if _, err := u.RegisterPush(ctx, wire.PushRegister{Provider: "webhook", Token: "c-" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// bob is connected to node b, and registered: never pushed.
	bob := login(a.HTTP, "bob", "phone")
	if _, err := bob.RegisterPush(ctx, wire.PushRegister{Provider: "webhook", Token: "bob-online"}); err != nil {
		t.Fatal(err)
	}
	var r received
	dial(t, b.HTTP, b.MQTT, "bob", "phone", bob.Token, &r)
	for i := range n {
		from := aliceA
		if i%2 == 1 {
			from = aliceB
		}
		if _, err := from.Send(ctx, wire.Send{CMID: "m" + strconv.Itoa(i), To: "u" + strconv.Itoa(i), Type: "text", Body: "hi"}); err != nil {
			t.Fatal(err)
		}
		if _, err := from.Send(ctx, wire.Send{CMID: "b" + strconv.Itoa(i), To: "bob", Type: "text", Body: "hi bob"}); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, "every offline device pushed", 20*time.Second, func() bool { return len(sink.Pushes()) >= n })
	r.waitBodies(t, "bob", "alice", "", repeat("hi bob", n), 10*time.Second)
	time.Sleep(3 * time.Second) // nothing more may come: a second node's worker, a retry
	seen := map[string]int{}
	for _, p := range sink.Pushes() {
		seen[p.Token]++
	}
	if seen["bob-online"] != 0 {
		t.Fatalf("bob, connected to node b, was pushed %d times", seen["bob-online"])
	}
	for i := range n {
		if tok := "c-" + strconv.Itoa(i); seen[tok] != 1 {
			t.Fatalf("pushes per device %v, want 1 each", seen)
		}
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
