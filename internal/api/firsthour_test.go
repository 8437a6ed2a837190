package api_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/wire"
)

// TestLanding: / is a page of links to the chat, the dashboard, the docs
// and the metrics, with no script, under a strict policy; other paths
// outside the routes stay 404, and / takes only GET and HEAD.
func TestLanding(t *testing.T) {
	r := newRig(t, nil)
	w := r.do("GET", "/", "", "")
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") ||
		!strings.HasPrefix(w.Header().Get("Content-Security-Policy"), "default-src 'none';") || strings.Contains(w.Header().Get("Content-Security-Policy"), "src 'self'") ||
		strings.Contains(body, "<script") || strings.Contains(body, "<style") {
		t.Fatalf("/: %d %v\n%s", w.Code, w.Header(), body)
	}
	for _, link := range []string{`href="/chat/"`, `href="/dashboard/"`, `href="/docs/"`, `href="/metrics"`} {
		if !strings.Contains(body, link) {
			t.Errorf("/ lacks %s", link)
		}
	}
	if w := r.do("HEAD", "/", "", ""); w.Code != http.StatusOK {
		t.Errorf("HEAD /: %d", w.Code)
	}
	for _, path := range []string{"/index.html", "/nothing", "/chat"} {
		if w := r.do("GET", path, "", ""); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}
	if w := r.do("POST", "/", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", w.Code)
	}
}

// TestMethodNotAllowed: a route asked with another method is 405
// method_not_allowed, with Allow naming the methods it takes; a path that
// is no route stays 404, and the server API's paths stay 404 while it is
// off, so nothing tells a prober it exists. Admin paths answer alike, but
// only to the admin.
func TestMethodNotAllowed(t *testing.T) {
	r := newRig(t, nil)
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/v1/messages", "POST"},
		{"PUT", "/v1/users", "POST"},
		{"POST", "/v1/groups/g1", "GET, HEAD, PATCH, DELETE"},
		{"DELETE", "/v1/endpoints", "GET, HEAD"},
		{"OPTIONS", "/v1/sessions", "POST"},
	} {
		w := r.do(c.method, c.path, "tok-alice-phone", "")
		wantError(t, w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed)
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/v1/admin/bans", "GET, HEAD, POST"},
		{"POST", "/v1/admin/stats", "GET, HEAD"},
		{"GET", "/v1/admin/bans/b1", "DELETE"},
	} {
		w := r.do(c.method, c.path, adminToken, "")
		wantError(t, w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed)
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	wantError(t, r.do("GET", "/v1/admin/nothing", adminToken, ""), http.StatusNotFound, wire.CodeNotFound)
	// Without the admin token the admin paths tell nothing.
	if w := r.do("PUT", "/v1/admin/bans", "", ""); w.Header().Get("Allow") != "" {
		t.Errorf("unauthenticated: Allow %q", w.Header().Get("Allow"))
	} else {
		wantError(t, w, http.StatusUnauthorized, wire.CodeUnauthorized)
	}
	wantError(t, r.do("GET", "/v1/nothing", "", ""), http.StatusNotFound, wire.CodeNotFound)
	wantError(t, r.do("GET", "/v1/server/users", "", ""), http.StatusNotFound, wire.CodeNotFound)
	wantError(t, r.do("POST", "/v1/server/users", "", `{"user":"carol"}`), http.StatusNotFound, wire.CodeNotFound)
	if calls := r.core.took(); len(calls) != 0 {
		t.Fatalf("the core was called: %v", calls)
	}
	keyed := newRig(t, func(c *api.Config) { c.Server.Keys = []string{strings.Repeat("k", 32)} })
	wantError(t, keyed.do("GET", "/v1/server/users", "", ""), http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed)
}

// TestCORS: off unless origins are set; then an allowed origin's
// preflight is answered (204, methods, headers, max-age) and its requests
// carry Access-Control-Allow-Origin echoing it, with Vary: Origin; another
// origin gets no CORS header; "*" answers "*"; no answer ever allows
// credentials.
func TestCORS(t *testing.T) {
	preflight := func(r *rig, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("OPTIONS", "/v1/messages", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		return r.serve(req)
	}
	get := func(r *rig, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/groups", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Authorization", "Bearer tok-alice-phone")
		return r.serve(req)
	}
	noCORS := func(what string, w *httptest.ResponseRecorder) {
		t.Helper()
		for k := range w.Header() {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: %s: %v", what, k, w.Header())
			}
		}
	}
	off := newRig(t, nil)
	noCORS("off, preflight", preflight(off, "https://app.example"))
	noCORS("off, GET", get(off, "https://app.example"))

	on := newRig(t, func(c *api.Config) { c.CORSOrigins = []string{"https://app.example", "http://localhost:5173"} })
	w := preflight(on, "https://app.example")
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		h.Get("Access-Control-Max-Age") == "" || h.Get("Vary") != "Origin" {
		t.Fatalf("preflight: %d %v", w.Code, h)
	}
	w = get(on, "http://localhost:5173")
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:5173" || w.Header().Get("Vary") != "Origin" {
		t.Fatalf("GET: %d %v", w.Code, w.Header())
	}
	// The spec is a static document with a Vary of its own; Origin stays.
	spec := httptest.NewRequest("GET", "/v1/openapi.json", nil)
	spec.Header.Set("Origin", "https://app.example")
	spec.Header.Set("Accept-Encoding", "gzip")
	if w := on.serve(spec); w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!slices.Contains(w.Header().Values("Vary"), "Origin") || !slices.Contains(w.Header().Values("Vary"), "Accept-Encoding") {
		t.Fatalf("openapi.json: %d %v", w.Code, w.Header())
	}
	noCORS("another origin's preflight", preflight(on, "https://evil.example"))
	noCORS("another origin's GET", get(on, "https://evil.example"))
	noCORS("not the API", func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Origin", "https://app.example")
		return on.serve(req)
	}())

	any := newRig(t, func(c *api.Config) { c.CORSOrigins = []string{"*"} })
	for _, w := range []*httptest.ResponseRecorder{preflight(any, "https://x.example"), get(any, "https://y.example")} {
		if w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("*: %v", w.Header())
		}
	}
	for _, r := range []*rig{on, any} {
		for _, w := range []*httptest.ResponseRecorder{preflight(r, "https://app.example"), get(r, "https://app.example")} {
			if _, ok := w.Header()["Access-Control-Allow-Credentials"]; ok {
				t.Fatalf("credentials allowed: %v", w.Header())
			}
		}
	}
}

func TestParseCORSOrigins(t *testing.T) {
	got, err := api.ParseCORSOrigins(" https://App.example , http://localhost:5173/ ")
	if err != nil || strings.Join(got, " ") != "https://app.example http://localhost:5173" {
		t.Fatalf("ParseCORSOrigins = %q, %v", got, err)
	}
	if got, err := api.ParseCORSOrigins(""); err != nil || got != nil {
		t.Fatalf("empty: %q, %v", got, err)
	}
	for _, bad := range []string{"app.example", "https://app.example/path", "ftp://x", "*,https://a.example", "https://u:p@a.example", "https://a.example?q"} {
		if _, err := api.ParseCORSOrigins(bad); err == nil {
			t.Errorf("ParseCORSOrigins(%q) took it", bad)
		}
	}
}
