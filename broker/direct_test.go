package broker

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/wait"
)

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"im/u/a/inbox", "im/u/a/inbox", true},
		{"im/u/a/inbox", "im/u/a/inbox/x", false},
		{"im/u/a/inbox/x", "im/u/a/inbox", false},
		{"im/u/a/+", "im/u/a/inbox", true},
		{"im/u/a/+", "im/u/a/d/x", false},
		{"im/u/a/d/+", "im/u/a/d/x", true},
		{"im/u/a/+/x", "im/u/a/d/x", true},
		{"im/u/a/#", "im/u/a/d/x", true},
		{"im/u/a/#", "im/u/a", true}, // [MQTT-4.7.1-2]
		{"im/u/a/inbox/#", "im/u/a/inbox", true},
		{"im/u/a/#", "im/u/ab/inbox", false},
		{"im/u/a/+", "im/u/a/", true}, // an empty level is a level
		{"im/u/a/inbox", "im/u/a/inboxx", false},
		{"#", "im/u/a/inbox", true},
		{"+/+/+/+", "im/u/a/inbox", true},
		{"+/+/+", "im/u/a/inbox", false},
	} {
		if got := matches(c.filter, c.topic); got != c.want {
			t.Errorf("matches(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

// rawClient speaks MQTT with mochi's own packet codec, so a test can see
// every property of what it receives (subscription identifiers, QoS).
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	ver  byte
	got  chan packets.Packet
}

func dialRaw(t *testing.T, addr, id string, ver byte) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), ver: ver, got: make(chan packets.Packet, 100)}
	t.Cleanup(func() { conn.Close() })
	user, _, _ := strings.Cut(id, "/")
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: ver,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(user)}})
	if pk := c.read(); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK %+v", id, pk)
	}
	go func() {
		for {
			pk, err := c.next()
			if err != nil {
				close(c.got)
				return
			}
			c.got <- pk
		}
	}()
	return c
}

func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	if _, err := c.conn.Write(encodePacket(c.t, pk)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) next() (packets.Packet, error) {
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: c.ver}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	return pk, decodeBody(&pk, body)
}

func (c *rawClient) read() packets.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	pk, err := c.next()
	_ = c.conn.SetReadDeadline(time.Time{})
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// subscribe subscribes and waits for the SUBACK (which the reader goroutine
// passes on).
func (c *rawClient) subscribe(id int, subs ...packets.Subscription) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: c.ver,
		PacketID: 1, Filters: subs}
	if id > 0 {
		pk.Properties.SubscriptionIdentifier = []int{id}
	}
	c.write(pk)
	if got := c.next1(); got.FixedHeader.Type != packets.Suback {
		c.t.Fatalf("want SUBACK, got %+v", got)
	}
}

func (c *rawClient) next1() packets.Packet {
	c.t.Helper()
	select {
	case pk := <-c.got:
		return pk
	case <-time.After(5 * time.Second):
		c.t.Fatal("nothing received in 5s")
		return packets.Packet{}
	}
}

// delivery is what a client sees of one publish, the payload's origin
// ("direct" or "mochi") cut off.
func delivery(pk packets.Packet) string {
	ids := slices.Clone(pk.Properties.SubscriptionIdentifier)
	slices.Sort(ids)
	_, what, _ := strings.Cut(string(pk.Payload), ":")
	return fmt.Sprintf("%s %s qos=%d retain=%v ids=%v", pk.TopicName, what, pk.FixedHeader.Qos, pk.FixedHeader.Retain, ids)
}

// TestDirectMatchesMochi: every client sees a direct delivery exactly as it
// sees mochi's own Publish of the same topic — the same clients, once each,
// the same QoS, subscription identifiers merged from overlapping
// subscriptions — and a takeover leaves the old connection out.
func TestDirectMatchesMochi(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	addr := b.MQTTAddr()

	a5 := dialRaw(t, addr, "alice/a", 5)
	a5.subscribe(7, packets.Subscription{Filter: "im/u/alice/inbox", Qos: 1})
	a5.subscribe(9, packets.Subscription{Filter: "im/u/alice/#"})
	a4 := dialRaw(t, addr, "alice/b", 4)
	a4.subscribe(0, packets.Subscription{Filter: "im/u/alice/+"}, packets.Subscription{Filter: "im/u/alice/d/b"})
	ad := dialRaw(t, addr, "alice/c", 5)
	ad.subscribe(0, packets.Subscription{Filter: "im/u/alice/d/c"})
	bob := dialRaw(t, addr, "bob/x", 4)
	bob.subscribe(0, packets.Subscription{Filter: "im/u/bob/inbox"}, packets.Subscription{Filter: "im/u/bob/d/x"})
	clients := map[string]*rawClient{"alice/a": a5, "alice/b": a4, "alice/c": ad, "bob/x": bob}

	// PublishUser is the delivery path's entry (internal/deliver): the user
	// comes with the topic, which is not read back.
	topics := [][2]string{{"alice", "im/u/alice/inbox"}, {"alice", "im/u/alice/d/c"}, {"alice", "im/u/alice/d/c/x"},
		{"bob", "im/u/bob/inbox"}, {"carol", "im/u/carol/inbox"}}
	for i, ut := range topics {
		user, topic := ut[0], ut[1]
		if err := b.PublishUser(user, topic, fmt.Appendf(nil, "direct:%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := b.srv.Publish(topic, fmt.Appendf(nil, "mochi:%d", i), false, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A marker on each client's device topic ends what it gets.
	for id := range clients {
		user, dev, _ := strings.Cut(id, "/")
		_ = b.srv.Publish("im/u/"+user+"/d/"+dev, []byte("end:"), false, 0)
	}
	for id, c := range clients {
		var direct, mochi []string
		for done := false; !done; {
			pk := c.next1()
			switch origin, _, _ := strings.Cut(string(pk.Payload), ":"); origin {
			case "direct":
				direct = append(direct, delivery(pk))
			case "mochi":
				mochi = append(mochi, delivery(pk))
			case "end":
				done = true
			}
		}
		if len(mochi) == 0 && id != "bob/x" && id != "alice/c" {
			t.Errorf("%s: mochi delivered nothing; the test's subscriptions are wrong", id)
		}
		if !slices.Equal(direct, mochi) {
			t.Errorf("%s:\ndirect %q\nmochi  %q", id, direct, mochi)
		}
	}

	// Takeover: a second connection as alice/b replaces the first; it gets
	// the next delivery (by Publish, which finds the user in the topic) and
	// the old one is gone from the index.
	a4b := dialRaw(t, addr, "alice/b", 4)
	a4b.subscribe(0, packets.Subscription{Filter: "im/u/alice/inbox"})
	wait.For(t, "alice's three routes", 5*time.Second, func() bool { return b.routes.count("alice") == 3 })
	if err := b.Publish("im/u/alice/inbox", []byte("direct:after")); err != nil {
		t.Fatal(err)
	}
	if pk := a4b.next1(); string(pk.Payload) != "direct:after" {
		t.Fatalf("after takeover got %q", pk.Payload)
	}
	a4b.conn.Close()
	wait.For(t, "alice's route to go with her connection", 5*time.Second, func() bool { return b.routes.count("alice") == 2 })
}

func (r *routes) count(user string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users[user])
}

// stopWatch counts disconnects.
type stopWatch struct {
	mqtt.HookBase
	ended atomic.Int64 // OnDisconnect calls
}

func (h *stopWatch) ID() string                             { return "stop-watch" }
func (h *stopWatch) Provides(b byte) bool                   { return b == mqtt.OnDisconnect }
func (h *stopWatch) OnDisconnect(*mqtt.Client, error, bool) { h.ended.Add(1) }

// closeProbe is a listener with no connections: mochi's Close reaches its
// Close while it closes the listeners and lists their clients.
type closeProbe struct {
	w       *stopWatch
	atClose atomic.Int64 // the disconnects counted by then
}

func (p *closeProbe) Init(*slog.Logger) error     { return nil }
func (p *closeProbe) Serve(listeners.EstablishFn) {}
func (p *closeProbe) ID() string                  { return "close-probe" }
func (p *closeProbe) Address() string             { return "" }
func (p *closeProbe) Protocol() string            { return "none" }
func (p *closeProbe) Close(listeners.CloseFn)     { p.atClose.Store(p.w.ended.Load()) }

// TestCloseEndsConnectionsFirst: Broker.Close lets every connection end
// before mochi's Close lists any listener's clients, which deadlocks against
// a connection ending at the same moment (mochi-mqtt/server#488).
func TestCloseEndsConnectionsFirst(t *testing.T) {
	b := New(Options{MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	w := new(stopWatch)
	for _, h := range []mqtt.Hook{new(auth.AllowHook), w} {
		if err := b.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	probe := &closeProbe{w: w}
	if err := b.srv.AddListener(probe); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		dialRaw(t, b.MQTTAddr(), fmt.Sprintf("u%d/d", i), byte(4+i%2))
	}
	wait.For(t, "every client connected", 5*time.Second, func() bool { return b.Clients() == n })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := probe.atClose.Load(); got != n {
		t.Fatalf("%d of %d connections had ended when mochi's Close began closing listeners", got, n)
	}
}

// TestDirectCostIgnoresExactFilters: a client holding thousands of exact
// filters costs a delivery one map lookup, not a walk of them all (attack 3:
// one user's 8,000 filters held up every user's acks on the dispatcher).
func TestDirectCostIgnoresExactFilters(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	c := dialRaw(t, b.MQTTAddr(), "eve/a", 4)
	var subs []packets.Subscription
	for i := range 2000 {
		subs = append(subs, packets.Subscription{Filter: fmt.Sprintf("im/u/eve/n/%d", i)})
	}
	c.subscribe(0, append(subs, packets.Subscription{Filter: "im/u/eve/inbox"}, packets.Subscription{Filter: "im/u/eve/+/x"})...)
	before := b.FilterChecks()
	if err := b.Publish("im/u/eve/inbox", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if pk := c.next1(); string(pk.Payload) != "hi" {
		t.Fatalf("got %q", pk.Payload)
	}
	if n := b.FilterChecks() - before; n != 2 { // the exact map, the one wildcard
		t.Fatalf("one delivery made %d filter checks, want 2", n)
	}
}
