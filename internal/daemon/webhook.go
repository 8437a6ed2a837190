package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/imqtt/imqtt/internal/webhook"
)

// WebhookOptions configure the asynchronous webhook events
// (Config.Webhook; docs/integration.md#events).
type WebhookOptions struct {
	URL    string        // where events are POSTed (empty: off)
	Secret []byte        // the HMAC key (--webhook-secret)
	Events string        // --webhook-events ("" or "all": every event)
	TTL    time.Duration // how long an event is retried; 0: webhook.DefaultTTL
	// Timeout bounds one request; 0: webhook.DefaultEventTimeout.
	Timeout time.Duration
}

// webhooks are the daemon's webhook parts: nil fields when off.
type webhooks struct {
	emitter *webhook.Emitter
	outbox  *webhook.Outbox
}

// newWebhooks makes the emitter and the outbox (not started) when
// --webhook-url is set.
func (d *Daemon) newWebhooks(node int64) error {
	o := d.cfg.Webhook
	if o.URL == "" {
		return nil
	}
	events, err := webhook.ParseEvents(o.Events)
	if err != nil {
		return err
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
