package broker

import (
	"bytes"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// startBroker starts a broker on addr ("" for none but WebSocket) that lets
// every client in, with hooks added after the allow-all one; it closes with
// the test.
func startBroker(t *testing.T, addr string, hooks ...mqtt.Hook) *Broker {
	t.Helper()
	return startBrokerWith(t, Options{MQTTAddr: addr}, hooks...)
}

// startBrokerWith is startBroker with options.
func startBrokerWith(t *testing.T, o Options, hooks ...mqtt.Hook) *Broker {
	t.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	b := New(o)
	for _, h := range append([]mqtt.Hook{new(auth.AllowHook)}, hooks...) {
		if err := b.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// encodePacket is the wire form of a CONNECT or SUBSCRIBE a test client sends.
func encodePacket(t *testing.T, pk packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	default:
		t.Fatalf("encodePacket: packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeBody decodes the body of a CONNACK, SUBACK, PUBLISH or DISCONNECT a test client
// receives; pk has its fixed header.
func decodeBody(pk *packets.Packet, body []byte) error {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		return pk.ConnackDecode(body)
	case packets.Suback:
		return pk.SubackDecode(body)
	case packets.Publish:
		return pk.PublishDecode(body)
	case packets.Disconnect:
		return pk.DisconnectDecode(body)
	}
	return nil
}
