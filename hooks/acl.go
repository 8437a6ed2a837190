package hooks

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/wire"
)

// ACL enforces docs/protocol.md#topics: a client subscribes only under im/u/{its user}/ and
// publishes only to the uplink topics. mochi asks once per subscriber per
// delivery, so Allowed is a few string compares with no allocation.
type ACL struct {
	mqtt.HookBase
	m *metrics.Metrics
}

// ID names the hook.
func (h *ACL) ID() string { return "imqtt-acl" }

// Provides lists the events ACL handles.
func (h *ACL) Provides(b byte) bool { return b == mqtt.OnACLCheck }

// Init takes the *metrics.Metrics denials are counted on.
func (h *ACL) Init(config any) error {
	m, ok := config.(*metrics.Metrics)
	if !ok || m == nil {
		return errors.New("acl hook: *metrics.Metrics required")
	}
	h.m = m
	return nil
}

// OnACLCheck allows or refuses, counting refusals.
func (h *ACL) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if Allowed(cl.Properties.Username, topic, write) {
		return true
	}
	action := "subscribe"
	if write {
		action = "publish"
	}
	h.m.ACLDenied(action, cl.ID, topic)
	return false
}

// Allowed is the ACL rule for a client authenticated as user.
func Allowed(user []byte, topic string, write bool) bool {
	if write {
		switch topic {
		case wire.TopicSend, wire.TopicSync, wire.TopicRead, wire.TopicRecall, wire.TopicEdit, wire.TopicDelete,
			wire.TopicReact, wire.TopicTyping:
			return true
		}
		return false
	}
	return len(user) > 0 && string(user) == wire.TopicUser(topic) // user IDs cannot hold + or # (wire.ValidUser)
}
