package api_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/apidocs"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/wire"
)

// fullRig is an API with every optional part configured, so that every
// route there is gets registered. The parts that only register routes
// here (social graph, push registry, presence) are never called.
func fullRig(t *testing.T) *rig {
	t.Helper()
	return newRig(t, func(c *api.Config) {
		c.Chat = socialCore{Core: c.Chat}
		c.Push = push.NewRegistry(nil, nil, nil)
		c.Presence = noPresence{}
		c.WebSocket = http.NotFoundHandler()
		c.Web = http.NotFoundHandler()
		c.Admin.Dashboard = http.NotFoundHandler()
		c.Server.Keys = []string{strings.Repeat("k", 32)}
	})
}

type socialCore struct {
	api.Core
	api.Social
}

type noPresence struct{}

func (noPresence) List(context.Context, string, []string) (wire.PresenceList, error) {
	return wire.PresenceList{}, nil
}

// loadSpec loads and validates the served description with kin-openapi,
// once for all the tests.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := specOnce()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

var specOnce = sync.OnceValues(func() (*openapi3.T, error) {
	spec, err := api.OpenAPI()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml does not validate: %w", err)
	}
	return doc, nil
})

// TestOpenAPIValid: the description is OpenAPI 3.1 that kin-openapi
// validates (structure, references, examples against their schemas), and
// every operation names its tag, an ID, and its error body (wire.Error;
// /readyz's 503 is its status), and has a default response for the
// refusals any route may answer.
func TestOpenAPIValid(t *testing.T) {
	doc := loadSpec(t)
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" || len(op.Tags) != 1 {
				t.Errorf("%s: want an operationId and one tag", where)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q is %s's too", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			if op.Responses.Default() == nil {
				t.Errorf("%s: no default response (the refusals any route may answer)", where)
			}
			for status, ref := range op.Responses.Map() {
				if status[0] < '4' || ref.Value == nil {
					continue
				}
				if status == "416" { // http.ServeContent's own text answer
					continue
				}
				mt := ref.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" &&
					!(path == "/readyz" && mt.Schema.Ref == "#/components/schemas/Status") {
					t.Errorf("%s: %s answers no Error body", where, status)
				}
			}
		}
	}
}

// routeDrift compares the API's ServeMux patterns with the description:
// undescribed lists the routes it does not describe, stale the operations
// no route serves. A pattern whose path is in x-excluded is left out; a
// pattern without a method must be.
func routeDrift(routes []string, doc *openapi3.T) (undescribed, stale []string) {
	excluded := map[string]bool{}
	if list, ok := doc.Extensions["x-excluded"].([]any); ok {
		for _, e := range list {
			m, _ := e.(map[string]any)
			p, _ := m["path"].(string)
			for one := range strings.SplitSeq(p, ", ") {
				excluded[one] = true
			}
		}
	}
	described := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described[method+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, pattern := range routes {
		_, path, ok := strings.Cut(pattern, " ")
		if !ok {
			path = pattern
		}
		if excluded[path] {
			continue
		}
		if !ok || !described[pattern] {
			undescribed = append(undescribed, pattern)
		}
		served[pattern] = true
	}
	for op := range described {
		if !served[op] {
			stale = append(stale, op)
		}
	}
	slices.Sort(undescribed)
	slices.Sort(stale)
	return undescribed, stale
}

// TestOpenAPIRoutes: every route the API registers is described, and
// every described operation is a route.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadSpec(t)
	routes := fullRig(t).api.Routes()
	undescribed, stale := routeDrift(routes, doc)
	for _, r := range undescribed {
		t.Errorf("route %q is not in internal/api/openapi.yaml: describe it (or list a non-API page in x-excluded)", r)
	}
	for _, op := range stale {
		t.Errorf("openapi.yaml describes %q, which no route serves", op)
	}
	if len(routes) < 60 {
		t.Errorf("only %d routes recorded: is every route registered through a.mux?", len(routes))
	}

	// Drift either way is caught, by name: a new route, a new route
	// without a method, a route gone.
	undescribed, stale = routeDrift(append(slices.DeleteFunc(routes, func(r string) bool {
		return r == "GET /v1/sync"
	}), "PUT /v1/gadgets/{id}", "/v1/anything/"), doc)
	if !slices.Contains(undescribed, "PUT /v1/gadgets/{id}") || !slices.Contains(undescribed, "/v1/anything/") ||
		!slices.Contains(stale, "GET /v1/sync") {
		t.Errorf("drift not caught: undescribed %q, stale %q", undescribed, stale)
	}
}

// TestOpenAPIServed: GET /v1/openapi.json needs no token, is the
// description as JSON with this build's version, and is cacheable.
func TestOpenAPIServed(t *testing.T) {
	r := fullRig(t)
	w := r.do("GET", "/v1/openapi.json", "", "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Version string `json:"version"`
		} `json:"info"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc.OpenAPI != "3.1.0" || doc.Info.Version == "0" || doc.Info.Version == "" {
		t.Fatalf("body: %+v %v", doc, err)
	}
	etag := w.Header().Get("ETag")
	if etag == "" || !strings.HasPrefix(w.Header().Get("Cache-Control"), "public") {
		t.Fatalf("not cacheable: ETag %q, Cache-Control %q", etag, w.Header().Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", "/v1/openapi.json", nil)
	req.Header.Set("If-None-Match", etag)
	if w := r.serve(req); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: got %d with %d bytes, want 304", w.Code, w.Body.Len())
	}

	req = httptest.NewRequest("GET", "/v1/openapi.json", nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	zw := r.serve(req)
	if zw.Header().Get("Content-Encoding") != "gzip" || zw.Header().Get("ETag") == etag || zw.Body.Len()*4 > w.Body.Len() {
		t.Fatalf("gzip: %q, ETag %q, %d bytes of %d", zw.Header().Get("Content-Encoding"), zw.Header().Get("ETag"), zw.Body.Len(), w.Body.Len())
	}
	zr, err := gzip.NewReader(zw.Body)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, w.Body.Bytes()) {
		t.Errorf("gunzipped: %d bytes, %v; want the plain body", len(plain), err)
	}
}

// TestDocsPage: /docs/ is the description rendered as HTML, with no
// script, under a CSP that allows none, its style sheet from itself.
func TestDocsPage(t *testing.T) {
	r := fullRig(t)
	w := r.do("GET", "/docs/", "", "")
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("got %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if w.Header().Get("Content-Security-Policy") != apidocs.CSP || strings.Contains(apidocs.CSP, "script") {
		t.Errorf("CSP %q", w.Header().Get("Content-Security-Policy"))
	}
	for _, want := range []string{
		`id="send"`, `<code>/v1/messages</code>`, `id="login"`, `<code>/v1/groups/{gid}/members/{user}</code>`,
		`id="adminKick"`, `id="serverMintToken"`, `href="#schema-Ack"`, `id="schema-Error"`, `<code>rate_limited</code>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/docs/ lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("/docs/ has a script or loads something from elsewhere")
	}
	if w := r.do("GET", "/docs/style.css", "", ""); w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if w := r.do("GET", "/docs", "", ""); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/docs/" {
		t.Errorf("/docs: %d %s", w.Code, w.Header().Get("Location"))
	}
}

// samplePath fills a path template's parameters with values the fakes
// know.
func samplePath(tmpl string) string {
	return strings.NewReplacer("{peer}", "bob", "{gid}", "g1", "{user}", "bob", "{device}", "phone",
		"{emoji}", "%F0%9F%91%8D", "{seq}", "1", "{name}", "index.m3u8").Replace(
		strings.NewReplacer("/v1/media/{id}", "/v1/media/"+mediaID, "{id}", "m1").Replace(tmpl))
}

// checkReply checks that w's status is one the operation declares and
// that a JSON body is what the description says for it.
func checkReply(t *testing.T, doc *openapi3.T, method, tmpl string, w *httptest.ResponseRecorder) {
	t.Helper()
	where := method + " " + tmpl
	op := doc.Paths.Value(tmpl).GetOperation(method)
	if op == nil {
		t.Errorf("%s: not described", where)
		return
	}
	resp := op.Responses.Status(w.Code)
	if resp == nil || resp.Value == nil {
		t.Errorf("%s answered %d, which openapi.yaml does not declare: %s", where, w.Code, strings.TrimSpace(w.Body.String()))
		return
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || w.Body.Len() == 0 {
		return
	}
	mt := resp.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		t.Errorf("%s %d: a JSON body the description does not declare", where, w.Code)
		return
	}
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Errorf("%s %d: %v", where, w.Code, err)
		return
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("%s %d: the body does not match its schema: %v\nbody: %s", where, w.Code, err, w.Body)
	}
}

// TestOpenAPIUnauthenticated: every described operation, called without
// credentials, answers a status the description declares with the body
// it describes: 401 for the secured ones.
func TestOpenAPIUnauthenticated(t *testing.T) {
	doc := loadSpec(t)
	r := fullRig(t)
	for tmpl, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			w := r.do(method, samplePath(tmpl), "", "")
			checkReply(t, doc, method, tmpl, w)
			secured := op.Security == nil || len(*op.Security) > 0
			if secured && w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", method, tmpl, w.Code)
			}
		}
	}
}

// TestOpenAPIReplies: replies of each kind, success and refusal, are
// declared by their operation and match its schemas.
func TestOpenAPIReplies(t *testing.T) {
	doc := loadSpec(t)
	r := newRig(t, func(c *api.Config) { // fakes that answer
		c.Server.Keys = []string{strings.Repeat("k", 32)}
		c.Admin.Directory, c.Admin.Groups, c.Admin.Presence = fakeDirectory{}, fakeGroupOps{}, fakeDevices{}
	})
	if _, err := r.bans.Add(context.Background(), bans.Ban{User: "bob", Created: 7}); err != nil {
		t.Fatal(err)
	}
	const alice = "tok-alice-phone"
	serverKey := "Bearer " + strings.Repeat("k", 32)
	for _, c := range []struct{ method, tmpl, path, token, body string }{
		{"POST", "/v1/users", "", "", `{"user":"Carol","password":"secret-carol"}`},
		{"POST", "/v1/users", "", "", `{"user":"carol","password":"secret-carol"}`},
		{"POST", "/v1/sessions", "", "", `{"user":"alice","password":"alice-pw","device":"phone"}`},
		{"POST", "/v1/sessions", "", "", `{"user":"alice","password":"wrong","device":"phone"}`},
		{"POST", "/v1/messages", "", alice, `{"cmid":"c1","to":"bob","type":"text","body":"hi"}`},
		{"POST", "/v1/messages", "", alice, `{"cmid":"c1","to":"bob","type":"text","body":"err:rate_limited"}`},
		{"POST", "/v1/messages", "", alice, `{"cmid":"c1","group":"g1","type":"text","body":"err:not_member"}`},
		{"POST", "/v1/messages", "", alice, `{"cmid":"c1","to":"bob","type":"text","body":"store"}`},
		{"POST", "/v1/messages", "", alice, `{"cmid":`},
		{"GET", "/v1/sync", "/v1/sync?since=0", alice, ""},
		{"GET", "/v1/sync", "/v1/sync?heads=1", alice, ""},
		{"GET", "/v1/sync", "/v1/sync?since=x", alice, ""},
		{"GET", "/v1/conversations", "", alice, ""},
		{"GET", "/v1/conversations/{peer}/messages", "", alice, ""},
		{"GET", "/v1/conversations/{peer}/settings", "", alice, ""},
		{"PUT", "/v1/conversations/{peer}/settings", "", alice, `{"mute":true}`},
		{"PUT", "/v1/groups/{gid}/settings", "", alice, `{"pin":true}`},
		{"POST", "/v1/read", "", alice, `{"peer":"bob"}`},
		{"POST", "/v1/groups", "", alice, `{"id":"g1","name":"friends","members":["bob"]}`},
		{"GET", "/v1/groups", "", alice, ""},
		{"GET", "/v1/groups/{gid}", "", alice, ""},
		{"POST", "/v1/groups/{gid}/members", "", alice, `{"users":["carol"]}`},
		{"DELETE", "/v1/groups/{gid}/members/{user}", "", alice, ""},
		{"POST", "/v1/messages/{id}/recall", "", alice, `{"cmid":"r1"}`},
		{"PATCH", "/v1/messages/{id}", "", alice, `{"cmid":"e1","body":"hello"}`},
		{"PUT", "/v1/messages/{id}/reactions/{emoji}", "", alice, ""},
		{"POST", "/v1/messages/delete", "", alice, `{"cmid":"d1","ids":["m1"]}`},
		{"DELETE", "/v1/conversations/{peer}", "", alice, ""},
		{"POST", "/v1/typing", "", alice, `{"peer":"bob","state":"start"}`},
		{"GET", "/v1/me/settings", "", alice, ""},
		{"PUT", "/v1/me/settings", "", alice, `{"accept_from":"contacts"}`},
		{"GET", "/v1/groups/{gid}/messages/{seq}/reads", "", alice, ""},
		{"POST", "/v1/media", "/v1/media?name=a.txt", alice, "hello"},
		{"GET", "/v1/media/{id}", "", alice, ""},
		{"GET", "/v1/media/{id}", "/v1/media/m-nothere", alice, ""},
		{"DELETE", "/v1/sessions/current", "", "tok-alice-tab", ""},
		{"GET", "/v1/endpoints", "", "", ""},
		{"GET", "/healthz", "", "", ""},
		{"GET", "/readyz", "", "", ""},
		{"GET", "/v1/openapi.json", "", "", ""},
		{"GET", "/v1/admin/nodes", "", adminToken, ""},
		{"GET", "/v1/admin/nodes", "", alice, ""},
		{"GET", "/v1/admin/nodes", "/v1/admin/nodes?x=1", adminToken, ""},
		{"POST", "/v1/messages", "", alice, `{"cmid":"c1","to":"bob","type":"text","body":"` + strings.Repeat("x", 5000) + `"}`},
		{"GET", "/v1/admin/stats", "/v1/admin/stats?window=10", adminToken, ""},
		{"GET", "/v1/admin/events", "", adminToken, ""},
		{"GET", "/v1/admin/clients", "", adminToken, ""},
		{"GET", "/v1/admin/clients/{user}/{device}", "/v1/admin/clients/alice/phone", adminToken, ""},
		{"POST", "/v1/admin/bans", "", adminToken, `{"user":"mallory","seconds":60}`},
		{"GET", "/v1/admin/bans", "", adminToken, ""},
		{"DELETE", "/v1/admin/bans/{id}", "", adminToken, ""},
		{"POST", "/v1/admin/notice", "", adminToken, `{"text":"hello"}`},
		{"POST", "/v1/admin/clients/{user}/{device}/kick", "/v1/admin/clients/bob/tab/kick", adminToken, ""},
		{"GET", "/v1/admin/backup", "", adminToken, ""},
		{"GET", "/v1/admin/cluster/stats", "/v1/admin/cluster/stats?window=5&since=0", adminToken, ""},
		{"GET", "/v1/admin/cluster/stats", "/v1/admin/cluster/stats?window=0", adminToken, ""},
		{"GET", "/v1/admin/cluster/clients", "/v1/admin/cluster/clients?user=bob&limit=1", adminToken, ""},
		{"GET", "/v1/admin/cluster/clients", "/v1/admin/cluster/clients?limit=0", adminToken, ""},
		{"GET", "/v1/admin/users", "/v1/admin/users?prefix=", adminToken, ""},
		{"GET", "/v1/admin/users", "/v1/admin/users?prefix=a&limit=1", adminToken, ""},
		{"GET", "/v1/admin/users", "/v1/admin/users?prefix=a*", adminToken, ""},
		{"GET", "/v1/admin/users/{user}", "", adminToken, ""},
		{"GET", "/v1/admin/users/{user}", "/v1/admin/users/alice", adminToken, ""},
		{"GET", "/v1/admin/users/{user}", "/v1/admin/users/nobody", adminToken, ""},
		{"GET", "/v1/admin/users/{user}", "/v1/admin/users/bob", alice, ""},
		{"POST", "/v1/admin/users/{user}/revoke", "/v1/admin/users/nobody/revoke", adminToken, ""},
		{"DELETE", "/v1/admin/users/{user}", "/v1/admin/users/system", adminToken, ""},
		{"GET", "/v1/admin/groups", "", adminToken, ""},
		{"GET", "/v1/admin/groups", "/v1/admin/groups?prefix=g&limit=1", adminToken, ""},
		{"GET", "/v1/admin/groups", "/v1/admin/groups?limit=201", adminToken, ""},
		{"GET", "/v1/admin/groups/{gid}", "", adminToken, ""},
		{"GET", "/v1/admin/groups/{gid}", "/v1/admin/groups/g1?limit=1", adminToken, ""},
		{"GET", "/v1/admin/groups/{gid}", "/v1/admin/groups/gone", adminToken, ""},
		{"GET", "/v1/admin/groups/{gid}", "/v1/admin/groups/g2", adminToken, ""},
		{"GET", "/v1/admin/groups/{gid}", "/v1/admin/groups/g1?after=a*b", adminToken, ""},
		{"DELETE", "/v1/admin/groups/{gid}/members/{user}", "", adminToken, ""},
		{"DELETE", "/v1/admin/groups/{gid}/members/{user}", "/v1/admin/groups/g1/members/alice", adminToken, ""},
		{"DELETE", "/v1/admin/groups/{gid}/members/{user}", "/v1/admin/groups/gone/members/bob", adminToken, ""},
		{"DELETE", "/v1/admin/groups/{gid}", "", adminToken, ""},
		{"DELETE", "/v1/admin/groups/{gid}", "/v1/admin/groups/g2", adminToken, ""},
		{"DELETE", "/v1/admin/groups/{gid}", "/v1/admin/groups/gone", adminToken, ""},
		{"POST", "/v1/server/users", "", "", `{"user":"bot1","extra":1}`},
		{"POST", "/v1/server/tokens", "", "", `{"user":"bot1","ttl":"forever"}`},
	} {
		path := cmp.Or(c.path, samplePath(c.tmpl))
		req := httptest.NewRequest(c.method, path, strings.NewReader(c.body))
		req.RemoteAddr = "192.0.2.1:5555"
		switch {
		case strings.HasPrefix(c.tmpl, "/v1/server/"):
			req.Header.Set("Authorization", serverKey)
		case c.token != "":
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		w := r.serve(req)
		checkReply(t, doc, c.method, c.tmpl, w)
	}
}
