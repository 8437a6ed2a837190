package session_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// dev is a device speaking MQTT by hand, so that a test decides when (and
// whether) it acknowledges.
type dev struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	ver  byte
	user string
	pres bool // the CONNACK's Session Present
}

type connOpts struct {
	v5      bool
	clean   bool   // 3.1.1 cleanSession / MQTT 5 Clean Start
	expiry  uint32 // MQTT 5 Session Expiry Interval
	recvMax uint16 // MQTT 5 Receive Maximum
}

func dial(t testing.TB, s *testserver.Server, user, device string, o connOpts) *dev {
	t.Helper()
	conn, err := net.Dial("tcp", s.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d := &dev{t: t, conn: conn, r: bufio.NewReader(conn), ver: 4, user: user}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: o.clean, Keepalive: 60,
			ClientIdentifier: user + "/" + device, UsernameFlag: true, Username: []byte(user),
			PasswordFlag: true, Password: []byte("secret-" + user)}}
	if o.v5 {
		d.ver, pk.ProtocolVersion = 5, 5
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = o.expiry, o.expiry > 0
		pk.Properties.ReceiveMaximum = o.recvMax
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	d.write(buf.Bytes())
	ack := d.read()
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("%s/%s: CONNACK %+v", user, device, ack)
	}
	d.pres = ack.SessionPresent
	return d
}

func (d *dev) write(b []byte) {
	d.t.Helper()
	if _, err := d.conn.Write(b); err != nil {
		d.t.Fatal(err)
	}
}

// read returns the next packet, failing after 5 s.
func (d *dev) read() packets.Packet {
	d.t.Helper()
	pk, err := d.tryRead(5 * time.Second)
	if err != nil {
		d.t.Fatalf("%s: read: %v", d.user, err)
	}
	return pk
}

func (d *dev) tryRead(within time.Duration) (packets.Packet, error) {
	_ = d.conn.SetReadDeadline(time.Now().Add(within))
	pk := packets.Packet{ProtocolVersion: d.ver}
	hb, err := d.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(d.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(d.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

func (d *dev) subscribe(qos byte) {
	d.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: d.ver, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: wire.InboxTopic(d.user), Qos: qos}}}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		d.t.Fatal(err)
	}
	d.write(buf.Bytes())
	for {
		if pk := d.read(); pk.FixedHeader.Type == packets.Suback {
			return
		}
	}
}

func (d *dev) puback(id uint16) {
	d.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: d.ver, PacketID: id}
	var buf bytes.Buffer
	if err := pk.PubackEncode(&buf); err != nil {
		d.t.Fatal(err)
	}
	d.write(buf.Bytes())
}

func (d *dev) disconnect() {
	d.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: d.ver}
	var buf bytes.Buffer
	if err := pk.DisconnectEncode(&buf); err != nil {
		d.t.Fatal(err)
	}
	d.write(buf.Bytes())
	_, _ = io.Copy(io.Discard, d.r) // until the server closes
	d.conn.Close()
}

// event is one inbox PUBLISH.
type event struct {
	qos  byte
	id   uint16
	kind string
	ver  uint64
	grp  string
	seq  uint64
	body string
	raw  json.RawMessage
}

// next returns the next inbox event (other packets skipped).
func (d *dev) next() event {
	d.t.Helper()
	for {
		pk := d.read()
		if pk.FixedHeader.Type != packets.Publish || pk.TopicName != wire.InboxTopic(d.user) {
			continue
		}
		var m struct {
			Kind  string `json:"kind"`
			Ver   uint64 `json:"ver"`
			Group string `json:"group"`
			Seq   uint64 `json:"seq"`
			Body  string `json:"body"`
		}
		if err := json.Unmarshal(pk.Payload, &m); err != nil {
			d.t.Fatalf("inbox event %q: %v", pk.Payload, err)
		}
		return event{qos: pk.FixedHeader.Qos, id: pk.PacketID, kind: m.Kind, ver: m.Ver, grp: m.Group, seq: m.Seq, body: m.Body, raw: pk.Payload}
	}
}

// nextMsg returns the next message event, acknowledging it if ack.
func (d *dev) nextMsg(ack bool) event {
	d.t.Helper()
	for {
		ev := d.next()
		if ev.kind != wire.KindMsg && ev.kind != wire.KindResync {
			continue
		}
		if ack && ev.qos > 0 {
			d.puback(ev.id)
		}
		return ev
	}
}

// quiet fails if a message event arrives within d.
func (d *dev) quiet(within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		pk, err := d.tryRead(time.Until(deadline))
		if err != nil {
			return
		}
		if pk.FixedHeader.Type == packets.Publish && bytes.Contains(pk.Payload, []byte(`"kind":"msg"`)) {
			d.t.Fatalf("%s: unexpected message %s", d.user, pk.Payload)
		}
	}
}

func post(t testing.TB, url, token string, body, out any) int {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

// users registers each user and returns the first one's token.
func users(t testing.TB, s *testserver.Server, names ...string) string {
	t.Helper()
	for _, u := range names {
		if code := post(t, s.HTTP+"/v1/users", "", wire.Register{User: u, Password: "secret-" + u}, nil); code != 201 {
			t.Fatalf("register %s: %d", u, code)
		}
	}
	var sess wire.Session
	if code := post(t, s.HTTP+"/v1/sessions", "", wire.Login{User: names[0], Password: "secret-" + names[0], Device: "api"}, &sess); code != 200 {
		t.Fatalf("login: %d", code)
	}
	return sess.Token
}

// send has the token's user send body to to and returns the message's
// ver in the recipient's inbox... as the sender sees its own; the test
// matches by body instead.
func send(t testing.TB, s *testserver.Server, token, to, body string) {
	t.Helper()
	if code := post(t, s.HTTP+"/v1/messages", token, wire.Send{CMID: body, To: to, Type: "text", Body: body}, nil); code != 200 {
		t.Fatalf("send %q: %d", body, code)
	}
}

func sendGroup(t testing.TB, s *testserver.Server, token, group, body string) {
	t.Helper()
	if code := post(t, s.HTTP+"/v1/messages", token, wire.Send{CMID: body, Group: group, Type: "text", Body: body}, nil); code != 200 {
		t.Fatalf("send %q to %s: %d", body, group, code)
	}
}

// TestReplayAfterReconnect: a 3.1.1 device with cleanSession=0 that was
// away gets what arrived meanwhile, at QoS 1, in order, once; then live
// events at QoS 1; and a session it resumes says so in its CONNACK.
func TestReplayAfterReconnect(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	if bob.pres {
		t.Fatal("a new session is present")
	}
	bob.subscribe(1)
	send(t, s, alice, "bob", "live-1")
	if ev := bob.nextMsg(true); ev.body != "live-1" || ev.qos != 1 {
		t.Fatalf("live event %+v, want live-1 at QoS 1", ev)
	}
	bob.disconnect()
	for i := range 3 {
		send(t, s, alice, "bob", fmt.Sprintf("away-%d", i))
	}
	bob = dial(t, s, "bob", "iot", connOpts{}) // subscribes nothing: the session holds the subscription
	if !bob.pres {
		t.Fatal("the resumed session's CONNACK says Session Present 0")
	}
	var last uint64
	for i := range 3 {
		ev := bob.nextMsg(true)
		if ev.body != fmt.Sprintf("away-%d", i) || ev.qos != 1 || ev.ver <= last {
			t.Fatalf("replayed %d: %+v (after ver %d)", i, ev, last)
		}
		last = ev.ver
	}
	send(t, s, alice, "bob", "live-2")
	if ev := bob.nextMsg(true); ev.body != "live-2" || ev.ver != last+1 {
		t.Fatalf("live after the replay: %+v", ev)
	}
	bob.quiet(300 * time.Millisecond)
	if n := testutil.ToFloat64(s.Metrics().SessionReplays); n < 3 {
		t.Fatalf("imqtt_session_replayed_total %v, want ≥ 3", n)
	}
}

// TestReplayMQTT5AfterRestart: an MQTT 5 session (expiry 3600) survives a
// restart of the node: its positions and subscriptions are in the store.
func TestReplayMQTT5AfterRestart(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	o := connOpts{v5: true, expiry: 3600}
	bob := dial(t, s, "bob", "iot", o)
	bob.subscribe(1)
	send(t, s, alice, "bob", "before")
	bob.nextMsg(true)
	bob.disconnect()
	send(t, s, alice, "bob", "away")
	s.Restart(t)
	bob = dial(t, s, "bob", "iot", o)
	if !bob.pres {
		t.Fatal("no Session Present after a restart")
	}
	if ev := bob.nextMsg(true); ev.body != "away" {
		t.Fatalf("replayed %+v, want away", ev)
	}
	bob.quiet(300 * time.Millisecond)
}

// TestAckPositions: PUBACKs out of order, twice, or for packet IDs never
// sent do not move the acknowledged position past what was acknowledged
// in order: the next connection gets everything after the acknowledged
// prefix, and nothing before it.
func TestAckPositions(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.Inflight = 4 })
	alice := users(t, s, "alice", "bob")
	o := connOpts{v5: true, expiry: 3600}
	bob := dial(t, s, "bob", "iot", o)
	bob.subscribe(1)
	for i := range 6 {
		send(t, s, alice, "bob", fmt.Sprintf("m%d", i))
	}
	var evs []event
	for range 4 { // the window: 4 in flight
		evs = append(evs, bob.nextMsg(false))
	}
	bob.quiet(300 * time.Millisecond) // m4, m5 wait for acknowledgements
	bob.puback(evs[0].id)
	bob.puback(evs[0].id) // twice
	bob.puback(evs[2].id) // out of order: m1 is not acknowledged
	bob.puback(9999)      // never sent
	if ev := bob.nextMsg(false); ev.body != "m4" {
		t.Fatalf("after acks: %+v, want m4", ev)
	}
	bob.disconnect()
	bob = dial(t, s, "bob", "iot", o)
	for _, want := range []string{"m1", "m2", "m3", "m4", "m5"} { // m0 acknowledged; m2 only out of order
		if ev := bob.nextMsg(true); ev.body != want {
			t.Fatalf("replayed %+v, want %s", ev, want)
		}
	}
	bob.quiet(300 * time.Millisecond)
}

// TestReceiveMaximum: an MQTT 5 device's Receive Maximum bounds what is in
// flight to it (MQTT 5 §4.9).
func TestReceiveMaximum(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{v5: true, expiry: 60, recvMax: 2})
	bob.subscribe(1)
	for i := range 4 {
		send(t, s, alice, "bob", fmt.Sprintf("m%d", i))
	}
	a, b := bob.nextMsg(false), bob.nextMsg(false)
	bob.quiet(300 * time.Millisecond)
	bob.puback(a.id)
	if ev := bob.nextMsg(false); ev.body != "m2" {
		t.Fatalf("%+v, want m2", ev)
	}
	_ = b
}

// TestReplayBound: past --session-replay-max a device gets a resync event
// naming the range to sync, not the events, and the session goes on after
// it.
func TestReplayBound(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.ReplayMax = 3 })
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(1)
	bob.disconnect()
	for i := range 5 {
		send(t, s, alice, "bob", fmt.Sprintf("m%d", i))
	}
	bob = dial(t, s, "bob", "iot", connOpts{})
	ev := bob.nextMsg(true)
	var r wire.Resync
	_ = json.Unmarshal(ev.raw, &r)
	if ev.kind != wire.KindResync || r.Reason != wire.ResyncBacklog || r.Upto-r.Since != 5 || ev.qos != 1 {
		t.Fatalf("got %s, want a resync of 5 events", ev.raw)
	}
	send(t, s, alice, "bob", "after")
	if ev := bob.nextMsg(true); ev.body != "after" || ev.ver != r.Upto+1 {
		t.Fatalf("after the resync: %+v", ev)
	}
	if n := testutil.ToFloat64(s.Metrics().SessionResyncs.WithLabelValues(wire.ResyncBacklog)); n != 1 {
		t.Fatalf("resyncs counted: %v", n)
	}
}

// TestCleanSessionDiscards: a clean connection discards the device's
// session [MQTT-3.1.2-6]; a persistent one after it starts anew.
func TestCleanSessionDiscards(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(1)
	bob.disconnect()
	send(t, s, alice, "bob", "missed")
	clean := dial(t, s, "bob", "iot", connOpts{clean: true})
	if clean.pres {
		t.Fatal("a clean session is present")
	}
	clean.quiet(300 * time.Millisecond)
	clean.disconnect()
	bob = dial(t, s, "bob", "iot", connOpts{})
	if bob.pres {
		t.Fatal("the session discarded by a clean connection is present")
	}
	bob.subscribe(1)
	bob.quiet(300 * time.Millisecond)
	send(t, s, alice, "bob", "new")
	if ev := bob.nextMsg(true); ev.body != "new" {
		t.Fatalf("%+v", ev)
	}
}

// TestQoS0SubscriptionIsLiveOnly: a persistent session subscribed at QoS 0
// gets live events at QoS 0, as it asked, and no replay.
func TestQoS0SubscriptionIsLiveOnly(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(0)
	send(t, s, alice, "bob", "live")
	if ev := bob.nextMsg(false); ev.qos != 0 || ev.body != "live" {
		t.Fatalf("%+v, want live at QoS 0", ev)
	}
	bob.disconnect()
	send(t, s, alice, "bob", "missed")
	bob = dial(t, s, "bob", "iot", connOpts{})
	bob.quiet(300 * time.Millisecond)
}

// TestGroupReplay: group messages missed are replayed by seq, per group,
// with the direct ones.
func TestGroupReplay(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	if code := post(t, s.HTTP+"/v1/groups", alice, map[string]any{"id": "g1", "name": "g", "members": []string{"bob"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(1)
	sendGroup(t, s, alice, "g1", "g-live")
	if ev := bob.nextMsg(true); ev.body != "g-live" || ev.grp != "g1" || ev.qos != 1 {
		t.Fatalf("%+v", ev)
	}
	bob.disconnect()
	sendGroup(t, s, alice, "g1", "g-0")
	send(t, s, alice, "bob", "d-0")
	sendGroup(t, s, alice, "g1", "g-1")
	bob = dial(t, s, "bob", "iot", connOpts{})
	got := map[string]bool{}
	var seq uint64
	for range 3 {
		ev := bob.nextMsg(true)
		got[ev.body] = true
		if ev.grp == "g1" {
			if ev.seq <= seq {
				t.Fatalf("group seq %d after %d", ev.seq, seq)
			}
			seq = ev.seq
		}
	}
	if !got["g-0"] || !got["g-1"] || !got["d-0"] {
		t.Fatalf("replayed %v", got)
	}
	bob.quiet(300 * time.Millisecond)
}

// TestStalledSessionHoldsNoOne: a device with a persistent session that
// never acknowledges holds its window and nothing else: other devices get
// every event, and its own later events wait in the store.
func TestStalledSessionHoldsNoOne(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.Inflight = 8 })
	alice := users(t, s, "alice", "bob", "carol")
	stuck := dial(t, s, "carol", "iot", connOpts{})
	stuck.subscribe(1)
	other := dial(t, s, "bob", "iot", connOpts{})
	other.subscribe(1)
	for i := range 50 {
		send(t, s, alice, "carol", fmt.Sprintf("c%d", i))
		send(t, s, alice, "bob", fmt.Sprintf("b%d", i))
	}
	for i := range 50 {
		if ev := other.nextMsg(true); ev.body != fmt.Sprintf("b%d", i) {
			t.Fatalf("bob: %+v, want b%d", ev, i)
		}
	}
	for range 8 {
		stuck.nextMsg(false)
	}
	stuck.quiet(300 * time.Millisecond)
	if n := testutil.ToFloat64(s.Metrics().SessionUnackedGauge); n != 8 {
		t.Fatalf("unacked gauge %v, want carol's 8", n)
	}
	stuck.conn.Close()
	carol := dial(t, s, "carol", "iot", connOpts{})
	for i := range 50 {
		if ev := carol.nextMsg(true); ev.body != fmt.Sprintf("c%d", i) {
			t.Fatalf("carol: %+v, want c%d", ev, i)
		}
	}
}

// TestTakeoverSameNode: a second connection of the device takes the
// session over; what the first acknowledged is not sent again.
func TestTakeoverSameNode(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	first := dial(t, s, "bob", "iot", connOpts{})
	first.subscribe(1)
	send(t, s, alice, "bob", "m0")
	first.nextMsg(true)
	// A PUBACK still unread when the session is taken over is lost with
	// its connection, as MQTT has it: m0 would be sent again.
	wait.For(t, "m0 acknowledged", 5*time.Second, func() bool { return testutil.ToFloat64(s.Metrics().SessionUnackedGauge) == 0 })
	send(t, s, alice, "bob", "m1")
	first.nextMsg(false) // not acknowledged: sent again
	second := dial(t, s, "bob", "iot", connOpts{})
	if !second.pres {
		t.Fatal("takeover: no Session Present")
	}
	if ev := second.nextMsg(true); ev.body != "m1" {
		t.Fatalf("after takeover: %+v, want m1 (m0 was acknowledged)", ev)
	}
	send(t, s, alice, "bob", "m2")
	if ev := second.nextMsg(true); ev.body != "m2" {
		t.Fatalf("%+v", ev)
	}
	second.quiet(300 * time.Millisecond)
}

// TestBanDropsSessions: banning a user deletes its sessions.
func TestBanDropsSessions(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.AdminToken = "admin-secret" })
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(1)
	bob.disconnect()
	send(t, s, alice, "bob", "missed")
	var ban struct{ ID string }
	if code := post(t, s.HTTP+"/v1/admin/bans", "admin-secret", map[string]any{"user": "bob"}, &ban); code != 201 {
		t.Fatalf("ban: %d", code)
	}
	req, _ := http.NewRequest("DELETE", s.HTTP+"/v1/admin/bans/"+ban.ID, nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("unban: %v %v", resp, err)
	}
	bob = dial(t, s, "bob", "iot", connOpts{})
	if bob.pres {
		t.Fatal("a banned user's session survived the ban")
	}
}

// TestExpiry: a session disconnected for longer than --session-expiry-max
// (or its MQTT 5 expiry, if lower) is gone: the device starts clean.
func TestExpiry(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.ExpiryMax = time.Second })
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(1)
	bob.disconnect()
	send(t, s, alice, "bob", "missed")
	time.Sleep(1500 * time.Millisecond) // past the expiry: a wait for the clock, not for the server
	bob = dial(t, s, "bob", "iot", connOpts{})
	if bob.pres {
		t.Fatal("an expired session is present")
	}
	bob.quiet(300 * time.Millisecond)
}

// TestMQTT5DisconnectEndsSession: an MQTT 5 device that sets its expiry to
// 0 in its DISCONNECT ends its session there (MQTT 5 §3.14.2.2.2).
func TestMQTT5DisconnectEndsSession(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	o := connOpts{v5: true, expiry: 3600}
	bob := dial(t, s, "bob", "iot", o)
	bob.subscribe(1)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5,
		Properties: packets.Properties{SessionExpiryInterval: 0, SessionExpiryIntervalFlag: true}}
	var buf bytes.Buffer
	if err := pk.DisconnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	bob.write(buf.Bytes())
	_, _ = io.Copy(io.Discard, bob.r)
	send(t, s, alice, "bob", "missed")
	bob = dial(t, s, "bob", "iot", o)
	if bob.pres {
		t.Fatal("a session ended by its DISCONNECT is present")
	}
	bob.quiet(300 * time.Millisecond)
}

// TestReconnectFlood: a device reconnecting over and over without
// acknowledging anything gets, each time, at most its window, holds one
// session, and, once it reads, gets everything once.
func TestReconnectFlood(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.Inflight = 4 })
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{})
	bob.subscribe(1)
	bob.disconnect()
	for i := range 20 {
		send(t, s, alice, "bob", fmt.Sprintf("m%d", i))
	}
	for range 30 {
		d := dial(t, s, "bob", "iot", connOpts{})
		d.nextMsg(false)
		d.conn.Close() // no DISCONNECT, nothing acknowledged
	}
	bob = dial(t, s, "bob", "iot", connOpts{})
	for i := range 20 {
		if ev := bob.nextMsg(true); ev.body != fmt.Sprintf("m%d", i) {
			t.Fatalf("%+v, want m%d", ev, i)
		}
	}
	bob.quiet(300 * time.Millisecond)
	wait.For(t, "one session active", 5*time.Second, func() bool { return testutil.ToFloat64(s.Metrics().SessionsActive) == 1 })
}

// TestClientPacketIDsApart: a device subscribing and publishing with the
// packet ID of a QoS 1 delivery in flight to it (every client numbers from
// 1, as the server does) neither has its SUBSCRIBE refused nor loses that
// delivery from the server's flight (whose PUBACK restores MQTT 5's send
// quota): the two directions' IDs are apart (MQTT 5 §2.2.1; imqtt's mochi
// patch, hunk 7).
func TestClientPacketIDsApart(t *testing.T) {
	s := testserver.Start(t)
	alice := users(t, s, "alice", "bob")
	bob := dial(t, s, "bob", "iot", connOpts{v5: true, expiry: 60, recvMax: 2})
	bob.subscribe(1)
	send(t, s, alice, "bob", "m0")
	ev := bob.nextMsg(false)
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: ev.id,
		Filters: packets.Subscriptions{{Filter: wire.InboxTopic("bob"), Qos: 1}}}
	var buf bytes.Buffer
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	bob.write(buf.Bytes())
	for {
		pk := bob.read()
		if pk.FixedHeader.Type == packets.Suback {
			if len(pk.ReasonCodes) != 1 || pk.ReasonCodes[0] != 1 {
				t.Fatalf("SUBACK %v, want QoS 1 granted", pk.ReasonCodes)
			}
			break
		}
	}
	pub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5, PacketID: ev.id,
		TopicName: wire.TopicSync, Payload: []byte(`{"since":0}`)}
	buf.Reset()
	if err := pub.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	bob.write(buf.Bytes())
	bob.puback(ev.id)
	for i := 1; i <= 4; i++ { // more than the Receive Maximum of 2: each waits for a PUBACK
		send(t, s, alice, "bob", fmt.Sprintf("m%d", i))
	}
	for i := 1; i <= 4; i++ {
		if ev := bob.nextMsg(true); ev.body != fmt.Sprintf("m%d", i) {
			t.Fatalf("%+v, want m%d", ev, i)
		}
	}
}

// TestMaxPerUser: one user may hold --session-max-per-user persistent
// sessions (each a row kept for days); a new one past it is disconnected
// with 0x97, while the user's sessions and clean connections go on.
func TestMaxPerUser(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Sessions.MaxPerUser = 2 })
	users(t, s, "bob")
	o := connOpts{v5: true, expiry: 60}
	dial(t, s, "bob", "a", o).disconnect()
	dial(t, s, "bob", "b", o).disconnect()
	third := dial(t, s, "bob", "c", o)
	pk := third.read()
	if pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("a third session: %+v, want DISCONNECT 0x97", pk)
	}
	if n := testutil.ToFloat64(s.Metrics().Refusals.WithLabelValues("session_quota")); n != 1 {
		t.Fatalf("session_quota refusals counted: %v, want 1", n)
	}
	if a := dial(t, s, "bob", "a", o); !a.pres {
		t.Fatal("an existing session was not resumed")
	}
	clean := dial(t, s, "bob", "c", connOpts{v5: true})
	clean.subscribe(0)
}
