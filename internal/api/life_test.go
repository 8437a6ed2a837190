package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

// TestLifecycleRoutes: each route of the lifecycle reaches the core with
// what its path and body say, answers the ack, and tells refusals with
// their codes and statuses.
func TestLifecycleRoutes(t *testing.T) {
	r := newRig(t, nil)
	tok := "tok-alice-phone"
	for _, tc := range []struct {
		method, path, body, call string
		status                   int
	}{
		{"POST", "/v1/messages/42/recall", `{"cmid":"r1"}`, "recall alice/phone 42", 200},
		{"POST", "/v1/messages/42/recall", ``, "recall alice/phone 42", 200},
		{"PATCH", "/v1/messages/42", `{"cmid":"e1","body":"fixed"}`, "edit fixed alice/phone 42", 200},
		{"PUT", "/v1/messages/42/reactions/" + url.PathEscape("👍"), ``, "react add 👍 alice/phone 42", 200},
		{"DELETE", "/v1/messages/42/reactions/" + url.PathEscape("👍"), ``, "react remove 👍 alice/phone 42", 200},
		{"POST", "/v1/messages/delete", `{"cmid":"d1","ids":["1","2"]}`, "delete 1,2 alice/phone ", 200},
		{"DELETE", "/v1/conversations/bob", ``, "delete bob alice/phone ", 200},
		{"DELETE", "/v1/conversations/bob", `{"cmid":"c9"}`, "delete bob alice/phone ", 200},
		{"PUT", "/v1/messages/42/reactions/" + url.PathEscape("🎉"), `{"cmid":"x1"}`, "react add 🎉 alice/phone 42", 200},
		{"DELETE", "/v1/messages/42/reactions/" + url.PathEscape("🎉"), `{"cmid":"x2","id":"1","emoji":"👍","op":"add"}`,
			"react remove 🎉 alice/phone 42", 200}, // the path wins
		{"POST", "/v1/typing", `{"peer":"bob","state":"start"}`, "typing alice bob start", 204},
		{"GET", "/v1/me/settings", ``, "user settings alice", 200},
		{"PUT", "/v1/me/settings", `{"read_receipts":false}`, "set user settings alice", 200},
		{"GET", "/v1/groups/g1/messages/7/reads?after=b&limit=5", ``, "reads alice g1 7 b 5", 200},
	} {
		w := r.do(tc.method, tc.path, tok, tc.body)
		if w.Code != tc.status {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
		if strings.Contains(tc.body, `"cmid"`) && tc.status == 200 && !strings.Contains(w.Body.String(), tc.body[9:11]) {
			t.Errorf("%s %s %s: the body's cmid was not used: %s", tc.method, tc.path, tc.body, w.Body)
		}
		if calls := r.core.took(); !slices.Equal(calls, []string{tc.call}) {
			t.Errorf("%s %s: core calls %q, want %q", tc.method, tc.path, calls, tc.call)
		}
	}
	wantError(t, r.do("POST", "/v1/messages/err:not_allowed/recall", tok, ``), http.StatusForbidden, wire.CodeNotAllowed)
	wantError(t, r.do("PATCH", "/v1/messages/err:too_late", tok, `{"body":"x"}`), http.StatusConflict, wire.CodeTooLate)
	wantError(t, r.do("GET", "/v1/groups/g1/messages/x/reads", tok, ``), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("PUT", "/v1/me/settings", tok, `{"read_receipt":false}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/messages/42/recall", "", ``), http.StatusUnauthorized, wire.CodeUnauthorized)
}
