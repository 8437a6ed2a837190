// Package webchat serves /chat/, a small web chat for people: plain HTML and
// JavaScript embedded in imqttd, talking to the HTTP API for login, the
// conversation list and history, and to the broker over MQTT/WebSocket at
// /mqtt for everything live (sends with their acks, inbox events, sync, read).
//
// The page is built on the JavaScript SDK (sdk/js), whose modules it loads
// from /chat/sdk/ (served from sdk/js's embedded src/): the SDK keeps the
// sync cursor (in localStorage) and follows docs/protocol.md's client rules
// like the Go SDK: on every (re)connect it holds live events back, syncs
// from the cursor, then delivers the held events above it; a gap in ver
// starts a sync; an event at or below the cursor is a repeat and is
// dropped. Groups follow the same rules by seq, with a cursor per group: on
// every (re)connect and every 5 minutes the heads, then a sync of each group
// that moved (two group requests at a time); a group the heads no longer
// list is shown as left. Sends are resent with their cmid until acked.
// sdk/js/src/sequencer.js states the rules in full.
//
// The message lifecycle (docs/protocol.md#message-lifecycle) is shown as
// well: recalls, edits, reactions and deletes are items sequenced by ver or
// seq like messages and applied by one function, live or synced; receipts
// ("seen") and typing have no position and are shown as they come; replies
// show their quote. static/social.js adds contacts, presence, blocks, one's
// settings and conversation settings, and group administration, whose
// records in a group's log are sequenced by seq like its messages and shown
// as system lines. Every piece of user data goes in with textContent.
//
// static/media.js shows a message's media (docs/http.md#media): an image's
// thumbnail and, in an overlay, the image; any other file as a named link.
// Media needs the session's token, so it is fetched, never linked, and
// shown from blob: URLs (img-src blob: below). Links in text are made with
// DOM APIs, for http and https only. It also attaches a file: an upload with
// progress, then a send naming the media. static/groups-ui.js shows groups
// by name, creates groups, and below 700 px (chat.css) shows the list or the
// open conversation, not both.
//
// Nothing is loaded from elsewhere. static/mqtt.min.js is MQTT.js's browser
// build, vendored unchanged from the npm package mqtt@5.16.0
// (dist/mqtt.min.js, MIT, licence in static/mqtt.LICENSE.md), the version
// test/node/package-lock.json pins for the interoperability tests and
// sdk/js/package-lock.json for the SDK. To update it, change all three, copy
// the file and set MQTTJSSHA256.
package webchat

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"regexp"
	"strings"

	jssdk "github.com/imqtt/imqtt/sdk/js"
)

//go:embed static
var files embed.FS

// MQTTJSSHA256 is the SHA-256 of static/mqtt.min.js as published in
// mqtt@5.16.0 on npm.
const MQTTJSSHA256 = "f3cbeae580d3010048938ee370f2db0c15d16e6f7fc147cb32ae5510e571b387"

// Static is the embedded site, rooted at index.html, with the JavaScript
// SDK's modules under sdk/.
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return withSDK{site: sub, sdk: jssdk.FS()}
}

// withSDK is the page's files and, under sdk/, the SDK's. The directory sdk
// itself does not open: nothing lists it.
type withSDK struct{ site, sdk fs.FS }

func (u withSDK) Open(name string) (fs.File, error) {
	if rest, ok := strings.CutPrefix(name, "sdk/"); ok {
		return u.sdk.Open(rest)
	}
	if name == "sdk" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return u.site.Open(name)
}

// Handler serves the chat with paths relative to where it is mounted: "/" is
// the page. The API mounts it at /chat/ with the prefix stripped.
func Handler() http.Handler {
	site := Static()
	etags := map[string]string{}
	tag := func(dir string, fsys fs.FS) {
		_ = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			etags[dir+path] = `"` + hex.EncodeToString(sum[:12]) + `"`
			return nil
		})
	}
	tag("/", site.(withSDK).site)
	tag("/sdk/", site.(withSDK).sdk)
	etags["/"] = etags["/index.html"]
	fileServer := http.FileServerFS(site)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate every time: a new imqttd must not meet a cached old page.
		h.Set("Cache-Control", "no-cache")
		if tag, ok := etags[r.URL.Path]; ok {
			h.Set("ETag", tag) // http.ServeContent answers If-None-Match with 304
		}
		if r.URL.Path == "/index.html" { // FileServer would redirect to "./"
			r.URL.Path = "/"
		}
		fileServer.ServeHTTP(w, r)
	})
}

var hostRe = regexp.MustCompile(`^[A-Za-z0-9.\-:\[\]]{1,255}$`)

// csp allows scripts, styles and fetches from this origin only, and the MQTT
// WebSocket of this host ('self' covers ws: only in newer browsers).
func csp(host string) string {
	connect := "'self'"
	if hostRe.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		// MQTT.js runs its keep-alive timers in a worker made from a blob,
		// which browsers do not slow down in background tabs.
		"worker-src 'self' blob:",
		"style-src 'self'",
		"img-src 'self' data: blob:",
		"connect-src " + connect,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}
