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

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/wire"
)

// Authenticator checks the credentials of an MQTT CONNECT; *account.Service
// implements it.
type Authenticator interface {
	// Authenticate checks secret for a client at from (its address,
	// "ip:port") connecting as user's device: an access token issued to
	// that device, or user's account password (docs/protocol.md#identity). It returns nil if
	// it opens the device; an error that is an *account.Throttled (and
	// matches account.ErrThrottled) when a limit refused the attempt
	// before any check; an error matching account.ErrBadCredentials for
	// wrong, unknown, revoked or expired credentials and for a token of
	// another device; any other error for a store failure. A password
	// check is an argon2id run (tens of milliseconds, bounded in
	// concurrency), so it blocks; ctx bounds the wait.
	Authenticate(ctx context.Context, from, user, device, secret string) error
}

// AuthConfig configures the Auth hook.
type AuthConfig struct {
	Accounts  Authenticator
	Server    ConnackSender // to send CONNACK codes mochi has no hook result for (*mqtt.Server)
	Keepalive uint16        // imposed on clients that ask for 0
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
}

// Auth refuses connections whose client ID is not "{username}/{device}"
// (0x85, or 3.1.1 return code 2), whose credentials are wrong or a token of
// another device (0x86 / 4), and password attempts past the throttles
// (0x9F / 3).
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

// OnConnect checks the client ID against the username, then the
// credentials, and imposes a keepalive on clients that ask for none. It
// answers refusals itself because mochi's OnConnectAuthenticate path maps
// 0x86 to 3.1.1 return code 5, where docs/protocol.md#identity wants 4 (bad user name or password).
func (h *Auth) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	user, device, ok := wire.SplitClientID(cl.ID)
	if !ok || user != string(cl.Properties.Username) || !wire.CanonicalUser(user) {
		h.cfg.Metrics.AuthFailed("client_id", string(cl.Properties.Username), cl.Net.Remote, "client ID "+cl.ID)
		code := packets.ErrClientIdentifierNotValid // 0x85; 3.1.1: 2
		if canon, valid := wire.NormUser(user); ok && valid && canon != user {
			// User IDs are case-insensitive and topics use the canonical
			// form, so "Alice/phone" is not folded here: its client would
			// then subscribe to im/u/Alice/... and be refused. Say what to
			// use instead, in the Reason String (MQTT 5 §3.2.2.3.9).
			code.Reason = "user IDs are lower case: connect as " + canon + "/" + device + " with username " + canon
		}
		return h.refuse(cl, code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.cfg.Accounts.Authenticate(ctx, cl.Net.Remote, user, device, string(pk.Connect.Password)); err != nil {
		var th *account.Throttled
		if errors.As(err, &th) {
			h.cfg.Metrics.Refused(th.Limit)
			// Counted (imqtt_limit_refusals_total); logged at debug only,
			// since an attacker being throttled would otherwise write a
			// line per attempt.
			h.cfg.Logger.Debug("mqtt login throttled", "user", user, "remote", cl.Net.Remote, "limit", th.Limit)
			// MQTT 5 §3.2.2.2: 0x9F Connection rate exceeded; 3.1.1 has no
			// such code: 3, Server unavailable [MQTT-3.2.2.3, table 3.1].
			return h.refuse(cl, packets.ErrConnectionRateExceeded)
		}
		h.cfg.Metrics.AuthFailed("credentials", user, cl.Net.Remote, "MQTT CONNECT as "+cl.ID)
		// Logged by the metrics at most once a second (refusallog.go); here
		// at debug only, for the same reason as throttling above.
		h.cfg.Logger.Debug("mqtt login refused", "user", user, "remote", cl.Net.Remote, "err", err)
		return h.refuse(cl, packets.ErrBadUsernameOrPassword) // 0x86; 3.1.1: 4
	}
	if cl.State.Keepalive == 0 {
		cl.State.Keepalive = h.cfg.Keepalive
		cl.State.ServerKeepalive = true // tells MQTT 5 clients in CONNACK [MQTT-3.2.2-21]
	}
	return nil
}

// refuse sends the CONNACK for code and returns it as the error that ends the connection.
func (h *Auth) refuse(cl *mqtt.Client, code packets.Code) error {
	ack := code
	if cl.Properties.ProtocolVersion < 5 {
		if code == packets.ErrBadUsernameOrPassword {
			ack = packets.ErrMalformedUsernameOrPassword // 3.1.1 return code 4 [MQTT-3.2.2.3]
		} else if code.Code == packets.ErrClientIdentifierNotValid.Code {
			ack = packets.Err3ClientIdentifierNotValid // return code 2, whatever our Reason String
		} else if code == packets.ErrConnectionRateExceeded {
			ack = packets.Err3ServerUnavailable // 3.1.1 return code 3
		} else if v3, ok := packets.V5CodesToV3[code]; ok {
			ack = v3
		}
	}
	_ = h.cfg.Server.SendConnack(cl, ack, false, nil)
	return code
}

// OnConnectAuthenticate lets through what OnConnect accepted (mochi refuses
// every connection unless some hook says yes here).
func (h *Auth) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }
