package broker

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/wait"
)

// wsSend writes one MQTT packet as a binary message.
func wsSend(t *testing.T, c *websocket.Conn, pk packets.Packet) {
	t.Helper()
	if err := c.WriteMessage(websocket.BinaryMessage, encodePacket(t, pk)); err != nil {
		t.Fatal(err)
	}
}

// wsNext reads the next MQTT packet (mochi writes each in one message).
func wsNext(t *testing.T, c *websocket.Conn) packets.Packet {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, r, err := c.NextReader()
	if err != nil || typ != websocket.BinaryMessage {
		t.Fatalf("read: type %d, %v", typ, err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{ProtocolVersion: 4}
	if err := pk.FixedHeader.Decode(raw[0]); err != nil {
		t.Fatal(err)
	}
	n, used, err := packets.DecodeLength(bytes.NewReader(raw[1:]))
	if err != nil {
		t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	body := raw[1+used:]
	if err := decodeBody(&pk, body); err != nil {
		t.Fatal(err)
	}
	return pk
}

// TestWSHandsOffAndReturns: the HTTP handler returns once the upgraded
// connection is handed to mochi (so net/http's per-connection buffers and
// goroutine do not live as long as the MQTT connection), and the
// connection goes on working: it subscribes, is delivered to, and its
// end is seen by the broker. Write buffers come from a pool.
func TestWSHandsOffAndReturns(t *testing.T) {
	b := startBroker(t, "")
	if b.ws.upgrader.WriteBufferPool == nil {
		t.Fatal("each WebSocket connection holds a write buffer of its own")
	}
	returned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.WebSocket().ServeHTTP(w, r)
		close(returned)
	}))
	defer srv.Close()

	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wsSend(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "alice/w",
			UsernameFlag: true, Username: []byte("alice")}})
	if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", pk)
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the HTTP handler is still running the MQTT connection")
	}
	wsSend(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4,
		PacketID: 1, Filters: packets.Subscriptions{{Filter: "im/u/alice/inbox"}}})
	if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("want SUBACK, got %+v", pk)
	}
	if err := b.Publish("im/u/alice/inbox", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if pk := wsNext(t, c); pk.FixedHeader.Type != packets.Publish || string(pk.Payload) != "hi" {
		t.Fatalf("want the publish, got %+v", pk)
	}
	c.Close()
	wait.For(t, "the silent WebSocket's client to go", 5*time.Second, func() bool { return b.Clients() == 0 })
}
