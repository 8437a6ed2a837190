package daemon

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imqtt/imqtt/hooks"
	"github.com/imqtt/imqtt/internal/presence"
	"github.com/imqtt/imqtt/store"
)

// newPresence makes the node's presence service (internal/presence) on the
// store's social graph and the hot state's devices; its events leave by
// the delivery path, and the presence hook feeds it.
func (d *Daemon) newPresence() error {
	var err error
	d.presence, err = presence.New(presence.Options{Social: d.st, Devices: d.state, Sender: d.path,
		Hidden: d.presenceHidden, Limiter: d.state, Debounce: d.cfg.PresenceDebounce,
		Refused: d.metrics.Refused, Logger: d.log})
	return err
}

// presenceHidden reports which of users set their presence to nobody: a
// settings read each (a point read on Pebble), at most 16 at once so
// a GET of 200 users on MongoDB costs a few round trips' time.
func (d *Daemon) presenceHidden(ctx context.Context, users []string) (map[string]bool, error) {
	hidden := make([]bool, len(users))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, u := range users {
		g.Go(func() error {
			us, err := d.st.GetUserSettings(ctx, u)
			hidden[i] = err == nil && us.Presence == store.PresenceNobody
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(users))
	for i, u := range users {
		if hidden[i] {
			out[u] = true
		}
	}
	return out, nil
}

// presenceEvents tells each of its listeners of devices coming and going
// (the webhook's user.online and user.offline, the presence service).
type presenceEvents []hooks.PresenceEvents

func (ls presenceEvents) Online(user, device, node string, at time.Time) {
	for _, l := range ls {
		l.Online(user, device, node, at)
	}
}

func (ls presenceEvents) Offline(user, device, node string, at time.Time) {
	for _, l := range ls {
		l.Offline(user, device, node, at)
	}
}
