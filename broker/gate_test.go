package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/wait"
)

// refusals counts Options.Refused calls by label.
type refusals struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *refusals) add(limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[limit]++
}

func (r *refusals) get(limit string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[limit]
}

// startGated starts a broker on 127.0.0.1 with opts (addresses and logger
// set here) that lets every client in; it closes with the test.
func startGated(t testing.TB, opts Options) (*Broker, *refusals) {
	t.Helper()
	r := &refusals{}
	opts.MQTTAddr, opts.Logger, opts.Refused = "127.0.0.1:0", slog.New(slog.DiscardHandler), r.add
	b := New(opts)
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, r
}

// mqttStr is an MQTT UTF-8 string or binary field: length, then bytes.
func mqttStr(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// rawConnect is a CONNECT's bytes, built by hand so that tests can send
// what no encoder would: protocol level ver, connect flags, for MQTT 5 the
// properties (without their length, under 128 bytes), then the payload
// fields as given.
func rawConnect(ver, flags byte, props []byte, payload ...[]byte) []byte {
	body := append(mqttStr("MQTT"), ver, flags, 0, 60)
	if ver == 5 {
		body = append(append(body, byte(len(props))), props...)
	}
	for _, p := range payload {
		body = append(body, p...)
	}
	var hdr []byte
	for n := len(body); ; {
		b := byte(n & 0x7f)
		if n >>= 7; n > 0 {
			hdr = append(hdr, b|0x80)
			continue
		}
		hdr = append(hdr, b)
		break
	}
	return append(append([]byte{0x10}, hdr...), body...)
}

const (
	flagClean      = 0x02
	flagWill       = 0x04
	flagWillRetain = 0x20
	flagUser       = 0x80
)

// readPacket reads one packet a server sends to a client of version ver
// (decodeBody says which types it decodes).
func readPacket(r *bufio.Reader, ver byte) (packets.Packet, error) {
	hb, err := r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: ver}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return pk, err
	}
	return pk, decodeBody(&pk, body)
}

// exchange dials addr, writes raw, and returns what the server sent before
// it closed the connection (failing if it did not close within 5s).
func exchange(t *testing.T, addr string, raw []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server neither closed the connection nor stopped writing in 5s; sent %x", got)
	}
	return got
}

// TestGateConnectTimeout: a TCP or WebSocket connection that sends no
// CONNECT (or half of one) is closed at the CONNECT deadline, counted.
func TestGateConnectTimeout(t *testing.T) {
	b, r := startGated(t, Options{ConnectTimeout: 300 * time.Millisecond})
	for _, sent := range [][]byte{nil, rawConnect(4, flagClean, nil, mqttStr("a/b"))[:10]} {
		c, err := net.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(sent)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("sent %d bytes: read %d, %v; want the server to close", len(sent), n, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v", d)
		}
		c.Close()
	}
	srv := httptest.NewServer(b.WebSocket())
	defer srv.Close()
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.NextReader(); err == nil || errors.As(err, new(net.Error)) && err.(net.Error).Timeout() {
		t.Fatalf("silent WebSocket: %v; want the server to close", err)
	}
	wait.For(t, "the three silent connections refused", 5*time.Second, func() bool { return r.get(refusedTimeout) == 3 && b.gate.pending() == 0 })
}

// TestGateCaps: connections not yet logged in are capped per address and
// in all; over a cap a new one is closed at once (long before the CONNECT
// deadline), counted; one that logs in leaves the count while it stays
// connected.
func TestGateCaps(t *testing.T) {
	b, r := startGated(t, Options{MaxPreauthPerIP: 2, MaxPreauth: 3})
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", b.MQTTAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedAtOnce := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second)) // the CONNECT deadline is 10s
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
	}
	dialFrom("127.0.0.1")
	dialFrom("127.0.0.1")
	wait.For(t, "two pending logins", 5*time.Second, func() bool { return b.gate.pending() == 2 })
	if c := dialFrom("127.0.0.1"); !closedAtOnce(c) || r.get(refusedPerIP) != 1 {
		t.Fatalf("a third from one address: not closed at once (counted %d)", r.get(refusedPerIP))
	}
	dialFrom("127.0.0.2")
	wait.For(t, "three pending logins", 5*time.Second, func() bool { return b.gate.pending() == 3 })
	if c := dialFrom("127.0.0.3"); !closedAtOnce(c) || r.get(refusedTotal) != 1 {
		t.Fatalf("a fourth in all: not closed at once (counted %d)", r.get(refusedTotal))
	}

	// Over WebSocket, the upgrade itself is refused: 503, no connection.
	srv := httptest.NewServer(b.WebSocket())
	defer srv.Close()
	_, resp, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 || r.get(refusedTotal) != 2 {
		t.Fatalf("WebSocket over the cap: %v, %+v", err, resp)
	}

	b2, _ := startGated(t, Options{MaxPreauthPerIP: 1})
	for i := range 3 { // each logs in and so leaves room for the next
		dialRaw(t, b2.MQTTAddr(), "u/"+string(rune('a'+i)), 4)
	}
	if n := b2.gate.pending(); n != 0 || b2.Clients() != 3 {
		t.Fatalf("pending %d, clients %d", n, b2.Clients())
	}
}

// TestGateRefusesConnect: the CONNECTs imqtt refuses, each answered with
// the spec's CONNACK code and closed: MQTT 5 protocol errors mochi lets
// through (0x82), wills (0x83; with retain 0x9A; 3.1.1 return code 5).
func TestGateRefusesConnect(t *testing.T) {
	b, r := startGated(t, Options{})
	user := append(mqttStr("u/1"), mqttStr("u")...)
	willPayload := append(mqttStr("im/u/bob/inbox"), mqttStr(`{"kind":"msg"}`)...)
	for _, c := range []struct {
		name  string
		raw   []byte
		ver   byte
		code  byte
		limit string
	}{
		{"receive maximum 0", rawConnect(5, flagClean|flagUser, []byte{33, 0, 0}, user), 5, 0x82, refusedInvalid},
		{"maximum packet size 0", rawConnect(5, flagClean|flagUser, []byte{39, 0, 0, 0, 0}, user), 5, 0x82, refusedInvalid},
		{"session expiry twice", rawConnect(5, flagClean|flagUser, []byte{17, 0, 0, 0, 1, 17, 0, 0, 0, 2}, user), 5, 0x82, refusedInvalid},
		{"receive maximum twice", rawConnect(5, flagClean|flagUser, []byte{33, 0, 9, 33, 0, 9}, user), 5, 0x82, refusedInvalid},
		{"topic alias in CONNECT", rawConnect(5, flagClean|flagUser, []byte{35, 0, 1}, user), 5, 0x82, refusedInvalid},
		{"will", rawConnect(5, flagClean|flagUser|flagWill, nil, mqttStr("u/1"), []byte{0}, willPayload, mqttStr("u")), 5, 0x83, refusedWill},
		{"will retain", rawConnect(5, flagClean|flagUser|flagWill|flagWillRetain, nil, mqttStr("u/1"), []byte{0}, willPayload, mqttStr("u")), 5, 0x9a, refusedWill},
		{"3.1.1 will", rawConnect(4, flagClean|flagUser|flagWill, nil, mqttStr("u/1"), willPayload, mqttStr("u")), 4, 5, refusedWill},
		{"3.1.1 will retain", rawConnect(4, flagClean|flagUser|flagWill|flagWillRetain, nil, mqttStr("u/1"), willPayload, mqttStr("u")), 4, 5, refusedWill},
	} {
		before := r.get(c.limit)
		got := exchange(t, b.MQTTAddr(), c.raw)
		pk, err := readPacket(bufio.NewReader(bytes.NewReader(got)), c.ver)
		if err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != c.code {
			t.Errorf("%s: got %+v (%v), want CONNACK %#x", c.name, pk, err, c.code)
		}
		if c.ver == 5 && pk.Properties.ReasonString == "" {
			t.Errorf("%s: no reason string", c.name)
		}
		if r.get(c.limit) != before+1 {
			t.Errorf("%s: %s not counted", c.name, c.limit)
		}
	}
	if n := b.Clients(); n != 0 {
		t.Fatalf("%d clients connected", n)
	}
	// Not a CONNECT, and a CONNECT over the size bound: closed, no answer.
	for _, raw := range [][]byte{{0xc0, 0}, {0x10, 0xff, 0xff, 0x7f}} {
		if got := exchange(t, b.MQTTAddr(), raw); len(got) != 0 {
			t.Errorf("%x answered with %x", raw, got)
		}
	}
	// Well-formed ones pass, with the properties they may carry.
	ok := rawConnect(5, flagClean|flagUser, []byte{17, 0, 0, 0, 10, 33, 0, 5, 39, 0, 1, 0, 0, 38, 0, 1, 'k', 0, 1, 'v', 38, 0, 1, 'k', 0, 1, 'w'}, user)
	c, err := net.Dial("tcp", b.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(ok)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if pk, err := readPacket(br, 5); err != nil || pk.ReasonCode != 0 || !pk.Properties.RetainAvailableFlag || pk.Properties.RetainAvailable != 0 {
		t.Fatalf("good MQTT 5 CONNECT: %+v, %v; want success telling retain is not available", pk, err)
	}
}

// publish5 is an MQTT 5 QoS 0 PUBLISH; retain and a topic alias as given.
func publish5(t *testing.T, topic string, retain bool, alias uint16) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: retain}, ProtocolVersion: 5,
		TopicName: topic, Payload: []byte("x")}
	if alias > 0 {
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = alias, true
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPublishRefusals: a retained PUBLISH is refused (MQTT 5: DISCONNECT
// 0x9A; 3.1.1: closed without a packet) and nothing is retained; a topic
// alias over the maximum the server announced (none: 0) gets DISCONNECT 0x94.
func TestPublishRefusals(t *testing.T) {
	b, r := startGated(t, Options{})
	for _, c := range []struct {
		name string
		ver  byte
		pub  []byte
		want string
	}{
		{"retain", 5, publish5(t, "t/1", true, 0), "Disconnect 0x9a"},
		{"topic alias", 5, publish5(t, "t/1", false, 1), "Disconnect 0x94"},
		{"3.1.1 retain", 4, []byte{0x31, 6, 0, 3, 't', '/', '1', 'x'}, "closed"},
	} {
		rc := dialRaw(t, b.MQTTAddr(), "u/"+c.name, c.ver)
		if _, err := rc.conn.Write(c.pub); err != nil {
			t.Fatal(err)
		}
		got := "closed"
		select {
		case pk, ok := <-rc.got:
			if ok {
				got = fmtPacket(pk)
				if _, open := <-rc.got; open {
					got += " and more"
				}
			}
		case <-time.After(5 * time.Second):
			got = "still open"
		}
		if got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if n := retained(b); n != 0 {
		t.Fatalf("%d messages retained", n)
	}
	if r.get(refusedRetained) != 2 {
		t.Fatalf("retain refusals counted %d, want 2", r.get(refusedRetained))
	}
}

// TestNoDisconnectBelowV5: a 3.1.1 client taken over, kicked or shut down
// receives no DISCONNECT (3.1.1 defines none from the server), only the
// close; an MQTT 5 client receives one with its reason code.
func TestNoDisconnectBelowV5(t *testing.T) {
	b, _ := startGated(t, Options{})
	after := func(rc *rawClient) string {
		select {
		case pk, ok := <-rc.got:
			if !ok {
				return "closed"
			}
			return fmtPacket(pk)
		case <-time.After(5 * time.Second):
			return "still open"
		}
	}
	for _, ver := range []byte{4, 5} {
		want := "closed"
		if ver == 5 {
			want = "Disconnect 0x8e"
		}
		old := dialRaw(t, b.MQTTAddr(), "takeover/"+string('0'+ver), ver)
		dialRaw(t, b.MQTTAddr(), "takeover/"+string('0'+ver), ver)
		if got := after(old); got != want {
			t.Errorf("v%d taken over: %s, want %s", ver, got, want)
		}
		if ver == 5 {
			want = "Disconnect 0x8b"
		}
		kicked := dialRaw(t, b.MQTTAddr(), "kick/"+string('0'+ver), ver)
		b.Kick("kick/"+string('0'+ver), packets.ErrServerShuttingDown)
		if got := after(kicked); got != want {
			t.Errorf("v%d kicked: %s, want %s", ver, got, want)
		}
	}
	b2 := New(Options{MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err := b2.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(); err != nil {
		t.Fatal(err)
	}
	v3 := dialRaw(t, b2.MQTTAddr(), "close/4", 4)
	_ = b2.Close()
	if got := after(v3); got != "closed" {
		t.Errorf("v4 at Close: %s, want closed", got)
	}
}

func fmtPacket(pk packets.Packet) string {
	return fmt.Sprintf("%s %#x", packets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode)
}

// TestWillDropped: a will that reaches mochi without the gate (a connection
// handed to mochi directly) is dropped by the broker's hook when the
// connection ends: bob's subscription receives nothing, nothing is retained.
// (mochi itself refuses a will with retain, RetainAvailable being 0.)
func TestWillDropped(t *testing.T) {
	b, r := startGated(t, Options{})
	bob := dialRaw(t, b.MQTTAddr(), "bob/1", 4)
	bob.subscribe(0, packets.Subscription{Filter: "im/u/bob/inbox"})
	client, server := net.Pipe()
	defer client.Close()
	go func() { _ = b.srv.EstablishConnection("tcp", server) }()
	will := append(mqttStr("im/u/bob/inbox"), mqttStr(`{"kind":"msg","body":"forged"}`)...)
	go func() {
		_, _ = client.Write(rawConnect(4, flagClean|flagUser|flagWill, nil, mqttStr("mallory/1"), will, mqttStr("mallory")))
	}()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if pk, err := readPacket(bufio.NewReader(client), 4); err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("mochi without the gate: %+v, %v", pk, err)
	}
	client.Close() // drops the socket: mochi sends the will
	wait.For(t, "the will refused", 5*time.Second, func() bool { return r.get(refusedWill) == 1 })
	if err := b.Publish("im/u/bob/inbox", []byte("real")); err != nil {
		t.Fatal(err)
	}
	if pk := bob.next1(); string(pk.Payload) != "real" {
		t.Fatalf("bob received %q first", pk.Payload)
	}
	if n := retained(b); n != 0 {
		t.Fatalf("%d messages retained", n)
	}
}

// retained counts the retained messages but mochi's own $SYS ones (a fixed
// set it stores itself, which the ACL lets no client read).
func retained(b *Broker) int {
	n := 0
	for topic := range b.srv.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$SYS/") {
			n++
		}
	}
	return n
}
