package hooks_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/metrics"
)

// mqttConn is a raw MQTT client on mochi's codec, so a test sees each SUBACK
// reason code as sent.
type mqttConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	ver  byte
}

func dial(t *testing.T, addr, user, dev string, ver byte) *mqttConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &mqttConn{t: t, conn: conn, r: bufio.NewReader(conn), ver: ver}
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: ver,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60,
			ClientIdentifier: user + "/" + dev, UsernameFlag: true, Username: []byte(user)}}
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.write(buf.Bytes())
	if ack := c.read(); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	return c
}

func (c *mqttConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *mqttConn) read() packets.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hb, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatal(err)
	}
	pk := packets.Packet{ProtocolVersion: c.ver}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		c.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// subscribe sends one SUBSCRIBE and returns the SUBACK's reason codes.
func (c *mqttConn) subscribe(filters ...string) []byte {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: c.ver, PacketID: 1}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		c.t.Fatal(err)
	}
	c.write(buf.Bytes())
	ack := c.read()
	if ack.FixedHeader.Type != packets.Suback {
		c.t.Fatalf("want SUBACK, got %+v", ack)
	}
	return ack.ReasonCodes
}

// letIn lets every client connect and leaves the ACL to hooks.ACL.
type letIn struct{ mqtt.HookBase }

func (h *letIn) ID() string                                              { return "let-in" }
func (h *letIn) Provides(b byte) bool                                    { return b == mqtt.OnConnectAuthenticate }
func (h *letIn) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// TestSubCap: a client holds at most Max filters; past it each new filter is
// refused with 0x97 (MQTT 5) or 0x80 (3.1.1) and counted, while
// re-subscribes, filters of other users (the ACL's to refuse) and duplicates
// in one packet take no room.
func TestSubCap(t *testing.T) {
	m := metrics.New()
	b := broker.New(broker.Options{MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	for _, h := range []struct {
		h   mqtt.Hook
		cfg any
	}{{new(letIn), nil},
		{new(hooks.ACL), m}, {new(hooks.SubCap), hooks.SubCapConfig{Max: 3, Metrics: m}}} {
		if err := b.AddHook(h.h, h.cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	refused := func() float64 { return testutil.ToFloat64(m.Refusals.WithLabelValues("subscriptions")) }
	for _, c := range []struct {
		ver     byte
		refused byte
	}{{5, packets.ErrQuotaExceeded.Code}, {4, packets.ErrUnspecifiedError.Code}} {
		user := fmt.Sprintf("u%d", c.ver)
		f := func(s string) string { return "im/u/" + user + "/" + s }
		cl := dial(t, b.MQTTAddr(), user, "a", c.ver)
		notAuth := packets.ErrNotAuthorized.Code
		if c.ver < 5 {
			notAuth = packets.ErrUnspecifiedError.Code
		}
		before := refused()
		got := cl.subscribe(f("inbox"), "im/u/other/inbox", f("d/a"), f("inbox"), f("x/+"), f("y"), f("z"))
		want := []byte{1, notAuth, 1, 1, 1, c.refused, c.refused}
		if !slices.Equal(got, want) {
			t.Errorf("v%d: SUBACK %x, want %x", c.ver, got, want)
		}
		if got := cl.subscribe(f("d/a"), f("x/+")); !slices.Equal(got, []byte{1, 1}) {
			t.Errorf("v%d: re-subscribe SUBACK %x, want 0101", c.ver, got)
		}
		if got := cl.subscribe(f("y")); !slices.Equal(got, []byte{c.refused}) {
			t.Errorf("v%d: SUBACK %x past the cap", c.ver, got)
		}
		if n := refused() - before; n != 3 {
			t.Errorf("v%d: %v refusals counted, want 3", c.ver, n)
		}
		if _, subs, _ := b.ClientDetail(user + "/a"); len(subs) != 3 {
			t.Errorf("v%d: client holds %v", c.ver, subs)
		}
	}
}
