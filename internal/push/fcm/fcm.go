// Package fcm sends push notifications through Firebase Cloud Messaging's
// HTTP v1 API: POST /v1/projects/{project_id}/messages:send, authorised by
// an OAuth2 access token that golang.org/x/oauth2/google gets for a
// service account (the JWT-bearer grant) and reuses until it expires.
package fcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/imqtt/imqtt/internal/push"
)

// DefaultURL is FCM's API host.
const DefaultURL = "https://fcm.googleapis.com"

// Scope is the OAuth2 scope of the FCM v1 API.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

const (
	// DefaultTimeout bounds one request, and one access-token request.
	DefaultTimeout = 10 * time.Second
	// maxAnswer is how much of an answer's body is read.
	maxAnswer = 8 << 10
)

// Options configure a Client.
type Options struct {
	CredentialsFile string // the service account's JSON key file; or
	Credentials     []byte // its content
	URL             string // "" = DefaultURL
	TokenURL        string // "" = the credentials' token_uri (Google's)
	// HTTPClient, if set, sends the requests, to FCM and to the token
	// endpoint; otherwise the client builds one trusting RootCAs (nil:
	// the system's).
	HTTPClient *http.Client
	RootCAs    *x509.CertPool
	Timeout    time.Duration // per request; 0 = DefaultTimeout
	Logger     *slog.Logger  // nil = slog.Default()
}

// Client is an FCM push.Pusher, safe for concurrent use.
type Client struct {
	send    string // the messages:send URL
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger
	newTS   func() oauth2.TokenSource

	mu sync.Mutex
	ts oauth2.TokenSource // reuses its token until it expires
}

var _ push.Pusher = (*Client)(nil)

// New checks o and returns a client; it fetches no token yet.
func New(o Options) (*Client, error) {
	creds := o.Credentials
	if len(creds) == 0 && o.CredentialsFile != "" {
		var err error
		if creds, err = os.ReadFile(o.CredentialsFile); err != nil {
			return nil, fmt.Errorf("fcm: read credentials: %w", err)
		}
	}
	if len(creds) == 0 {
		return nil, errors.New("fcm: no credentials (CredentialsFile or Credentials)")
	}
	var meta struct {
		Type      string `json:"type"`
		ProjectID string `json:"project_id"`
	}
	if err := json.Unmarshal(creds, &meta); err != nil {
		// Not the decoder's error: it can quote the file's bytes.
		return nil, errors.New("fcm: the credentials are not JSON")
	}
	if meta.Type != "service_account" || meta.ProjectID == "" {
		return nil, fmt.Errorf("fcm: the credentials are not a service account's key with a project_id (type %q)", meta.Type)
	}
	cfg, err := google.JWTConfigFromJSON(creds, Scope)
	if err == nil {
		// oauth2 reads the key only when it first signs: check it now.
		_, err = jwt.ParseRSAPrivateKeyFromPEM(cfg.PrivateKey)
	}
	if err != nil || cfg.Email == "" {
		return nil, errors.New("fcm: the credentials have no usable private_key or client_email")
	}
	if o.TokenURL != "" {
		cfg.TokenURL = o.TokenURL
	}
	base := strings.TrimRight(o.URL, "/")
	if base == "" {
		base = DefaultURL
	}
	for _, u := range []string{base, cfg.TokenURL} {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			return nil, fmt.Errorf("fcm: bad URL %q", u)
		}
	}
	c := &Client{
		send:    base + "/v1/projects/" + url.PathEscape(meta.ProjectID) + "/messages:send",
		http:    o.HTTPClient,
		timeout: o.Timeout,
		log:     o.Logger,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.http == nil {
		c.http = &http.Client{Transport: newTransport(o.RootCAs, c.timeout)}
	}
	// The token endpoint is called from the token source, with no context
	// of the push's: its own client bounds it.
	tokenClient := &http.Client{Transport: c.http.Transport, Timeout: c.timeout}
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient)
	c.newTS = func() oauth2.TokenSource { return oauth2.ReuseTokenSource(nil, cfg.TokenSource(tokenCtx)) }
	c.ts = c.newTS()
	return c, nil
}

func newTransport(roots *x509.CertPool, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       5 * time.Minute,
		ForceAttemptHTTP2:     true,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: time.Minute, PingTimeout: 15 * time.Second},
	}
}

// Name is "fcm".
func (c *Client) Name() string { return "fcm" }

// message is FCM v1's send body.
type message struct {
	Message struct {
		Token string `json:"token"`
		// Notification is what the device shows; none in a silent one (a
		// data message, delivered to the app only).
		Notification *struct {
			Title string `json:"title,omitempty"`
			Body  string `json:"body,omitempty"`
		} `json:"notification,omitempty"`
		Android struct {
			CollapseKey  string `json:"collapse_key,omitempty"`
			TTL          string `json:"ttl,omitempty"`
			Notification *struct {
				Count int64 `json:"notification_count"`
			} `json:"notification,omitempty"`
		} `json:"android"`
		APNs struct {
			Payload struct {
				Aps struct {
					Badge int64 `json:"badge"`
				} `json:"aps"`
			} `json:"payload"`
		} `json:"apns"`
		Data map[string]string `json:"data"` // FCM takes strings only
	} `json:"message"`
}

// Push sends n; see push.Pusher for what its errors mean.
func (c *Client) Push(ctx context.Context, n push.Notification) error {
	token := n.Device.Token
	if token == "" {
		return errors.New("fcm: empty device token")
	}
	var m message
	m.Message.Token = token
	if !n.Silent {
		m.Message.Notification = &struct {
			Title string `json:"title,omitempty"`
			Body  string `json:"body,omitempty"`
		}{Title: n.Title, Body: n.Body}
		m.Message.Android.Notification = &struct {
			Count int64 `json:"notification_count"`
		}{Count: n.Badge}
	}
	m.Message.Android.CollapseKey = n.CollapseID
	if !n.Expires.IsZero() {
		m.Message.Android.TTL = strconv.FormatInt(int64(max(time.Until(n.Expires), 0)/time.Second), 10) + "s"
	}
	m.Message.APNs.Payload.Aps.Badge = n.Badge
	m.Message.Data = map[string]string{
		"conversation": n.Conversation, "message_id": n.MessageID, "count": strconv.Itoa(n.Count),
	}
	if len(n.Recalled) > 0 { // the app removes what it shows of them
		m.Message.Data["recalled"] = strings.Join(n.Recalled[:min(len(n.Recalled), 50)], ",")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("fcm: encode the message: %w", err)
	}

	c.mu.Lock()
	ts := c.ts
	c.mu.Unlock()
	access, err := ts.Token()
	if err != nil {
		return tokenError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.send, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fcm: make the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	access.SetAuthHeader(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return push.Retry(fmt.Errorf("fcm: send: %w", err), 0)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return c.result(resp, raw, token, ts)
}

// answer is FCM's error body (a google.rpc.Status).
type answer struct {
	Error struct {
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// result maps FCM's answer (not a 200) to push.Pusher's errors.
func (c *Client) result(resp *http.Response, raw []byte, token string, ts oauth2.TokenSource) error {
	var a answer
	json.Unmarshal(raw, &a)
	code, onToken := a.Error.Status, false
	for _, d := range a.Error.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
		}
		for _, v := range d.FieldViolations {
			onToken = onToken || v.Field == "message.token"
		}
	}
	// FCM's message should not quote the token; make sure.
	msg := strings.ReplaceAll(a.Error.Message, token, "…")
	status := resp.StatusCode
	err := fmt.Errorf("fcm: %d %s: %s", status, code, msg)
	switch {
	case status == http.StatusNotFound || code == "UNREGISTERED",
		status == http.StatusBadRequest && code == "INVALID_ARGUMENT" &&
			(onToken || strings.Contains(a.Error.Message, "registration token")):
		return fmt.Errorf("%w: %w", err, push.ErrInvalidToken)
	case status == http.StatusUnauthorized:
		c.renew(ts)
		return push.Retry(err, 0)
	case status == http.StatusTooManyRequests || status >= 500:
		return push.Retry(err, push.RetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	default:
		// SENDER_ID_MISMATCH among them: the token is another project's,
		// or ours is misconfigured; dropping every registration on a
		// configuration mistake would be worse than counting drops.
		return err
	}
}

// renew drops the cached access token FCM refused, unless another push
// has renewed it already.
func (c *Client) renew(used oauth2.TokenSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ts == used {
		c.ts = c.newTS()
		c.log.Info("fcm: access token refused, getting another")
	}
}

// tokenError maps a failure to get an access token: the token endpoint's
// 5xx or 429, or no answer, is worth a retry; its 4xx (invalid_grant: a
// revoked key, a bad clock) is not.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		e := fmt.Errorf("fcm: access token: %d %s %s", re.Response.StatusCode, re.ErrorCode, re.ErrorDescription)
		if s := re.Response.StatusCode; s == http.StatusTooManyRequests || s >= 500 {
			return push.Retry(e, push.RetryAfter(re.Response.Header.Get("Retry-After"), time.Now()))
		}
		return e
	}
	return push.Retry(fmt.Errorf("fcm: access token: %w", err), 0)
}
