package hooks

import (
	"errors"
	"io"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/wire"
)

// ConnLog logs each MQTT connection that logged in ("mqtt connect": user,
// device, client ID, remote address, listener, protocol version, clean or
// persistent) and its end ("mqtt disconnect", with why), at info. Never a
// password, token or payload. Refused connections are not its: they are
// logged, rate-limited, where they are counted (metrics.LogRefusals).
type ConnLog struct {
	mqtt.HookBase
	log *slog.Logger
}

// ID names the hook.
func (h *ConnLog) ID() string { return "imqtt-connlog" }

// Provides lists the events it logs.
func (h *ConnLog) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

// Init takes the *slog.Logger to write to (nil: slog.Default()).
func (h *ConnLog) Init(config any) error {
	h.log, _ = config.(*slog.Logger)
	if h.log == nil {
		h.log = slog.Default()
	}
	return nil
}

// OnSessionEstablished logs a connection that logged in.
func (h *ConnLog) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	user, device, _ := wire.SplitClientID(cl.ID)
	h.log.Info("mqtt connect", "user", user, "device", device, "client", cl.ID, "remote", cl.Net.Remote,
		"listener", cl.Net.Listener, "protocol", cl.Properties.ProtocolVersion, "clean", cl.Properties.Clean)
}

// OnDisconnect logs a connection's end: err is why (a DISCONNECT's
// reason, a network error, a kick); EOF is the client closing.
func (h *ConnLog) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if cl.Net.Inline {
		return
	}
	user, device, _ := wire.SplitClientID(cl.ID)
	reason := "closed by the client"
	if err != nil && !errors.Is(err, io.EOF) {
		reason = err.Error() // a packets.Code's is its reason
	}
	h.log.Info("mqtt disconnect", "user", user, "device", device, "client", cl.ID, "remote", cl.Net.Remote,
		"reason", reason, "taken_over", cl.IsTakenOver(), "session_kept", !expire)
}
