package webhook

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The events of SPEC §14 (docs/integration.md#events).
const (
	BeforeSend     = "message.before_send" // synchronous: its answer allows, rejects or modifies a send
	AfterSend      = "message.after_send"
	Recalled       = "message.recalled"
	UserOnline     = "user.online"
	UserOffline    = "user.offline"
	UserRegistered = "user.registered"
	GroupChanged   = "group.changed"
)

// Events lists every event, in the order docs/integration.md gives them.
var Events = []string{BeforeSend, AfterSend, Recalled, UserOnline, UserOffline, UserRegistered, GroupChanged}

// Event is the body of every webhook request.
type Event struct {
	ID   string          `json:"id"`   // "evt-" and a unique ID: receivers dedupe by it
	Type string          `json:"type"` // one of Events
	TS   int64           `json:"ts"`   // unix ms when it happened
	Data json.RawMessage `json:"data"`
}

// ParseEvents reads --webhook-events: a comma-separated list of events,
// or "all" (also the empty list's meaning).
func ParseEvents(list string) (map[string]bool, error) {
	out := make(map[string]bool)
	list = strings.TrimSpace(list)
	if list == "" || list == "all" {
		for _, e := range Events {
			out[e] = true
		}
		return out, nil
	}
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if !slices.Contains(Events, e) {
			return nil, fmt.Errorf("--webhook-events: %q is not one of %s", e, strings.Join(Events, ", "))
		}
		out[e] = true
	}
	return out, nil
}
