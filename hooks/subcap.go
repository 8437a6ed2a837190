package hooks

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/metrics"
)

// DefaultMaxSubscriptions is SubCapConfig.Max's default; cmd/imqttd's
// --max-subscriptions defaults to it.
const DefaultMaxSubscriptions = 8

// SubCapConfig configures the SubCap hook.
type SubCapConfig struct {
	// Max is how many filters one client may hold; 0 means
	// DefaultMaxSubscriptions (8). A client of
	// imqtt needs two: its inbox and its device topic.
	Max     int
	Metrics *metrics.Metrics
}

// SubCap bounds the filters one client may hold. Every filter a client holds
// costs each delivery to its user (broker/direct.go) and mochi's topic tree
// memory, so without a bound one client with thousands of them slows the
// dispatcher every user's acks wait on. A filter past the cap is refused in
// the SUBACK with 0x97 Quota exceeded (MQTT 5) or 0x80 Failure (3.1.1)
// [MQTT-3.9.3-1]; the filters before it in the same SUBSCRIBE are granted.
// Re-subscribing to a filter the client already holds is not a new one.
//
// mochi has no per-filter refusal a hook can return, so OnSubscribe replaces
// a refused filter with refusedFilter, which mochi refuses as an invalid
// filter (0x8F, which it turns into 0x80 for 3.1.1), and OnSubscribed, which
// mochi 2.7.9's processSubscribe passes the very reason-code slice it then
// writes in the SUBACK, turns that 0x8F into 0x97 for MQTT 5.
type SubCap struct {
	mqtt.HookBase
	cfg SubCapConfig
}

// refusedFilter stands in for a filter SubCap refuses: mochi rejects it as
// invalid, '#' being allowed only as the last level [MQTT-4.7.1-2].
const refusedFilter = "#/imqtt/quota-exceeded"

// ID names the hook.
func (h *SubCap) ID() string { return "imqtt-subcap" }

// Provides lists the events SubCap handles.
func (h *SubCap) Provides(b byte) bool { return b == mqtt.OnSubscribe || b == mqtt.OnSubscribed }

// Init checks the config.
func (h *SubCap) Init(config any) error {
	cfg, ok := config.(SubCapConfig)
	if !ok || cfg.Metrics == nil {
		return errors.New("subcap hook: SubCapConfig with Metrics required")
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxSubscriptions
	}
	h.cfg = cfg
	return nil
}

// OnSubscribe refuses the new filters past the cap. It runs on the client's
// read goroutine, as does every change to its subscriptions, so the count it
// reads stays true until mochi adds the filters it lets through.
func (h *SubCap) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	held := cl.State.Subscriptions.Len()
	var added map[string]struct{} // new filters granted so far in this packet
	var out []packets.Subscription
	for i, sub := range pk.Filters {
		if _, ok := cl.State.Subscriptions.Get(sub.Filter); ok {
			continue // a re-subscribe replaces the filter [MQTT-3.8.4-3]
		}
		if _, ok := added[sub.Filter]; ok {
			continue
		}
		if !mqtt.IsValidFilter(sub.Filter, false) || !Allowed(cl.Properties.Username, sub.Filter, false) {
			continue // mochi refuses it anyway, and it takes no room
		}
		if held < h.cfg.Max {
			held++
			if added == nil {
				added = map[string]struct{}{}
			}
			added[sub.Filter] = struct{}{}
			continue
		}
		if out == nil {
			out = append([]packets.Subscription(nil), pk.Filters...) // the caller's slice stays as read
		}
		out[i].Filter = refusedFilter
		h.cfg.Metrics.Refused("subscriptions")
	}
	if out != nil {
		pk.Filters = out
	}
	return pk
}

// OnSubscribed gives the filters OnSubscribe refused the MQTT 5 code that
// says why, 0x97 Quota exceeded; a 3.1.1 client has only 0x80.
func (h *SubCap) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Properties.ProtocolVersion < 5 {
		return
	}
	for i, sub := range pk.Filters {
		if i < len(reasonCodes) && sub.Filter == refusedFilter && reasonCodes[i] == packets.ErrTopicFilterInvalid.Code {
			reasonCodes[i] = packets.ErrQuotaExceeded.Code
		}
	}
}
