package hooks

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Compat corrects what mochi-mqtt v2.7.9 puts on the wire against the MQTT 5
// spec, so strict clients (MQTT.js, Python paho) accept it: mochi PUBACKs a
// QoS 1 publish with reason code 0x01 ("granted QoS 1", a SUBACK code),
// which is not a PUBACK reason code [MQTT-3.4.2.1]; success is 0x00.
type Compat struct {
	mqtt.HookBase
}

// ID names the hook.
func (h *Compat) ID() string { return "imqtt-compat" }

// Provides lists the events Compat handles.
func (h *Compat) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

// OnPacketEncode rewrites a PUBACK's 0x01 reason code to success.
func (h *Compat) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Puback && pk.ReasonCode == packets.CodeGrantedQos1.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
	}
	return pk
}
