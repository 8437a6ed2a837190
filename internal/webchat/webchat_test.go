package webchat

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerServesThePage(t *testing.T) {
	h := Handler()
	w := get(t, h, "GET", "/")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<script type="module" src="chat.js">`) {
		t.Fatalf("GET /: %d %q", w.Code, w.Body.String())
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self' ws://example.com wss://example.com"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("headers %v", w.Header())
	}
	tag := w.Header().Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	if w := get(t, h, "GET", "/", "If-None-Match", tag); w.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", w.Code)
	}
	for path, ctype := range map[string]string{"/chat.js": "text/javascript", "/sdk/index.js": "text/javascript", "/sdk/client.js": "text/javascript", "/sdk/sequencer.js": "text/javascript", "/social.js": "text/javascript", "/mqtt.min.js": "text/javascript", "/chat.css": "text/css"} {
		w := get(t, h, "GET", path)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Header().Get("ETag") == "" {
			t.Errorf("GET %s: %d %v", path, w.Code, w.Header())
		}
	}
	for _, path := range []string{"/nope.js", "/seq.js", "/sdk/", "/sdk", "/sdk/nope.js", "/sdk/../webchat.go"} {
		if w := get(t, h, "GET", path); w.Code != 404 && w.Code != 301 {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}
	if w := get(t, h, "POST", "/"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", w.Code)
	}
}

// A Host header that is not a host name does not reach the policy.
func TestCSPIgnoresOddHosts(t *testing.T) {
	if got := csp(`evil.com; script-src *`); strings.Contains(got, "evil") {
		t.Fatalf("csp: %q", got)
	}
}

// The vendored MQTT.js is the published file, unchanged.
func TestVendoredMQTTJS(t *testing.T) {
	b, err := fs.ReadFile(Static(), "mqtt.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != MQTTJSSHA256 {
		t.Fatalf("static/mqtt.min.js has SHA-256 %x, want %s (mqtt@5.16.0 dist/mqtt.min.js)", sum, MQTTJSSHA256)
	}
}
