package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// The faults of issue 5: a server restart mid-send, a dropped connection, a
// duplicate event, a gap in versions, an expired token and an unreachable
// first endpoint. In each the SDK recovers by itself (or, for the token,
// stops with client.ErrRefused until the app logs in again) and the app sees each
// message once, in order.

// fast shortens the SDK's timers so that recovery takes milliseconds.
func fast(c *client.Config) {
	c.MinBackoff, c.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	c.ResendInterval = 500 * time.Millisecond
	c.SyncTimeout = time.Second
}

// via connects over MQTT through p, with fast timers.
func via(p *faultProxy) func(*client.Config) {
	return func(c *client.Config) { c.MQTT = p.Addr(); fast(c) }
}

// sendAll sends bodies in order from c, each until acked.
func sendAll(t testing.TB, c *client.Client, to string, bodies ...string) []wire.Ack {
	t.Helper()
	var acks []wire.Ack
	for _, b := range bodies {
		ack, err := c.Send(testCtx(t), wire.Send{To: to, Body: b})
		if err != nil {
			t.Fatalf("send %q: %v", b, err)
		}
		acks = append(acks, ack)
	}
	return acks
}

// expectBodies waits until rec has len(want) messages and checks they are
// want, once each, in order, with growing versions.
func expectBodies(t testing.TB, who string, rec *recorder, want []string) []wire.Msg {
	t.Helper()
	wait.For(t, fmt.Sprintf("%s's %d messages", who, len(want)), 15*time.Second, func() bool { return len(rec.msgs()) >= len(want) })
	got := rec.msgs()
	checkOnceInOrder(t, who, got)
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("%s got %q\nwant %q", who, bodies(got), want)
	}
	return got
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint(prefix, i))
	}
	return out
}

// TestFaultServerRestartMidSend: the server stops and starts again (same
// data, same address behind the proxy) while alice sends one message after
// another. Sends in flight are resent with their cmid and acked once each;
// bob sees every message once, in order.
func TestFaultServerRestartMidSend(t *testing.T) {
	s := testserver.Start(t)
	proxy := newFaultProxy(t, s.MQTT)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec, via(proxy))
	bob := dial(t, s, bobSess, nil, &bobRec, via(proxy))

	want := numbered("m", 0, 40)
	var mu sync.Mutex
	var acks []wire.Ack
	var spans [][2]time.Time // when each Send began and returned
	done := make(chan error, 1)
	go func() {
		for _, b := range want {
			began := time.Now()
			ack, err := alice.Send(testCtx(t), wire.Send{To: "bob", Body: b})
			if err != nil {
				done <- fmt.Errorf("send %q: %w", b, err)
				return
			}
			mu.Lock()
			acks = append(acks, ack)
			spans = append(spans, [2]time.Time{began, time.Now()})
			mu.Unlock()
		}
		done <- nil
	}()
	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	wait.For(t, "10 acks", 15*time.Second, func() bool { return acked() >= 10 })
	s.Restart(t) // graceful: what was accepted is committed and acked first
	proxy.setTarget(s.MQTT)
	up := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(spans, func(sp [2]time.Time) bool { return sp[0].Before(up) && sp[1].After(up) }) {
		t.Fatal("no send was under way across the restart")
	}
	if alice.Connections() < 2 {
		t.Fatal("alice never reconnected")
	}
	got := expectBodies(t, "bob", &bobRec, want)
	ids := map[string]bool{}
	for i, a := range acks {
		if ids[a.ID] || a.ID != got[i].ID {
			t.Fatalf("ack %d %+v; bob's message %+v", i, a, got[i])
		}
		ids[a.ID] = true
	}
	if bob.Connections() < 2 || bob.Err() != nil {
		t.Fatalf("bob: %d connections, err %v", bob.Connections(), bob.Err())
	}
}

// TestFaultDroppedConnection: the network resets bob's connection, and then
// goes silent (a half-open connection nobody is told about, found by the
// keep-alive); both times bob reconnects by himself and misses nothing.
func TestFaultDroppedConnection(t *testing.T) {
	t.Parallel() // paho takes 10 s to give up on a silent connection
	s := testserver.Start(t)
	proxy := newFaultProxy(t, s.MQTT)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec, via(proxy), func(c *client.Config) { c.KeepAlive = time.Second })
	want := numbered("m", 0, 5)
	sendAll(t, alice, "bob", want...)
	expectBodies(t, "bob", &bobRec, want)

	proxy.cut()
	more := numbered("m", 5, 10)
	sendAll(t, alice, "bob", more...)
	want = append(want, more...)
	expectBodies(t, "bob", &bobRec, want)
	if g := bob.Connections(); g < 2 {
		t.Fatalf("bob did not reconnect after the reset: %d connections", g)
	}

	wait.For(t, "bob connected again", 15*time.Second, func() bool { return proxy.open() == 1 })
	gens := bob.Connections()
	proxy.stall()
	more = numbered("m", 10, 15)
	sendAll(t, alice, "bob", more...)
	want = append(want, more...)
	// paho's ping timeout (10 s) finds the silent connection.
	wait.ForErr(t, "bob to reconnect after a silent drop and get every message", 25*time.Second, func() error {
		if c, n := bob.Connections(), len(bobRec.msgs()); c == gens || n < len(want) {
			return fmt.Errorf("%d connections, %d messages", c, n)
		}
		return nil
	})
	expectBodies(t, "bob", &bobRec, want)
}

// TestFaultDuplicateEvent: an inbox event delivered twice (by the network
// right away, and again by the broker after later ones) reaches the app once.
func TestFaultDuplicateEvent(t *testing.T) {
	s := testserver.Start(t)
	proxy := newFaultProxy(t, s.MQTT)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	dial(t, s, bobSess, nil, &bobRec, via(proxy))
	inbox := wire.InboxTopic("bob")
	proxy.setFaults(nil, func(topic string, p []byte) bool {
		return topic == inbox && bytes.Contains(p, []byte(`"body":"twice"`))
	})
	sendAll(t, alice, "bob", "one", "twice", "three")
	expectBodies(t, "bob", &bobRec, []string{"one", "twice", "three"})
	if _, doubled := proxy.counts(); doubled != 1 {
		t.Fatalf("the proxy repeated %d events, want 1", doubled)
	}
	// The broker publishes an old event again; a marker shows it has passed.
	old, _ := json.Marshal(bobRec.msgs()[0])
	if err := s.Broker().Publish(inbox, old); err != nil {
		t.Fatal(err)
	}
	sendAll(t, alice, "bob", "marker")
	expectBodies(t, "bob", &bobRec, []string{"one", "twice", "three", "marker"})
}

// TestFaultGap: the network loses one inbox event; the next one shows a gap
// in ver, and bob syncs the lost one before it.
func TestFaultGap(t *testing.T) {
	s := testserver.Start(t)
	proxy := newFaultProxy(t, s.MQTT)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec, via(proxy), func(c *client.Config) {
		c.ResyncInterval = -1 // only the gap may start the sync
	})
	if err := bob.WaitSynced(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	inbox := wire.InboxTopic("bob")
	proxy.setFaults(func(topic string, p []byte) bool {
		return topic == inbox && bytes.Contains(p, []byte(`"body":"lost"`))
	}, nil)
	sendAll(t, alice, "bob", "one", "lost", "three")
	expectBodies(t, "bob", &bobRec, []string{"one", "lost", "three"})
	if dropped, _ := proxy.counts(); dropped != 1 {
		t.Fatalf("the proxy lost %d events, want 1", dropped)
	}
	bobRec.mu.Lock()
	defer bobRec.mu.Unlock()
	for _, ev := range bobRec.evs {
		if ev.Msg != nil && ev.Msg.Body == "lost" && !ev.Synced {
			t.Fatal("the lost event came live")
		}
	}
	if bob.Connections() != 1 {
		t.Fatalf("bob reconnected (%d connections): the gap should be filled on the same one", bob.Connections())
	}
}

// TestFaultExpiredToken: bob's token expires while he is connected; his next
// reconnect is refused and the client stops with client.ErrRefused (it does not
// retry a credential that cannot work). The app logs in again and dials with
// the same cursor: it gets what came meanwhile, once, after what it had.
func TestFaultExpiredToken(t *testing.T) {
	const ttl = 2 * time.Second
	s := testserver.Start(t, func(c *daemon.Config) { c.TokenTTL = ttl })
	login(t, s, "alice", "phone")
	bobSess := login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	// alice uses her password, which does not expire.
	alice := dial(t, s, wire.Session{User: "alice", Device: "phone", Token: "pw-alice"}, nil, &aliceRec)
	cur := &client.MemoryCursor{}
	bob := dial(t, s, bobSess, cur, &bobRec, func(c *client.Config) { c.MQTT = s.MQTT; fast(c) })
	sendAll(t, alice, "bob", "1", "2")
	expectBodies(t, "bob", &bobRec, []string{"1", "2"})

	h := &client.HTTP{Server: s.HTTP, Token: bobSess.Token}
	wait.For(t, "bob's token to expire", 15*time.Second, func() bool {
		_, err := h.Conversations(testCtx(t))
		var we *wire.Error
		return errors.As(err, &we) && we.Code == wire.CodeUnauthorized
	})
	sendAll(t, alice, "bob", "3") // the open connection still works
	expectBodies(t, "bob", &bobRec, []string{"1", "2", "3"})
	wait.For(t, "bob kicked", 15*time.Second, func() bool { return s.KickDevice("bob/phone") })
	select {
	case <-bob.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("bob's client kept going with an expired token")
	}
	if !errors.Is(bob.Err(), client.ErrRefused) {
		t.Fatalf("bob stopped with %v, want ErrRefused", bob.Err())
	}
	sendAll(t, alice, "bob", "4", "5")

	fresh := login(t, s, "bob", "phone")
	var again recorder
	bob = dial(t, s, fresh, cur, &again, func(c *client.Config) { c.MQTT = s.MQTT; fast(c) })
	if err := bob.WaitSynced(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	sendAll(t, alice, "bob", "6")
	expectBodies(t, "bob after logging in again", &again, []string{"4", "5", "6"})
	if all := append(bobRec.msgs(), again.msgs()...); len(all) != 6 {
		t.Fatalf("bob saw %q", bodies(all))
	} else {
		checkOnceInOrder(t, "bob across the new login", all)
	}
}

// TestFaultUnreachableFirstEndpoint: /v1/endpoints lists a node that is down
// first; the client goes on to the next and works, also across a reconnect.
func TestFaultUnreachableFirstEndpoint(t *testing.T) {
	s := testserver.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	var mu sync.Mutex
	asked := 0
	endpoints := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/endpoints" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		asked++
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(wire.Endpoints{Endpoints: []wire.Endpoint{
			{Node: "down", MQTT: dead}, {Node: "test", MQTT: s.MQTT},
		}})
	}))
	t.Cleanup(endpoints.Close)

	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec, func(c *client.Config) { c.Server = endpoints.URL; c.MQTT = ""; fast(c) })
	mu.Lock()
	if asked < 2 {
		t.Errorf("the endpoints were asked %d times; the first one should have failed", asked)
	}
	mu.Unlock()
	want := numbered("m", 0, 5)
	sendAll(t, alice, "bob", want...)
	expectBodies(t, "bob", &bobRec, want)

	wait.For(t, "bob kicked", 15*time.Second, func() bool { return s.KickDevice("bob/phone") })
	more := numbered("m", 5, 10)
	sendAll(t, alice, "bob", more...)
	expectBodies(t, "bob", &bobRec, append(want, more...))
	if bob.Connections() < 3 || bob.Err() != nil { // down, up, (down,) up again
		t.Fatalf("bob: %d connection attempts, err %v", bob.Connections(), bob.Err())
	}
}
