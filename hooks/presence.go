package hooks

import (
	"context"
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/wire"
)

// PresenceConfig configures the Presence hook.
type PresenceConfig struct {
	State PresenceRecorder // a state.Presence
	Local LocalIndex       // may be nil
	// Elsewhere, if set, is called when a device recorded here was recorded
	// on another node before: in scale-out it disconnects the device's old
	// connection there (MQTT's session takeover works only within one
	// broker).
	Elsewhere func(node, clientID string)
	Node      string
	Logger    *slog.Logger
	// Events, if set, hears of every device online and offline here
	// (the webhook's user.online and user.offline); it must not block.
	Events PresenceEvents
}

// PresenceEvents hears of devices connecting and leaving
// (internal/webhook.Emitter).
type PresenceEvents interface {
	Online(user, device, node string, at time.Time)
	Offline(user, device, node string, at time.Time)
}

// Presence records which devices are connected to this node.
type Presence struct {
	mqtt.HookBase
	cfg PresenceConfig
}

// ID names the hook.
func (h *Presence) ID() string { return "imqtt-presence" }

// Provides lists the events Presence handles.
func (h *Presence) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

// Init checks the config.
func (h *Presence) Init(config any) error {
	cfg, ok := config.(PresenceConfig)
	if !ok || cfg.State == nil {
		return errors.New("presence hook: PresenceConfig with State required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h.cfg = cfg
	return nil
}

// OnSessionEstablished marks the device online.
func (h *Presence) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	user, device, ok := wire.SplitClientID(cl.ID)
	if !ok || cl.Net.Inline {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d := state.Device{User: user, Device: device, Node: h.cfg.Node, Since: time.Now().UnixMilli()}
	prev, err := h.cfg.State.Online(ctx, d)
	if err != nil {
		h.cfg.Logger.Warn("presence online", "user", user, "device", device, "err", err)
	}
	if prev != "" && prev != h.cfg.Node && h.cfg.Elsewhere != nil {
		h.cfg.Elsewhere(prev, cl.ID)
	}
	if h.cfg.Events != nil {
		h.cfg.Events.Online(user, device, h.cfg.Node, time.UnixMilli(d.Since))
	}
	if h.cfg.Local != nil {
		if err := h.cfg.Local.DeviceOnline(ctx, user); err != nil {
			h.cfg.Logger.Warn("load groups for fan-out; retrying in the background", "user", user, "err", err)
		}
	}
}

// OnDisconnect marks the device offline, unless another connection of the
// same device took the session over.
func (h *Presence) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	user, device, ok := wire.SplitClientID(cl.ID)
	if !ok || cl.Net.Inline {
		return
	}
	if h.cfg.Local != nil { // mochi pairs every OnDisconnect with an OnSessionEstablished
		h.cfg.Local.DeviceOffline(user)
	}
	if cl.IsTakenOver() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.cfg.State.Offline(ctx, user, device, h.cfg.Node); err != nil {
		h.cfg.Logger.Warn("presence offline", "user", user, "device", device, "err", err)
	}
	if h.cfg.Events != nil {
		h.cfg.Events.Offline(user, device, h.cfg.Node, time.Now())
	}
}
