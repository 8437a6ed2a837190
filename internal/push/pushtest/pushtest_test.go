package pushtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imqtt/imqtt/internal/signature"
)

// The fakes are checked with hand-made requests here; the providers'
// tests check them against the fakes.

func apnsJWT(t *testing.T, a *APNs, keyPEM []byte, kid string, iat time.Time) string {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": a.TeamID, "iat": iat.Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apnsPost(t *testing.T, c *http.Client, a *APNs, token, auth string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", a.URL+"/3/device/"+token, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("authorization", "bearer "+auth)
	}
	req.Header.Set("apns-topic", APNsTopic)
	req.Header.Set("apns-push-type", "alert")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Reason string }
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r.Reason
}

func TestAPNsFake(t *testing.T) {
	a := NewAPNs(t)
	a.AllowViolations()
	c := a.Client()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(other)
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	good := apnsJWT(t, a, a.KeyPEM, a.KeyID, time.Now())
	tok := APNsToken(1)
	payload := `{"aps":{"alert":{"title":"a","body":"b"},"badge":3}}`
	a.SetAnswer(APNsToken(2), APNsUnregistered)
	a.SetAnswer(APNsToken(3), TooManyRequests(7*time.Second))
	cases := []struct {
		name, token, auth string
		hdr               map[string]string
		body              string
		status            int
		reason            string
	}{
		{"ok", tok, good, nil, payload, 200, ""},
		{"no jwt", tok, "", nil, payload, 403, "MissingProviderToken"},
		{"other key", tok, apnsJWT(t, a, otherPEM, a.KeyID, time.Now()), nil, payload, 403, "InvalidProviderToken"},
		{"other kid", tok, apnsJWT(t, a, a.KeyPEM, "OTHER", time.Now()), nil, payload, 403, "InvalidProviderToken"},
		{"old jwt", tok, apnsJWT(t, a, a.KeyPEM, a.KeyID, time.Now().Add(-61*time.Minute)), nil, payload, 403, "ExpiredProviderToken"},
		{"topic", tok, good, map[string]string{"apns-topic": "com.other"}, payload, 400, "TopicDisallowed"},
		{"push type", tok, good, map[string]string{"apns-push-type": "voip"}, payload, 400, "InvalidPushType"},
		{"background priority", tok, good, map[string]string{"apns-push-type": "background"}, payload, 400, "BadPriority"},
		{"background alert", tok, good, map[string]string{"apns-push-type": "background", "apns-priority": "5"}, payload, 400, "BadPayload"},
		{"collapse id", tok, good, map[string]string{"apns-collapse-id": strings.Repeat("x", 65)}, payload, 400, "BadCollapseId"},
		{"expiration", tok, good, map[string]string{"apns-expiration": "soon"}, payload, 400, "BadExpirationDate"},
		{"apns-id", tok, good, map[string]string{"apns-id": "nope"}, payload, 400, "BadMessageId"},
		{"no aps", tok, good, nil, `{"x":1}`, 400, "BadPayload"},
		{"empty", tok, good, nil, ``, 400, "PayloadEmpty"},
		{"too large", tok, good, nil, `{"aps":{},"x":"` + strings.Repeat("x", 4096) + `"}`, 413, "PayloadTooLarge"},
		{"not hex", "not-a-token", good, nil, payload, 400, "BadDeviceToken"},
		{"unregistered", APNsToken(2), good, nil, payload, 410, "Unregistered"},
		{"429", APNsToken(3), good, nil, payload, 429, "TooManyRequests"},
	}
	for _, c2 := range cases {
		status, reason := apnsPost(t, c, a, c2.token, c2.auth, c2.hdr, c2.body)
		if status != c2.status || reason != c2.reason {
			t.Errorf("%s: %d %q, want %d %q", c2.name, status, reason, c2.status, c2.reason)
		}
	}
	if n := a.Notifications(); len(n) != 1 || n[0].Token != tok || *n[0].Payload.Aps.Badge != 3 {
		t.Fatalf("recorded %+v", n)
	}
	// HTTP/1.1 is refused.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: c.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	h1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	if status, _ := apnsPost(t, h1, a, tok, good, nil, payload); status != 400 {
		t.Fatalf("HTTP/1.1: %d", status)
	}
	if len(a.Violations()) == 0 {
		t.Fatal("no violations recorded")
	}
}

func TestFCMFake(t *testing.T) {
	f := NewFCM(t)
	f.AllowViolations()
	c := f.Client()
	var creds struct {
		PrivateKey string `json:"private_key"`
		TokenURI   string `json:"token_uri"`
	}
	json.Unmarshal(f.Credentials, &creds)
	block, _ := pem.Decode([]byte(creds.PrivateKey))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	grant := func(scope string) (int, string) {
		now := time.Now()
		s, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": f.Email, "aud": creds.TokenURI, "scope": scope, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}).SignedString(key)
		resp, err := c.PostForm(creds.TokenURI, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {s}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r.AccessToken
	}
	if status, _ := grant("openid"); status != 400 {
		t.Fatalf("grant without the scope: %d", status)
	}
	status, access := grant(fcmScope)
	if status != 200 || access == "" {
		t.Fatalf("grant: %d", status)
	}
	send := func(bearer, body string) int {
		req, _ := http.NewRequest("POST", f.URL+"/v1/projects/"+FCMProject+"/messages:send", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	f.SetAnswer("gone", FCMUnregistered)
	for _, c := range []struct {
		bearer, body string
		want         int
	}{
		{access, `{"message":{"token":"t1","data":{"count":"2"},"android":{"ttl":"60s"}}}`, 200},
		{"forged", `{"message":{"token":"t1"}}`, 401},
		{access, `{"message":{"token":"t1","data":{"count":2}}}`, 400},
		{access, `{"message":{"token":"t1","android":{"ttl":"60"}}}`, 400},
		{access, `{"message":{}}`, 400},
		{access, `{"message":{"token":"gone"}}`, 404},
	} {
		if got := send(c.bearer, c.body); got != c.want {
			t.Errorf("%s: %d, want %d", c.body, got, c.want)
		}
	}
	f.RevokeAccessTokens()
	if got := send(access, `{"message":{"token":"t1"}}`); got != 401 {
		t.Errorf("revoked token: %d", got)
	}
	if m := f.Messages(); len(m) != 1 || m[0].Message.Data["count"] != "2" {
		t.Fatalf("recorded %+v", m)
	}
}

func TestWebhookFake(t *testing.T) {
	h := NewWebhook(t, "s3cret")
	h.AllowViolations()
	h.SetAnswer("gone", WebhookGone)
	post := func(secret string, body string) int {
		ts := time.Now().Unix()
		req, _ := http.NewRequest("POST", h.URL, bytes.NewReader([]byte(body)))
		req.Header.Set("X-Imqtt-Event", "push")
		req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(signature.HeaderSignature, signature.Sign([]byte(secret), ts, []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ok := `{"user":"bob","device":"d1","token":"t","badge":2,"message_id":"9"}`
	if got := post("s3cret", ok); got != 200 {
		t.Fatalf("good: %d", got)
	}
	if got := post("wrong", ok); got != 401 {
		t.Fatalf("bad signature: %d", got)
	}
	if got := post("s3cret", `{"user":"bob","device":"d1","token":"gone","message_id":"9"}`); got != 410 {
		t.Fatalf("gone: %d", got)
	}
	if p := h.Pushes(); len(p) != 1 || p[0].Badge != 2 || p[0].User != "bob" {
		t.Fatalf("recorded %+v", p)
	}
}

// TestCAFile: the written certificate is the fake's.
func TestCAFile(t *testing.T) {
	a := NewAPNs(t)
	raw, err := os.ReadFile(a.CAFile(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) || !pool.Equal(a.RootCAs()) {
		t.Fatal("CAFile is not the fake's certificate")
	}
}
