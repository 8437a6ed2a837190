// Package baseline runs the bare broker imqttd embeds, for the bench to
// measure against: mochi-mqtt with an allow-all auth hook and none of
// imqtt's hooks (no accounts, ACL, store or sync), with the same broker
// limits and listener as imqttd (broker.Options defaults), so that the
// difference between the two is what imqtt adds. Its connections run on
// mochi's own goroutines (broker.Options.GoroutineIO), not on imqttd's
// event loop: the baseline stays mochi as it ships, the model imqttd's loop
// is measured against.
package baseline

import (
	"fmt"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/imqtt/imqtt/broker"
)

// StartMochi serves bare mochi-mqtt on addr ("127.0.0.1:0" picks a port)
// with limits (broker.Options: MaxWritesPending, MaxInflight, ...; zero
// values take imqttd's defaults; the address and logger fields are
// ignored). What overflows a client's queue or in-flight window is dropped,
// QoS 1 or not, and a bare broker has no sync to bring it back: under a load
// its subscribers cannot keep up with, give it mochi's own defaults (8192
// each). Close the broker to stop it; MQTTAddr is the bound address.
func StartMochi(addr string, limits broker.Options, log *slog.Logger) (*broker.Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limits.MQTTAddr, limits.TLSAddr, limits.TLS, limits.Logger = addr, "", nil, log
	limits.GoroutineIO = true
	b := broker.New(limits)
	if err := b.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("allow-all hook: %w", err)
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}
