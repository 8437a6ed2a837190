// Package webhook sends push notifications to an HTTP endpoint of the
// operator's (--push-webhook): a POST of SPEC §13's JSON, signed as SPEC
// §14's webhooks are (internal/signature), for a service of their own to
// deliver (a provider imqtt does not speak, an SMS gateway...).
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/signature"
)

const (
	// DefaultTimeout bounds one request.
	DefaultTimeout = 10 * time.Second
	// maxAnswer is how much of an answer's body is read (and dropped), so
	// that the connection can be reused without reading a huge body.
	maxAnswer = 4 << 10
)

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
	url     string
	secret  []byte
	timeout time.Duration
	http    *http.Client
	now     func() time.Time
}

var _ push.Pusher = (*Client)(nil)

// New checks o and returns a client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: the URL is not an http(s) URL")
	}
	if len(o.Secret) == 0 {
		return nil, errors.New("webhook: no secret to sign with")
	}
	c := &Client{url: o.URL, secret: o.Secret, timeout: o.Timeout, http: o.HTTPClient, now: o.Now}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		c.http = &http.Client{
			// A redirect would move a signed push elsewhere: it is the
			// answer, an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
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
}

// Push POSTs n; see push.Pusher for what its errors mean.
func (c *Client) Push(ctx context.Context, n push.Notification) error {
	raw, err := json.Marshal(body{
		User: n.Device.User, Device: n.Device.Device, Token: n.Device.Token, Badge: n.Badge,
		Title: n.Title, Body: n.Body, Conversation: n.Conversation, MessageID: n.MessageID,
	})
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	ts := c.now().Unix()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("webhook: make the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Imqtt-Event", "push")
	req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(signature.HeaderSignature, signature.Sign(c.secret, ts, raw))
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error names the URL, which may carry a credential.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return push.Retry(fmt.Errorf("webhook: POST: %w", err), 0)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusGone:
		return fmt.Errorf("webhook: %d: %w", status, push.ErrInvalidToken)
	case status == http.StatusTooManyRequests || status >= 500:
		return push.Retry(fmt.Errorf("webhook: %d", status), push.RetryAfter(resp.Header.Get("Retry-After"), c.now()))
	default:
		return fmt.Errorf("webhook: %d", status)
	}
}
