package broker

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Drain disconnects the connected clients in waves of per clients, one wave
// now and one every interval, with MQTT 5 reason 0x8B (server shutting
// down), so that they reconnect to other nodes without all arriving at once.
// Call StopAccepting first. quiesce, if set, is called with each wave's
// client IDs before they are disconnected (the uplink finishes their sends
// in flight, so a resend on another node is not a second message).
// progress, if set, is called after each wave. It returns when no client is
// left (true) or stop is closed (false).
func (b *Broker) Drain(per int, interval time.Duration, stop <-chan struct{}, quiesce func(ids []string), progress func(kicked, remaining int)) bool {
	per = max(per, 1)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		list := b.ClientList()
		wave := list[:min(per, len(list))]
		if quiesce != nil {
			ids := make([]string, len(wave))
			for i, ci := range wave {
				ids[i] = ci.ID
			}
			quiesce(ids)
		}
		kicked := 0
		for _, ci := range wave {
			if b.Kick(ci.ID, packets.ErrServerShuttingDown) {
				kicked++
			}
		}
		remaining := len(list) - kicked
		if progress != nil {
			progress(kicked, remaining)
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
