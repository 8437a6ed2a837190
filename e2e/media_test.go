package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// request sends one HTTP request and returns the response with its body read.
func request(t testing.TB, method, url, token string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp, raw
}

// uploadRaw posts data as the raw body with contentType; it returns the
// status and the reply (an info or an error).
func uploadRaw(t testing.TB, s *testserver.Server, token, contentType string, data []byte, query string) (int, client.MediaInfo, wire.Error) {
	t.Helper()
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	resp, raw := request(t, "POST", s.HTTP+"/v1/media"+query, token, bytes.NewReader(data), h)
	return decodeMedia(t, resp, raw)
}

// uploadForm posts data as the multipart field "file".
func uploadForm(t testing.TB, s *testserver.Server, token, filename, contentType string, data []byte) (int, client.MediaInfo, wire.Error) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("caption", "before the file")
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": filename}))
	if contentType != "" {
		hdr.Set("Content-Type", contentType)
	}
	pw, _ := mw.CreatePart(hdr)
	_, _ = pw.Write(data)
	_ = mw.Close()
	resp, raw := request(t, "POST", s.HTTP+"/v1/media", token, &body, map[string]string{"Content-Type": mw.FormDataContentType()})
	return decodeMedia(t, resp, raw)
}

func decodeMedia(t testing.TB, resp *http.Response, raw []byte) (int, client.MediaInfo, wire.Error) {
	t.Helper()
	var info client.MediaInfo
	var e wire.Error
	if resp.StatusCode == http.StatusCreated {
		mustUnmarshal(t, raw, &info)
	} else {
		mustUnmarshal(t, raw, &e)
	}
	return resp.StatusCode, info, e
}

func mustUpload(t testing.TB, s *testserver.Server, token, contentType string, data []byte) client.MediaInfo {
	t.Helper()
	code, info, e := uploadRaw(t, s, token, contentType, data, "")
	if code != http.StatusCreated {
		t.Fatalf("upload %s: %d %+v", contentType, code, e)
	}
	return info
}

// mediaFiles lists the files under the server's media directory.
func mediaFiles(t testing.TB, s *testserver.Server) []string {
	t.Helper()
	return mediatest.Files(t, filepath.Join(s.Dir, "media"))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestMediaRoundTrip: a PNG as a multipart form and a JPEG as a raw body
// come back byte for byte with their sniffed type, SHA-256 and headers.
func TestMediaRoundTrip(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	png := mediatest.PNG(t, 640, 480)
	code, info, e := uploadForm(t, s, tok, "cat.png", "image/png", png)
	if code != http.StatusCreated || !strings.HasPrefix(info.ID, "m-") || info.Size != int64(len(png)) || info.Type != "image/png" ||
		info.SHA256 != sha(png) || info.Name != "cat.png" || info.Width != 640 || info.Height != 480 || !info.Thumb {
		t.Fatalf("upload PNG: %d %+v %+v", code, info, e)
	}
	resp, body := request(t, "GET", s.HTTP+"/v1/media/"+info.ID, tok, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, png) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
	}
	for k, want := range map[string]string{
		"Content-Type": "image/png", "ETag": `"` + sha(png) + `"`, "Content-Length": strconv.Itoa(len(png)),
		"Cache-Control": "private, max-age=31536000, immutable", "Accept-Ranges": "bytes",
		"X-Content-Type-Options": "nosniff", "Content-Disposition": `inline; filename=cat.png`,
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}

	jpg := mediatest.JPEG(t, 300, 200, 0)
	code, info, e = uploadRaw(t, s, tok, "", jpg, "?name=photo.jpg")
	if code != http.StatusCreated || info.Type != "image/jpeg" || info.SHA256 != sha(jpg) || info.Name != "photo.jpg" {
		t.Fatalf("upload JPEG: %d %+v %+v", code, info, e)
	}
	resp, body = request(t, "GET", s.HTTP+"/v1/media/"+info.ID, tok, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, jpg) || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("download JPEG: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// A name beyond ASCII is kept and sent back encoded (RFC 2231).
	code, info, e = uploadRaw(t, s, tok, "", jpg, "?name=%C3%A9t%C3%A9.jpg")
	resp, _ = request(t, "GET", s.HTTP+"/v1/media/"+info.ID, tok, nil, nil)
	if code != http.StatusCreated || info.Name != "été.jpg" || resp.Header.Get("Content-Disposition") != "inline; filename*=utf-8''%C3%A9t%C3%A9.jpg" {
		t.Fatalf("a UTF-8 name: %d %+v %+v %q", code, info, e, resp.Header.Get("Content-Disposition"))
	}
	// Something that is not media is an attachment, never shown inline.
	html := mustUpload(t, s, tok, "", []byte("<!DOCTYPE html><script>alert(1)</script>"))
	resp, _ = request(t, "GET", s.HTTP+"/v1/media/"+html.ID, tok, nil, nil)
	if html.Type != "text/html; charset=utf-8" || resp.Header.Get("Content-Disposition") != "attachment" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("HTML upload: %s, %v", html.Type, resp.Header)
	}
	// HEAD answers the headers alone.
	resp, body = request(t, "HEAD", s.HTTP+"/v1/media/"+info.ID, tok, nil, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(jpg)) {
		t.Fatalf("HEAD: %d %d %d", resp.StatusCode, len(body), resp.ContentLength)
	}
}

// TestMediaRange: Range answers exactly the bytes asked for; ETag,
// If-None-Match and If-Range work as RFC 9110 says.
func TestMediaRange(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	data := make([]byte, 100_000)
	_, _ = rand.Read(data)
	info := mustUpload(t, s, tok, "", data)
	url := s.HTTP + "/v1/media/" + info.ID
	etag := `"` + sha(data) + `"`
	get := func(h map[string]string) (*http.Response, []byte) { return request(t, "GET", url, tok, nil, h) }

	for _, c := range []struct {
		rng, contentRange string
		want              []byte
	}{
		{"bytes=10-19", "bytes 10-19/100000", data[10:20]},
		{"bytes=-5", "bytes 99995-99999/100000", data[99995:]},
		{"bytes=99990-", "bytes 99990-99999/100000", data[99990:]},
		{"bytes=99990-200000", "bytes 99990-99999/100000", data[99990:]},
		{"bytes=0-0", "bytes 0-0/100000", data[:1]},
	} {
		resp, body := get(map[string]string{"Range": c.rng})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, c.want) || resp.Header.Get("Content-Range") != c.contentRange {
			t.Errorf("%s: %d %q, %d bytes", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
		}
	}
	// Past the end: 416 with the size.
	resp, _ := get(map[string]string{"Range": "bytes=100000-"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != "bytes */100000" {
		t.Errorf("past the end: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	// Malformed, or a unit other than bytes: net/http answers 416 rather than guess.
	for _, bad := range []string{"bytes=abc", "bytes=20-10", "bytes=--1", "bytes=1-2-3", "pages=1-2"} {
		if resp, body := get(map[string]string{"Range": bad}); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || bytes.Contains(body, data[:64]) {
			t.Errorf("malformed %q: %d", bad, resp.StatusCode)
		}
	}
	// Several ranges: multipart/byteranges with each part exact.
	resp, body := get(map[string]string{"Range": "bytes=0-9,500-509,-3"})
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusPartialContent || mt != "multipart/byteranges" {
		t.Fatalf("multi-range: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range []struct {
		rng  string
		data []byte
	}{{"bytes 0-9/100000", data[:10]}, {"bytes 500-509/100000", data[500:510]}, {"bytes 99997-99999/100000", data[99997:]}} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(p)
		if p.Header.Get("Content-Range") != want.rng || !bytes.Equal(got, want.data) {
			t.Errorf("part %q: %q", want.rng, p.Header.Get("Content-Range"))
		}
	}
	// ETag: the SHA-256; If-None-Match answers 304 without a body.
	if resp, body := get(map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := get(map[string]string{"If-None-Match": `"other"`}); resp.StatusCode != 200 {
		t.Errorf("If-None-Match another: %d", resp.StatusCode)
	}
	// If-Range: the range if the ETag still matches, else everything.
	if resp, body := get(map[string]string{"Range": "bytes=0-3", "If-Range": etag}); resp.StatusCode != 206 || len(body) != 4 {
		t.Errorf("If-Range match: %d", resp.StatusCode)
	}
	if resp, body := get(map[string]string{"Range": "bytes=0-3", "If-Range": `"stale"`}); resp.StatusCode != 200 || len(body) != len(data) {
		t.Errorf("If-Range stale: %d", resp.StatusCode)
	}
}

// TestMediaThumb: thumbnails are JPEG of at most 320 px on the long side,
// turned upright by EXIF orientation.
func TestMediaThumb(t *testing.T) {
	s := testserver.Start(t)
	tok := account(t, s, "alice", "phone")
	for _, c := range []struct {
		name   string
		data   []byte
		w, h   int
		redTop bool // red in the top-right corner, not the top-left
	}{
		{"PNG 1000x500", mediatest.PNG(t, 1000, 500), 320, 160, false},
		{"JPEG 600x900", mediatest.JPEG(t, 600, 900, 0), 213, 320, false},
		{"JPEG 800x400 orientation 6", mediatest.JPEG(t, 800, 400, 6), 160, 320, true},
	} {
		info := mustUpload(t, s, tok, "", c.data)
		resp, body := request(t, "GET", s.HTTP+"/v1/media/"+info.ID+"/thumb", tok, nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("%s: %d %q", c.name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		img, err := jpeg.Decode(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Errorf("%s: thumbnail %dx%d, want %dx%d", c.name, b.Dx(), b.Dy(), c.w, c.h)
			continue
		}
		x := c.w / 4
		if c.redTop {
			x = c.w * 3 / 4
		}
		if !mediatest.IsRed(img.At(x, c.h/4)) || mediatest.IsRed(img.At(c.w-1-x, c.h/4)) {
			t.Errorf("%s: the red quadrant is not where it should be", c.name)
		}
		if etag := resp.Header.Get("ETag"); etag != `"`+sha(body)+`"` {
			t.Errorf("%s: thumbnail ETag %s", c.name, etag)
		}
	}
	// Audio has no thumbnail.
	wav := mustUpload(t, s, tok, "", mediatest.WAV(100))
	if resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+wav.ID+"/thumb", tok, nil, nil); resp.StatusCode != 404 {
		t.Errorf("thumbnail of a WAV: %d", resp.StatusCode)
	}
}

// TestMediaPermissions: the uploader reads; a recipient reads once a
// message carried the media to them; group members read what was sent to
// the group; anyone else gets 404 as if it did not exist; no token 401.
func TestMediaPermissions(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	carolTok := account(t, s, "carol", "phone")
	info := mustUpload(t, s, aliceTok, "", mediatest.PNG(t, 50, 50))
	status := func(token, suffix string) int {
		resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+info.ID+suffix, token, nil, nil)
		return resp.StatusCode
	}
	missing := "m-" + strings.Repeat("q", 26)
	if code := status(aliceTok, ""); code != 200 {
		t.Fatalf("uploader: %d", code)
	}
	if code := status("", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code := status("not-a-token", ""); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	for _, suffix := range []string{"", "/thumb"} {
		if code := status(bobTok, suffix); code != 404 {
			t.Fatalf("bob before any message, %q: %d", suffix, code)
		}
	}
	// Someone else's media and no media answer alike.
	resp, otherBody := request(t, "GET", s.HTTP+"/v1/media/"+info.ID, carolTok, nil, nil)
	resp2, missingBody := request(t, "GET", s.HTTP+"/v1/media/"+missing, carolTok, nil, nil)
	if resp.StatusCode != 404 || resp2.StatusCode != 404 || !bytes.Equal(otherBody, missingBody) {
		t.Fatalf("another's: %d %s; missing: %d %s", resp.StatusCode, otherBody, resp2.StatusCode, missingBody)
	}

	var ack wire.Ack
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "p1", To: "bob", Type: "image", Media: info.ID}, &ack); code != 200 {
		t.Fatalf("send: %d", code)
	}
	for _, suffix := range []string{"", "/thumb"} {
		if code := status(bobTok, suffix); code != 200 {
			t.Fatalf("bob after the message, %q: %d", suffix, code)
		}
		if code := status(carolTok, suffix); code != 404 {
			t.Fatalf("carol, %q: %d", suffix, code)
		}
	}
	// bob may pass it on (he can read it); then carol can too.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "fwd", To: "carol", Type: "image", Media: info.ID}, nil); code != 200 {
		t.Fatalf("forward: %d", code)
	}
	if code := status(carolTok, ""); code != 200 {
		t.Fatalf("carol after the forward: %d", code)
	}

	// A group message grants the group: members read, others do not.
	daveTok := account(t, s, "dave", "phone")
	erinTok := account(t, s, "erin", "phone")
	group := mustUpload(t, s, aliceTok, "", mediatest.WAV(100))
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "g", Members: []string{"dave"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "g1", Group: "g1", Type: "audio", Media: group.ID}, nil); code != 200 {
		t.Fatalf("group send: %d", code)
	}
	for tok, want := range map[string]int{daveTok: 200, erinTok: 404, bobTok: 404} {
		if resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+group.ID, tok, nil, nil); resp.StatusCode != want {
			t.Errorf("group media: %d, want %d", resp.StatusCode, want)
		}
	}
}

// TestMediaAttach: a message may carry only media its sender may read (an
// error with a code, over MQTT and HTTP); the recipient's message event
// carries a small thumbnail or voice note inline, over real MQTT.
func TestMediaAttach(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	carolTok := account(t, s, "carol", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	carol := connect(t, s.MQTT, "carol", "phone", carolTok)

	img := mustUpload(t, s, aliceTok, "", mediatest.PNG(t, 400, 300))
	voice := mediatest.WAV(1500)
	note := mustUpload(t, s, aliceTok, "audio/wav", voice)

	// carol refers to alice's media: refused, nothing stored or delivered.
	carol.publish(wire.TopicSend, wire.Send{CMID: "steal", To: "bob", Type: "image", Media: img.ID})
	if _, werr := carol.awaitReply("steal"); werr == nil || werr.Code != wire.CodeNotFound {
		t.Fatalf("MQTT send of another's media: %+v", werr)
	}
	var e wire.Error
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", carolTok, wire.Send{CMID: "steal2", To: "bob", Type: "image", Media: img.ID}, &e); code != 404 || e.Code != wire.CodeNotFound {
		t.Fatalf("HTTP send of another's media: %d %+v", code, e)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "none", To: "bob", Type: "image", Media: "m-" + strings.Repeat("z", 26)}, &e); code != 404 || e.Code != wire.CodeNotFound {
		t.Fatalf("HTTP send of no media: %d %+v", code, e)
	}

	// alice sends the image and the voice note over MQTT.
	if _, werr := alice.sendMedia("bob", "i1", "image", img.ID); werr != nil {
		t.Fatal(werr)
	}
	if _, werr := alice.sendMedia("bob", "a1", "audio", note.ID); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "bob gets both", 10*time.Second, func() bool { return len(bob.msgs()) == 2 })
	if len(bob.msgs()) != 2 || len(carol.msgs()) != 0 {
		t.Fatalf("bob has %d, carol %d messages", len(bob.msgs()), len(carol.msgs()))
	}
	_, thumb := request(t, "GET", s.HTTP+"/v1/media/"+img.ID+"/thumb", bobTok, nil, nil)
	for _, m := range bob.msgs() {
		switch m.CMID {
		case "i1":
			if m.Media != img.ID || m.Inline == nil || m.Inline.Type != "image/jpeg" || !bytes.Equal(m.Inline.Data, thumb) {
				t.Errorf("image message %+v", m)
			}
		case "a1":
			if m.Media != note.ID || m.Inline == nil || m.Inline.Type != "audio/wav" || !bytes.Equal(m.Inline.Data, voice) {
				t.Errorf("voice message %+v", m)
			}
		}
	}
	// The inline bytes are stored with the message: sync gives them too.
	var b wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?since=0", bobTok, nil, &b)
	if len(b.Items) != 2 || b.Items[1].Inline == nil || !bytes.Equal(b.Items[1].Inline.Data, voice) {
		t.Fatalf("sync: %+v", b.Items)
	}
}

// sendMedia publishes a message referring to media and waits for its reply.
func (d *device) sendMedia(to, cmid, typ, media string) (wire.Ack, *wire.Error) {
	d.t.Helper()
	d.publish(wire.TopicSend, wire.Send{CMID: cmid, To: to, Type: typ, Media: media})
	return d.awaitReply(cmid)
}

// TestMediaBadInput: each bad upload or request is a clear 4xx with a code,
// and no partial file is left behind.
func TestMediaBadInput(t *testing.T) {
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Media.MaxImage, c.Media.MaxFile, c.Media.FFmpeg = 64<<10, 32<<10, "off"
	})
	tok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	kept := mustUpload(t, s, tok, "", mediatest.PNG(t, 20, 20))
	before := mediaFiles(t, s)
	png := mediatest.PNG(t, 100, 100)
	big := mediatest.NoiseJPEG(t, 300, 300)
	if len(big) <= 64<<10 {
		t.Fatalf("test image of %d bytes is not over the limit", len(big))
	}

	for _, c := range []struct {
		name, contentType string
		data              []byte
		query             string
		status            int
		code              string
	}{
		{"empty", "", nil, "", 400, wire.CodeBadRequest},
		{"an image over its limit", "image/jpeg", big, "", 413, wire.CodeTooLarge},
		{"a file over its limit", "", bytes.Repeat([]byte("text "), 8000), "", 413, wire.CodeTooLarge},
		{"a PNG that says it is a JPEG", "image/jpeg", png, "", 415, "type_mismatch"},
		{"text that says it is an image", "image/png", []byte("hello"), "", 415, "type_mismatch"},
		{"a PNG that says it is a video", "video/mp4", png, "", 415, "type_mismatch"},
		{"a path as the name", "", png, "?name=..%2F..%2Fetc%2Fpasswd", 400, wire.CodeBadRequest},
		{"private without ffmpeg", "", png, "?private=1", 501, "hls_unavailable"},
	} {
		code, _, e := uploadRaw(t, s, tok, c.contentType, c.data, c.query)
		if code != c.status || e.Code != c.code || e.Message == "" {
			t.Errorf("%s: %d %+v, want %d %s", c.name, code, e, c.status, c.code)
		}
	}
	// The multipart form's own faults.
	if code, _, e := uploadForm(t, s, tok, "../../etc/passwd", "", png); code != 400 || e.Code != wire.CodeBadRequest {
		t.Errorf("a path as the multipart file name: %d %+v", code, e)
	}
	if code, _, e := uploadForm(t, s, tok, "photo.png", "image/gif", png); code != 415 || e.Code != "type_mismatch" {
		t.Errorf("a multipart part that lies: %d %+v", code, e)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("other", "x")
	_ = mw.Close()
	resp, raw := request(t, "POST", s.HTTP+"/v1/media", tok, &form, map[string]string{"Content-Type": mw.FormDataContentType()})
	if code, _, e := decodeMedia(t, resp, raw); code != 400 || e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, `"file"`) {
		t.Errorf("no file field: %d %+v", code, e)
	}
	resp, _ = request(t, "POST", s.HTTP+"/v1/media", tok, strings.NewReader("junk"), map[string]string{"Content-Type": "multipart/form-data; boundary=xyz"})
	if resp.StatusCode != 400 {
		t.Errorf("malformed multipart: %d", resp.StatusCode)
	}
	// Cut off: the body ends before its Content-Length (raw and multipart).
	if code := cutUpload(t, s, tok, "image/png", png, len(png), len(png)/2); code != 400 {
		t.Errorf("cut off raw body: %d", code)
	}
	var whole bytes.Buffer
	mw = multipart.NewWriter(&whole)
	fw, _ := mw.CreateFormFile("file", "x.png")
	_, _ = fw.Write(png)
	_ = mw.Close()
	if code := cutUpload(t, s, tok, mw.FormDataContentType(), whole.Bytes(), whole.Len(), whole.Len()-100); code != 400 {
		t.Errorf("cut off multipart body: %d", code)
	}
	// The client vanishes midway: the server finds out and cleans up.
	vanish(t, s, tok, mediatest.NoiseJPEG(t, 60, 60))
	// Path tricks and malformed IDs in URLs: 404 (400 for a . or ..
	// segment, which no route has), never a file outside.
	for _, path := range []string{
		"/v1/media/..%2F..%2Fpebble%2FCURRENT", "/v1/media/" + kept.ID + "%2F..%2F..", "/v1/media/M-" + strings.Repeat("A", 26),
		"/v1/media/" + kept.ID[:10], "/v1/media/" + kept.ID + "/hls/..%2Finfo.json", "/v1/media/" + kept.ID + "/hls/index.m3u8",
		"/v1/media/" + kept.ID + "/hls/key", "/v1/media/" + kept.ID + "/info.json", "/v1/media/tmp",
	} {
		resp, body := request(t, "GET", s.HTTP+path, tok, nil, nil)
		var e wire.Error
		_ = json.Unmarshal(body, &e)
		want, code := 404, wire.CodeNotFound
		if strings.Contains(path, "..") {
			want, code = 400, wire.CodeBadRequest
		}
		if resp.StatusCode != want || e.Code != code {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	if after := mediaFiles(t, s); !slices.Equal(after, before) {
		t.Fatalf("files left: %q, before %q", after, before)
	}
	// bob reading alice's media: 404, and the file is still there for her.
	if resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+kept.ID, bobTok, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("bob: %d", resp.StatusCode)
	}
	if resp, _ := request(t, "GET", s.HTTP+"/v1/media/"+kept.ID, tok, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("alice: %d", resp.StatusCode)
	}
}

// cutUpload sends a request declaring length bytes, sends only the first
// send of body, closes its side and returns the status of the answer.
func cutUpload(t *testing.T, s *testserver.Server, token, contentType string, body []byte, length, send int) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.HTTP, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/media HTTP/1.1\r\nHost: imqtt\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		token, contentType, length)
	if _, err := conn.Write(body[:send]); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// vanish starts an upload, waits until the server is storing it, then
// drops the connection, and waits for the staging area to empty.
func vanish(t *testing.T, s *testserver.Server, token string, body []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.HTTP, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/media HTTP/1.1\r\nHost: imqtt\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", token, len(body))
	_, _ = conn.Write(body[:len(body)/2])
	staging := filepath.Join(s.Dir, "media", "tmp")
	wait.For(t, "the upload to be staged", 10*time.Second, func() bool {
		entries, _ := os.ReadDir(staging)
		return len(entries) > 0
	})
	conn.Close()
	wait.For(t, "the staged upload to go", 10*time.Second, func() bool {
		entries, _ := os.ReadDir(staging)
		return len(entries) == 0
	})
}

// TestMediaPrivateVideo: a private video is served as AES-128 HLS to
// allowed users: the playlist, the segments and the key, each
// authenticated; decrypted segments are MPEG-TS.
func TestMediaPrivateVideo(t *testing.T) {
	mediatest.FFmpeg(t)
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	video := mediatest.Video(t, 8, 160, 120)
	code, info, e := uploadRaw(t, s, aliceTok, "video/mp4", video, "?private=1")
	if code != 201 || !info.HLS || info.Type != "video/mp4" || !info.Thumb {
		t.Fatalf("private upload: %d %+v %+v", code, info, e)
	}
	hls := s.HTTP + "/v1/media/" + info.ID + "/hls/"
	for _, name := range []string{"index.m3u8", "key", "seg00000.ts"} {
		if resp, _ := request(t, "GET", hls+name, "", nil, nil); resp.StatusCode != 401 {
			t.Errorf("%s without a token: %d", name, resp.StatusCode)
		}
		if resp, _ := request(t, "GET", hls+name, bobTok, nil, nil); resp.StatusCode != 404 {
			t.Errorf("%s for bob: %d", name, resp.StatusCode)
		}
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, wire.Send{CMID: "v", To: "bob", Type: "video", Media: info.ID}, nil); code != 200 {
		t.Fatalf("send: %d", code)
	}
	resp, playlist := request(t, "GET", hls+"index.m3u8", bobTok, nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("playlist: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, key := request(t, "GET", hls+"key", bobTok, nil, nil)
	if resp.StatusCode != 200 || len(key) != 16 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("key: %d, %d bytes, %q", resp.StatusCode, len(key), resp.Header.Get("Cache-Control"))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	var iv []byte
	segments, seq := 0, uint64(0)
	for _, line := range strings.Split(string(playlist), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-KEY:"):
			if !strings.Contains(line, "METHOD=AES-128") || !strings.Contains(line, `URI="key"`) {
				t.Fatalf("key line %q", line)
			}
			iv = nil
			if _, v, ok := strings.Cut(line, "IV=0x"); ok {
				iv, _ = hex.DecodeString(strings.SplitN(v, ",", 2)[0])
			}
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			resp, seg := request(t, "GET", hls+line, bobTok, nil, nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp2t" || len(seg)%16 != 0 || len(seg) == 0 {
				t.Fatalf("segment %s: %d, %d bytes", line, resp.StatusCode, len(seg))
			}
			segIV := iv
			if segIV == nil {
				segIV = make([]byte, 16)
				binary.BigEndian.PutUint64(segIV[8:], seq)
			}
			plain := make([]byte, len(seg))
			cipher.NewCBCDecrypter(block, segIV).CryptBlocks(plain, seg)
			if plain[0] != 0x47 || plain[188] != 0x47 {
				t.Fatalf("segment %s does not decrypt to MPEG-TS", line)
			}
			segments++
			seq++
		}
	}
	if segments < 2 {
		t.Fatalf("%d segments of an 8 s video", segments)
	}
	// The original stays readable by the same people.
	if resp, body := request(t, "GET", s.HTTP+"/v1/media/"+info.ID, bobTok, nil, map[string]string{"Range": "bytes=0-7"}); resp.StatusCode != 206 || !bytes.Equal(body, video[:8]) {
		t.Fatalf("the original: %d", resp.StatusCode)
	}
	// private is for video only.
	if code, _, e := uploadRaw(t, s, aliceTok, "", mediatest.PNG(t, 10, 10), "?private=1"); code != 400 || e.Code != wire.CodeBadRequest {
		t.Fatalf("private PNG: %d %+v", code, e)
	}
}

// buildCLI compiles cmd/imqtt once per test binary.
var buildCLI = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "imqtt-cli")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "imqtt")
	// In the server's module (the repository's root), whose go.sum holds
	// the CLI's dependencies: this module does not import the CLI.
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/imqtt")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestMediaCLI: imqtt upload, send --file and download.
func TestMediaCLI(t *testing.T) {
	bin, err := buildCLI()
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t)
	account(t, s, "alice", "phone")
	account(t, s, "bob", "phone")
	account(t, s, "carol", "phone")
	dir := t.TempDir()
	run := func(user string, wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "IMQTT_SERVER="+s.HTTP, "IMQTT_HOME="+filepath.Join(dir, user), "IMQTT_MQTT="+s.MQTT)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if (err == nil) != wantOK {
			t.Fatalf("%s: imqtt %q: %v\n%s", user, args, err, stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		run(u, true, "login", u, "--password", "secret-"+u)
	}
	photo := filepath.Join(dir, "photo.jpg")
	jpg := mediatest.JPEG(t, 500, 300, 0)
	if err := os.WriteFile(photo, jpg, 0o600); err != nil {
		t.Fatal(err)
	}
	var up client.MediaInfo
	mustUnmarshal(t, []byte(run("alice", true, "upload", photo)), &up)
	if up.Type != "image/jpeg" || up.SHA256 != sha(jpg) || up.Name != "photo.jpg" {
		t.Fatalf("upload: %+v", up)
	}
	var ack wire.Ack
	mustUnmarshal(t, []byte(run("alice", true, "send", "--to", "bob", "--file", photo, "look at this")), &ack)
	if ack.ID == "" {
		t.Fatalf("ack %+v", ack)
	}
	var b wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?since=0", login(t, s, "bob", "web"), nil, &b)
	if len(b.Items) != 1 {
		t.Fatalf("bob's messages: %+v", b.Items)
	}
	m := b.Items[0]
	var meta struct {
		Name string
		Size int64
		W, H int
	}
	_ = json.Unmarshal(m.Meta, &meta)
	if m.Type != "image" || m.Body != "look at this" || m.Media == "" || m.Media == up.ID || m.Inline == nil ||
		meta.Name != "photo.jpg" || meta.Size != int64(len(jpg)) || meta.W != 500 || meta.H != 300 {
		t.Fatalf("bob got %+v (meta %s)", m, m.Meta)
	}
	out := filepath.Join(dir, "got.jpg")
	var got client.MediaInfo
	mustUnmarshal(t, []byte(run("bob", true, "download", m.Media, "-o", out)), &got)
	if data, _ := os.ReadFile(out); !bytes.Equal(data, jpg) || got.SHA256 != sha(jpg) || got.Type != "image/jpeg" {
		t.Fatalf("download: %+v", got)
	}
	if stdout := run("bob", true, "download", m.Media); stdout != string(jpg) {
		t.Fatal("download to stdout differs")
	}
	if msg := run("carol", false, "download", m.Media, "-o", filepath.Join(dir, "carol.jpg")); !strings.Contains(msg, "not_found") {
		t.Fatalf("carol's download: %s", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "carol.jpg")); err == nil {
		t.Fatal("a failed download left a file")
	}
	// A text file goes as type file.
	notes := filepath.Join(dir, "notes.txt")
	_ = os.WriteFile(notes, []byte("some notes"), 0o600)
	run("alice", true, "send", "--file="+notes, "--to", "bob")
	httpJSON(t, "GET", s.HTTP+"/v1/sync?since=1", login(t, s, "bob", "web"), nil, &b)
	if len(b.Items) != 1 || b.Items[0].Type != "file" {
		t.Fatalf("text file sent as %+v", b.Items)
	}
}

// TestMediaSDK: the Go SDK's Upload and Download, and their errors.
func TestMediaSDK(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	h := &client.HTTP{Server: s.HTTP, Token: account(t, s, "alice", "phone")}
	wav := mediatest.WAV(4000)
	info, err := h.Upload(ctx, bytes.NewReader(wav), -1, client.UploadOptions{Name: "hello.wav"})
	if err != nil || info.Type != "audio/wav" || info.Kind() != "audio" || info.Size != int64(len(wav)) {
		t.Fatalf("upload: %+v %v", info, err)
	}
	var buf bytes.Buffer
	got, err := h.Download(ctx, info.ID, &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), wav) || got.SHA256 != info.SHA256 {
		t.Fatalf("download: %+v %v", got, err)
	}
	_, err = h.Upload(ctx, bytes.NewReader(wav), int64(len(wav)), client.UploadOptions{ContentType: "image/png"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != "type_mismatch" {
		t.Fatalf("a lying type: %v", err)
	}
	_, err = h.Download(ctx, "m-"+strings.Repeat("c", 26), io.Discard)
	if !errors.As(err, &we) || we.Code != wire.CodeNotFound {
		t.Fatalf("no such media: %v", err)
	}
}

// BenchmarkMediaHTTP measures upload and download throughput through the
// whole daemon over loopback HTTP (file type: no thumbnail in the way).
func BenchmarkMediaHTTP(b *testing.B) {
	s := testserver.Start(b)
	ctx := context.Background()
	h := &client.HTTP{Server: s.HTTP, Token: account(b, s, "alice", "phone")}
	for _, size := range []int{1 << 20, 64 << 20} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		name := fmt.Sprintf("size=%dMiB", size>>20)
		var id string
		b.Run("upload/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				info, err := h.Upload(ctx, bytes.NewReader(data), int64(size), client.UploadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				id = info.ID
			}
		})
		b.Run("download/"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Download(ctx, id, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
