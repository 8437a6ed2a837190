package apns

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/pushtest"
	"github.com/imqtt/imqtt/store"
)

// clock is a settable clock for the provider token's age.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClient(t *testing.T, a *pushtest.APNs, mod func(*Options)) (*Client, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	o := Options{
		Key: a.KeyPEM, KeyID: a.KeyID, TeamID: a.TeamID, Topic: pushtest.APNsTopic,
		URL: a.URL, RootCAs: a.RootCAs(),
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, &logs
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func note(token string) push.Notification {
	return push.Notification{
		Device: store.PushDevice{User: "bob", Device: "d1", Provider: "apns", Token: token},
		Title:  "alice", Body: "alice sent you a message", Badge: 3,
		Conversation: "u:alice", MessageID: "42", Count: 2,
		CollapseID: "u:alice", Expires: time.Unix(1765069200, 0),
	}
}

// TestPush: a notification reaches APNs over HTTP/2 with the headers and
// payload Apple documents (the fake refuses anything else).
func TestPush(t *testing.T) {
	a := pushtest.NewAPNs(t)
	c, _ := newClient(t, a, nil)
	tok := pushtest.APNsToken(1)
	if err := c.Push(context.Background(), note(tok)); err != nil {
		t.Fatal(err)
	}
	got := a.Notifications()
	if len(got) != 1 {
		t.Fatalf("%d notifications", len(got))
	}
	n := got[0]
	for k, want := range map[string]string{
		"apns-topic": pushtest.APNsTopic, "apns-push-type": "alert", "apns-priority": "10",
		"apns-expiration": "1765069200", "apns-collapse-id": "u:alice",
	} {
		if v := n.Header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	p := n.Payload
	if n.Token != tok || p.Aps.Alert.Title != "alice" || p.Aps.Alert.Body != "alice sent you a message" ||
		p.Aps.Badge == nil || *p.Aps.Badge != 3 || p.Aps.Sound != "default" || p.Aps.ThreadID != "u:alice" ||
		p.Conversation != "u:alice" || p.MessageID != "42" || p.Count != 2 {
		t.Fatalf("payload %s", n.Raw)
	}

	// A device's own topic; a badge of 0 is sent (it clears the icon).
	a.AddTopic("com.example.other")
	n2 := note(tok)
	n2.Device.Topic, n2.Badge = "com.example.other", 0
	if err := c.Push(context.Background(), n2); err != nil {
		t.Fatal(err)
	}
	last := a.Notifications()[1]
	if last.Header.Get("apns-topic") != "com.example.other" || last.Payload.Aps.Badge == nil || *last.Payload.Aps.Badge != 0 {
		t.Fatalf("topic %q, payload %s", last.Header.Get("apns-topic"), last.Raw)
	}
}

// TestPushLimits: a collapse ID over 64 bytes and a body over 4 KiB are
// made to fit, not refused.
func TestPushLimits(t *testing.T) {
	a := pushtest.NewAPNs(t)
	c, _ := newClient(t, a, nil)
	n := note(pushtest.APNsToken(1))
	n.CollapseID = strings.Repeat("g", 100)
	n.Body = strings.Repeat("é\"", 3000)
	if err := c.Push(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := a.Notifications()[0]
	if id := got.Header.Get("apns-collapse-id"); len(id) != 64 {
		t.Fatalf("collapse id %q", id)
	}
	if len(got.Raw) > 4096 || !strings.HasSuffix(got.Payload.Aps.Alert.Body, "…") {
		t.Fatalf("payload of %d bytes, body ends %q", len(got.Raw), got.Payload.Aps.Alert.Body[len(got.Payload.Aps.Alert.Body)-8:])
	}
}

// TestAnswers: each APNs answer maps to push.Pusher's result, and no
// error names the token.
func TestAnswers(t *testing.T) {
	a := pushtest.NewAPNs(t)
	c, logs := newClient(t, a, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	type want int
	const (
		ok want = iota
		invalid
		retry
		plain
	)
	cases := []struct {
		name  string
		ans   pushtest.Answer
		want  want
		after time.Duration
	}{
		{"200", pushtest.OK, ok, 0},
		{"410 Unregistered", pushtest.APNsUnregistered, invalid, 0},
		{"400 BadDeviceToken", pushtest.APNsBadDeviceToken, invalid, 0},
		{"400 DeviceTokenNotForTopic", pushtest.Answer{Status: 400, Reason: "DeviceTokenNotForTopic"}, invalid, 0},
		{"429 Retry-After", pushtest.TooManyRequests(7 * time.Second), retry, 7 * time.Second},
		{"503", pushtest.Unavailable, retry, 0},
		{"500", pushtest.Answer{Status: 500, Reason: "InternalServerError"}, retry, 0},
		{"slow", pushtest.Delay(2 * time.Second), retry, 0},
		{"403 InvalidProviderToken", pushtest.Answer{Status: 403, Reason: "InvalidProviderToken"}, plain, 0},
		{"413 PayloadTooLarge", pushtest.Answer{Status: 413, Reason: "PayloadTooLarge"}, plain, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := pushtest.APNsToken(100 + i)
			a.SetAnswer(tok, tc.ans)
			err := c.Push(context.Background(), note(tok))
			checkResult(t, err, tc.want == ok, tc.want == invalid, tc.want == retry, tc.after)
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Fatalf("error names the token: %v", err)
			}
			if tc.want == plain && !strings.Contains(err.Error(), tc.ans.Reason) {
				t.Fatalf("error without the reason: %v", err)
			}
		})
	}
	// A token APNs cannot read (not hex) is invalid too.
	if err := c.Push(context.Background(), note("not-hex")); !errors.Is(err, push.ErrInvalidToken) {
		t.Fatalf("non-hex token: %v", err)
	}
	checkNoSecrets(t, logs.String(), a)
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

func checkNoSecrets(t *testing.T, logs string, a *pushtest.APNs) {
	t.Helper()
	for _, s := range a.ProviderTokens() {
		if strings.Contains(logs, s) {
			t.Fatal("a provider token is in the log")
		}
	}
	if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, pushtest.APNsToken(100)) {
		t.Fatalf("a key or device token is in the log: %s", logs)
	}
}

// TestConnectionRefused: a host that does not answer is a retry whose
// error does not name the token (url.Error would).
func TestConnectionRefused(t *testing.T) {
	a := pushtest.NewAPNs(t)
	c, _ := newClient(t, a, nil)
	a.Server.Close()
	tok := pushtest.APNsToken(1)
	err := c.Push(context.Background(), note(tok))
	checkResult(t, err, false, false, true, 0)
	if strings.Contains(err.Error(), tok) {
		t.Fatalf("error names the token: %v", err)
	}
}

// TestHosts: without URL, a device goes to production, a sandbox one to
// the sandbox host.
func TestHosts(t *testing.T) {
	a := pushtest.NewAPNs(t)
	var mu sync.Mutex
	var hosts []string
	rt := roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		hosts = append(hosts, r.URL.Host)
		return nil, errors.New("offline")
	})
	c, _ := newClient(t, a, func(o *Options) { o.URL, o.HTTPClient = "", &http.Client{Transport: rt} })
	n := note(pushtest.APNsToken(1))
	c.Push(context.Background(), n)
	n.Device.Sandbox = true
	c.Push(context.Background(), n)
	if len(hosts) != 2 || hosts[0] != "api.push.apple.com" || hosts[1] != "api.sandbox.push.apple.com" {
		t.Fatalf("hosts %v", hosts)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestProviderTokenRenewal: the JWT is reused for 50 minutes, then
// renewed once however many pushes race for it.
func TestProviderTokenRenewal(t *testing.T) {
	a := pushtest.NewAPNs(t)
	clk := &clock{now: time.Now()}
	a.SetClock(clk.Now)
	c, _ := newClient(t, a, func(o *Options) { o.Now = clk.Now })
	tok := pushtest.APNsToken(1)
	pushN := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if err := c.Push(context.Background(), note(tok)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	pushN(10)
	clk.Add(49 * time.Minute)
	pushN(10)
	if n := len(a.ProviderTokens()); n != 1 {
		t.Fatalf("%d provider tokens within 49 minutes, want 1", n)
	}
	clk.Add(2 * time.Minute)
	pushN(20)
	if n := len(a.ProviderTokens()); n != 2 {
		t.Fatalf("%d provider tokens after 51 minutes, want 2", n)
	}
	if n := len(a.Notifications()); n != 40 {
		t.Fatalf("%d notifications", n)
	}
}

// TestExpiredProviderToken: APNs' 403 ExpiredProviderToken (its clock and
// ours disagree) renews the JWT and asks for a retry.
func TestExpiredProviderToken(t *testing.T) {
	a := pushtest.NewAPNs(t)
	clk := &clock{now: time.Now().Add(-61 * time.Minute)} // ours is behind APNs'
	c, _ := newClient(t, a, func(o *Options) { o.Now = clk.Now })
	tok := pushtest.APNsToken(1)
	err := c.Push(context.Background(), note(tok))
	checkResult(t, err, false, false, true, 0)
	a.SetClock(clk.Now) // now APNs would take the old JWT: only a renewal shows
	if err := c.Push(context.Background(), note(tok)); err != nil {
		t.Fatal(err)
	}
	if n := len(a.ProviderTokens()); n != 2 {
		t.Fatalf("%d provider tokens, want 2 (renewed after the 403)", n)
	}
}

// TestConcurrent: many pushes at once on one client (run with -race).
func TestConcurrent(t *testing.T) {
	a := pushtest.NewAPNs(t)
	c, _ := newClient(t, a, nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := c.Push(context.Background(), note(pushtest.APNsToken(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(a.Notifications()); n != 50 {
		t.Fatalf("%d notifications", n)
	}
}

// TestContextCancelled: a push cut short by its context is a retry.
func TestContextCancelled(t *testing.T) {
	a := pushtest.NewAPNs(t)
	c, _ := newClient(t, a, nil)
	tok := pushtest.APNsToken(1)
	a.SetAnswer(tok, pushtest.Delay(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for a.Requests() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := c.Push(ctx, note(tok))
	checkResult(t, err, false, false, true, 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled inside, got %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	a := pushtest.NewAPNs(t)
	good := Options{Key: a.KeyPEM, KeyID: a.KeyID, TeamID: a.TeamID, Topic: "t"}
	for name, mod := range map[string]func(*Options){
		"no key":       func(o *Options) { o.Key = nil },
		"missing file": func(o *Options) { o.Key, o.KeyFile = nil, t.TempDir()+"/none.p8" },
		"not a key":    func(o *Options) { o.Key = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") },
		"no key id":    func(o *Options) { o.KeyID = "" },
		"no team":      func(o *Options) { o.TeamID = "" },
		"no topic":     func(o *Options) { o.Topic = "" },
		"bad url":      func(o *Options) { o.URL = "api.push.apple.com" },
	} {
		o := good
		mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "AAAA") || strings.Contains(err.Error(), string(a.KeyPEM)) {
			t.Errorf("%s: the key is in the error: %v", name, err)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	file := t.TempDir() + "/key.p8"
	if err := os.WriteFile(file, a.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	good.Key, good.KeyFile = nil, file
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
}
