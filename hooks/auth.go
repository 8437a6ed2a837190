// Package hooks holds imqtt's mochi-mqtt hooks, one concern per file: who may
// connect (auth.go), what topics they may use (acl.go), what their uplink
// publishes mean (uplink.go), and who is online (presence.go).
//
// Hooks run on the client's read goroutine: each does O(1) work or hands off.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/metrics"
	"github.com/imqtt/imqtt/wire"
)

// Authenticator checks an MQTT password: an access token of user, or user's
// account password (SPEC §2). account.Service implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, user, secret string) (device string, err error)
}

// AuthConfig configures the Auth hook.
type AuthConfig struct {
	Accounts  Authenticator
	Server    *mqtt.Server // to send CONNACK codes mochi has no hook result for
	Keepalive uint16       // imposed on clients that ask for 0
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
}

// Auth refuses connections whose client ID is not "{username}/{device}"
// (0x85, or 3.1.1 return code 2) and whose credentials are wrong (0x86 / 4).
type Auth struct {
	mqtt.HookBase
	cfg AuthConfig
}

// ID names the hook.
func (h *Auth) ID() string { return "imqtt-auth" }

// Provides lists the events Auth handles.
func (h *Auth) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate}, []byte{b})
}

// Init checks the config.
func (h *Auth) Init(config any) error {
	cfg, ok := config.(AuthConfig)
	if !ok || cfg.Accounts == nil || cfg.Server == nil || cfg.Metrics == nil {
		return errors.New("auth hook: AuthConfig with Accounts, Server and Metrics required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h.cfg = cfg
	return nil
}

// OnConnect checks the client ID against the username before any password
// work, and imposes a keepalive on clients that ask for none.
func (h *Auth) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	user, _, ok := wire.SplitClientID(cl.ID)
	if !ok || user != string(cl.Properties.Username) {
		h.cfg.Metrics.AuthFailures.WithLabelValues("client_id").Inc()
		_ = h.cfg.Server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	if cl.State.Keepalive == 0 {
		cl.State.Keepalive = h.cfg.Keepalive
		cl.State.ServerKeepalive = true // tells MQTT 5 clients in CONNACK [MQTT-3.2.2-21]
	}
	return nil
}

// OnConnectAuthenticate accepts a token issued to this user or its password.
// A token issued for one device is good for any of the user's devices: the
// client ID names the device.
func (h *Auth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user := string(pk.Connect.Username)
	if _, err := h.cfg.Accounts.Authenticate(ctx, user, string(pk.Connect.Password)); err != nil {
		h.cfg.Metrics.AuthFailures.WithLabelValues("credentials").Inc()
		h.cfg.Logger.Info("mqtt login refused", "user", user, "remote", cl.Net.Remote, "err", err)
		return false
	}
	return true
}
