// Package webhook sends push notifications to an HTTP endpoint of the
// operator's (--push-webhook): a POST of SPEC §13's JSON, signed as SPEC
// §14's webhooks are (internal/signature), for a service of their own to
// deliver (a provider imqtt does not speak, an SMS gateway...).
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/imqtt/imqtt/internal/push"
	hook "github.com/imqtt/imqtt/internal/webhook"
)

// DefaultTimeout bounds one request.
const DefaultTimeout = hook.DefaultTimeout

// Options configure a Client.
type Options struct {
	URL        string        // where to POST
	Secret     []byte        // the HMAC key of X-Imqtt-Signature
	Timeout    time.Duration // per request; 0 = DefaultTimeout
	HTTPClient *http.Client  // nil: one of the client's own, following no redirects
	Now        func() time.Time
}

// Client is the webhook push.Pusher, safe for concurrent use.
type Client struct {
	post *hook.Client
	now  func() time.Time
}

var _ push.Pusher = (*Client)(nil)

// New checks o and returns a client.
func New(o Options) (*Client, error) {
	post, err := hook.New(hook.Options{URL: o.URL, Secret: o.Secret, Timeout: o.Timeout,
		MaxAnswer: -1, HTTPClient: o.HTTPClient, Now: o.Now})
	if err != nil {
		return nil, err
	}
	c := &Client{post: post, now: o.Now}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Name is "webhook".
func (c *Client) Name() string { return "webhook" }

// body is SPEC §13's webhook push.
type body struct {
	User         string `json:"user"`
	Device       string `json:"device"`
	Token        string `json:"token"`
	Badge        int64  `json:"badge"`
	Title        string `json:"title"`
	Body         string `json:"body"`
	Conversation string `json:"conversation"`
	MessageID    string `json:"message_id"`
	// Recalled messages, whose notifications the device should remove;
	// Silent: nothing else to show.
	Recalled []string `json:"recalled,omitempty"`
	Silent   bool     `json:"silent,omitempty"`
}

// Push POSTs n; see push.Pusher for what its errors mean.
func (c *Client) Push(ctx context.Context, n push.Notification) error {
	raw, err := json.Marshal(body{
		User: n.Device.User, Device: n.Device.Device, Token: n.Device.Token, Badge: n.Badge,
		Title: n.Title, Body: n.Body, Conversation: n.Conversation, MessageID: n.MessageID,
		Recalled: n.Recalled, Silent: n.Silent,
	})
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	a, err := c.post.Post(ctx, "push", raw)
	if err != nil {
		return push.Retry(err, 0)
	}
	status := a.Status
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusGone:
		return fmt.Errorf("webhook: %d: %w", status, push.ErrInvalidToken)
	case status == http.StatusTooManyRequests || status >= 500:
		return push.Retry(fmt.Errorf("webhook: %d", status), push.RetryAfter(a.RetryAfter, c.now()))
	default:
		return fmt.Errorf("webhook: %d", status)
	}
}
