package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/apns"
	"github.com/imqtt/imqtt/internal/push/fcm"
	"github.com/imqtt/imqtt/internal/push/pushtest"
	"github.com/imqtt/imqtt/internal/push/webhook"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// These tests run a whole node (the real Pebble store, the real HTTP API
// and MQTT listener) whose providers speak the real protocols to
// in-process fakes: APNs over HTTP/2 with a checked ES256 JWT, FCM v1 with
// its OAuth2 token endpoint, a webhook receiver that checks signatures.

const hookSecret = "push-test-secret"

type env struct {
	s    *testserver.Server
	apns *pushtest.APNs
	fcm  *pushtest.FCM
	hook *pushtest.Webhook
}

// start runs a node pushing through the three fakes.
func start(t *testing.T, edit ...func(*daemon.Config)) *env {
	t.Helper()
	e := &env{apns: pushtest.NewAPNs(t), fcm: pushtest.NewFCM(t), hook: pushtest.NewWebhook(t, hookSecret)}
	pushers := e.pushers(t)
	e.s = testserver.Start(t, append([]func(*daemon.Config){func(c *daemon.Config) { c.Push.Pushers = pushers }}, edit...)...)
	return e
}

func (e *env) pushers(t *testing.T) []push.Pusher {
	t.Helper()
	a, err := apns.New(apns.Options{Key: e.apns.KeyPEM, KeyID: e.apns.KeyID, TeamID: e.apns.TeamID, Topic: pushtest.APNsTopic,
		URL: e.apns.URL, HTTPClient: e.apns.Client()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fcm.New(fcm.Options{Credentials: e.fcm.Credentials, URL: e.fcm.URL, HTTPClient: e.fcm.Client()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := webhook.New(webhook.Options{URL: e.hook.URL, Secret: []byte(hookSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return []push.Pusher{a, f, w}
}

// login registers user (once) and logs its device in.
func login(t *testing.T, s *testserver.Server, user, device string) *client.HTTP {
	t.Helper()
	h := &client.HTTP{Server: s.HTTP}
	ctx := context.Background()
	if err := h.Register(ctx, user, "secret-"+user); err != nil {
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeExists {
			t.Fatalf("register %s: %v", user, err)
		}
	}
	sess, err := h.Login(ctx, user, "secret-"+user, device)
	if err != nil {
		t.Fatalf("login %s/%s: %v", user, device, err)
	}
	h.Token = sess.Token
	return h
}

func registerPush(t *testing.T, h *client.HTTP, provider, token string) {
	t.Helper()
	if _, err := h.RegisterPush(context.Background(), wire.PushRegister{Provider: provider, Token: token}); err != nil {
		t.Fatalf("register %s push: %v", provider, err)
	}
}

func send(t *testing.T, h *client.HTTP, to, body string) wire.Ack {
	t.Helper()
	ack, err := h.Send(context.Background(), wire.Send{CMID: body, To: to, Type: "text", Body: body})
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return ack
}

func pushed(s *testserver.Server, provider, result string) float64 {
	return testutil.ToFloat64(s.Metrics().PushTotal.WithLabelValues(provider, result))
}

// quiet lets d pass, for a test to check that nothing more arrives
// (never to wait for something: wait.For does that).
func quiet(d time.Duration) { time.Sleep(d) }

// TestOfflineDevicePushedOnce: a message to a user whose devices are not
// connected reaches each registered device once, through its provider,
// saying who sent it (the sender preview) with the unread count as badge;
// nothing reaches the sender's own devices.
func TestOfflineDevicePushedOnce(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	alicePhone := login(t, e.s, "alice", "phone")
	registerPush(t, alicePhone, "apns", pushtest.APNsToken(9)) // the sender's own device: nothing
	bobPhone := login(t, e.s, "bob", "phone")
	registerPush(t, bobPhone, "apns", pushtest.APNsToken(1))
	bobTablet := login(t, e.s, "bob", "tablet")
	registerPush(t, bobTablet, "fcm", "fcm-token-bob-tablet")
	bobHook := login(t, e.s, "bob", "watch")
	registerPush(t, bobHook, "webhook", "watch-1")

	ack := send(t, alice, "bob", "hello bob")
	wait.For(t, "one push per device", 5*time.Second, func() bool {
		return len(e.apns.Notifications()) == 1 && len(e.fcm.Messages()) == 1 && len(e.hook.Pushes()) == 1
	})
	n := e.apns.Notifications()[0]
	if n.Token != pushtest.APNsToken(1) || n.Payload.Aps.Alert.Title != "alice" || n.Payload.Aps.Alert.Body != "alice sent you a message" ||
		n.Payload.Aps.Badge == nil || *n.Payload.Aps.Badge != 1 || n.Payload.MessageID != ack.ID || n.Payload.Count != 1 ||
		n.Header.Get("apns-collapse-id") != "u:alice" || n.Header.Get("apns-topic") != pushtest.APNsTopic {
		t.Fatalf("APNs notification %+v %s", n.Payload, n.Raw)
	}
	if bytes.Contains(n.Raw, []byte("hello bob")) {
		t.Fatalf("the sender preview carries the body: %s", n.Raw)
	}
	m := e.fcm.Messages()[0].Message
	if m.Token != "fcm-token-bob-tablet" || m.Notification.Body != "alice sent you a message" || m.Android.CollapseKey != "u:alice" {
		t.Fatalf("FCM message %s", e.fcm.Messages()[0].Raw)
	}
	w := e.hook.Pushes()[0]
	if w.User != "bob" || w.Device != "watch" || w.Token != "watch-1" || w.Badge != 1 || w.Conversation != "u:alice" || w.MessageID != ack.ID {
		t.Fatalf("webhook push %s", w.Raw)
	}
	quiet(2500 * time.Millisecond) // past a collapse window and a few polls: nothing more
	if a, f, h := len(e.apns.Notifications()), len(e.fcm.Messages()), len(e.hook.Pushes()); a != 1 || f != 1 || h != 1 {
		t.Fatalf("pushes after a while: apns %d fcm %d webhook %d, want 1 each", a, f, h)
	}
	if v := pushed(e.s, "apns", push.ResultSent); v != 1 {
		t.Fatalf("imqtt_push_total{apns,sent} = %v", v)
	}
}

// TestOnlineDeviceNotPushed: a device connected over MQTT gets the
// message live and no push.
func TestOnlineDeviceNotPushed(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "webhook", "bob-phone")
	conn := connect(t, e.s, "bob", "phone", bob.Token)
	send(t, alice, "bob", "you are here")
	wait.For(t, "the push found the device online", 5*time.Second, func() bool { return pushed(e.s, "webhook", push.ResultOnline) == 1 })
	if n := len(e.hook.Pushes()); n != 0 {
		t.Fatalf("%d pushes to a connected device", n)
	}
	conn.Close()
	wait.For(t, "the device gone", 5*time.Second, func() bool { return !online(t, e.s, "bob", "phone") })
	send(t, alice, "bob", "now you are not")
	wait.For(t, "a push once it dropped", 5*time.Second, func() bool { return len(e.hook.Pushes()) == 1 })
}

func online(t *testing.T, s *testserver.Server, user, device string) bool {
	devs, err := s.Daemon.Presence().Devices(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Device == device {
			return true
		}
	}
	return false
}

// connect holds an MQTT connection of user/device, logged in with its token.
func connect(t *testing.T, s *testserver.Server, user, device, token string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60,
			ClientIdentifier: user + "/" + device, UsernameFlag: true, Username: []byte(user),
			PasswordFlag: true, Password: []byte(token)}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	wait.For(t, "presence", 5*time.Second, func() bool { return online(t, s, user, device) })
	return conn
}

// TestBurstCollapses: messages to one device within the collapse window
// make one notification more, saying how many, with the same collapse ID
// (the phone shows one): never one per message.
func TestBurstCollapses(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "apns", pushtest.APNsToken(2))
	send(t, alice, "bob", "burst-0")
	wait.For(t, "the first push", 5*time.Second, func() bool { return len(e.apns.Notifications()) == 1 })
	for i := 1; i < 6; i++ { // within the window the first opened
		send(t, alice, "bob", "burst-"+strconv.Itoa(i))
		time.Sleep(50 * time.Millisecond) // sends spread over the window, each its own commit and job
	}
	total := func() int {
		n := 0
		for _, x := range e.apns.Notifications() {
			n += x.Payload.Count
		}
		return n
	}
	wait.For(t, "all six messages pushed", 8*time.Second, func() bool { return total() == 6 })
	notes := e.apns.Notifications()
	if len(notes) != 2 || notes[1].Payload.Count != 5 {
		t.Fatalf("%d notifications for a burst of 6, want 2 (the first, then the window's 5)", len(notes))
	}
	last := notes[len(notes)-1]
	if last.Header.Get("apns-collapse-id") != "u:alice" || (len(notes) == 2 && last.Payload.Aps.Alert.Body != "alice sent you "+strconv.Itoa(last.Payload.Count)+" messages") {
		t.Fatalf("the window's notification: %s %s", last.Header.Get("apns-collapse-id"), last.Raw)
	}
	if last.Payload.Aps.Badge == nil || *last.Payload.Aps.Badge != 6 {
		t.Fatalf("badge %v, want 6 unread", last.Payload.Aps.Badge)
	}
}

// TestInvalidTokenRemoved: a token APNs calls unregistered (410) loses its
// registration; FCM's UNREGISTERED too.
func TestInvalidTokenRemoved(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "apns", pushtest.APNsToken(3))
	carol := login(t, e.s, "carol", "phone")
	registerPush(t, carol, "fcm", "carol-gone")
	e.apns.SetAnswer(pushtest.APNsToken(3), pushtest.APNsUnregistered)
	e.fcm.SetAnswer("carol-gone", pushtest.FCMUnregistered)
	send(t, alice, "bob", "to a phone that is gone")
	send(t, alice, "carol", "to another")
	for _, u := range []*client.HTTP{bob, carol} {
		wait.For(t, "the registration removed", 5*time.Second, func() bool {
			ds, err := u.PushDevices(context.Background())
			return err == nil && len(ds.Devices) == 0
		})
	}
	if pushed(e.s, "apns", push.ResultInvalidToken) != 1 || pushed(e.s, "fcm", push.ResultInvalidToken) != 1 {
		t.Fatal("invalid tokens not counted")
	}
}

// TestProviderDownThenBack: while the provider fails (503) the push is
// retried with backoff; once it is back the device gets it once.
func TestProviderDownThenBack(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "fcm", "bob-fcm")
	e.fcm.SetAnswer("bob-fcm", pushtest.Unavailable)
	send(t, alice, "bob", "while down")
	wait.For(t, "two failed attempts", 10*time.Second, func() bool { return pushed(e.s, "fcm", push.ResultRetry) >= 2 })
	e.fcm.SetAnswer("bob-fcm", pushtest.Answer{})
	wait.For(t, "the push once the provider is back", 15*time.Second, func() bool { return len(e.fcm.Messages()) == 1 })
	quiet(2 * time.Second)
	if n := len(e.fcm.Messages()); n != 1 {
		t.Fatalf("%d pushes accepted, want 1", n)
	}
}

// TestExpiredDropped: a push the provider has not accepted within the TTL
// is dropped, counted, and not tried again.
func TestExpiredDropped(t *testing.T) {
	e := start(t, func(c *daemon.Config) { c.Push.TTL = 2 * time.Second })
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "webhook", "bob-hook")
	e.hook.SetAnswer("bob-hook", pushtest.Unavailable)
	send(t, alice, "bob", "never delivered")
	wait.For(t, "dropped past the TTL", 10*time.Second, func() bool { return pushed(e.s, "webhook", push.ResultExpired) == 1 })
	n := e.hook.Requests()
	e.hook.SetAnswer("bob-hook", pushtest.Answer{})
	quiet(2 * time.Second)
	if e.hook.Requests() != n || len(e.hook.Pushes()) != 0 {
		t.Fatalf("tried again after the TTL: %d requests, then %d", n, e.hook.Requests())
	}
}

// TestRestartNoDuplicates: pushes pending in the outbox when the node
// stops go out after it starts again, once each.
func TestRestartNoDuplicates(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	var tokens []string
	for i := range 5 {
		u := login(t, e.s, "u"+strconv.Itoa(i), "phone")
		tok := "hook-" + strconv.Itoa(i)
		registerPush(t, u, "webhook", tok)
		tokens = append(tokens, tok)
		e.hook.SetAnswer(tok, pushtest.Unavailable)
	}
	for i := range 5 {
		send(t, alice, "u"+strconv.Itoa(i), "before the restart "+strconv.Itoa(i))
	}
	wait.For(t, "every push tried once", 10*time.Second, func() bool { return pushed(e.s, "webhook", push.ResultRetry) >= 5 })
	e.s.Restart(t)
	for _, tok := range tokens {
		e.hook.SetAnswer(tok, pushtest.Answer{})
	}
	wait.For(t, "every push after the restart", 20*time.Second, func() bool { return len(e.hook.Pushes()) >= 5 })
	quiet(2 * time.Second)
	seen := map[string]int{}
	for _, p := range e.hook.Pushes() {
		seen[p.Token]++
	}
	for _, tok := range tokens {
		if seen[tok] != 1 {
			t.Fatalf("pushes per device %v, want 1 each", seen)
		}
	}
}

// TestTwoWorkersPushOnce: two push workers on one store (two nodes share
// MongoDB so; here they share the node's Pebble store): each message
// reaches each device once. What it shows is the whole worker (jobs
// claimed, items idempotent, held devices not due); a claim's exclusivity
// on its own is storetest's Push part (two claimers at once, both stores),
// and e2e's TestPushClusterMongo runs two nodes on FerretDB.
func TestTwoWorkersPushOnce(t *testing.T) {
	e := start(t)
	other := push.New(e.s.Daemon.Store(), e.s.Daemon.Presence(), noBadge{}, push.Options{Node: "other", Pushers: e.pushers(t)})
	other.Start()
	t.Cleanup(func() { other.Close(context.Background()) })
	alice := login(t, e.s, "alice", "web")
	const n = 16
	for i := range n {
		u := login(t, e.s, "u"+strconv.Itoa(i), "phone")
		registerPush(t, u, "webhook", "two-"+strconv.Itoa(i))
	}
	for i := range n {
		send(t, alice, "u"+strconv.Itoa(i), fmt.Sprintf("m%d", i))
		other.Notify()
	}
	wait.For(t, "every device pushed", 10*time.Second, func() bool { return len(e.hook.Pushes()) >= n })
	quiet(2500 * time.Millisecond)
	seen := map[string]int{}
	for _, p := range e.hook.Pushes() {
		seen[p.Token]++
	}
	if len(e.hook.Pushes()) != n || len(seen) != n {
		t.Fatalf("%d pushes to %d devices, want %d once each: %v", len(e.hook.Pushes()), len(seen), n, seen)
	}
}

type noBadge struct{}

func (noBadge) Badge(context.Context, string) (int64, error) { return 0, nil }

// TestRegistrationRefusals: bad providers and tokens are 400 with a code,
// a token of another user's device is refused, a device with no
// registration is 404; logout and a ban remove registrations.
func TestRegistrationRefusals(t *testing.T) {
	e := start(t)
	bob := login(t, e.s, "bob", "phone")
	ctx := context.Background()
	for _, c := range []struct {
		req  wire.PushRegister
		code string
	}{
		{wire.PushRegister{Provider: "pigeon", Token: "x"}, wire.CodeBadProvider},
		{wire.PushRegister{Provider: "", Token: "x"}, wire.CodeBadProvider},
		{wire.PushRegister{Provider: "fcm", Token: ""}, wire.CodeBadToken},
		{wire.PushRegister{Provider: "fcm", Token: string(bytes.Repeat([]byte("a"), wire.MaxPushToken+1))}, wire.CodeBadToken},
		{wire.PushRegister{Provider: "fcm", Token: "tab\there"}, wire.CodeBadToken},
		{wire.PushRegister{Provider: "apns", Token: "not-hex"}, wire.CodeBadToken},
		{wire.PushRegister{Provider: "apns", Token: pushtest.APNsToken(1), Topic: "bad topic/../"}, wire.CodeBadRequest},
	} {
		_, err := bob.RegisterPush(ctx, c.req)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != c.code {
			t.Errorf("%+v: %v, want %s", c.req, err, c.code)
		}
	}
	registerPush(t, bob, "fcm", "shared-token")
	mallory := login(t, e.s, "mallory", "phone")
	_, err := mallory.RegisterPush(ctx, wire.PushRegister{Provider: "fcm", Token: "shared-token"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeTokenInUse {
		t.Fatalf("another user's token: %v, want token_in_use", err)
	}
	// Bob's token moves between his own devices.
	bobTablet := login(t, e.s, "bob", "tablet")
	registerPush(t, bobTablet, "fcm", "shared-token")
	if ds, _ := bob.PushDevices(ctx); len(ds.Devices) != 1 || ds.Devices[0].Device != "tablet" {
		t.Fatalf("after the move: %+v", ds)
	}
	if err := bob.UnregisterPush(ctx, "nosuch"); !errors.As(err, &we) || we.Code != wire.CodeNotFound {
		t.Fatalf("unregister a device with none: %v", err)
	}
	if err := bob.UnregisterPush(ctx, ""); !errors.As(err, &we) || we.Code != wire.CodeNotFound {
		t.Fatalf("unregister the current device (phone), which has none now: %v", err)
	}
	// A device of the caller's with no registration is 404 (a device
	// registers only its own token: "current").
	req, _ := http.NewRequest(http.MethodPut, e.s.HTTP+"/v1/devices/nosuch/push", strings.NewReader(`{"provider":"fcm","token":"t"}`))
	req.Header.Set("Authorization", "Bearer "+bob.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("PUT on a device that does not exist: %v %v", resp.StatusCode, err)
	}
	// Logout removes the device's registration.
	if err := bobTablet.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if ds, _ := bob.PushDevices(ctx); len(ds.Devices) != 0 {
		t.Fatalf("after logout: %+v", ds)
	}
	// Nothing pushed without a configured provider: a node with none.
	bare := testserver.Start(t)
	carol := login(t, bare, "carol", "phone")
	if _, err := carol.RegisterPush(ctx, wire.PushRegister{Provider: "apns", Token: pushtest.APNsToken(1)}); !errors.As(err, &we) || we.Code != wire.CodeBadProvider {
		t.Fatalf("a provider the node does not have: %v", err)
	}
}

// TestMutedPushesOnlyMentions: a group (or 1:1) the recipient muted pushes
// nothing, except a message that mentions them; other members are pushed,
// the group named ("alice in Team").
func TestMutedPushesOnlyMentions(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	carol := login(t, e.s, "carol", "phone")
	registerPush(t, bob, "webhook", "bob-hook")
	registerPush(t, carol, "webhook", "carol-hook")
	ctx := context.Background()
	if _, err := alice.CreateGroup(ctx, wire.GroupCreate{ID: "team", Name: "Team", Members: []string{"bob", "carol"}}); err != nil {
		t.Fatal(err)
	}
	putJSON(t, e.s.HTTP+"/v1/groups/team/settings", bob.Token, `{"mute":true}`)
	putJSON(t, e.s.HTTP+"/v1/conversations/alice/settings", carol.Token, `{"mute_until":`+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)+`}`)
	sendGroup := func(body string, mentions ...string) {
		t.Helper()
		if _, err := alice.Send(ctx, wire.Send{CMID: body, Group: "team", Type: "text", Body: body, Mentions: mentions}); err != nil {
			t.Fatalf("send %q: %v", body, err)
		}
	}
	sendGroup("to all")
	wait.For(t, "carol pushed (she muted alice, not the group)", 5*time.Second, func() bool { return len(e.hook.Pushes()) == 1 })
	if p := e.hook.Pushes()[0]; p.Token != "carol-hook" || p.Title != "Team" || p.Body != "alice in Team" || p.Conversation != "g:team" {
		t.Fatalf("group push %s", p.Raw)
	}
	send(t, alice, "carol", "1:1 muted")
	sendGroup("hey bob", "bob")
	wait.For(t, "bob pushed for the mention", 5*time.Second, func() bool { return len(e.hook.Pushes()) >= 3 })
	var bobs []pushtest.WebhookPush
	for _, p := range e.hook.Pushes() {
		if p.Token == "bob-hook" {
			bobs = append(bobs, p)
		}
	}
	if len(bobs) != 1 || bobs[0].Body != "alice mentioned you in Team" {
		t.Fatalf("bob's pushes: %+v", bobs)
	}
	quiet(2500 * time.Millisecond)
	for _, p := range e.hook.Pushes() {
		if p.Token == "carol-hook" && p.Conversation == "u:alice" {
			t.Fatalf("a push from a muted 1:1 conversation: %s", p.Raw)
		}
	}
	// The badge leaves muted conversations out: carol's last push (for
	// "hey bob") counts the group's two messages, not the muted 1:1's.
	wait.For(t, "carol's second push", 5*time.Second, func() bool {
		n := 0
		for _, p := range e.hook.Pushes() {
			if p.Token == "carol-hook" {
				n++
			}
		}
		return n == 2
	})
	var last pushtest.WebhookPush
	for _, p := range e.hook.Pushes() {
		if p.Token == "carol-hook" {
			last = p
		}
	}
	if last.Badge != 2 {
		t.Fatalf("carol's badge %d, want 2 (the group's two, not the muted 1:1): %s", last.Badge, last.Raw)
	}
}

func putJSON(t *testing.T, url, token, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %d", url, resp.StatusCode)
	}
}

// TestRegistrationCap: a user holds at most push.MaxDevices registrations;
// a new device past it is refused (409 too_many_devices), a registered
// device may still replace its own, and an unregistered one makes room.
func TestRegistrationCap(t *testing.T) {
	e := start(t)
	var devs []*client.HTTP
	for i := range push.MaxDevices + 1 {
		devs = append(devs, login(t, e.s, "many", "d"+strconv.Itoa(i)))
	}
	for i := range push.MaxDevices {
		registerPush(t, devs[i], "webhook", "cap-"+strconv.Itoa(i))
	}
	ctx := context.Background()
	last := devs[push.MaxDevices]
	_, err := last.RegisterPush(ctx, wire.PushRegister{Provider: "webhook", Token: "cap-extra"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeTooManyDevices {
		t.Fatalf("one device past the cap: %v, want too_many_devices", err)
	}
	registerPush(t, devs[0], "webhook", "cap-0-new") // its own, replaced
	if err := devs[1].UnregisterPush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	registerPush(t, last, "webhook", "cap-extra")
}

// TestAdminListsPushDevices: the admin API lists a user's registrations,
// tokens cut short; a user's token is refused there.
func TestAdminListsPushDevices(t *testing.T) {
	e := start(t, func(c *daemon.Config) { c.AdminToken = "admin-secret" })
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "apns", pushtest.APNsToken(7))
	get := func(token string) (int, wire.PushDevices) {
		req, _ := http.NewRequest(http.MethodGet, e.s.HTTP+"/v1/admin/users/Bob/push", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ds wire.PushDevices
		_ = json.NewDecoder(resp.Body).Decode(&ds)
		return resp.StatusCode, ds
	}
	code, ds := get("admin-secret")
	tok := pushtest.APNsToken(7)
	if code != http.StatusOK || len(ds.Devices) != 1 || ds.Devices[0].Device != "phone" || ds.Devices[0].User != "bob" ||
		ds.Devices[0].Token != tok[:4]+"…"+tok[len(tok)-4:] {
		t.Fatalf("admin list: %d %+v", code, ds)
	}
	if code, _ := get(bob.Token); code != http.StatusForbidden {
		t.Fatalf("a user's token on the admin API: %d", code)
	}
}

// TestComesOnlineWhilePending: a push still pending (its provider failing)
// when its device connects is not sent: the device has the message.
func TestComesOnlineWhilePending(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "webhook", "bob-later")
	e.hook.SetAnswer("bob-later", pushtest.Unavailable)
	send(t, alice, "bob", "while the provider is down")
	wait.For(t, "a failed attempt", 5*time.Second, func() bool { return pushed(e.s, "webhook", push.ResultRetry) >= 1 })
	connect(t, e.s, "bob", "phone", bob.Token)
	e.hook.SetAnswer("bob-later", pushtest.OK)
	wait.For(t, "the pending push found the device online", 10*time.Second, func() bool { return pushed(e.s, "webhook", push.ResultOnline) == 1 })
	if n := len(e.hook.Pushes()); n != 0 {
		t.Fatalf("%d pushes to a device that came back", n)
	}
}

// TestRegistrationRate: one user registering in a loop (each a synced
// store write) is refused past push.RegisterLimit with 429 rate_limited.
func TestRegistrationRate(t *testing.T) {
	e := start(t)
	bob := login(t, e.s, "bob", "phone")
	ctx := context.Background()
	var err error
	n := 0
	for ; n < push.RegisterLimit.Burst+1; n++ {
		if _, err = bob.RegisterPush(ctx, wire.PushRegister{Provider: "webhook", Token: "loop-" + strconv.Itoa(n)}); err != nil {
			break
		}
	}
	var we *wire.Error
	if n != push.RegisterLimit.Burst || !errors.As(err, &we) || we.Code != wire.CodeRateLimited {
		t.Fatalf("after %d registrations: %v, want rate_limited after %d", n, err, push.RegisterLimit.Burst)
	}
}

// recall recalls a message over HTTP as h's user.
func recall(t *testing.T, s *testserver.Server, h *client.HTTP, id string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.HTTP+"/v1/messages/"+id+"/recall", strings.NewReader(`{"cmid":"recall-`+id+`"}`))
	req.Header.Set("Authorization", "Bearer "+h.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("recall %s: %d", id, res.StatusCode)
	}
}

// TestRecalledNotPushed: a message recalled while its notification waits
// (the collapse window) is not told of: with another message pending the
// notification counts only that one; alone, none goes out.
func TestRecalledNotPushed(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "apns", pushtest.APNsToken(3))
	send(t, alice, "bob", "opens-the-window")
	wait.For(t, "the first push", 5*time.Second, func() bool { return len(e.apns.Notifications()) == 1 })
	keep := send(t, alice, "bob", "kept")
	gone := send(t, alice, "bob", "recalled")
	recall(t, e.s, alice, gone.ID)
	wait.For(t, "the window's push", 8*time.Second, func() bool { return len(e.apns.Notifications()) == 2 })
	n := e.apns.Notifications()[1]
	if n.Payload.Count != 1 || n.Payload.MessageID != keep.ID {
		t.Fatalf("notification for kept+recalled: count %d id %s, want 1 and %s", n.Payload.Count, n.Payload.MessageID, keep.ID)
	}
	alone := send(t, alice, "bob", "alone")
	recall(t, e.s, alice, alone.ID)
	wait.For(t, "the recalled message's push dropped", 8*time.Second, func() bool {
		return pushed(e.s, "apns", push.ResultRecalled) == 1
	})
	if len(e.apns.Notifications()) != 2 {
		t.Fatalf("%d notifications: a recalled message's went out", len(e.apns.Notifications()))
	}
}

// TestRecallTakesNotificationBack: a message pushed to an offline device
// and then recalled sends that device a silent notification naming it
// (APNs background with content-available, an FCM data message, the
// webhook's silent), in the conversation's collapse ID, so the app
// removes what it shows; a device never told of it gets nothing.
func TestRecallTakesNotificationBack(t *testing.T) {
	e := start(t)
	alice := login(t, e.s, "alice", "web")
	bob := login(t, e.s, "bob", "phone")
	registerPush(t, bob, "apns", pushtest.APNsToken(4))
	bobTab := login(t, e.s, "bob", "tablet")
	registerPush(t, bobTab, "fcm", "fcm-token-recall")
	bobHook := login(t, e.s, "bob", "watch")
	registerPush(t, bobHook, "webhook", "watch-recall")
	ack := send(t, alice, "bob", "oops")
	wait.For(t, "the message's pushes", 5*time.Second, func() bool {
		return len(e.apns.Notifications()) == 1 && len(e.fcm.Messages()) == 1 && len(e.hook.Pushes()) == 1
	})
	recall(t, e.s, alice, ack.ID)
	wait.For(t, "the recall's pushes", 10*time.Second, func() bool {
		return len(e.apns.Notifications()) == 2 && len(e.fcm.Messages()) == 2 && len(e.hook.Pushes()) == 2
	})
	n := e.apns.Notifications()[1]
	if n.Header.Get("apns-push-type") != "background" || n.Header.Get("apns-priority") != "5" ||
		n.Header.Get("apns-collapse-id") != "u:alice" || !bytes.Contains(n.Raw, []byte(`"content-available":1`)) ||
		!bytes.Contains(n.Raw, []byte(`"recalled":["`+ack.ID+`"]`)) || bytes.Contains(n.Raw, []byte(`"alert"`)) ||
		bytes.Contains(n.Raw, []byte("oops")) {
		t.Fatalf("APNs recall: %v %s", n.Header, n.Raw)
	}
	f := e.fcm.Messages()[1]
	if bytes.Contains(f.Raw, []byte(`"notification":{"title"`)) || !bytes.Contains(f.Raw, []byte(`"recalled":"`+ack.ID+`"`)) ||
		!bytes.Contains(f.Raw, []byte(`"collapse_key":"u:alice"`)) {
		t.Fatalf("FCM recall: %s", f.Raw)
	}
	if w := e.hook.Pushes()[1]; !bytes.Contains(w.Raw, []byte(`"silent":true`)) || !bytes.Contains(w.Raw, []byte(ack.ID)) {
		t.Fatalf("webhook recall: %s", w.Raw)
	}
	// A message recalled before its push went out: nothing to take back.
	alone := send(t, alice, "bob", "never told")
	recall(t, e.s, alice, alone.ID)
	quiet(3 * time.Second)
	if len(e.apns.Notifications()) != 2 {
		t.Fatalf("%d APNs notifications: one for a message never told of", len(e.apns.Notifications()))
	}
}
