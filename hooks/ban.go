package hooks

import (
	"errors"
	"net/netip"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/metrics"
)

// BanChecker answers whether a user or an address is banned, from memory
// (bans.List implements it).
type BanChecker interface {
	Banned(user string, addr netip.Addr) (bans.Ban, bool)
}

// BanConfig configures the Ban hook.
type BanConfig struct {
	Bans    BanChecker
	Server  ConnackSender // to send the CONNACK (*mqtt.Server)
	Metrics *metrics.Metrics
}

// Ban refuses CONNECT from a banned user or address: MQTT 5 reason 0x8A
// (banned), 3.1.1 return code 5 (not authorized), which has no "banned".
// Add it before Auth: a banned client costs no password hash.
type Ban struct {
	mqtt.HookBase
	cfg BanConfig
}

// ID names the hook.
func (h *Ban) ID() string { return "imqtt-ban" }

// Provides lists the events Ban handles.
func (h *Ban) Provides(b byte) bool { return b == mqtt.OnConnect }

// Init checks the config.
func (h *Ban) Init(config any) error {
	cfg, ok := config.(BanConfig)
	if !ok || cfg.Bans == nil || cfg.Server == nil || cfg.Metrics == nil {
		return errors.New("ban hook: BanConfig with Bans, Server and Metrics required")
	}
	h.cfg = cfg
	return nil
}

// OnConnect refuses a banned username or remote address.
func (h *Ban) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	user := string(cl.Properties.Username)
	b, banned := h.cfg.Bans.Banned(user, bans.ParseRemote(cl.Net.Remote))
	if !banned {
		return nil
	}
	h.cfg.Metrics.AuthFailed("banned", user, cl.Net.Remote, "MQTT CONNECT as "+cl.ID+" refused by ban "+b.ID)
	code := packets.ErrBanned // 0x8A [MQTT-3.2.2.2]
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized // return code 5 [MQTT-3.2.2.3]
	}
	_ = h.cfg.Server.SendConnack(cl, code, false, nil)
	return packets.ErrBanned
}
