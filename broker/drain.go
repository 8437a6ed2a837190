package broker

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Drain disconnects the connected clients in waves of per clients, one wave
// now and one every interval, with MQTT 5 reason 0x8B (server shutting
// down), so that they reconnect to other nodes without all arriving at once.
// Call StopAccepting first. progress, if set, is called after each wave. It
// returns when no client is left (true) or stop is closed (false).
func (b *Broker) Drain(per int, interval time.Duration, stop <-chan struct{}, progress func(kicked, remaining int)) bool {
	per = max(per, 1)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		list := b.ClientList()
		kicked := 0
		for _, ci := range list[:min(per, len(list))] {
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
