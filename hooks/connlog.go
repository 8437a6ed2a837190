package hooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

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
// The lines are bounded twice. Each machine (the host of the remote
// address) logs each of the two lines PerHost times a Window: a device
// with a good token reconnecting in a loop fills its own count, not
// everyone's, and a summary says how many it left out. All clients
// together log Rate a second after a burst of Burst: a reconnect storm
// after a restart cannot flood the log; the next line written carries
// "suppressed", how many were left out.
type ConnLog struct {
	mqtt.HookBase
	// The bounds; zero: the defaults below. Set before Init.
	Rate    float64
	Burst   int
	PerHost int
	Window  time.Duration
	log     *slog.Logger
	lim     *loglimit.Limit
	hosts   *loglimit.Sources
}

// The defaults of ConnLog's bound: a node's ordinary churn is far below
// it, a storm of 10,000 reconnects keeps its first thousand lines.
const (
	DefaultConnLogRate    = 100
	DefaultConnLogBurst   = 1000
	DefaultConnLogPerHost = 20 // a Window
	DefaultConnLogWindow  = time.Minute
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
	if h.PerHost <= 0 {
		h.PerHost = DefaultConnLogPerHost
	}
	if h.Window <= 0 {
		h.Window = DefaultConnLogWindow
	}
	h.lim = loglimit.New(h.Rate, h.Burst)
	h.hosts = &loglimit.Sources{Root: h.log.Handler(), Per: h.PerHost, Window: h.Window}
	return nil
}

// write logs one line about a client of remote if the bounds allow, with
// the count the global bound left out since the last line written.
func (h *ConnLog) write(msg, remote string, attrs ...slog.Attr) {
	if !h.hosts.Allow(slog.LevelInfo, msg, loglimit.Host(remote)) {
		return
	}
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
	h.write("mqtt connect", cl.Net.Remote, slog.String("user", user), slog.String("device", device), slog.String("client", cl.ID),
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
	h.write("mqtt disconnect", cl.Net.Remote, slog.String("user", user), slog.String("device", device), slog.String("client", cl.ID),
		slog.String("remote", cl.Net.Remote), slog.String("reason", reason), slog.Bool("taken_over", cl.IsTakenOver()),
		slog.Bool("session_kept", !expire))
}
