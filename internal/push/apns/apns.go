// Package apns sends push notifications through Apple's APNs provider API
// over HTTP/2 with token-based authentication (a .p8 key): POST
// /3/device/{token}, authorised by an ES256 JWT the client signs, caches
// and renews every 50 minutes (Apple refuses one older than an hour, and
// renewals more often than every 20 minutes).
//
// The HTTP/2 client is net/http's Transport restricted to HTTP/2
// (Transport.Protocols) with its HTTP2Config pings, not
// golang.org/x/net/http2.Transport: since Go 1.24 the standard library
// has what APNs needs (HTTP/2 only, health-check pings on a long-lived
// connection, more connections when one reaches Apple's stream limit),
// keeps the proxy, dial and TLS settings in one place, and is one
// dependency fewer to keep current.
package apns

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
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
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imqtt/imqtt/internal/push"
)

// The APNs hosts.
const (
	ProductionURL = "https://api.push.apple.com"
	SandboxURL    = "https://api.sandbox.push.apple.com"
)

const (
	// jwtRefresh is the age at which the provider token is renewed: under
	// Apple's hour, over its 20 minutes between renewals.
	jwtRefresh = 50 * time.Minute
	// maxPayload is APNs' limit on a notification's JSON.
	maxPayload = 4096
	// maxCollapseID is APNs' limit on apns-collapse-id, in bytes.
	maxCollapseID = 64
	// maxAnswer is how much of an answer's body is read.
	maxAnswer = 4 << 10
	// DefaultTimeout bounds one request, connecting included.
	DefaultTimeout = 10 * time.Second
)

// Options configure a Client.
type Options struct {
	KeyFile string // the .p8 key file; or
	Key     []byte // its PEM
	KeyID   string // the key's ID (the JWT's kid)
	TeamID  string // the developer team (the JWT's iss)
	Topic   string // apns-topic when the device names none: the app's bundle ID
	// URL replaces both hosts ("" = ProductionURL, or SandboxURL for a
	// device registered with sandbox).
	URL string
	// HTTPClient, if set, sends the requests (it must speak HTTP/2);
	// otherwise the client builds an HTTP/2-only one, trusting RootCAs
	// (nil: the system's).
	HTTPClient *http.Client
	RootCAs    *x509.CertPool
	Timeout    time.Duration    // per request; 0 = DefaultTimeout
	Logger     *slog.Logger     // nil = slog.Default()
	Now        func() time.Time // the clock of the JWT's iat; nil = time.Now
}

// Client is an APNs push.Pusher, safe for concurrent use.
type Client struct {
	key     *ecdsa.PrivateKey
	keyID   string
	teamID  string
	topic   string
	url     string
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	mu     sync.Mutex
	jwt    string    // the provider token, "" until made
	jwtIat time.Time // when it was made
}

var _ push.Pusher = (*Client)(nil)

// New checks o and returns a client; it sends nothing.
func New(o Options) (*Client, error) {
	pemKey := o.Key
	if len(pemKey) == 0 && o.KeyFile != "" {
		var err error
		if pemKey, err = os.ReadFile(o.KeyFile); err != nil {
			return nil, fmt.Errorf("apns: read key file: %w", err)
		}
	}
	switch {
	case len(pemKey) == 0:
		return nil, errors.New("apns: no key (KeyFile or Key)")
	case o.KeyID == "":
		return nil, errors.New("apns: no key ID")
	case o.TeamID == "":
		return nil, errors.New("apns: no team ID")
	case o.Topic == "":
		return nil, errors.New("apns: no topic (the app's bundle ID)")
	}
	key, err := jwt.ParseECPrivateKeyFromPEM(pemKey)
	if err != nil {
		// jwt's error says nothing of the key's bytes.
		return nil, fmt.Errorf("apns: the key is not an EC private key in PEM: %w", err)
	}
	if o.URL != "" {
		if u, err := url.Parse(o.URL); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("apns: bad URL %q", o.URL)
		}
	}
	c := &Client{
		key: key, keyID: o.KeyID, teamID: o.TeamID, topic: o.Topic,
		url:     strings.TrimRight(o.URL, "/"),
		http:    o.HTTPClient,
		timeout: o.Timeout,
		log:     o.Logger,
		now:     o.Now,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		c.http = &http.Client{Transport: newTransport(o.RootCAs, c.timeout)}
	}
	return c, nil
}

// newTransport is an HTTP/2-only transport that pings an idle connection
// to find it dead before a request does.
func newTransport(roots *x509.CertPool, timeout time.Duration) *http.Transport {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       5 * time.Minute,
		ForceAttemptHTTP2:     true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout:  time.Minute,
			PingTimeout:      15 * time.Second,
			WriteByteTimeout: timeout,
		},
	}
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP2(true)
	return t
}

// Name is "apns".
func (c *Client) Name() string { return "apns" }

// payload is the notification's JSON.
type payload struct {
	Aps struct {
		Alert *struct {
			Title string `json:"title,omitempty"`
			Body  string `json:"body,omitempty"`
		} `json:"alert,omitempty"`
		Badge    *int64 `json:"badge,omitempty"`
		Sound    string `json:"sound,omitempty"`
		ThreadID string `json:"thread-id,omitempty"`
		// ContentAvailable 1 makes a silent (background) notification.
		ContentAvailable int `json:"content-available,omitempty"`
	} `json:"aps"`
	Conversation string   `json:"conversation,omitempty"`
	MessageID    string   `json:"message_id,omitempty"`
	Count        int      `json:"count,omitempty"`
	Recalled     []string `json:"recalled,omitempty"` // messages recalled: the app removes their notifications
}

// Push sends n; see push.Pusher for what its errors mean.
func (c *Client) Push(ctx context.Context, n push.Notification) error {
	if n.Device.Token == "" {
		return errors.New("apns: empty device token")
	}
	body, err := encode(n)
	if err != nil {
		return err
	}
	base := c.url
	if base == "" {
		base = ProductionURL
		if n.Device.Sandbox {
			base = SandboxURL
		}
	}
	topic := n.Device.Topic
	if topic == "" {
		topic = c.topic
	}
	bearer := c.bearer()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/3/device/"+url.PathEscape(n.Device.Token), bytes.NewReader(body))
	if err != nil {
		return errors.New("apns: cannot make the request (bad URL or token)")
	}
	h := req.Header
	h.Set("authorization", "bearer "+bearer)
	h.Set("apns-topic", topic)
	if n.Silent {
		// A background notification: shown to no one, delivered to the
		// app, which removes the recalled messages' notifications.
		// Apple requires priority 5 for it.
		h.Set("apns-push-type", "background")
		h.Set("apns-priority", "5")
	} else {
		h.Set("apns-push-type", "alert")
		h.Set("apns-priority", "10")
	}
	h.Set("content-type", "application/json")
	if !n.Expires.IsZero() {
		h.Set("apns-expiration", strconv.FormatInt(max(n.Expires.Unix(), 0), 10))
	}
	if id := collapseID(n.CollapseID); id != "" {
		h.Set("apns-collapse-id", id)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error names the URL, and so the token: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return push.Retry(fmt.Errorf("apns: POST /3/device/…: %w", err), 0)
	}
	defer resp.Body.Close()
	var answer struct {
		Reason string `json:"reason"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		json.Unmarshal(raw, &answer)
	}
	return c.result(resp, answer.Reason, bearer)
}

// result maps APNs' answer to push.Pusher's errors.
func (c *Client) result(resp *http.Response, reason, bearer string) error {
	status := resp.StatusCode
	switch {
	case status == http.StatusOK:
		return nil
	case status == http.StatusGone,
		status == http.StatusBadRequest && (reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic"):
		return fmt.Errorf("apns: %d %s: %w", status, reason, push.ErrInvalidToken)
	case status == http.StatusForbidden && reason == "ExpiredProviderToken":
		c.expire(bearer)
		return push.Retry(fmt.Errorf("apns: %d %s", status, reason), 0)
	case status == http.StatusTooManyRequests || status >= 500:
		return push.Retry(fmt.Errorf("apns: %d %s", status, reason), push.RetryAfter(resp.Header.Get("Retry-After"), c.now()))
	default:
		return fmt.Errorf("apns: %d %s", status, reason)
	}
}

// bearer returns the provider token, made anew when it is 50 minutes old
// or was expired.
func (c *Client) bearer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.jwt != "" && now.Sub(c.jwtIat) < jwtRefresh && !now.Before(c.jwtIat.Add(-time.Minute)) {
		return c.jwt
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": c.teamID, "iat": now.Unix()})
	tok.Header["kid"] = c.keyID
	s, err := tok.SignedString(c.key)
	if err != nil {
		// Signing with a parsed P-256 key does not fail; if it did, APNs
		// answers 403 MissingProviderToken: a plain error, counted.
		c.log.Error("apns: sign the provider token", "key_id", c.keyID, "err", err)
		return ""
	}
	c.jwt, c.jwtIat = s, now
	c.log.Debug("apns: provider token renewed", "key_id", c.keyID)
	return s
}

// expire drops the provider token APNs called expired, unless another
// request has renewed it already.
func (c *Client) expire(bearer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jwt == bearer {
		c.jwt = ""
	}
}

// encode returns n's payload, its body cut short to fit APNs' 4 KiB.
func encode(n push.Notification) ([]byte, error) {
	var p payload
	p.Aps.ThreadID = n.Conversation
	p.Conversation, p.MessageID, p.Count = n.Conversation, n.MessageID, n.Count
	p.Recalled = n.Recalled[:min(len(n.Recalled), maxRecalled)]
	if n.Silent {
		p.Aps.ContentAvailable = 1 // no alert, badge or sound: Apple's rule for background pushes
		return json.Marshal(p)
	}
	badge := n.Badge
	p.Aps.Alert = &struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}{Title: truncate(n.Title, 256), Body: n.Body}
	p.Aps.Badge = &badge
	p.Aps.Sound = "default"
	for {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("apns: encode the payload: %w", err)
		}
		over := len(b) - maxPayload
		if over <= 0 {
			return b, nil
		}
		if p.Aps.Alert.Body == "" {
			return nil, errors.New("apns: the payload is over 4 KiB without its body")
		}
		// JSON escapes can make a byte count six: cut at least that much.
		p.Aps.Alert.Body = truncate(p.Aps.Alert.Body, max(len(p.Aps.Alert.Body)-over-len("…"), 0))
	}
}

// maxRecalled bounds the recalled IDs a payload carries (50 of about 20
// bytes: well inside the 4 KiB).
const maxRecalled = 50

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-len("…"), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// collapseID returns id, or for one over APNs' 64 bytes its SHA-256 in hex
// (64 bytes): distinct IDs stay distinct.
func collapseID(id string) string {
	if len(id) <= maxCollapseID {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
