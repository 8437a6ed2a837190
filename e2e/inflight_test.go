package e2e

import (
	"strconv"
	"testing"
)

// TestInboundQoS1LeavesNothingInFlight: a device's QoS 1 publishes are
// acknowledged and forgotten; the broker keeps nothing of them in flight.
// (mochi stored each PUBACK it sent, keyed by packet ID; imqtt's fork had
// stopped deleting them, so a busy sender held up to 65,535 entries,
// copied and sorted every second: 23 % of a node's CPU at 12,000 sends/s.)
func TestInboundQoS1LeavesNothingInFlight(t *testing.T) {
	s := startAdmin(t)
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	account(t, s, "bob", "phone")
	for i := range 200 {
		if _, e := alice.send("bob", "c-"+strconv.Itoa(i), "hi"); e != nil {
			t.Fatalf("send %d: %+v", i, e)
		}
	}
	var c struct {
		Inflight int `json:"inflight"`
	}
	if code := adminDo(t, s, "GET", "clients/alice/phone", nil, &c); code != 200 {
		t.Fatalf("admin client: %d", code)
	}
	if c.Inflight != 0 {
		t.Fatalf("alice/phone has %d packets in flight after 200 acknowledged sends, want 0", c.Inflight)
	}
}
