package pushtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/signature"
)

// WebhookGone answers a webhook push with 410: the token is invalid.
var WebhookGone = Answer{Status: http.StatusGone}

// WebhookPush is a push the webhook fake accepted (SPEC §13's body).
type WebhookPush struct {
	User         string   `json:"user"`
	Device       string   `json:"device"`
	Token        string   `json:"token"`
	Badge        int64    `json:"badge"`
	Title        string   `json:"title"`
	Body         string   `json:"body"`
	Conversation string   `json:"conversation"`
	MessageID    string   `json:"message_id"`
	Recalled     []string `json:"recalled"`
	Silent       bool     `json:"silent"`

	Header http.Header `json:"-"`
	Raw    []byte      `json:"-"`
}

// Webhook is a fake push webhook receiver (plain HTTP): it checks the
// X-Imqtt-Event, X-Imqtt-Timestamp and X-Imqtt-Signature headers (SPEC
// §14) against its secret, with five minutes' leeway, and the JSON body.
type Webhook struct {
	*answers
	Server *httptest.Server
	URL    string // where to POST: Options.URL of the provider

	secret []byte
	pushes recorder[WebhookPush]
}

// NewWebhook starts a fake webhook receiver with secret, closed when the
// test ends.
func NewWebhook(t testing.TB, secret string) *Webhook {
	h := &Webhook{answers: newAnswers(t), secret: []byte(secret)}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	h.URL = h.Server.URL + "/push"
	t.Cleanup(h.Server.Close)
	return h
}

// Pushes returns the accepted pushes, in order.
func (h *Webhook) Pushes() []WebhookPush { return h.pushes.all() }

func (h *Webhook) serve(w http.ResponseWriter, r *http.Request) {
	h.count()
	fail := func(status int, msg string) {
		h.violation("%s %s: %d %s", r.Method, r.URL.Path, status, msg)
		http.Error(w, msg, status)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return
	}
	var p WebhookPush
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/push":
		fail(http.StatusNotFound, "bad method or path")
		return
	case r.Header.Get("X-Imqtt-Event") != "push":
		fail(http.StatusBadRequest, "X-Imqtt-Event is not push")
		return
	case signature.Verify(h.secret, r.Header.Get(signature.HeaderSignature),
		r.Header.Get(signature.HeaderTimestamp), raw, 5*time.Minute) != nil:
		fail(http.StatusUnauthorized, "bad signature")
		return
	case json.Unmarshal(raw, &p) != nil || p.User == "" || p.Device == "" || p.MessageID == "":
		fail(http.StatusBadRequest, "bad body")
		return
	}
	ans := h.lookup(p.Token)
	if !ans.wait(r.Context()) {
		return
	}
	if ans.status()/100 != 2 {
		ans.setRetryAfter(w.Header())
		http.Error(w, http.StatusText(ans.status()), ans.status())
		return
	}
	p.Header, p.Raw = r.Header.Clone(), raw
	h.pushes.add(p)
	w.WriteHeader(ans.status())
}
