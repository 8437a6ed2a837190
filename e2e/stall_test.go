package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestStalledSubscriber: a subscriber that stops reading does not slow or
// starve other users; what the broker drops for it, it gets back by sync.
func TestStalledSubscriber(t *testing.T) {
	// The event loop cuts off a reader past its write backlog: a small one,
	// so that what the sockets hold does not absorb the test's 6 MB.
	s := testserver.Start(t, func(c *daemon.Config) { c.Broker.MaxWriteBacklog = 256 << 10 })
	carolTok := account(t, s, "carol", "stuck")
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))

	// carol/stuck connects and subscribes by hand, then never reads again.
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10) // no autotuning: her kernel holds little
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, 60
	cp.ClientIdentifier, cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = "carol/stuck", true, "carol", true, []byte(carolTok)
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{wire.InboxTopic("carol")}, []byte{1}
	if err := cp.Write(conn); err != nil {
		t.Fatal(err)
	}
	if err := sp.Write(conn); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "carol's subscription", 10*time.Second, func() bool {
		return s.Daemon != nil && subscribed(s, "carol/stuck", wire.InboxTopic("carol"))
	})

	const toCarol, toBob = 1500, 50
	body := strings.Repeat("z", 4000) // ~6 MB for carol: more than the socket buffers hold
	for i := range toCarol {
		alice.publish(wire.TopicSend, wire.Send{CMID: fmt.Sprintf("c%d", i), To: "carol", Type: "text", Body: body})
		if i%30 == 0 {
			alice.publish(wire.TopicSend, wire.Send{CMID: fmt.Sprintf("b%d", i/30), To: "bob", Type: "text", Body: "hi"})
		}
	}
	wait.For(t, "bob gets all his messages", 10*time.Second, func() bool { return len(bob.msgs()) == toBob })
	wait.For(t, "alice gets every ack", 10*time.Second, func() bool { return len(alice.directOf("ack")) == toCarol+toBob })
	// Stalled, carol's deliveries are dropped (TLS: a full queue) or her
	// connection is cut off once its write backlog is full (the event loop).
	if n, cut := testutil.ToFloat64(s.Metrics().Dropped), refusals(s, "write_backlog"); n == 0 && cut == 0 {
		t.Fatalf("nothing was dropped for the stalled subscriber, nor was it cut off; the test did not stall it")
	}

	conn.Close()
	carol := connect(t, s.MQTT, "carol", "phone", login(t, s, "carol", "phone"))
	var since uint64
	seen := 0
	for {
		var b wire.Sync
		httpJSON(t, "GET", fmt.Sprintf("%s/v1/sync?since=%d&limit=1000", s.HTTP, since), carolTok, nil, &b)
		for _, m := range b.Items {
			seen++
			if m.Ver != uint64(seen) {
				t.Fatalf("item %d has ver %d", seen, m.Ver)
			}
		}
		since = b.Upto
		if !b.More {
			break
		}
	}
	if seen != toCarol {
		t.Fatalf("carol synced %d messages, want %d", seen, toCarol)
	}
	_ = carol
}

// TestStalledSessionSubscriber: TestStalledSubscriber with persistent
// sessions in the mix, whose inbox comes at QoS 1. A session device that
// stops reading holds its window of unacknowledged events and nothing
// else: the other devices, clean and persistent, get everything, alice
// every ack; nothing is dropped for the stalled one, whose later events
// wait in the store and are replayed, in order and once, when it comes
// back.
func TestStalledSessionSubscriber(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Broker.MaxWriteBacklog = 256 << 10 })
	account(t, s, "carol", "stuck")
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	account(t, s, "dave", "api")
	dave := connectSession(t, s.MQTT, "dave", "iot", "secret-dave")
	// alice sends over HTTP: no device of hers reads her copies of 6 MB.
	alice := account(t, s, "alice", "api")

	// carol/stuck: a persistent session (cleanSession=0) subscribed at QoS
	// 1 that never reads again.
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, false, 60
	cp.ClientIdentifier, cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = "carol/stuck", true, "carol", true, []byte("secret-carol")
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{wire.InboxTopic("carol")}, []byte{1}
	if err := cp.Write(conn); err != nil {
		t.Fatal(err)
	}
	if err := sp.Write(conn); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "carol's session takes her inbox", 10*time.Second, func() bool {
		return testutil.ToFloat64(s.Metrics().SessionsActive) == 2 // dave's and carol's
	})

	const toCarol, toOthers = 1500, 50
	body := strings.Repeat("z", 4000)
	sendHTTP := func(cmid, to, body string) {
		if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", alice, wire.Send{CMID: cmid, To: to, Type: "text", Body: body}, nil); code != 200 {
			t.Fatalf("send %s: %d", cmid, code) // every send is acked, none waits on carol
		}
	}
	for i := range toCarol {
		sendHTTP(fmt.Sprintf("c%d", i), "carol", body)
		if i%30 == 0 {
			sendHTTP(fmt.Sprintf("b%d", i/30), "bob", "hi")
			sendHTTP(fmt.Sprintf("d%d", i/30), "dave", "hi")
		}
	}
	wait.For(t, "bob gets all his messages", 10*time.Second, func() bool { return len(bob.msgs()) == toOthers })
	wait.For(t, "dave gets all his messages", 10*time.Second, func() bool { return len(dave.msgs()) == toOthers })
	if n := testutil.ToFloat64(s.Metrics().Dropped); n != 0 {
		t.Fatalf("%v events dropped: a session's events wait in the store instead", n)
	}
	// In flight: carol's window (32, the default), once dave has acknowledged his.
	wait.For(t, "only carol's window in flight", 10*time.Second, func() bool {
		return testutil.ToFloat64(s.Metrics().SessionUnackedGauge) == 32
	})

	conn.Close()
	carol := connectSession(t, s.MQTT, "carol", "stuck", "secret-carol")
	wait.For(t, "carol's replay", 30*time.Second, func() bool { return len(carol.msgs()) >= toCarol })
	var ver uint64
	for i, m := range carol.msgs() {
		if m.Ver <= ver || m.CMID != fmt.Sprintf("c%d", i) {
			t.Fatalf("carol's event %d: ver %d cmid %s after ver %d", i, m.Ver, m.CMID, ver)
		}
		ver = m.Ver
	}
	if n := len(carol.msgs()); n != toCarol {
		t.Fatalf("carol got %d events, want %d once each", n, toCarol)
	}
}
