// Package webhook is imqtt's side of the operator's HTTP endpoints: a
// signed POST (Client), and the events of SPEC §14 it carries
// (docs/integration.md#webhooks). The push webhook (internal/push/webhook)
// POSTs through the same Client.
//
// A request is signed as internal/signature says: X-Imqtt-Timestamp and
// X-Imqtt-Signature (HMAC-SHA256 over timestamp + "." + body), and names its
// event in X-Imqtt-Event.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/internal/signature"
)

// HeaderEvent names the event a request carries.
const HeaderEvent = "X-Imqtt-Event"

const (
	// DefaultTimeout bounds one request.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxAnswer is how much of an answer's body is read: the rest
	// is not, and the answer is Truncated.
	DefaultMaxAnswer = 64 << 10
)

// maxIdle is how many idle connections a Client keeps to its host.
const maxIdle = 256

// Options configure a Client.
type Options struct {
	URL     string        // where to POST: http or https
	Secret  []byte        // the HMAC key of X-Imqtt-Signature
	Timeout time.Duration // per request; 0 = DefaultTimeout
	// MaxAnswer bounds the answer's body that is read; 0 =
	// DefaultMaxAnswer, < 0 = none is kept (it is drained up to 4 KiB so
	// that the connection is reused).
	MaxAnswer  int
	HTTPClient *http.Client // nil: one of the client's own, following no redirects
	Now        func() time.Time
}

// Client POSTs signed requests to one URL; safe for concurrent use.
type Client struct {
	url       string
	secret    []byte
	timeout   time.Duration
	maxAnswer int
	http      *http.Client
	now       func() time.Time
}

// New checks o and returns a client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: the URL is not an http(s) URL")
	}
	if len(o.Secret) == 0 {
		return nil, errors.New("webhook: no secret to sign with")
	}
	c := &Client{url: o.URL, secret: o.Secret, timeout: o.Timeout, maxAnswer: o.MaxAnswer, http: o.HTTPClient, now: o.Now}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxAnswer == 0 {
		c.maxAnswer = DefaultMaxAnswer
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Many requests go to the one host at once (before_send: up to
		// --webhook-concurrency); net/http keeps 2 idle connections a
		// host by default, so every other request dialled a new one and
		// left it in TIME_WAIT: 250 µs of the node's CPU a send at 5 ms
		// of backend latency (bench/hook.sh).
		t.MaxIdleConns, t.MaxIdleConnsPerHost = maxIdle, maxIdle
		c.http = &http.Client{
			Transport: t,
			// A redirect would move a signed request elsewhere: it is the
			// answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// Answer is what the endpoint answered.
type Answer struct {
	Status     int
	RetryAfter string // the Retry-After header, as sent
	Body       []byte // at most MaxAnswer bytes of it
	Truncated  bool   // the body was longer
}

// OK reports a 2xx status.
func (a Answer) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Post POSTs body (JSON) as event, signed. An error is a request that got
// no answer (refused, reset, timed out, ctx ended); its text never holds
// the URL, which may carry a credential.
func (c *Client) Post(ctx context.Context, event string, body []byte) (Answer, error) {
	ts := c.now().Unix()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, errors.New("webhook: make the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(signature.HeaderSignature, signature.Sign(c.secret, ts, body))
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Answer{}, fmt.Errorf("webhook: POST: %w", err)
	}
	defer resp.Body.Close()
	a := Answer{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	if c.maxAnswer < 0 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return a, nil
	}
	a.Body, err = io.ReadAll(io.LimitReader(resp.Body, int64(c.maxAnswer)+1))
	if err != nil {
		return Answer{}, fmt.Errorf("webhook: read the answer: %w", err)
	}
	if len(a.Body) > c.maxAnswer {
		a.Body, a.Truncated = a.Body[:c.maxAnswer], true
	}
	return a, nil
}
