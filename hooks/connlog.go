package hooks

import (
	"context"
	"errors"
	"io"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/loglimit"
	"github.com/imqtt/imqtt/wire"
)

// ConnLog logs each MQTT connection that logged in ("mqtt connect": user,
// device, client ID, remote address, listener, protocol version, clean or
// persistent) and its end ("mqtt disconnect", with why), at info. Never a
// password, token or payload. Refused connections are not its: they are
// logged, rate-limited, where they are counted (metrics.LogRefusals).
//
// The lines are bounded too, all clients together (Rate a second after a
// burst of Burst): a device with a good token reconnecting in a loop, or a
// reconnect storm after a restart, cannot flood the log; the next line
// written carries "suppressed", how many were left out.
type ConnLog struct {
	mqtt.HookBase
	// Rate and Burst bound the lines; zero: DefaultConnLogRate and
	// DefaultConnLogBurst. Set before Init.
	Rate  float64
	Burst int
	log   *slog.Logger
	lim   *loglimit.Limit
}

// The defaults of ConnLog's bound: a node's ordinary churn is far below
// it, a storm of 10,000 reconnects keeps its first thousand lines.
const (
	DefaultConnLogRate  = 100
	DefaultConnLogBurst = 1000
)

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
	if h.Rate <= 0 {
		h.Rate = DefaultConnLogRate
	}
	if h.Burst <= 0 {
		h.Burst = DefaultConnLogBurst
	}
	h.lim = loglimit.New(h.Rate, h.Burst)
	return nil
}

// write logs one line if the bound allows, with the count left out since
// the last line written.
func (h *ConnLog) write(msg string, attrs ...slog.Attr) {
	ok, n := h.lim.Allow()
	if !ok {
		return
	}
	if n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// OnSessionEstablished logs a connection that logged in.
func (h *ConnLog) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	user, device, _ := wire.SplitClientID(cl.ID)
	h.write("mqtt connect", slog.String("user", user), slog.String("device", device), slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote), slog.String("listener", cl.Net.Listener),
		slog.Int("protocol", int(cl.Properties.ProtocolVersion)), slog.Bool("clean", cl.Properties.Clean))
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
	h.write("mqtt disconnect", slog.String("user", user), slog.String("device", device), slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote), slog.String("reason", reason), slog.Bool("taken_over", cl.IsTakenOver()),
		slog.Bool("session_kept", !expire))
}
