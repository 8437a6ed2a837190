package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/pushtest"
	"github.com/imqtt/imqtt/store"
)

func newClient(t *testing.T, url, secret string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(Options{URL: url, Secret: []byte(secret), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func note(token string) push.Notification {
	return push.Notification{
		Device: store.PushDevice{User: "bob", Device: "d1", Provider: "webhook", Token: token},
		Title:  "alice", Body: "alice sent you a message", Badge: 3,
		Conversation: "u:alice", MessageID: "42", Count: 2, CollapseID: "u:alice",
	}
}

// TestPush: the body of SPEC §13 and the signed headers of §14 (the fake
// verifies the signature and fails the test otherwise).
func TestPush(t *testing.T) {
	h := pushtest.NewWebhook(t, "s3cret")
	c := newClient(t, h.URL, "s3cret", 0)
	if err := c.Push(context.Background(), note("tok-1")); err != nil {
		t.Fatal(err)
	}
	got := h.Pushes()
	if len(got) != 1 {
		t.Fatalf("%d pushes", len(got))
	}
	p := got[0]
	if p.User != "bob" || p.Device != "d1" || p.Token != "tok-1" || p.Badge != 3 || p.Title != "alice" ||
		p.Body != "alice sent you a message" || p.Conversation != "u:alice" || p.MessageID != "42" {
		t.Fatalf("body %s", p.Raw)
	}
	if p.Header.Get("X-Imqtt-Event") != "push" || p.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", p.Header)
	}
}

// TestWrongSecret: a receiver that cannot verify the signature refuses
// the push (401): a plain error.
func TestWrongSecret(t *testing.T) {
	h := pushtest.NewWebhook(t, "s3cret")
	h.AllowViolations()
	c := newClient(t, h.URL, "other", 0)
	checkResult(t, c.Push(context.Background(), note("tok-1")), false, false, false, 0)
	if len(h.Pushes()) != 0 || len(h.Violations()) != 1 {
		t.Fatalf("%d accepted, violations %v", len(h.Pushes()), h.Violations())
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

// TestAnswers: each answer maps to push.Pusher's result; no error names
// the token.
func TestAnswers(t *testing.T) {
	h := pushtest.NewWebhook(t, "s3cret")
	c := newClient(t, h.URL, "s3cret", 300*time.Millisecond)
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
		{"204", pushtest.Answer{Status: 204}, ok, 0},
		{"410", pushtest.WebhookGone, invalid, 0},
		{"429 Retry-After", pushtest.TooManyRequests(5 * time.Second), retry, 5 * time.Second},
		{"503", pushtest.Unavailable, retry, 0},
		{"500", pushtest.Answer{Status: 500}, retry, 0},
		{"slow", pushtest.Delay(2 * time.Second), retry, 0},
		{"400", pushtest.Answer{Status: 400}, plain, 0},
		{"404", pushtest.Answer{Status: 404}, plain, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := "wh-token-" + string(rune('a'+i))
			h.SetAnswer(tok, tc.ans)
			err := c.Push(context.Background(), note(tok))
			checkResult(t, err, tc.want == ok, tc.want == invalid, tc.want == retry, tc.after)
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Fatalf("error names the token: %v", err)
			}
		})
	}
}

// TestRedirect: a redirect is not followed (it would move a signed push
// elsewhere): a plain error.
func TestRedirect(t *testing.T) {
	h := pushtest.NewWebhook(t, "s3cret")
	srv := httptest.NewServer(http.RedirectHandler(h.URL, http.StatusTemporaryRedirect))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, "s3cret", 0)
	checkResult(t, c.Push(context.Background(), note("t")), false, false, false, 0)
	if h.Requests() != 0 {
		t.Fatal("the redirect was followed")
	}
}

// TestConnectionRefused: nobody listening is a retry, and the error does
// not quote the URL (it may hold a credential).
func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, "http://"+addr+"/push?key=hunter2", "s3cret", 0)
	err = c.Push(context.Background(), note("t"))
	checkResult(t, err, false, false, true, 0)
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error quotes the URL: %v", err)
	}
}

// TestConcurrent: many pushes at once (-race).
func TestConcurrent(t *testing.T) {
	h := pushtest.NewWebhook(t, "s3cret")
	c := newClient(t, h.URL, "s3cret", 0)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := c.Push(context.Background(), note("t")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(h.Pushes()); n != 50 {
		t.Fatalf("%d pushes", n)
	}
}

func TestNewErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"no url":    {Secret: []byte("s")},
		"not http":  {URL: "ftp://example.com/", Secret: []byte("s")},
		"no host":   {URL: "http:///push", Secret: []byte("s")},
		"no secret": {URL: "http://example.com/push"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
