package pushtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// APNs answers an APNs device token that is refused for good.
var (
	APNsUnregistered   = Answer{Status: http.StatusGone, Reason: "Unregistered"}
	APNsBadDeviceToken = Answer{Status: http.StatusBadRequest, Reason: "BadDeviceToken"}
)

// Identity of the fake's provider key.
const (
	APNsKeyID  = "KEY1234567"
	APNsTeamID = "TEAM123456"
	APNsTopic  = "com.example.imqtt"
)

// APNsNotification is a notification the APNs fake accepted.
type APNsNotification struct {
	Token   string
	Header  http.Header // apns-topic, apns-push-type, apns-collapse-id...
	Raw     []byte      // the JSON body
	Payload APNsPayload // Raw decoded
}

// APNsPayload is imqtt's APNs payload.
type APNsPayload struct {
	Aps struct {
		Alert *struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"alert"`
		Badge            *int64 `json:"badge"`
		Sound            string `json:"sound"`
		ThreadID         string `json:"thread-id"`
		ContentAvailable int    `json:"content-available"`
	} `json:"aps"`
	Conversation string `json:"conversation"`
	MessageID    string `json:"message_id"`
	Count        int    `json:"count"`
}

// APNs is a fake APNs provider API (HTTP/2 over TLS, token auth): POST
// /3/device/{token} with the headers and JSON payload Apple documents. It
// verifies the ES256 provider token against the key it generated (KeyPEM,
// KeyID, TeamID), refuses one whose iat is more than an hour old (403
// ExpiredProviderToken, Apple's rule), and checks apns-topic (one of
// Topics), apns-push-type, apns-priority, apns-expiration,
// apns-collapse-id (at most 64 bytes), apns-id and the payload (a JSON
// object with "aps", at most 4 KiB). Device tokens must be hex, as
// Apple's are (APNsToken makes some): another is a 400 BadDeviceToken.
type APNs struct {
	*answers
	Server *httptest.Server
	URL    string // the base URL: Options.URL of the provider
	KeyPEM []byte // the .p8 key (PKCS #8 PEM)
	KeyID  string
	TeamID string

	key   *ecdsa.PrivateKey
	notes recorder[APNsNotification]

	mu     sync.Mutex
	topics map[string]bool
	jwts   []string // distinct provider tokens, in order of first use
	now    func() time.Time
}

// NewAPNs starts a fake APNs server, closed when the test ends. Its topic
// is APNsTopic.
func NewAPNs(t testing.TB) *APNs {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a := &APNs{
		answers: newAnswers(t),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		KeyID:   APNsKeyID,
		TeamID:  APNsTeamID,
		key:     key,
		topics:  map[string]bool{APNsTopic: true},
		now:     time.Now,
	}
	a.Server = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.Server.EnableHTTP2 = true
	a.Server.StartTLS()
	a.URL = a.Server.URL
	t.Cleanup(a.Server.Close)
	return a
}

// Client returns an HTTP/2 client that trusts the fake's certificate.
func (a *APNs) Client() *http.Client { return a.Server.Client() }

// RootCAs returns a pool with the fake's certificate.
func (a *APNs) RootCAs() *x509.CertPool { return certPool(a.Server) }

// AddTopic lets the fake accept another apns-topic (an app's bundle ID).
func (a *APNs) AddTopic(topic string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.topics[topic] = true
}

// SetClock sets the fake's clock, for the age of provider tokens.
func (a *APNs) SetClock(now func() time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.now = now
}

// Notifications returns the accepted notifications, in order.
func (a *APNs) Notifications() []APNsNotification { return a.notes.all() }

// ProviderTokens returns the distinct provider JWTs the fake was sent
// (valid or not), in order of first use.
func (a *APNs) ProviderTokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.jwts...)
}

// APNsToken returns a device token that looks like Apple's (64 hex
// digits), different for each i.
func APNsToken(i int) string {
	b := make([]byte, 32)
	copy(b, "imqtt-apns-token-"+strconv.Itoa(i))
	return hex.EncodeToString(b)
}

var (
	apnsUUID    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	apnsHex     = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	apnsMaxBody = 4096
)

func (a *APNs) serve(w http.ResponseWriter, r *http.Request) {
	a.count()
	id := r.Header.Get("apns-id")
	fail := func(status int, reason string, violation bool) {
		if violation {
			a.violation("%s %s: %d %s", r.Method, redactPath(r.URL.Path), status, reason)
		}
		if id != "" {
			w.Header().Set("apns-id", id)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		body := map[string]any{"reason": reason}
		if status == http.StatusGone {
			body["timestamp"] = a.clock().UnixMilli()
		}
		json.NewEncoder(w).Encode(body)
	}
	if r.ProtoMajor != 2 {
		fail(http.StatusBadRequest, "BadRequest: HTTP/2 only", true)
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	switch {
	case !ok:
		fail(http.StatusNotFound, "BadPath", true)
		return
	case r.Method != http.MethodPost:
		fail(http.StatusMethodNotAllowed, "MethodNotAllowed", true)
		return
	case token == "":
		fail(http.StatusBadRequest, "MissingDeviceToken", true)
		return
	}
	if reason := a.checkJWT(r.Header.Get("Authorization")); reason != "" {
		// An expired token is the client's to refresh, not a violation.
		fail(http.StatusForbidden, reason, reason != "ExpiredProviderToken")
		return
	}
	if id != "" && !apnsUUID.MatchString(id) {
		fail(http.StatusBadRequest, "BadMessageId", true)
		return
	}
	h := r.Header
	topic := h.Get("apns-topic")
	a.mu.Lock()
	topicOK := a.topics[topic]
	a.mu.Unlock()
	switch {
	case len(h.Values("apns-topic")) > 1 || len(h.Values("apns-collapse-id")) > 1:
		fail(http.StatusBadRequest, "DuplicateHeaders", true)
		return
	case topic == "":
		fail(http.StatusBadRequest, "MissingTopic", true)
		return
	case !topicOK:
		fail(http.StatusBadRequest, "TopicDisallowed", true)
		return
	case !oneOf(h.Get("apns-push-type"), "alert", "background"):
		fail(http.StatusBadRequest, "InvalidPushType", true)
		return
	case !oneOf(h.Get("apns-priority"), "", "5", "10"),
		h.Get("apns-push-type") == "background" && h.Get("apns-priority") != "5": // Apple's rule for background pushes
		fail(http.StatusBadRequest, "BadPriority", true)
		return
	case !isUint(h.Get("apns-expiration")):
		fail(http.StatusBadRequest, "BadExpirationDate", true)
		return
	case len(h.Get("apns-collapse-id")) > 64:
		fail(http.StatusBadRequest, "BadCollapseId", true)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(apnsMaxBody)+1))
	if err != nil {
		return
	}
	var p APNsPayload
	var obj map[string]json.RawMessage
	switch {
	case len(raw) > apnsMaxBody:
		fail(http.StatusRequestEntityTooLarge, "PayloadTooLarge", true)
		return
	case len(raw) == 0:
		fail(http.StatusBadRequest, "PayloadEmpty", true)
		return
	case json.Unmarshal(raw, &obj) != nil || obj["aps"] == nil || json.Unmarshal(raw, &p) != nil:
		// Not one of Apple's reasons: APNs answers a payload that is no
		// JSON object with "aps" by not showing it.
		fail(http.StatusBadRequest, "BadPayload", true)
		return
	case h.Get("apns-push-type") == "background" && (p.Aps.ContentAvailable != 1 || p.Aps.Alert != nil || p.Aps.Badge != nil || p.Aps.Sound != ""):
		// A background push wakes the app only: content-available and
		// nothing to show (APNs drops one that shows something).
		fail(http.StatusBadRequest, "BadPayload", true)
		return
	}
	if !apnsHex.MatchString(token) {
		fail(http.StatusBadRequest, "BadDeviceToken", false)
		return
	}
	ans := a.lookup(token)
	if !ans.wait(r.Context()) {
		return
	}
	if ans.status() != http.StatusOK {
		ans.setRetryAfter(w.Header())
		reason := ans.Reason
		if reason == "" {
			reason = http.StatusText(ans.status())
		}
		fail(ans.status(), reason, false)
		return
	}
	a.notes.add(APNsNotification{Token: token, Header: r.Header.Clone(), Raw: raw, Payload: p})
	if id == "" {
		id = "00000000-0000-4000-8000-000000000000"
	}
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
}

func (a *APNs) clock() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now()
}

// checkJWT returns the APNs reason for refusing the authorization header,
// or "".
func (a *APNs) checkJWT(auth string) string {
	tok, ok := strings.CutPrefix(auth, "bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(auth, "Bearer ")
	}
	if !ok || tok == "" {
		return "MissingProviderToken"
	}
	a.mu.Lock()
	seen := false
	for _, j := range a.jwts {
		seen = seen || j == tok
	}
	if !seen {
		a.jwts = append(a.jwts, tok)
	}
	a.mu.Unlock()
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != a.KeyID {
			return nil, errors.New("unknown kid")
		}
		return &a.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(a.TeamID))
	if err != nil || !parsed.Valid || claims.IssuedAt == nil {
		return "InvalidProviderToken"
	}
	now := a.clock()
	if age := now.Sub(claims.IssuedAt.Time); age > time.Hour {
		return "ExpiredProviderToken"
	} else if age < -time.Minute {
		return "InvalidProviderToken"
	}
	return ""
}

// redactPath keeps a device token out of a test failure's text.
func redactPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "/3/device/"); ok && rest != "" {
		return "/3/device/…"
	}
	return p
}

func oneOf(s string, set ...string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

func isUint(s string) bool {
	if s == "" {
		return true
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// CAFile writes the fake's certificate (PEM) into dir and returns its
// path: for an imqttd run as a process, SSL_CERT_FILE=path makes it
// trusted.
func (a *APNs) CAFile(dir string) string { return caFile(a.t, a.Server, dir, "apns-ca.pem") }

func caFile(t testing.TB, s *httptest.Server, dir, name string) string {
	path := filepath.Join(dir, name)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(path, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func certPool(s *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}
