package chat

import "testing"

// TestFillDefaults: zero Options take the Default constants, which
// cmd/imqttd's flags default to; a setting given is kept, and the burst
// follows the rate.
func TestFillDefaults(t *testing.T) {
	o := Options{SendRate: 50}
	o.fill()
	if o.MaxBody != DefaultMaxBody || o.MaxBatch != DefaultMaxBatch || o.QueueLen != DefaultQueueLen ||
		o.QueueWait != DefaultQueueWait || o.CommitWait != DefaultCommitWait || o.MaxGroupMembers != DefaultMaxGroupMembers ||
		o.ReadTick != DefaultReadTick || o.SendBurst != DefaultBurstFactor*50 || o.Logger == nil || o.Metrics == nil {
		t.Fatalf("filled %+v", o)
	}
	o = Options{MaxBody: 100, MaxGroupMembers: 3, SendRate: 5, SendBurst: 7}
	o.fill()
	if o.MaxBody != 100 || o.MaxGroupMembers != 3 || o.SendBurst != 7 {
		t.Fatalf("a setting given was replaced: %+v", o)
	}
}
