package main

import (
	"errors"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/webhook"
)

// webhookConfig checks the --webhook-* flags and completes cfg.Webhook.
func (o *options) webhookConfig() error {
	w := &o.cfg.Webhook
	events, err := webhook.ParseEvents(o.webhooks)
	if err != nil {
		return err
	}
	w.Events = events
	if w.Fail != chat.FailOpen && w.Fail != chat.FailClosed {
		return errors.New("--webhook-fail must be open or closed")
	}
	if w.URL == "" {
		return nil
	}
	if o.push.webhookSecret == "" {
		return errors.New("--webhook-url needs --webhook-secret (its receiver checks the signature)")
	}
	w.Secret = []byte(o.push.webhookSecret)
	if _, err := webhook.New(webhook.Options{URL: w.URL, Secret: w.Secret}); err != nil {
		return err
	}
	return nil
}
