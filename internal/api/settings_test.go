package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/wire"
)

// newCoreRig is the API with the real core on a real Pebble store (the
// accounts stay fake: "tok-<user>-<device>"), with users alice, bob and
// carol and the group team of alice and bob.
func newCoreRig(t *testing.T) *rig {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := t.Context()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateUser(ctx, store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}),
		deliver.New(deliver.Options{Local: new(published)}),
		chat.Options{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "team", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	return newRig(t, func(cfg *api.Config) { cfg.Chat = svc })
}

// TestConvSettingsRoutes: PUT replaces a conversation's or a group's
// settings and answers them, GET reads them, and the conversation list
// shows them.
func TestConvSettingsRoutes(t *testing.T) {
	r := newCoreRig(t)
	const tok = "tok-alice-phone"
	var got wire.ConvSettings
	wantJSON(t, r.do("PUT", "/v1/conversations/Bob/settings", tok, `{"mute":true}`), http.StatusOK, &got)
	if got != (wire.ConvSettings{Peer: "bob", Mute: true}) {
		t.Fatalf("put bob: %+v", got)
	}
	got = wire.ConvSettings{}
	wantJSON(t, r.do("GET", "/v1/conversations/bob/settings", tok, ""), http.StatusOK, &got)
	if got != (wire.ConvSettings{Peer: "bob", Mute: true}) {
		t.Fatalf("get bob: %+v", got)
	}
	until := time.Now().Add(time.Hour).UnixMilli()
	got = wire.ConvSettings{}
	wantJSON(t, r.do("PUT", "/v1/groups/team/settings", tok, fmt.Sprintf(`{"mute_until":%d,"pin":true}`, until)), http.StatusOK, &got)
	if got != (wire.ConvSettings{Group: "team", MuteUntil: until, Pin: true}) {
		t.Fatalf("put team: %+v", got)
	}
	// The wire form names every field, false and 0 too.
	w := r.do("GET", "/v1/groups/team/settings", tok, "")
	if want := fmt.Sprintf(`{"group":"team","mute":false,"mute_until":%d,"pin":true}`, until); strings.TrimSpace(w.Body.String()) != want {
		t.Fatalf("get team: %d %s, want %s", w.Code, w.Body.String(), want)
	}
	// A PUT replaces: an empty body clears everything.
	got = wire.ConvSettings{Pin: true}
	wantJSON(t, r.do("PUT", "/v1/conversations/carol/settings", tok, `{"pin":true}`), http.StatusOK, nil)
	wantJSON(t, r.do("PUT", "/v1/conversations/carol/settings", tok, ``), http.StatusOK, &got)
	if got != (wire.ConvSettings{Peer: "carol"}) {
		t.Fatalf("put carol with no body: %+v", got)
	}
	// Another user's settings are its own.
	got = wire.ConvSettings{}
	wantJSON(t, r.do("GET", "/v1/conversations/alice/settings", "tok-bob-tab", ""), http.StatusOK, &got)
	if got != (wire.ConvSettings{Peer: "alice"}) {
		t.Fatalf("bob's settings of alice: %+v", got)
	}
}

// TestConvSettingsBadInput: malformed or misspelt bodies, a bad
// mute_until, an unknown peer, a group the caller is not in and no token
// are refused with the error shape, and nothing is stored.
func TestConvSettingsBadInput(t *testing.T) {
	r := newCoreRig(t)
	far := time.Now().Add(20 * 366 * 24 * time.Hour).UnixMilli()
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"malformed JSON", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `{"mute":`, 400, wire.CodeBadRequest},
		{"misspelt field", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `{"muted":true}`, 400, wire.CodeBadRequest},
		{"wrong type", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `{"mute":"yes"}`, 400, wire.CodeBadRequest},
		{"not an object", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `[true]`, 400, wire.CodeBadRequest},
		{"trailing data", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `{"mute":true} {}`, 400, wire.CodeBadRequest},
		{"negative mute_until", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `{"mute_until":-5}`, 400, wire.CodeBadRequest},
		{"mute_until far ahead", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", fmt.Sprintf(`{"mute_until":%d}`, far), 400, wire.CodeBadRequest},
		{"mute_until not an integer", "PUT", "/v1/conversations/bob/settings", "tok-carol-p", `{"mute_until":1.5}`, 400, wire.CodeBadRequest},
		{"bad peer", "PUT", "/v1/conversations/-bad!/settings", "tok-carol-p", `{"mute":true}`, 400, wire.CodeBadRequest},
		{"unknown peer", "PUT", "/v1/conversations/nobody/settings", "tok-carol-p", `{"mute":true}`, 404, wire.CodeNoSuchUser},
		{"unknown peer, GET", "GET", "/v1/conversations/nobody/settings", "tok-carol-p", ``, 404, wire.CodeNoSuchUser},
		{"not a member", "PUT", "/v1/groups/team/settings", "tok-carol-p", `{"mute":true}`, 403, wire.CodeNotMember},
		{"not a member, GET", "GET", "/v1/groups/team/settings", "tok-carol-p", ``, 403, wire.CodeNotMember},
		{"no such group", "PUT", "/v1/groups/nope/settings", "tok-carol-p", `{"mute":true}`, 403, wire.CodeNotMember},
		{"no token", "PUT", "/v1/conversations/bob/settings", "", `{"mute":true}`, 401, wire.CodeUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, r.do(c.method, c.path, c.token, c.body), c.status, c.code)
		})
	}
	var list wire.Conversations
	wantJSON(t, r.do("GET", "/v1/conversations", "tok-carol-p", ""), http.StatusOK, &list)
	for _, row := range list.Conversations {
		if row.Muted || row.Pinned {
			t.Errorf("a refused put left %+v", row)
		}
	}
	for _, p := range []string{"/v1/conversations/bob/settings", "/v1/groups/nope/settings"} {
		var got wire.ConvSettings
		if w := r.do("GET", p, "tok-carol-p", ""); w.Code == http.StatusOK {
			wantJSON(t, w, http.StatusOK, &got)
			if got.Mute || got.Pin || got.MuteUntil != 0 {
				t.Errorf("%s after refusals: %+v", p, got)
			}
		}
	}
}

// TestConvSettingsInList: GET /v1/conversations marks muted and pinned
// rows, pinned first, and leaves the muted out of total_unread.
func TestConvSettingsInList(t *testing.T) {
	r := newCoreRig(t)
	for i, from := range []string{"carol", "bob", "bob"} {
		body := fmt.Sprintf(`{"cmid":"c%d","to":"alice","type":"text","body":"hi"}`, i)
		wantJSON(t, r.do("POST", "/v1/messages", "tok-"+from+"-p", body), http.StatusOK, nil)
	}
	wantJSON(t, r.do("PUT", "/v1/conversations/bob/settings", "tok-alice-p", `{"mute":true}`), http.StatusOK, nil)
	wantJSON(t, r.do("PUT", "/v1/conversations/carol/settings", "tok-alice-p", `{"pin":true}`), http.StatusOK, nil)
	w := r.do("GET", "/v1/conversations", "tok-alice-p", "")
	var list wire.Conversations
	wantJSON(t, w, http.StatusOK, &list)
	if list.TotalUnread != 1 || len(list.Conversations) != 3 {
		t.Fatalf("list %s", w.Body.String())
	}
	c0, c1 := list.Conversations[0], list.Conversations[1]
	if c0.Peer != "carol" || !c0.Pinned || c0.Muted || c1.Peer != "bob" || !c1.Muted || c1.Unread != 2 {
		t.Fatalf("list %s: want carol pinned first, bob muted with its 2 unread", w.Body.String())
	}
	if !strings.Contains(w.Body.String(), `"muted":true`) || !strings.Contains(w.Body.String(), `"pinned":true`) {
		t.Fatalf("list %s: want muted and pinned in the wire form", w.Body.String())
	}
}

// TestSendMentions: POST /v1/messages takes mentions: refused in a 1:1,
// past 50, malformed, and @all by a plain member; taken from the owner,
// and carried in the group's sync.
func TestSendMentions(t *testing.T) {
	r := newCoreRig(t)
	many := `"u0"` + strings.Repeat(`,"u1"`, wire.MaxMentions)
	for _, c := range []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"in a 1:1", "tok-alice-p", `{"cmid":"a","to":"bob","type":"text","body":"x","mentions":["bob"]}`, 400, wire.CodeBadRequest},
		{"too many", "tok-alice-p", `{"cmid":"b","group":"team","type":"text","body":"x","mentions":[` + many + `]}`, 400, wire.CodeBadRequest},
		{"not an ID", "tok-alice-p", `{"cmid":"c","group":"team","type":"text","body":"x","mentions":["a b"]}`, 400, wire.CodeBadRequest},
		{"not strings", "tok-alice-p", `{"cmid":"d","group":"team","type":"text","body":"x","mentions":[1]}`, 400, wire.CodeBadRequest},
		{"@all by a member", "tok-bob-p", `{"cmid":"e","group":"team","type":"text","body":"x","mentions":["@all"]}`, 403, wire.CodeForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, r.do("POST", "/v1/messages", c.token, c.body), c.status, c.code)
		})
	}
	wantJSON(t, r.do("POST", "/v1/messages", "tok-alice-p",
		`{"cmid":"f","group":"team","type":"text","body":"x","mentions":["@all","Bob"]}`), http.StatusOK, nil)
	w := r.do("GET", "/v1/sync?group=team&since=0", "tok-bob-p", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"mentions":["@all","bob"]`) {
		t.Fatalf("group sync %d %s: want the mentions", w.Code, w.Body.String())
	}
}
