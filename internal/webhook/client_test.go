package webhook_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/signature"
	"github.com/imqtt/imqtt/internal/webhook"
)

// TestPost: the request is signed over its body (the receiver's check,
// with a replay window, passes), names its event, and the answer comes
// back bounded.
func TestPost(t *testing.T) {
	secret := []byte("s3cret")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signature.Verify(secret, r.Header.Get(signature.HeaderSignature), r.Header.Get(signature.HeaderTimestamp), body, 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.Header().Set("Retry-After", "7")
		_, _ = io.WriteString(w, r.Header.Get(webhook.HeaderEvent)+":"+string(body))
	}))
	defer srv.Close()

	c, err := webhook.New(webhook.Options{URL: srv.URL, Secret: secret, MaxAnswer: 24})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Post(t.Context(), webhook.AfterSend, []byte(`{"id":"evt-1"}`))
	if err != nil || !a.OK() || string(a.Body) != `message.after_send:{"id"` || !a.Truncated || a.RetryAfter != "7" {
		t.Fatalf("answer %+v (%q), err %v", a, a.Body, err)
	}
	c, _ = webhook.New(webhook.Options{URL: srv.URL, Secret: []byte("wrong")})
	if a, err := c.Post(t.Context(), webhook.AfterSend, []byte(`{}`)); err != nil || a.Status != http.StatusUnauthorized {
		t.Fatalf("a wrong secret: %+v %v", a, err)
	}
}

// TestPostFailures: no answer is an error that does not carry the URL
// (it may hold a credential); a redirect is the answer, not followed;
// the timeout bounds a slow endpoint.
func TestPostFailures(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		<-r.Context().Done()
	}))
	defer slow.Close()

	c, _ := webhook.New(webhook.Options{URL: slow.URL + "/redirect", Secret: []byte("k")})
	if a, err := c.Post(t.Context(), "x", nil); err != nil || a.Status != http.StatusFound {
		t.Fatalf("redirect: %+v %v", a, err)
	}
	u := strings.Replace(slow.URL, "http://", "http://user:pw@", 1) + "/slow"
	c, _ = webhook.New(webhook.Options{URL: u, Secret: []byte("k"), Timeout: 50 * time.Millisecond})
	_, err := c.Post(context.Background(), "x", nil)
	if err == nil || strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "/slow") {
		t.Fatalf("a slow endpoint: %v", err)
	}
	if _, err := webhook.New(webhook.Options{URL: "ftp://x", Secret: []byte("k")}); err == nil {
		t.Error("an ftp URL was taken")
	}
	if _, err := webhook.New(webhook.Options{URL: "http://x"}); err == nil {
		t.Error("no secret was taken")
	}
}

func TestParseEvents(t *testing.T) {
	all, err := webhook.ParseEvents("")
	if err != nil || len(all) != len(webhook.Events) {
		t.Fatalf("empty: %v %v", all, err)
	}
	got, err := webhook.ParseEvents(" message.after_send , user.online")
	if err != nil || len(got) != 2 || !got[webhook.AfterSend] || !got[webhook.UserOnline] {
		t.Fatalf("two: %v %v", got, err)
	}
	if _, err := webhook.ParseEvents("message.sent"); err == nil {
		t.Error("an unknown event was taken")
	}
}
