package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/apns"
	"github.com/imqtt/imqtt/internal/push/fcm"
	"github.com/imqtt/imqtt/internal/push/webhook"
)

// pushers builds the providers p turns on: APNs with its key, FCM with its
// credentials, the webhook with its URL (none: push is off). A provider
// half configured, or whose key or credentials do not load, is an error:
// the node does not start without the push it was asked for.
func (p pushFlags) pushers(log *slog.Logger) ([]push.Pusher, error) {
	var out []push.Pusher
	apnsSet := p.apnsKeyFile != "" || p.apnsKeyID != "" || p.apnsTeamID != "" || p.apnsTopic != ""
	if apnsSet {
		if p.apnsKeyFile == "" || p.apnsKeyID == "" || p.apnsTeamID == "" || p.apnsTopic == "" {
			return nil, errors.New("APNs needs --apns-key-file, --apns-key-id, --apns-team-id and --apns-topic together")
		}
		c, err := apns.New(apns.Options{KeyFile: p.apnsKeyFile, KeyID: p.apnsKeyID, TeamID: p.apnsTeamID, Topic: p.apnsTopic,
			URL: p.apnsURL, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("APNs: %w", err)
		}
		out = append(out, c)
	} else if p.apnsURL != "" {
		return nil, errors.New("--apns-url without APNs (--apns-key-file...)")
	}
	if p.fcmCredentials != "" {
		c, err := fcm.New(fcm.Options{CredentialsFile: p.fcmCredentials, URL: p.fcmURL, TokenURL: p.fcmTokenURL, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("FCM: %w", err)
		}
		out = append(out, c)
	} else if p.fcmURL != "" || p.fcmTokenURL != "" {
		return nil, errors.New("--fcm-url and --fcm-token-url need --fcm-credentials")
	}
	if p.webhook != "" {
		if p.webhookSecret == "" {
			return nil, errors.New("--push-webhook needs --webhook-secret (its receiver checks the signature)")
		}
		c, err := webhook.New(webhook.Options{URL: p.webhook, Secret: []byte(p.webhookSecret)})
		if err != nil {
			return nil, fmt.Errorf("push webhook: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}
