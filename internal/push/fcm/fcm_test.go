package fcm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/pushtest"
	"github.com/imqtt/imqtt/store"
)

type syncWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func newClient(t *testing.T, f *pushtest.FCM, mod func(*Options)) (*Client, *syncWriter) {
	t.Helper()
	logs := &syncWriter{}
	o := Options{
		Credentials: f.Credentials, URL: f.URL, RootCAs: f.RootCAs(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func note(token string) push.Notification {
	return push.Notification{
		Device: store.PushDevice{User: "bob", Device: "d1", Provider: "fcm", Token: token},
		Title:  "alice", Body: "alice sent you a message", Badge: 3,
		Conversation: "u:alice", MessageID: "42", Count: 2,
		CollapseID: "u:alice", Expires: time.Now().Add(time.Hour),
	}
}

// TestPush: the message FCM gets, and one access token for many pushes.
func TestPush(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, _ := newClient(t, f, nil)
	for range 3 {
		if err := c.Push(context.Background(), note("tok-1")); err != nil {
			t.Fatal(err)
		}
	}
	msgs := f.Messages()
	if len(msgs) != 3 || f.Grants() != 1 {
		t.Fatalf("%d messages, %d access tokens; want 3 and 1", len(msgs), f.Grants())
	}
	m := msgs[0].Message
	ttl := m.Android.TTL
	if m.Token != "tok-1" || m.Notification.Title != "alice" || m.Notification.Body != "alice sent you a message" ||
		m.Android.CollapseKey != "u:alice" || (ttl != "3600s" && ttl != "3599s") ||
		m.Android.Notification.NotificationCount == nil || *m.Android.Notification.NotificationCount != 3 ||
		m.APNs.Payload.Aps.Badge == nil || *m.APNs.Payload.Aps.Badge != 3 ||
		m.Data["conversation"] != "u:alice" || m.Data["message_id"] != "42" || m.Data["count"] != "2" {
		t.Fatalf("message %s", msgs[0].Raw)
	}
}

func checkResult(t *testing.T, err error, ok, invalid, retry bool, after time.Duration) {
	t.Helper()
	var re *push.RetryError
	switch {
	case ok:
		if err != nil {
			t.Fatalf("want nil, got %v", err)
		}
	case invalid:
		if !errors.Is(err, push.ErrInvalidToken) || errors.As(err, &re) {
			t.Fatalf("want ErrInvalidToken, got %v", err)
		}
	case retry:
		if !errors.As(err, &re) || re.After != after {
			t.Fatalf("want a retry after %v, got %v", after, err)
		}
	default:
		if err == nil || errors.Is(err, push.ErrInvalidToken) || errors.As(err, &re) {
			t.Fatalf("want a plain error, got %v", err)
		}
	}
}

// TestAnswers: each FCM answer maps to push.Pusher's result, and no error
// names the token.
func TestAnswers(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, logs := newClient(t, f, func(o *Options) { o.Timeout = 500 * time.Millisecond })
	const (
		ok = iota
		invalid
		retry
		plain
	)
	cases := []struct {
		name  string
		ans   pushtest.Answer
		want  int
		after time.Duration
	}{
		{"200", pushtest.OK, ok, 0},
		{"404 UNREGISTERED", pushtest.FCMUnregistered, invalid, 0},
		{"400 INVALID_ARGUMENT on the token", pushtest.FCMInvalidToken, invalid, 0},
		{"400 INVALID_ARGUMENT elsewhere", pushtest.Answer{Status: 400, Reason: "INVALID_ARGUMENT", Delay: time.Nanosecond}, plain, 0},
		{"403 SENDER_ID_MISMATCH", pushtest.FCMSenderMismatch, plain, 0},
		{"503", pushtest.FCMUnavailable, retry, 0},
		{"500", pushtest.FCMInternal, retry, 0},
		{"429 Retry-After", pushtest.TooManyRequests(30 * time.Second), retry, 30 * time.Second},
		{"slow", pushtest.Delay(3 * time.Second), retry, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := "fcm-token-" + string(rune('a'+i))
			f.SetAnswer(tok, tc.ans)
			err := c.Push(context.Background(), note(tok))
			checkResult(t, err, tc.want == ok, tc.want == invalid, tc.want == retry, tc.after)
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Fatalf("error names the token: %v", err)
			}
		})
	}
	checkNoSecrets(t, logs.String(), f)
}

func checkNoSecrets(t *testing.T, logs string, f *pushtest.FCM) {
	t.Helper()
	if strings.Contains(logs, "fcm-token-") || strings.Contains(logs, "ya29.") || strings.Contains(logs, "PRIVATE KEY") {
		t.Fatalf("a token or key is in the log: %s", logs)
	}
}

// TestUnauthorized: a 401 (the access token revoked or expired early)
// gets a new access token and asks for a retry.
func TestUnauthorized(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, logs := newClient(t, f, nil)
	if err := c.Push(context.Background(), note("t1")); err != nil {
		t.Fatal(err)
	}
	f.RevokeAccessTokens()
	checkResult(t, c.Push(context.Background(), note("t1")), false, false, true, 0)
	if err := c.Push(context.Background(), note("t1")); err != nil {
		t.Fatal(err)
	}
	if n := f.Grants(); n != 2 {
		t.Fatalf("%d access tokens, want 2", n)
	}
	checkNoSecrets(t, logs.String(), f)
}

// TestTokenEndpoint: the token endpoint down is a retry; refusing our
// grant is not.
func TestTokenEndpoint(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, _ := newClient(t, f, nil)
	f.SetTokenAnswer(pushtest.FCMUnavailable)
	checkResult(t, c.Push(context.Background(), note("t1")), false, false, true, 0)
	f.SetTokenAnswer(pushtest.OK)
	if err := c.Push(context.Background(), note("t1")); err != nil {
		t.Fatal(err)
	}

	// A key the token endpoint does not know: invalid_grant.
	f2 := pushtest.NewFCM(t)
	f2.AllowViolations()
	var creds map[string]string
	json.Unmarshal(f2.Credentials, &creds)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	creds["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	other, _ := json.Marshal(creds)
	c2, _ := newClient(t, f2, func(o *Options) { o.Credentials, o.RootCAs = other, f2.RootCAs() })
	err := c2.Push(context.Background(), note("t1"))
	checkResult(t, err, false, false, false, 0)
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("the key is in the error: %v", err)
	}
}

// TestTokenURL: Options.TokenURL replaces the credentials' token_uri.
func TestTokenURL(t *testing.T) {
	f := pushtest.NewFCM(t)
	var creds map[string]string
	json.Unmarshal(f.Credentials, &creds)
	creds["token_uri"] = "https://oauth2.invalid/token"
	moved, _ := json.Marshal(creds)
	c, _ := newClient(t, f, func(o *Options) { o.Credentials, o.TokenURL = moved, f.TokenURL })
	if err := c.Push(context.Background(), note("t1")); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionRefused: FCM not answering is a retry.
func TestConnectionRefused(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, _ := newClient(t, f, nil)
	f.Server.Close()
	err := c.Push(context.Background(), note("fcm-token-x"))
	checkResult(t, err, false, false, true, 0)
	if strings.Contains(err.Error(), "fcm-token-x") {
		t.Fatalf("error names the token: %v", err)
	}
}

// TestConcurrent: many pushes at once share one access token (-race).
func TestConcurrent(t *testing.T) {
	f := pushtest.NewFCM(t)
	c, _ := newClient(t, f, nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := c.Push(context.Background(), note("tok-"+string(rune('A'+i)))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, g := len(f.Messages()), f.Grants(); n != 50 || g != 1 {
		t.Fatalf("%d messages, %d access tokens", n, g)
	}
}

func TestNewErrors(t *testing.T) {
	f := pushtest.NewFCM(t)
	var creds map[string]string
	json.Unmarshal(f.Credentials, &creds)
	with := func(k, v string) []byte {
		c := map[string]string{}
		for k2, v2 := range creds {
			c[k2] = v2
		}
		c[k] = v
		b, _ := json.Marshal(c)
		return b
	}
	for name, o := range map[string]Options{
		"none":          {},
		"missing file":  {CredentialsFile: t.TempDir() + "/none.json"},
		"not json":      {Credentials: []byte("-----BEGIN PRIVATE KEY-----")},
		"not a service": {Credentials: with("type", "authorized_user")},
		"no project":    {Credentials: with("project_id", "")},
		"bad key":       {Credentials: with("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		"bad url":       {Credentials: f.Credentials, URL: "fcm.googleapis.com"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: the key is in the error: %v", name, err)
		}
	}
	file := t.TempDir() + "/sa.json"
	os.WriteFile(file, f.Credentials, 0o600)
	if _, err := New(Options{CredentialsFile: file}); err != nil {
		t.Fatal(err)
	}
}
