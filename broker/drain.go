package broker

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Waves is told of a drain's waves (*drain.State, the node's one drain
// state): Quiesce before a wave's clients are disconnected, Wave after.
type Waves interface {
	// Quiesce is called with a wave's client IDs before they are
	// disconnected, and returns when their sends in flight are answered
	// (so a resend on another node is not a second message).
	Quiesce(ids []string)
	// Wave is called after each wave: kicked clients disconnected by it,
	// remaining still connected.
	Wave(kicked, remaining int)
}

// Drain disconnects the connected clients in waves of per clients, one wave
// now and one every interval, with MQTT 5 reason 0x8B (server shutting
// down), so that they reconnect to other nodes without all arriving at once.
// Call StopAccepting first. w, if set, is told of each wave (Waves). It
// returns when no client is left (true) or stop is closed (false).
func (b *Broker) Drain(per int, interval time.Duration, stop <-chan struct{}, w Waves) bool {
	per = max(per, 1)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		list := b.ClientList()
		wave := list[:min(per, len(list))]
		if w != nil {
			ids := make([]string, len(wave))
			for i, ci := range wave {
				ids[i] = ci.ID
			}
			w.Quiesce(ids)
		}
		kicked := 0
		for _, ci := range wave {
			if b.Kick(ci.ID, packets.ErrServerShuttingDown) {
				kicked++
			}
		}
		remaining := len(list) - kicked
		if w != nil {
			w.Wave(kicked, remaining)
		}
		if remaining <= 0 {
			return true
		}
		select {
		case <-t.C:
		case <-stop:
			return false
		}
	}
}
