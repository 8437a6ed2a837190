package api_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/wire"
)

// TestAuthRequired: every user endpoint wants a live Bearer token: none or
// a dead one is 401 (a dead one counted), a store failure 503, a banned
// user 403; the handler runs only past all that.
func TestAuthRequired(t *testing.T) {
	r := newRig(t, nil)
	routes := [][2]string{{"DELETE", "/v1/sessions/current"}, {"POST", "/v1/messages"}, {"GET", "/v1/sync"},
		{"GET", "/v1/conversations"}, {"GET", "/v1/conversations/bob/messages"}, {"POST", "/v1/read"},
		{"POST", "/v1/groups"}, {"GET", "/v1/groups"}, {"GET", "/v1/groups/g1"}, {"POST", "/v1/groups/g1/members"},
		{"DELETE", "/v1/groups/g1/members/bob"}, {"POST", "/v1/media"}, {"GET", "/v1/media/" + mediaID}}
	for _, rt := range routes {
		wantError(t, r.do(rt[0], rt[1], "", `{}`), http.StatusUnauthorized, wire.CodeUnauthorized)
		wantError(t, r.do(rt[0], rt[1], "tok-expired-x", `{}`), http.StatusUnauthorized, wire.CodeUnauthorized)
		wantError(t, r.do(rt[0], rt[1], "tok-down", `{}`), http.StatusServiceUnavailable, wire.CodeUnavailable)
	}
	if n := count(r.m.AuthFailures, "token"); n != float64(len(routes)) {
		t.Errorf("%v dead tokens counted, want %d", n, len(routes))
	}
	req := httptest.NewRequest("GET", "/v1/groups", nil)
	req.Header.Set("Authorization", "Basic tok-alice-phone")
	w := r.serve(req)
	wantError(t, w, http.StatusUnauthorized, wire.CodeUnauthorized)
	if calls := r.core.took(); len(calls) != 0 {
		t.Fatalf("the core was called without credentials: %v", calls)
	}
	if _, err := r.bans.Add(t.Context(), banOf("alice")); err != nil {
		t.Fatal(err)
	}
	wantError(t, r.do("GET", "/v1/groups", "tok-alice-phone", ""), http.StatusForbidden, wire.CodeForbidden)
	wantJSON(t, r.do("GET", "/v1/groups", "tok-bob-tab", ""), http.StatusOK, nil)
	if calls := r.core.took(); !slices.Equal(calls, []string{"groups bob"}) {
		t.Fatalf("core calls %v", calls)
	}
}

// TestRegister: each outcome of the account service has its status and code.
func TestRegister(t *testing.T) {
	r := newRig(t, nil)
	var reg wire.Registered
	wantJSON(t, r.do("POST", "/v1/users", "", `{"user":"Carol","password":"secret-carol"}`), http.StatusCreated, &reg)
	if reg.User != "carol" || reg.Display != "Carol" {
		t.Errorf("registered %+v", reg)
	}
	wantError(t, r.do("POST", "/v1/users", "", `{"user":"CAROL","password":"secret-carol"}`), http.StatusConflict, wire.CodeExists)
	wantError(t, r.do("POST", "/v1/users", "", `{"user":".x","password":"secret-carol"}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/users", "", `{"user":"admin","password":"secret-carol"}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/users", "", `{"user":"down","password":"secret-carol"}`), http.StatusServiceUnavailable, wire.CodeUnavailable)
	if w := r.do("POST", "/v1/users", "", `{"user":"down","password":"secret-carol"}`); strings.Contains(w.Body.String(), "fire") {
		t.Errorf("a store failure shown to the client: %s", w.Body)
	}

	req := httptest.NewRequest("POST", "/v1/users", strings.NewReader(`{"user":"dave","password":"secret-dave"}`))
	req.RemoteAddr = "10.9.9.9:1234"
	w := r.serve(req)
	wantError(t, w, http.StatusTooManyRequests, wire.CodeRateLimited)
	if ra := w.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", ra)
	}
	if n := count(r.m.Refusals, "register_ip"); n != 1 {
		t.Errorf("%v throttles counted", n)
	}
}

// TestBodyLimits: a body past MaxBody is 413, malformed JSON 400, JSON
// nested too deeply 400; the limits are counted and nothing reaches the
// service.
func TestBodyLimits(t *testing.T) {
	r := newRig(t, nil)
	for _, path := range []string{"/v1/users", "/v1/sessions", "/v1/messages", "/v1/read", "/v1/groups"} {
		big := `{"user":"` + strings.Repeat("x", 5000) + `"}`
		wantError(t, r.do("POST", path, "tok-alice-phone", big), http.StatusRequestEntityTooLarge, wire.CodeTooLarge)
		wantError(t, r.do("POST", path, "tok-alice-phone", `{"user":`), http.StatusBadRequest, wire.CodeBadRequest)
		deep := `{"user":` + strings.Repeat("[", wire.MaxDepth+1) + strings.Repeat("]", wire.MaxDepth+1) + `}`
		wantError(t, r.do("POST", path, "tok-alice-phone", deep), http.StatusBadRequest, wire.CodeBadRequest)
	}
	if size, depth := count(r.m.Refusals, "body_size"), count(r.m.Refusals, "json_depth"); size != 5 || depth != 5 {
		t.Errorf("refusals counted: %v body_size, %v json_depth; want 5 each", size, depth)
	}
	if calls := r.core.took(); len(calls) != 0 {
		t.Errorf("the core was called: %v", calls)
	}
	if len(r.accounts.users) != 1 {
		t.Errorf("an account was made: %v", r.accounts.users)
	}
}

// TestLoginLogout: a login answers the session (device "default" when none
// is named); a wrong password is 401 and counted; a banned user is refused
// before any password check; logout revokes the token and disconnects its
// device.
func TestLoginLogout(t *testing.T) {
	r := newRig(t, nil)
	var s wire.Session
	wantJSON(t, r.do("POST", "/v1/sessions", "", `{"user":"alice","password":"alice-pw"}`), http.StatusOK, &s)
	if s.Token != "tok-alice-default" || s.Device != "default" {
		t.Errorf("session %+v", s)
	}
	wantJSON(t, r.do("POST", "/v1/sessions", "", `{"user":"ALICE","password":"alice-pw","device":"phone"}`), http.StatusOK, &s)
	if s.Token != "tok-alice-phone" {
		t.Errorf("session %+v (the user ID is folded before the login)", s)
	}
	wantError(t, r.do("POST", "/v1/sessions", "", `{"user":"alice","password":"nope"}`), http.StatusUnauthorized, wire.CodeUnauthorized)
	wantError(t, r.do("POST", "/v1/sessions", "", `{"user":"alice","password":"alice-pw","device":"a/b"}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/sessions", "", `{"user":"down","password":"x"}`), http.StatusServiceUnavailable, wire.CodeUnavailable)
	if n := count(r.m.AuthFailures, "password"); n != 1 {
		t.Errorf("%v wrong passwords counted, want 1", n)
	}
	if _, err := r.bans.Add(t.Context(), banOf("alice")); err != nil {
		t.Fatal(err)
	}
	wantError(t, r.do("POST", "/v1/sessions", "", `{"user":"Alice","password":"alice-pw"}`), http.StatusForbidden, wire.CodeForbidden)
	if n := count(r.m.AuthFailures, "banned"); n != 1 {
		t.Errorf("%v banned logins counted, want 1", n)
	}

	if w := r.do("DELETE", "/v1/sessions/current", "tok-bob-tab", ""); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if !slices.Equal(r.accounts.revoked, []string{"tok-bob-tab"}) || !slices.Equal(r.kicker.kicked, []string{"bob/tab"}) {
		t.Errorf("logout revoked %v and kicked %v", r.accounts.revoked, r.kicker.kicked)
	}
	wantError(t, r.do("GET", "/v1/groups", "tok-bob-tab", ""), http.StatusUnauthorized, wire.CodeUnauthorized)
}

// TestSend: a send goes to the core as the token's user and device; each
// refusal code of the core has its HTTP status (wire.HTTPStatus), a
// rate_limited one a Retry-After; a timeout is busy and a store failure
// unavailable.
func TestSend(t *testing.T) {
	r := newRig(t, nil)
	var ack wire.Ack
	wantJSON(t, r.do("POST", "/v1/messages", "tok-alice-phone", `{"cmid":"c1","to":"bob","type":"text","body":"hi"}`), http.StatusOK, &ack)
	if ack.CMID != "c1" || ack.ID != "99" {
		t.Errorf("ack %+v", ack)
	}
	if calls := r.core.took(); !slices.Equal(calls, []string{"send alice/phone c1"}) {
		t.Errorf("core calls %v", calls)
	}
	codes := []string{wire.CodeBadRequest, wire.CodeBadType, wire.CodeMissingTo, wire.CodeMissingCMID, wire.CodeTooLarge,
		wire.CodeNoSuchUser, wire.CodeNotMember, wire.CodeForbidden, wire.CodeUnavailable, wire.CodeBusy,
		wire.CodeRateLimited, wire.CodeGroupFull, wire.CodeNotFound, wire.CodeExists}
	for _, code := range codes {
		w := r.do("POST", "/v1/messages", "tok-alice-phone", `{"cmid":"c2","to":"bob","type":"text","body":"err:`+code+`"}`)
		wantError(t, w, wire.HTTPStatus(code), code)
		if !strings.Contains(w.Body.String(), `"message":"refused: err:`+code+`"`) {
			t.Errorf("%s: %s, want the refusal's message", code, w.Body)
		}
		if ra := w.Header().Get("Retry-After"); (code == wire.CodeRateLimited) != (ra == "1") {
			t.Errorf("%s: Retry-After %q", code, ra)
		}
	}
	wantError(t, r.do("POST", "/v1/messages", "tok-alice-phone", `{"cmid":"c3","body":"timeout"}`), http.StatusServiceUnavailable, wire.CodeBusy)
	w := r.do("POST", "/v1/messages", "tok-alice-phone", `{"cmid":"c4","body":"store"}`)
	wantError(t, w, http.StatusServiceUnavailable, wire.CodeUnavailable)
	if strings.Contains(w.Body.String(), "fire") {
		t.Errorf("a store failure shown to the client: %s", w.Body)
	}
}

// TestSync: query parameters are checked before the core is asked; the
// core's batches fold into one reply, gzipped when the client takes it;
// heads asks GroupHeads.
func TestSync(t *testing.T) {
	r := newRig(t, nil)
	var b wire.Sync
	wantJSON(t, r.do("GET", "/v1/sync?since=10&limit=5", "tok-alice-phone", ""), http.StatusOK, &b)
	if b.Since != 10 || b.Upto != 13 || b.More || len(b.Items) != 3 {
		t.Errorf("folded batch %+v", b)
	}
	for _, q := range []string{"since=-1", "since=x", "limit=ten", "since=99999999999999999999"} {
		wantError(t, r.do("GET", "/v1/sync?"+q, "tok-alice-phone", ""), http.StatusBadRequest, wire.CodeBadRequest)
	}
	// A group that cannot be an ID is no group the caller is in.
	wantError(t, r.do("GET", "/v1/sync?group=..x", "tok-alice-phone", ""), http.StatusForbidden, wire.CodeNotMember)
	wantError(t, r.do("GET", "/v1/sync?group=store", "tok-alice-phone", ""), http.StatusServiceUnavailable, wire.CodeUnavailable)
	if calls := r.core.took(); !slices.Equal(calls, []string{"sync alice", "sync alice"}) {
		t.Errorf("core calls %v: a bad request reached the core", calls)
	}
	if n := count(r.m.SyncBatches, "http"); n != 1 {
		t.Errorf("%v HTTP sync replies counted, want 1", n)
	}

	req := httptest.NewRequest("GET", "/v1/sync?heads=1", nil)
	req.Header.Set("Authorization", "Bearer tok-alice-phone")
	req.Header.Set("Accept-Encoding", "gzip")
	w := r.serve(req)
	if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("heads: %d, Content-Encoding %q", w.Code, w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	var heads wire.Heads
	if err := json.NewDecoder(zr).Decode(&heads); err != nil || heads.Kind != wire.KindHeads || len(heads.Groups) != 1 {
		t.Errorf("heads %+v, %v", heads, err)
	}
	if calls := r.core.took(); !slices.Equal(calls, []string{"heads alice"}) {
		t.Errorf("core calls %v", calls)
	}

	// gzip;q=0 refuses gzip: both replies come plain.
	for _, path := range []string{"/v1/sync?heads=1", "/v1/sync?since=10"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer tok-alice-phone")
		req.Header.Set("Accept-Encoding", "gzip;q=0, identity")
		w := r.serve(req)
		if w.Code != http.StatusOK || w.Header().Get("Content-Encoding") != "" || !json.Valid(w.Body.Bytes()) {
			t.Errorf("%s, gzip;q=0: %d, Content-Encoding %q", path, w.Code, w.Header().Get("Content-Encoding"))
		}
	}
}

// TestReadHistoryGroups: the other user endpoints pass the caller and the
// path's IDs to the core, check their query first, and map the core's
// refusals to statuses.
func TestReadHistoryGroups(t *testing.T) {
	r := newRig(t, nil)
	tok := "tok-alice-phone"
	wantJSON(t, r.do("GET", "/v1/conversations", tok, ""), http.StatusOK, nil)
	wantJSON(t, r.do("GET", "/v1/conversations/bob/messages?before=77&limit=5000", tok, ""), http.StatusOK, nil)
	wantError(t, r.do("GET", "/v1/conversations/.bob/messages", tok, ""), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("GET", "/v1/conversations/bob/messages?before=-1", tok, ""), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("GET", "/v1/conversations/bob/messages?before=9223372036854775808", tok, ""), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("GET", "/v1/conversations/bob/../messages", tok, ""), http.StatusBadRequest, wire.CodeBadRequest)
	var u wire.Unread
	wantJSON(t, r.do("POST", "/v1/read", tok, `{"peer":"bob"}`), http.StatusOK, &u)
	if u.Peer != "bob" || u.Kind != wire.KindUnread {
		t.Errorf("unread %+v", u)
	}
	wantError(t, r.do("POST", "/v1/read", tok, `{"group":"err:not_member"}`), http.StatusForbidden, wire.CodeNotMember)

	var g wire.Group
	wantJSON(t, r.do("POST", "/v1/groups", tok, `{"name":"team","members":["bob"]}`), http.StatusCreated, &g)
	if g.Owner != "alice" || g.Count != 2 {
		t.Errorf("group %+v", g)
	}
	wantError(t, r.do("POST", "/v1/groups", tok, `{"name":"err:group_full"}`), http.StatusConflict, wire.CodeGroupFull)
	wantJSON(t, r.do("GET", "/v1/groups", tok, ""), http.StatusOK, nil)
	wantJSON(t, r.do("GET", "/v1/groups/g1?after=bob&limit=10", tok, ""), http.StatusOK, nil)
	wantError(t, r.do("GET", "/v1/groups/g1?limit=1001", tok, ""), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("GET", "/v1/groups/err:not_found", tok, ""), http.StatusNotFound, wire.CodeNotFound)
	wantJSON(t, r.do("POST", "/v1/groups/g1/members", tok, `{"users":["carol","dave"]}`), http.StatusOK, nil)
	wantError(t, r.do("POST", "/v1/groups/err:forbidden/members", tok, `{"users":["carol"]}`), http.StatusForbidden, wire.CodeForbidden)
	if w := r.do("DELETE", "/v1/groups/g1/members/bob", tok, ""); w.Code != http.StatusNoContent {
		t.Errorf("remove member: %d %s", w.Code, w.Body)
	}
	wantError(t, r.do("DELETE", "/v1/groups/store/members/bob", tok, ""), http.StatusServiceUnavailable, wire.CodeUnavailable)
	want := []string{"conversations alice", "history alice bob 77 1000", "read alice bob", "read alice ",
		"create alice team", "create alice err:group_full", "groups alice", "group alice g1 bob 10", "group alice err:not_found  0",
		"add alice g1 carol,dave", "add alice err:forbidden carol", "remove alice g1 bob", "remove alice store bob"}
	if calls := r.core.took(); !slices.Equal(calls, want) {
		t.Errorf("core calls\n%q\nwant\n%q", calls, want)
	}
}

// TestMedia: an upload answers what the media store made of it; each media
// error has its status; a download serves the bytes with headers that keep
// a browser from running them; an ID that cannot be one is 404 without a
// lookup; and with no media store there is no /v1/media.
func TestMedia(t *testing.T) {
	r := newRig(t, nil)
	tok := "tok-alice-phone"
	req := httptest.NewRequest("POST", "/v1/media?name=a.png", strings.NewReader("PNGDATA"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "image/png")
	w := r.serve(req)
	var up struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
		Name string `json:"name"`
	}
	wantJSON(t, w, http.StatusCreated, &up)
	if up.ID != mediaID || up.Size != 7 || up.Name != "a.png" {
		t.Errorf("upload %+v", up)
	}
	for name, want := range map[string]struct {
		status int
		code   string
	}{
		"big": {413, wire.CodeTooLarge}, "lie": {415, wire.CodeTypeMismatch}, "empty": {400, wire.CodeBadRequest},
		"nohls": {501, wire.CodeHLSUnavailable}, "badvideo": {422, wire.CodeBadMedia}, "full": {503, wire.CodeUnavailable},
		"boom": {500, wire.CodeInternal},
	} {
		wantError(t, r.do("POST", "/v1/media?name="+name, tok, "x"), want.status, want.code)
	}

	w = r.do("GET", "/v1/media/"+mediaID, tok, "")
	if w.Code != http.StatusOK || w.Body.String() != "PNGDATA" {
		t.Fatalf("download: %d %q", w.Code, w.Body)
	}
	h := w.Header()
	if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") ||
		h.Get("ETag") != `"abc"` || !strings.HasPrefix(h.Get("Content-Disposition"), "inline") {
		t.Errorf("download headers %v", h)
	}
	wantError(t, r.do("GET", "/v1/media/"+mediaID, "tok-mallory-x", ""), http.StatusNotFound, wire.CodeNotFound)
	wantError(t, r.do("GET", "/v1/media/not-an-id", tok, ""), http.StatusNotFound, wire.CodeNotFound)
	wantError(t, r.do("GET", "/v1/media/"+mediaID+"/hls/evil", tok, ""), http.StatusNotFound, wire.CodeNotFound)

	none := newRig(t, func(c *api.Config) { c.Media = nil })
	wantError(t, none.do("POST", "/v1/media", tok, "x"), http.StatusNotFound, wire.CodeNotFound)
}

// TestPublicEndpoints: health, readiness, endpoints and unknown paths.
func TestPublicEndpoints(t *testing.T) {
	r := newRig(t, nil)
	wantJSON(t, r.do("GET", "/healthz", "", ""), http.StatusOK, nil)
	wantJSON(t, r.do("GET", "/readyz", "", ""), http.StatusOK, nil)
	var eps wire.Endpoints
	wantJSON(t, r.do("GET", "/v1/endpoints", "", ""), http.StatusOK, &eps)
	if len(eps.Endpoints) != 1 || eps.Endpoints[0].Node != "n1" {
		t.Errorf("endpoints %+v", eps)
	}
	wantError(t, r.do("GET", "/v1/nothing", "", ""), http.StatusNotFound, wire.CodeNotFound)
	if w := r.do("GET", "/metrics", "", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "imqtt_") {
		t.Errorf("metrics: %d", w.Code)
	}
	notReady := newRig(t, func(c *api.Config) {
		c.Ready = func(ctx context.Context) error { return errors.New("store closed") }
	})
	if w := notReady.do("GET", "/readyz", "", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz of a node whose store is down: %d", w.Code)
	}
	// A node shutting down drains without an operator's drain: the drain
	// state it shares says so.
	st := drain.New(nil)
	shutting := newRig(t, func(c *api.Config) { c.Drain = st })
	wantJSON(t, shutting.do("GET", "/readyz", "", ""), http.StatusOK, nil)
	st.Begin()
	var ready struct{ Status string }
	wantJSON(t, shutting.do("GET", "/readyz", "", ""), http.StatusServiceUnavailable, &ready)
	if ready.Status != "draining" {
		t.Errorf("readyz of a draining node: %+v", ready)
	}
}

// TestSignupClosed: with sign-up closed, POST /v1/users is 403
// signup_closed whatever its body, and the account service is not asked;
// logging in still works.
func TestSignupClosed(t *testing.T) {
	r := newRig(t, func(c *api.Config) { c.Signup = api.SignupClosed })
	for _, body := range []string{`{"user":"carol","password":"secret-carol"}`, `{"user":"down","password":"secret-carol"}`, `not json`, ``} {
		w := r.do("POST", "/v1/users", "", body)
		wantError(t, w, http.StatusForbidden, wire.CodeSignupClosed)
	}
	// Not even the register_ip throttle (the account service's) was asked.
	req := httptest.NewRequest("POST", "/v1/users", strings.NewReader(`{"user":"dave","password":"secret-dave"}`))
	req.RemoteAddr = "10.9.9.9:1234"
	wantError(t, r.serve(req), http.StatusForbidden, wire.CodeSignupClosed)
	wantJSON(t, r.do("POST", "/v1/sessions", "", `{"user":"alice","password":"alice-pw","device":"phone"}`), http.StatusOK, nil)
	open := newRig(t, func(c *api.Config) { c.Signup = api.SignupOpen })
	wantJSON(t, open.do("POST", "/v1/users", "", `{"user":"carol","password":"secret-carol"}`), http.StatusCreated, nil)
}
