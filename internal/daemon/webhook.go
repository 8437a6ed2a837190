package daemon

import (
	"context"
	"fmt"

	"github.com/imqtt/imqtt/internal/webhook"
)

// webhooks are the daemon's webhook parts: nil fields when off.
type webhooks struct {
	emitter *webhook.Emitter
	outbox  *webhook.Outbox
}

// newWebhooks makes the emitter and the outbox (not started) when
// --webhook-url is set.
func (d *Daemon) newWebhooks(node int64) error {
	o := d.cfg.Webhook
	events := o.Events
	if o.URL == "" || !(events[webhook.AfterSend] || events[webhook.Recalled] || events[webhook.UserOnline] ||
		events[webhook.UserOffline] || events[webhook.UserRegistered] || events[webhook.GroupChanged]) {
		return nil
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = webhook.DefaultEventTimeout
	}
	// The answer's body means nothing to an asynchronous event: drained.
	c, err := webhook.New(webhook.Options{URL: o.URL, Secret: o.Secret, Timeout: timeout, MaxAnswer: -1})
	if err != nil {
		return fmt.Errorf("--webhook-url: %w", err)
	}
	d.events.outbox = webhook.NewOutbox(d.st, webhook.OutboxOptions{Node: d.cfg.NodeID, Client: c, Events: events,
		TTL: o.TTL, Logger: d.log, Metrics: d.metrics})
	d.events.emitter, err = webhook.NewEmitter(d.st, webhook.EmitterOptions{Events: events, Node: node,
		Written: d.events.outbox.Notify, Logger: d.log, Metrics: d.metrics})
	return err
}

func (d *Daemon) startWebhooks() {
	if d.events.outbox != nil {
		d.events.emitter.Start()
		d.events.outbox.Start()
	}
}

// closeWebhooks writes the events queued, then stops delivering: what is
// left in the outbox is another node's, or this one's after a restart.
func (d *Daemon) closeWebhooks(ctx context.Context) {
	if d.events.outbox != nil {
		d.events.emitter.Close(ctx)
		d.events.outbox.Close(ctx)
	}
}
