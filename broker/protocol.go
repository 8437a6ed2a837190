package broker

import (
	"bytes"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// protocolHook is the broker's own mochi hook for what it offers and what
// the MQTT spec asks of it, whatever other hooks the daemon adds:
//
//   - a connection leaves the gate's unauthenticated count once it has
//     logged in;
//   - no retained messages: the capabilities say so (RetainAvailable 0), the
//     CONNACK tells MQTT 5 clients, and a PUBLISH with retain is refused;
//   - no wills: the gate refuses a CONNECT with one, and any will that
//     reached mochi anyway is dropped here;
//   - no DISCONNECT packet to a client below MQTT 5.
type protocolHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *protocolHook) ID() string { return "imqtt-protocol" }

func (h *protocolHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablish, mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnWill}, []byte{b})
}

// OnSessionEstablish: the client has logged in (every OnConnect hook and
// OnConnectAuthenticate said yes); it no longer counts against the gate's
// caps. This runs before mochi writes the CONNACK, so a client that has its
// CONNACK has left the count.
func (h *protocolHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if gc, ok := cl.Net.Conn.(interface{ release() }); ok { // *gateConn, *loopConn
		gc.release()
	}
}

// OnPacketRead refuses a PUBLISH with retain: a Client told Retain Available
// 0 must not send one [MQTT-3.2.2-14], and the Server answers it with
// DISCONNECT 0x9A (MQTT 5 §3.2.2.3.5). mochi would drop the retain flag and
// deliver it. A 3.1.1 client has no way to be told, and no DISCONNECT to
// receive: its connection is closed.
func (h *protocolHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || !pk.FixedHeader.Retain {
		return pk, nil
	}
	h.b.refused(refusedRetained)
	h.b.disconnect(cl, packets.ErrRetainNotSupported)
	return pk, packets.ErrRejectPacket // the only hook error mochi does not ignore here; it ends the read loop
}

// OnPacketEncode tells MQTT 5 clients in CONNACK that retained messages are
// not available (mochi leaves the property out, which means available [MQTT-
// 3.2.2.3.5]), and drops any DISCONNECT to a client below MQTT 5: 3.1.1
// defines DISCONNECT from client to server only (§3.14), and mochi sends one
// on a takeover, an ACL refusal of a QoS 1 publish, a full receive quota and
// shutdown. mochi has no way for a hook to veto a write, but a packet of type
// 0 (reserved) fails to encode, so WritePacket writes nothing and returns an
// error, which DisconnectClient ignores before it closes the connection.
func (h *protocolHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if cl.Properties.ProtocolVersion == 5 {
			pk.Properties.RetainAvailable, pk.Properties.RetainAvailableFlag = 0, true
		}
	case packets.Disconnect:
		if cl.Properties.ProtocolVersion < 5 {
			pk.FixedHeader.Type = packets.Reserved
		}
	}
	return pk
}

// OnWill drops a will that reached mochi though the gate refuses every
// CONNECT with one: mochi publishes a will without asking the ACL hook. A
// will with no topic matches no subscriber and, not retained, is not stored.
func (h *protocolHook) OnWill(cl *mqtt.Client, _ mqtt.Will) (mqtt.Will, error) {
	h.b.refused(refusedWill)
	return mqtt.Will{}, nil
}
