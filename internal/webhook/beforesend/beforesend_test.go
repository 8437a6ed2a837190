package beforesend_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/signature"
	"github.com/imqtt/imqtt/internal/webhook"
	"github.com/imqtt/imqtt/internal/webhook/beforesend"
	"github.com/imqtt/imqtt/wire"
)

var secret = []byte("before-send-secret")

// backend answers each before_send with answer(data) after checking the
// request as a receiver must: its signature with a replay window, its
// event header and envelope.
func backend(t *testing.T, answer func(w http.ResponseWriter, d beforesend.Data)) *beforesend.Hook {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := signature.Verify(secret, r.Header.Get(signature.HeaderSignature), r.Header.Get(signature.HeaderTimestamp), body, 5*time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		var ev webhook.Event
		var d beforesend.Data
		if err := json.Unmarshal(body, &ev); err != nil || json.Unmarshal(ev.Data, &d) != nil ||
			ev.Type != webhook.BeforeSend || r.Header.Get(webhook.HeaderEvent) != webhook.BeforeSend || !strings.HasPrefix(ev.ID, "evt-") {
			t.Errorf("request %s: %v", body, err)
		}
		answer(w, d)
	}))
	t.Cleanup(srv.Close)
	post, err := webhook.New(webhook.Options{URL: srv.URL, Secret: secret, MaxAnswer: beforesend.MaxAnswer(1024), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h, err := beforesend.New(post, 3)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var alice = chat.Sender{User: "alice", Device: "phone"}

// TestVerdicts: each answer the contract allows, read as a verdict; the
// send reaches the backend whole.
func TestVerdicts(t *testing.T) {
	h := backend(t, func(w http.ResponseWriter, d beforesend.Data) {
		if d.From != "alice" || d.Device != "phone" || d.To != "bob" || d.CMID == "" || d.Type != "text" {
			t.Errorf("data %+v", d)
		}
		switch d.Body {
		case "ok":
			_, _ = io.WriteString(w, `{"action":"allow"}`)
		case "spam":
			_, _ = io.WriteString(w, `{"action":"reject","message":"no spam"}`)
		case "rude":
			_, _ = io.WriteString(w, `{"action":"modify","body":"r**e","meta":{"masked":true}}`)
		}
	})
	ctx := context.Background()
	for body, want := range map[string]chat.Verdict{
		"ok":   {Action: chat.ActionAllow},
		"spam": {Action: chat.ActionReject, Message: "no spam"},
		"rude": {Action: chat.ActionModify, Meta: json.RawMessage(`{"masked":true}`)},
	} {
		v, err := h.BeforeSend(ctx, alice, &wire.Send{CMID: "c-" + body, To: "bob", Type: "text", Body: body})
		if err != nil || v.Action != want.Action || v.Message != want.Message || string(v.Meta) != string(want.Meta) {
			t.Errorf("%s: %+v %v, want %+v", body, v, err, want)
		}
		if body == "rude" && (v.Body == nil || *v.Body != "r**e") {
			t.Errorf("modified body %v", v.Body)
		}
	}
}

// TestNoVerdict: an error status, garbage, an unknown action, a modify
// without anything, an answer past the bound, JSON nested too deep, and
// no answer in time are each no verdict (an error), never a verdict.
func TestNoVerdict(t *testing.T) {
	h := backend(t, func(w http.ResponseWriter, d beforesend.Data) {
		switch d.Body {
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"action":"allow"}`)
		case "garbage":
			_, _ = io.WriteString(w, `<html>hello`)
		case "unknown":
			_, _ = io.WriteString(w, `{"action":"maybe"}`)
		case "empty-modify":
			_, _ = io.WriteString(w, `{"action":"modify"}`)
		case "huge":
			_, _ = io.WriteString(w, `{"action":"modify","body":"`+strings.Repeat("x", beforesend.MaxAnswer(1024))+`"}`)
		case "deep":
			_, _ = io.WriteString(w, `{"action":"modify","meta":`+strings.Repeat(`{"a":`, 200)+`1`+strings.Repeat(`}`, 200)+`}`)
		case "slow":
			time.Sleep(time.Second)
		}
	})
	for _, body := range []string{"500", "garbage", "unknown", "empty-modify", "huge", "deep", "slow"} {
		v, err := h.BeforeSend(context.Background(), alice, &wire.Send{CMID: "c", To: "bob", Type: "text", Body: body})
		if err == nil {
			t.Errorf("%s: verdict %+v, want none", body, v)
		}
		if body == "500" && !errors.Is(err, beforesend.ErrStatus) {
			t.Errorf("500: %v", err)
		}
	}
}
