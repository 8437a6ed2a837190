package pushtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FCM answers: a token FCM no longer knows, one it calls malformed, and
// FCM's server errors.
var (
	FCMUnregistered   = Answer{Status: http.StatusNotFound, Reason: "UNREGISTERED"}
	FCMInvalidToken   = Answer{Status: http.StatusBadRequest, Reason: "INVALID_ARGUMENT"}
	FCMUnavailable    = Answer{Status: http.StatusServiceUnavailable, Reason: "UNAVAILABLE"}
	FCMInternal       = Answer{Status: http.StatusInternalServerError, Reason: "INTERNAL"}
	FCMSenderMismatch = Answer{Status: http.StatusForbidden, Reason: "SENDER_ID_MISMATCH"}
)

// FCMProject is the fake's project_id.
const FCMProject = "imqtt-test"

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCMMessage is a message the FCM fake accepted.
type FCMMessage struct {
	Token   string
	Raw     []byte // the JSON body
	Message FCMBody
}

// FCMBody is imqtt's FCM v1 message (the "message" object).
type FCMBody struct {
	Token        string `json:"token"`
	Notification struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	} `json:"notification"`
	Android struct {
		CollapseKey  string `json:"collapse_key"`
		TTL          string `json:"ttl"`
		Notification struct {
			NotificationCount *int64 `json:"notification_count"`
		} `json:"notification"`
	} `json:"android"`
	APNs struct {
		Payload struct {
			Aps struct {
				Badge *int64 `json:"badge"`
			} `json:"aps"`
		} `json:"payload"`
	} `json:"apns"`
	Data map[string]string `json:"data"` // FCM takes strings only: anything else is a 400
}

// FCM is a fake FCM HTTP v1 API and Google OAuth2 token endpoint on one
// HTTPS server. The token endpoint (TokenURL, the credentials' token_uri)
// takes a JWT-bearer grant signed by the service-account key it generated
// (Credentials) and issues access tokens; POST
// /v1/projects/{project}/messages:send takes one of them as its bearer
// token and a message whose token, data (strings only) and android.ttl
// ("3600s") it checks.
type FCM struct {
	*answers
	Server      *httptest.Server
	URL         string // the base URL: Options.URL of the provider
	TokenURL    string
	Credentials []byte // the service-account JSON
	Email       string // the service account's client_email

	key  *rsa.PrivateKey
	msgs recorder[FCMMessage]

	mu       sync.Mutex
	issued   map[string]bool // live access tokens
	grants   int
	tokenAns Answer
}

// NewFCM starts a fake FCM server, closed when the test ends.
func NewFCM(t testing.TB) *FCM {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{
		answers: newAnswers(t),
		Email:   "push@" + FCMProject + ".iam.gserviceaccount.com",
		key:     key,
		issued:  map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", f.token)
	mux.HandleFunc("/v1/", f.send)
	f.Server = httptest.NewUnstartedServer(mux)
	f.Server.EnableHTTP2 = true
	f.Server.StartTLS()
	t.Cleanup(f.Server.Close)
	f.URL = f.Server.URL
	f.TokenURL = f.Server.URL + "/token"
	f.Credentials, err = json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     FCMProject,
		"private_key_id": "fcmkey1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   f.Email,
		"client_id":      "100000000000000000001",
		"token_uri":      f.TokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Client returns an HTTP/2 client that trusts the fake's certificate.
func (f *FCM) Client() *http.Client { return f.Server.Client() }

// RootCAs returns a pool with the fake's certificate.
func (f *FCM) RootCAs() *x509.CertPool { return certPool(f.Server) }

// CAFile writes the fake's certificate (PEM) into dir and returns its
// path: for an imqttd run as a process, SSL_CERT_FILE=path makes it
// trusted.
func (f *FCM) CAFile(dir string) string { return caFile(f.t, f.Server, dir, "fcm-ca.pem") }

// Messages returns the accepted messages, in order.
func (f *FCM) Messages() []FCMMessage { return f.msgs.all() }

// Grants is how many access tokens the token endpoint issued.
func (f *FCM) Grants() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grants
}

// RevokeAccessTokens makes every access token issued so far answer 401
// UNAUTHENTICATED, as an expired or revoked one does.
func (f *FCM) RevokeAccessTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.issued)
}

// SetTokenAnswer sets how the token endpoint answers a valid grant (OK:
// issue a token).
func (f *FCM) SetTokenAnswer(ans Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenAns = ans
}

func (f *FCM) token(w http.ResponseWriter, r *http.Request) {
	f.count()
	oauthErr := func(status int, code, desc string, violation bool) {
		if violation {
			f.violation("token endpoint: %d %s: %s", status, code, desc)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		oauthErr(http.StatusMethodNotAllowed, "invalid_request", "POST only", true)
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "bad form", true)
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "want the JWT bearer grant", true)
		return
	}
	var claims struct {
		jwt.RegisteredClaims
		Scope string `json:"scope"`
	}
	tok, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), &claims, func(*jwt.Token) (any, error) {
		return &f.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(f.Email), jwt.WithAudience(f.TokenURL),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	switch {
	case err != nil || !tok.Valid:
		oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.", true)
		return
	case !strings.Contains(" "+claims.Scope+" ", " "+fcmScope+" "):
		oauthErr(http.StatusBadRequest, "invalid_scope", "firebase.messaging scope missing", true)
		return
	}
	f.mu.Lock()
	ans := f.tokenAns
	f.mu.Unlock()
	if !ans.wait(r.Context()) {
		return
	}
	if ans.status() != http.StatusOK {
		ans.setRetryAfter(w.Header())
		oauthErr(ans.status(), "temporarily_unavailable", ans.Reason, false)
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	access := "ya29.fake-" + hex.EncodeToString(b)
	f.mu.Lock()
	f.issued[access] = true
	f.grants++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600})
}

var fcmTTL = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,9})?s$`)

func (f *FCM) send(w http.ResponseWriter, r *http.Request) {
	f.count()
	fail := func(ans Answer, msg, field string, violation bool) {
		if violation {
			f.violation("%s: %d %s: %s", r.URL.Path, ans.status(), ans.Reason, msg)
		}
		ans.setRetryAfter(w.Header())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ans.status())
		json.NewEncoder(w).Encode(fcmError(ans, msg, field))
	}
	if r.ProtoMajor != 2 {
		// FCM speaks HTTP/1.1 too; imqtt's client should not need to.
		f.violation("%s: HTTP/%d.%d", r.URL.Path, r.ProtoMajor, r.ProtoMinor)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+FCMProject+"/messages:send" {
		fail(Answer{Status: http.StatusNotFound, Reason: "NOT_FOUND"}, "bad method or path", "", true)
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	authed := f.issued[bearer]
	f.mu.Unlock()
	if !authed {
		// A revoked or expired token is the client's to refresh.
		fail(Answer{Status: http.StatusUnauthorized, Reason: "UNAUTHENTICATED"},
			"Request had invalid authentication credentials.", "", bearer == "")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err != nil {
		return
	}
	var body struct {
		Message *FCMBody `json:"message"`
	}
	invalid := Answer{Status: http.StatusBadRequest, Reason: "INVALID_ARGUMENT"}
	switch {
	case json.Unmarshal(raw, &body) != nil || body.Message == nil:
		fail(invalid, "Invalid JSON payload received.", "message", true)
		return
	case body.Message.Token == "":
		fail(invalid, "Recipient of the message is not set.", "message.token", true)
		return
	case body.Message.Android.TTL != "" && !fcmTTL.MatchString(body.Message.Android.TTL):
		fail(invalid, "Invalid value at 'message.android.ttl'", "message.android.ttl", true)
		return
	}
	token := body.Message.Token
	ans := f.lookup(token)
	if !ans.wait(r.Context()) {
		return
	}
	if ans.status() != http.StatusOK {
		field := ""
		msg := http.StatusText(ans.status())
		if ans == FCMInvalidToken {
			field, msg = "message.token", "The registration token is not a valid FCM registration token"
		}
		fail(ans, msg, field, false)
		return
	}
	f.msgs.add(FCMMessage{Token: token, Raw: raw, Message: *body.Message})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"name": "projects/" + FCMProject + "/messages/" + time.Now().Format("150405.000000000"),
	})
}

// fcmError is the google.rpc.Status body FCM answers with: the FcmError
// errorCode in details, and a BadRequest field violation when a field is
// at fault.
func fcmError(ans Answer, msg, field string) map[string]any {
	status := map[int]string{
		400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
		429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
	}[ans.status()]
	code := ans.Reason
	if code == "" || code == "TooManyRequests" {
		code = map[int]string{429: "QUOTA_EXCEEDED", 503: "UNAVAILABLE", 500: "INTERNAL"}[ans.status()]
	}
	details := []any{map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}}
	if field != "" {
		details = append(details, map[string]any{
			"@type":           "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []any{map[string]string{"field": field, "description": msg}},
		})
	}
	return map[string]any{"error": map[string]any{
		"code": ans.status(), "message": msg, "status": status, "details": details,
	}}
}
