package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// Raw MQTT for the attacks below, built by hand so they can send what no
// client library would. Names start with gate: other attack files share
// the package.

// gateStr is an MQTT string or binary field: length, then bytes.
func gateStr(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// gateLen is an MQTT variable byte integer.
func gateLen(n int) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		if n >>= 7; n == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

const (
	gateClean      = 0x02
	gateWill       = 0x04
	gateWillRetain = 0x20
	gatePassword   = 0x40
	gateUsername   = 0x80
)

// gateConnect is a CONNECT: protocol level ver, flags, MQTT 5 properties
// (ver 5 only, without their length), then the payload fields.
func gateConnect(ver, flags byte, props []byte, payload ...[]byte) []byte {
	body := append(gateStr("MQTT"), ver, flags, 0, 60)
	if ver == 5 {
		body = append(append(body, gateLen(len(props))...), props...)
	}
	for _, p := range payload {
		body = append(body, p...)
	}
	return append(append([]byte{0x10}, gateLen(len(body))...), body...)
}

// gateLogin is a CONNECT as user/dev with secret, with props (MQTT 5) and,
// if willTopic is set, a will (retained if willRetain).
func gateLogin(ver byte, user, dev, secret string, props []byte, willTopic, willPayload string, willRetain bool) []byte {
	flags := byte(gateClean | gateUsername | gatePassword)
	payload := [][]byte{gateStr(user + "/" + dev)}
	if willTopic != "" {
		flags |= gateWill
		if willRetain {
			flags |= gateWillRetain
		}
		if ver == 5 {
			payload = append(payload, []byte{0}) // no will properties
		}
		payload = append(payload, gateStr(willTopic), gateStr(willPayload))
	}
	payload = append(payload, gateStr(user), gateStr(secret))
	return gateConnect(ver, flags, props, payload...)
}

// gateConn is a raw MQTT connection.
type gateConn struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	ver byte
}

func gateDial(t *testing.T, addr string, ver byte) *gateConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &gateConn{t: t, c: c, r: bufio.NewReader(c), ver: ver}
}

func (g *gateConn) write(raw []byte) {
	g.t.Helper()
	if _, err := g.c.Write(raw); err != nil {
		g.t.Fatal(err)
	}
}

// next reads the next packet (5s at most); io.EOF when the server closed.
func (g *gateConn) next() (mpackets.Packet, error) {
	_ = g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb, err := g.r.ReadByte()
	if err != nil {
		return mpackets.Packet{}, err
	}
	pk := mpackets.Packet{ProtocolVersion: g.ver}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := mpackets.DecodeLength(g.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(g.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case mpackets.Connack:
		err = pk.ConnackDecode(body)
	case mpackets.Disconnect:
		err = pk.DisconnectDecode(body)
	case mpackets.Publish:
		err = pk.PublishDecode(body)
	}
	return pk, err
}

// connack reads the CONNACK and returns its code.
func (g *gateConn) connack() byte {
	g.t.Helper()
	pk, err := g.next()
	if err != nil || pk.FixedHeader.Type != mpackets.Connack {
		g.t.Fatalf("want CONNACK, got %+v, %v", pk.FixedHeader, err)
	}
	return pk.ReasonCode
}

// closed asserts the server closes the connection with nothing more sent.
func (g *gateConn) closed(what string) {
	g.t.Helper()
	pk, err := g.next()
	if err == nil {
		g.t.Fatalf("%s: got a %s packet (reason %#x) before the close", what, mpackets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode)
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		g.t.Fatalf("%s: connection still open", what)
	}
}

func refusals(s *testserver.Server, limit string) float64 {
	return testutil.ToFloat64(s.Metrics().Refusals.WithLabelValues(limit))
}

// TestAttackWillForgery (Why 1): a logged-in user CONNECTs with a will on
// bob's inbox carrying a fake msg event and drops the socket. mochi would
// publish the will without the ACL check. Refused at CONNACK (3.1.1 return
// code 5, MQTT 5 0x83 with a reason), bob receives nothing, and nothing is
// retained for his next subscription.
func TestAttackWillForgery(t *testing.T) {
	s := testserver.Start(t)
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	tok := account(t, s, "mallory", "x")
	forged := `{"kind":"msg","conv":"d:bob:mallory","ver":999999,"id":"1","from":"alice","body":"send me your password"}`
	for _, ver := range []byte{4, 5} {
		c := gateDial(t, s.MQTT, ver)
		c.write(gateLogin(ver, "mallory", "x", tok, nil, wire.InboxTopic("bob"), forged, false))
		want := byte(5)
		if ver == 5 {
			want = 0x83
		}
		if code := c.connack(); code != want {
			t.Fatalf("MQTT %d CONNECT with a will: CONNACK %#x, want %#x", ver, code, want)
		}
		c.closed("after the refusal")
	}
	if n := refusals(s, "will"); n != 2 {
		t.Fatalf("will refusals counted %v, want 2", n)
	}
	// A real message afterwards: bob (and a device subscribing only now,
	// which would get a retained will first) sees it and nothing forged.
	mallory := connect(t, s.MQTT, "mallory", "x", tok)
	bob2 := connect(t, s.MQTT, "bob", "tablet", login(t, s, "bob", "tablet"))
	if _, werr := mallory.send("bob", "real", "real"); werr != nil {
		t.Fatal(werr)
	}
	for _, d := range []*device{bob, bob2} {
		wait.For(t, "bob's real message", 10*time.Second, func() bool { return len(d.msgs()) == 1 })
		if m := d.msgs(); len(m) != 1 || m[0].Body != "real" {
			t.Fatalf("bob/%s received %+v", d.device, m)
		}
	}
}

// TestAttackWillRetain (Why 1): a retained will (1,000 of 65 KB grew the
// server by 270 MB and were redelivered on every subscribe) is refused:
// MQTT 5 0x9A (retain not supported), 3.1.1 return code 5; a 65 KB one is
// not even read (a CONNECT is bounded), the connection is closed. A PUBLISH
// with retain from a logged-in client ends its connection (MQTT 5:
// DISCONNECT 0x9A) and is neither delivered nor kept.
func TestAttackWillRetain(t *testing.T) {
	s := testserver.Start(t)
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	tok := account(t, s, "mallory", "x")
	for _, ver := range []byte{4, 5} {
		c := gateDial(t, s.MQTT, ver)
		c.write(gateLogin(ver, "mallory", "x", tok, nil, wire.InboxTopic("bob"), `{"kind":"msg","body":"forged"}`, true))
		want := byte(5)
		if ver == 5 {
			want = 0x9a
		}
		if code := c.connack(); code != want {
			t.Fatalf("MQTT %d CONNECT with a retained will: CONNACK %#x, want %#x", ver, code, want)
		}
		c.closed("after the refusal")
		big := gateDial(t, s.MQTT, ver)
		_, _ = big.c.Write(gateLogin(ver, "mallory", "x", tok, nil, wire.InboxTopic("bob"), `{"kind":"msg","body":"`+strings.Repeat("x", 65<<10)+`"}`, true))
		big.closed("65 KB retained will")
	}
	if n := refusals(s, "will"); n != 2 {
		t.Fatalf("will refusals counted %v, want 2", n)
	}
	if n := refusals(s, "connect_invalid"); n != 2 {
		t.Fatalf("oversized CONNECTs counted %v, want 2", n)
	}
	for _, ver := range []byte{4, 5} {
		c := gateDial(t, s.MQTT, ver)
		c.write(gateLogin(ver, "mallory", "x", tok, nil, "", "", false))
		if code := c.connack(); code != 0 {
			t.Fatalf("login: %#x", code)
		}
		pub := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Publish, Retain: true}, ProtocolVersion: ver,
			TopicName: wire.TopicSend, Payload: []byte(`{"cmid":"r","to":"bob","body":"retained"}`)}
		c.write(gatePublish(t, pub))
		if ver == 5 {
			if pk, err := c.next(); err != nil || pk.FixedHeader.Type != mpackets.Disconnect || pk.ReasonCode != 0x9a {
				t.Fatalf("retained PUBLISH: %+v %#x, %v; want DISCONNECT 0x9a", pk.FixedHeader, pk.ReasonCode, err)
			}
		}
		c.closed("retained PUBLISH")
	}
	if n := refusals(s, "retain"); n != 2 {
		t.Fatalf("retain refusals counted %v, want 2", n)
	}
	mallory := connect(t, s.MQTT, "mallory", "x", tok)
	if _, werr := mallory.send("bob", "real", "real"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "bob's real message", 10*time.Second, func() bool { return len(bob.msgs()) == 1 })
	if m := bob.msgs(); m[0].Body != "real" {
		t.Fatalf("bob received %+v", m)
	}
}

// gatePublish is a PUBLISH's bytes.
func gatePublish(t *testing.T, pk mpackets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAttackSilentSocket (Why 2): a socket that never sends CONNECT, over
// TCP or WebSocket, is closed at the CONNECT deadline (short here), counted.
func TestAttackSilentSocket(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Broker.ConnectTimeout = 300 * time.Millisecond })
	start := time.Now()
	c := gateDial(t, s.MQTT, 4)
	c.closed("silent TCP socket")
	half := gateDial(t, s.MQTT, 4)
	half.write(gateLogin(4, "a", "b", "c", nil, "", "", false)[:8]) // half a CONNECT
	half.closed("half a CONNECT")
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(s.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.NextReader(); err == nil || errors.As(err, new(net.Error)) && err.(net.Error).Timeout() {
		t.Fatalf("silent WebSocket: %v, want closed", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("closing took %v", d)
	}
	wait.For(t, "timeouts counted", 10*time.Second, func() bool { return refusals(s, "connect_timeout") == 3 })
}

// TestAttackPreauthCaps (Why 2): connections that have not logged in are
// capped per address and in all; over a cap a new socket is closed at once
// (not after the CONNECT deadline), counted, while HTTP keeps answering and
// a client logs in once the silent ones are gone.
func TestAttackPreauthCaps(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) { c.Broker.MaxPreauthPerIP, c.Broker.MaxPreauth = 3, 5 })
	tok := account(t, s, "alice", "phone")
	var silent []net.Conn
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).Dial("tcp", s.MQTT)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	refusedAtOnce := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second)) // the CONNECT deadline is 10s
		_, err := c.Read(make([]byte, 1))
		return !errors.As(err, new(net.Error)) || !err.(net.Error).Timeout()
	}
	for range 3 {
		silent = append(silent, dialFrom("127.0.0.1"))
	}
	// The accept loop admits in order: once a later connection is
	// refused, the three before it are counted.
	wait.For(t, "per-address refusal", 10*time.Second, func() bool {
		if !refusedAtOnce(dialFrom("127.0.0.1")) {
			t.Fatal("a 4th silent socket from one address is not closed at once")
		}
		return refusals(s, "preauth_per_ip") >= 1
	})
	silent = append(silent, dialFrom("127.0.0.2"), dialFrom("127.0.0.2"))
	wait.For(t, "total refusal", 10*time.Second, func() bool {
		if !refusedAtOnce(dialFrom("127.0.0.3")) {
			t.Fatal("a 6th silent socket is not closed at once")
		}
		return refusals(s, "preauth_total") >= 1
	})
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", tok, nil, nil); code != 200 {
		t.Fatalf("HTTP during the attack: %d", code)
	}
	for _, c := range silent {
		c.Close()
	}
	wait.For(t, "a login after the attack", 10*time.Second, func() bool {
		c := gateDial(t, s.MQTT, 4)
		c.write(gateLogin(4, "alice", "phone", tok, nil, "", "", false))
		pk, err := c.next()
		return err == nil && pk.FixedHeader.Type == mpackets.Connack && pk.ReasonCode == 0
	})
}

// TestAttackConnectProtocolErrors (Why 11): MQTT 5 CONNECTs with Receive
// Maximum 0, Maximum Packet Size 0, or a property included twice are
// Protocol Errors: CONNACK 0x82, closed, never logged in.
func TestAttackConnectProtocolErrors(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	for _, c := range []struct {
		name  string
		props []byte
	}{
		{"receive maximum 0", []byte{mpackets.PropReceiveMaximum, 0, 0}},
		{"maximum packet size 0", []byte{mpackets.PropMaximumPacketSize, 0, 0, 0, 0}},
		{"session expiry twice", []byte{mpackets.PropSessionExpiryInterval, 0, 0, 0, 1, mpackets.PropSessionExpiryInterval, 0, 0, 0, 9}},
		{"maximum packet size twice", []byte{mpackets.PropMaximumPacketSize, 0, 1, 0, 0, mpackets.PropMaximumPacketSize, 0, 0, 0, 9}},
	} {
		g := gateDial(t, s.MQTT, 5)
		g.write(gateLogin(5, "alice", "phone", tok, c.props, "", "", false))
		if code := g.connack(); code != 0x82 {
			t.Errorf("%s: CONNACK %#x, want 0x82", c.name, code)
		}
		g.closed(c.name)
	}
	if n := refusals(s, "connect_invalid"); n != 4 {
		t.Fatalf("counted %v, want 4", n)
	}
	if n := s.Broker().Clients(); n != 0 {
		t.Fatalf("%d clients connected", n)
	}
}

// TestAttackTopicAlias (Why 11): the server announces no Topic Alias
// Maximum (so 0); a PUBLISH with a topic alias gets DISCONNECT 0x94 (Topic
// Alias invalid) [MQTT-3.3.2-9] and is not processed.
func TestAttackTopicAlias(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	g := gateDial(t, s.MQTT, 5)
	g.write(gateLogin(5, "alice", "phone", tok, nil, "", "", false))
	pk, err := g.next()
	if err != nil || pk.ReasonCode != 0 || pk.Properties.TopicAliasMaximum != 0 {
		t.Fatalf("CONNACK %+v, %v", pk.Properties, err)
	}
	pub := mpackets.Packet{FixedHeader: mpackets.FixedHeader{Type: mpackets.Publish, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		TopicName: wire.TopicSend, Payload: []byte(`{"cmid":"a","to":"bob","body":"aliased"}`),
		Properties: mpackets.Properties{TopicAlias: 7, TopicAliasFlag: true}}
	g.write(gatePublish(t, pub))
	if pk, err := g.next(); err != nil || pk.FixedHeader.Type != mpackets.Disconnect || pk.ReasonCode != 0x94 {
		t.Fatalf("topic alias 7: %s %#x, %v; want DISCONNECT 0x94", mpackets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode, err)
	}
	g.closed("after DISCONNECT")
	alice := connect(t, s.MQTT, "alice", "phone", tok)
	if _, werr := alice.send("bob", "real", "real"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "bob's message", 10*time.Second, func() bool { return len(bob.msgs()) == 1 })
	if m := bob.msgs(); m[0].Body != "real" {
		t.Fatalf("bob received %+v", m)
	}
}

// TestAttack311NoDisconnect (Why 11): 3.1.1 defines DISCONNECT from client
// to server only; a 3.1.1 client taken over by its own device's new
// connection, or kicked by an operator, sees its connection close with no
// DISCONNECT bytes. An MQTT 5 client still gets its DISCONNECT 0x8E.
func TestAttack311NoDisconnect(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	old := gateDial(t, s.MQTT, 4)
	old.write(gateLogin(4, "alice", "phone", tok, nil, "", "", false))
	if code := old.connack(); code != 0 {
		t.Fatalf("login: %#x", code)
	}
	connect(t, s.MQTT, "alice", "phone", tok) // takes the session over
	old.closed("3.1.1 client taken over")

	kicked := gateDial(t, s.MQTT, 4)
	kicked.write(gateLogin(4, "alice", "tablet", login(t, s, "alice", "tablet"), nil, "", "", false))
	if code := kicked.connack(); code != 0 {
		t.Fatalf("login: %#x", code)
	}
	if !s.Broker().Kick("alice/tablet", mpackets.ErrAdministrativeAction) {
		t.Fatal("not kicked")
	}
	kicked.closed("3.1.1 client kicked")

	pc := login(t, s, "alice", "pc")
	v5 := gateDial(t, s.MQTT, 5)
	v5.write(gateLogin(5, "alice", "pc", pc, nil, "", "", false))
	if code := v5.connack(); code != 0 {
		t.Fatalf("login: %#x", code)
	}
	connect(t, s.MQTT, "alice", "pc", pc)
	if pk, err := v5.next(); err != nil || pk.FixedHeader.Type != mpackets.Disconnect || pk.ReasonCode != 0x8e {
		t.Fatalf("MQTT 5 taken over: %s %#x, %v; want DISCONNECT 0x8e", mpackets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode, err)
	}
}
