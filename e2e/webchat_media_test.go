package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/media/mediatest"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// mediaPage is what the web chat shows of media, links, group names and
// its layout (static/media.js, static/groups-ui.js, chat.css).
type mediaPage struct {
	Width    int         `json:"width"`
	Title    string      `json:"title"`
	GroupID  string      `json:"group_id"` // the open group's "# id · n members" line
	Convs    []mediaConv `json:"convs"`
	List     bool        `json:"list"`     // the conversation list is shown
	Chat     bool        `json:"chat"`     // the conversation panel is shown
	Back     bool        `json:"back"`     // the back button is shown
	Send     bool        `json:"send"`     // the Send button is shown whole, inside the window
	Attach   bool        `json:"attach"`   // the attach button is likewise
	Overflow bool        `json:"overflow"` // the page is wider than the window
	Msgs     []mediaMsg  `json:"msgs"`
	Viewer   struct {
		Open  bool   `json:"open"`
		State string `json:"state"`
		Width int    `json:"width"` // the full view's image, in image pixels
	} `json:"viewer"`
	Upload   string `json:"upload"` // the upload bar's percentage while shown
	Error    string `json:"error"`
	NewGroup string `json:"new_group"` // the create form's error line
	Status   string `json:"status"`
}

type mediaConv struct {
	Key     string `json:"key"`
	Name    string `json:"name"`
	Title   string `json:"title"`
	Preview string `json:"preview"` // what the list shows of the last message
}

type mediaMsg struct {
	ID     string      `json:"id"`
	From   string      `json:"from"`
	Status string      `json:"status"`
	Text   string      `json:"text"` // the body's text, a file's name and size included
	Links  []mediaLink `json:"links"`
	Thumb  string      `json:"thumb"`   // the thumbnail's src scheme: "blob", "data" or ""
	State  string      `json:"state"`   // the thumbnail's: loading, ok, failed or large (waits for a tap)
	ThumbW int         `json:"thumb_w"` // its natural width once loaded
	File   string      `json:"file"`    // a file link's name
}

type mediaLink struct {
	Href   string `json:"href"`
	Target string `json:"target"`
	Rel    string `json:"rel"`
	Text   string `json:"text"`
}

const mediaPageJS = `(() => {
  const $ = (s) => document.querySelector(s);
  const q = (s, e = document) => [...e.querySelectorAll(s)];
  const t = (e) => (e ? e.textContent : '');
  const shown = (e) => !!e && e.getClientRects().length > 0;
  const whole = (e) => {
    if (!shown(e)) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.left >= 0 && r.right <= innerWidth + 0.5 && r.top >= 0 && r.bottom <= innerHeight + 0.5;
  };
  const img = $('#viewer-img');
  return {
    width: innerWidth,
    title: t($('#chat-title')),
    group_id: t($('#group-info .g-id')),
    convs: q('#convs .conv').map((li) => ({key: li.dataset.key, name: t(li.querySelector('.name')), title: li.title || '', preview: t(li.querySelector('.preview'))})),
    list: shown($('aside')),
    chat: shown($('#chat')),
    back: shown($('#back')),
    send: whole($('#composer button[type=submit]')),
    attach: whole($('#attach-btn')),
    overflow: document.documentElement.scrollWidth > innerWidth,
    msgs: q('#messages .msg').map((li) => {
      const b = li.querySelector('.body');
      const th = b && b.querySelector('img.thumb-img');
      const src = th ? th.getAttribute('src') || '' : '';
      return {id: li.dataset.id || '', from: li.dataset.from, status: li.dataset.status, text: t(b),
        links: b ? q('a:not(.file)', b).map((a) => ({href: a.getAttribute('href'), target: a.target, rel: a.rel, text: a.textContent})) : [],
        thumb: src.startsWith('blob:') ? 'blob' : src.startsWith('data:') ? 'data' : '',
        state: th ? th.closest('.thumb').dataset.state || '' : '',
        thumb_w: th && th.complete ? th.naturalWidth : 0,
        file: t(b && b.querySelector('a.file .file-name'))};
    }),
    viewer: {open: !$('#viewer').hidden, state: $('#viewer').dataset.state || '', width: img.complete && img.getAttribute('src') ? img.naturalWidth : 0},
    upload: $('#upload').hidden ? '' : $('#upload').dataset.done || '0',
    error: t($('#chat-error')),
    new_group: t($('#new-group-error')),
    status: $('#status').dataset.state,
  };
})()`

func (tb *tab) media() mediaPage {
	tb.t.Helper()
	p, err := chromedp.Run(tb.ctx, chromedp.Evaluate[mediaPage](mediaPageJS))
	if err != nil {
		tb.t.Fatalf("%s's page: %v", tb.name, err)
	}
	return p
}

func (tb *tab) waitMedia(what string, cond func(mediaPage) bool) mediaPage {
	tb.t.Helper()
	var p mediaPage
	wait.ForErr(tb.t, tb.name+": "+what, 10*time.Second, func() error {
		if p = tb.media(); cond(p) {
			return nil
		}
		raw, _ := json.MarshalIndent(p, "", "  ")
		return fmt.Errorf("page:\n%s", raw)
	})
	return p
}

// resize makes the tab's window width × height CSS pixels.
func (tb *tab) resize(width, height int64) {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(width, height))
}

// attach picks a file for the composer's attach button, as a person
// choosing one would (the page gets it through the input's change event).
func (tb *tab) attach(name, typ string, data []byte) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => {
  const b = Uint8Array.from(atob(%q), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([b], %q, {type: %q}));
  const input = document.querySelector('#attach');
  input.files = dt.files;
  input.dispatchEvent(new Event('change'));
  return true;
})()`, base64.StdEncoding.EncodeToString(data), name, typ)
	if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](js)); err != nil {
		tb.t.Fatalf("%s's page: attach %s: %v", tb.name, name, err)
	}
}

// key presses one key in the page.
func (tb *tab) key(k string) {
	tb.t.Helper()
	tb.do(chromedp.KeyEvent(k))
}

// byText is the message whose text contains s, or nil.
func (p mediaPage) byText(s string) *mediaMsg {
	for i := range p.Msgs {
		if strings.Contains(p.Msgs[i].Text, s) {
			return &p.Msgs[i]
		}
	}
	return nil
}

func (p mediaPage) conv(key string) mediaConv {
	for _, c := range p.Convs {
		if c.Key == key {
			return c
		}
	}
	return mediaConv{}
}

// TestWebChatMedia: alice at 1280 px and bob at 360 px, in one browser.
// alice creates a named group with bob from her page (an unknown member
// refused first), bob one with alice from his; both see each by its name,
// and a rename updates both. Links in messages are clickable (http only: a
// javascript: URL stays text). An image attached on alice's page is
// uploaded and sent; both see its thumbnail, fetched with their token, and
// open the full image, which Escape and a click close. A file is a named
// link that bob downloads. A file too large and one whose bytes belie its
// type are refused with their codes, and nothing is sent. At 360 and
// 500 px the list and the conversation take turns (back closes the
// conversation: what comes then is unread), the Send button is in view
// and nothing is wider than the window.
//
// IMQTT_DOCS_SHOTS=1 writes the two screenshots of docs/ (webchat-1280.png,
// webchat-360.png) from this test:
//
//	cd e2e && IMQTT_DOCS_SHOTS=1 go test -run TestWebChatMedia .
func TestWebChatMedia(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t, func(c *daemon.Config) {
		c.Media.MaxImage, c.Media.MaxFile, c.Media.FFmpeg = 256<<10, 32<<10, "off"
	})
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	shots := artifactsDir(t, "webchat-media")
	url := s.HTTP + "/chat/"

	// One browser (starting one is the slow part): alice in its default
	// profile, bob in a browser context of his own (his own storage).
	b := startBrowser(t, chromium, "alice")
	at := b.open(url)
	at.resize(1280, 800)
	at.login("alice", "secret-alice")
	bt := b.open(url, chromedp.WithNewBrowserContext())
	bt.name = "bob"
	bt.resize(360, 740)
	bt.login("bob", "secret-bob")
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(bt.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
		BrowserContextID: chromedp.FromContext(bt.ctx).BrowserContextID,
	}); err != nil {
		t.Fatal(err)
	}

	// The narrow page starts on the list, with nothing wider than the window.
	bt.waitMedia("bob's list at 360 px", func(p mediaPage) bool {
		return p.Width == 360 && p.List && !p.Chat && !p.Overflow
	})

	// alice creates a group from her page: a bad member is refused first.
	at.click(`#new-group-btn`)
	at.typeInto(`#new-group input[name=gname]`, "Weekend trip")
	at.typeInto(`#new-group input[name=members]`, "bob, nobody")
	at.click(`#new-group button[type=submit]`)
	at.waitMedia("the unknown member refused", func(p mediaPage) bool {
		return strings.Contains(p.NewGroup, "("+wire.CodeNoSuchUser+")")
	})
	var groups wire.Groups
	httpJSON(t, "GET", s.HTTP+"/v1/groups", bobTok, nil, &groups)
	if len(groups.Groups) != 0 {
		t.Fatalf("a refused create made %+v", groups.Groups)
	}
	at.typeInto(`#new-group input[name=members]`, "bob")
	at.click(`#new-group button[type=submit]`)
	p := at.waitMedia("the group open, by name", func(p mediaPage) bool {
		return p.Title == "Weekend trip" && strings.HasPrefix(p.GroupID, "# ") && p.NewGroup == "" &&
			p.List && p.Chat && !p.Back && p.Send && !p.Overflow // 1280 px: both panes, no back button
	})
	httpJSON(t, "GET", s.HTTP+"/v1/groups", bobTok, nil, &groups)
	if len(groups.Groups) != 1 || groups.Groups[0].Name != "Weekend trip" || groups.Groups[0].Owner != "alice" {
		t.Fatalf("bob's groups: %+v", groups.Groups)
	}
	gid := groups.Groups[0].ID
	key := "#" + gid
	if c := p.conv(key); c.Name != "Weekend trip" || c.Title != "# "+gid {
		t.Errorf("alice's row of the group: %+v", c)
	}
	bt.waitMedia("the group in bob's list, by name", func(p mediaPage) bool { return p.conv(key).Name == "Weekend trip" })

	// bob creates one from his phone: the page turns to it; back, the list.
	bt.click(`#new-group-btn`)
	bt.typeInto(`#new-group input[name=gname]`, "Dinner")
	bt.typeInto(`#new-group input[name=members]`, "alice")
	bt.click(`#new-group button[type=submit]`)
	bt.waitMedia("bob's new group open", func(p mediaPage) bool {
		return p.Title == "Dinner" && p.Chat && !p.List && p.Back && p.Send && !p.Overflow
	})
	bt.click(`#back`)
	bt.waitMedia("bob's list again", func(p mediaPage) bool { return p.List && !p.Chat })
	at.waitMedia("bob's group in alice's list, by name", func(p mediaPage) bool {
		for _, c := range p.Convs {
			if c.Name == "Dinner" && c.Key != key {
				return true
			}
		}
		return false
	})

	// A link, and a javascript: URL that must stay text.
	at.send("plan: https://example.com/trip?day=1&x=(a), not javascript:alert(1)")
	bt.click(fmt.Sprintf(`#convs .conv[data-group=%q]`, gid))
	p = bt.waitMedia("bob in the group, the list gone, the link shown", func(p mediaPage) bool {
		m := p.byText("plan:")
		return p.Chat && !p.List && p.Back && p.Send && p.Attach && !p.Overflow && p.Title == "Weekend trip" && m != nil && len(m.Links) == 1
	})
	want := mediaLink{Href: "https://example.com/trip?day=1&x=(a)", Target: "_blank", Rel: "noopener noreferrer", Text: "https://example.com/trip?day=1&x=(a)"}
	if m := p.byText("plan:"); m.Links[0] != want || m.Text != "plan: https://example.com/trip?day=1&x=(a), not javascript:alert(1)" {
		t.Errorf("the link shown as %+v in %q, want %+v", m.Links, m.Text, want)
	}

	// An image: uploaded from alice's page, sent, its thumbnail on both.
	photo := photoPNG(t)
	at.attach("beach.png", "image/png", photo)
	at.waitMedia("alice's image acked, its thumbnail shown", func(p mediaPage) bool {
		return len(p.Msgs) == 2 && p.Msgs[1].Status == "acked" && p.Msgs[1].Thumb == "blob" && p.Msgs[1].ThumbW == 320 && p.Error == ""
	})
	p = bt.waitMedia("bob's thumbnail", func(p mediaPage) bool {
		return len(p.Msgs) == 2 && p.Msgs[1].Thumb == "blob" && p.Msgs[1].ThumbW == 320
	})
	if p.Msgs[1].From != "alice" || p.Msgs[1].Text != "" {
		t.Errorf("the image message: %+v", p.Msgs[1])
	}
	at.waitMedia("the list's preview of the image", func(p mediaPage) bool { return p.conv(key).Preview == "you: Photo" })
	bt.waitMedia("bob's preview of it", func(p mediaPage) bool { return p.conv(key).Preview == "alice: Photo" })
	bt.click(`#messages .msg .thumb`)
	bt.waitMedia("the full image", func(p mediaPage) bool { return p.Viewer.Open && p.Viewer.State == "ok" && p.Viewer.Width == 640 })
	bt.key(kb.Escape)
	bt.waitMedia("the full view closed by Escape", func(p mediaPage) bool { return !p.Viewer.Open })
	bt.click(`#messages .msg .thumb`)
	bt.waitMedia("the full view again", func(p mediaPage) bool { return p.Viewer.Open })
	bt.click(`#viewer`)
	bt.waitMedia("the full view closed by a click", func(p mediaPage) bool { return !p.Viewer.Open })
	at.click(`#messages .msg .thumb`)
	at.waitMedia("alice's full image", func(p mediaPage) bool { return p.Viewer.Open && p.Viewer.State == "ok" && p.Viewer.Width == 640 })
	at.key(kb.Escape)
	at.waitMedia("alice's full view closed", func(p mediaPage) bool { return !p.Viewer.Open })

	// A file with a caption: a named link, downloaded with bob's token.
	notes := []byte(strings.Repeat("bring sunscreen\n", 200))
	// The upload bar's states are recorded as it changes.
	at.evalAsync(`new Promise((ok) => {
  const bar = document.querySelector('#upload');
  window.uploadBar = [];
  new MutationObserver(() => bar.hidden || uploadBar.push(bar.dataset.done)).observe(bar, {attributes: true});
  ok(true);
})`)
	at.typeInto(`#composer input[name=text]`, "the list")
	at.attach("packing list.txt", "text/plain", notes)
	p = bt.waitMedia("bob's file link", func(p mediaPage) bool {
		return len(p.Msgs) == 3 && p.Msgs[2].File == "packing list.txt"
	})
	if m := p.Msgs[2]; !strings.Contains(m.Text, "3.1 KiB") || !strings.HasSuffix(m.Text, "the list") {
		t.Errorf("the file message reads %q", m.Text)
	}
	if bar, err := chromedp.Run(at.ctx, chromedp.Evaluate[[]string](`uploadBar`)); err != nil || len(bar) == 0 || bar[len(bar)-1] != "100" {
		t.Errorf("the upload bar went through %q (%v), want it shown up to 100", bar, err)
	}
	bt.click(`#messages .msg a.file`)
	wait.For(t, "the download", 10*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(downloads, "packing list.txt"))
		return err == nil && bytes.Equal(got, notes)
	})

	// A rename shows on both pages, in the list and the title.
	if code := httpJSON(t, "PATCH", s.HTTP+"/v1/groups/"+gid, bobTok, map[string]string{"name": "Beach trip"}, nil); code != http.StatusForbidden {
		t.Errorf("bob, a plain member, renamed: %d", code)
	}
	at.click(`#conv-menu-btn`)
	at.click(`#conv-menu .m-group`)
	at.typeInto(`#group-panel input[name=name]`, "Beach trip")
	at.click(`#group-panel .g-rename`)
	at.click(`#conv-menu-btn`)
	at.click(`#conv-menu .m-group`) // the panel closed again for the screenshot
	bt.waitMedia("the rename on bob's page", func(p mediaPage) bool { return p.Title == "Beach trip" })
	at.waitMedia("the rename on alice's page", func(p mediaPage) bool {
		return p.Title == "Beach trip" && p.conv(key).Name == "Beach trip"
	})

	// bob answers from his phone, with a link.
	bt.send("Looks great! Directions: https://maps.example.org/beach")
	at.waitMedia("bob's answer, its link", func(p mediaPage) bool {
		m := p.byText("Looks great!")
		return m != nil && len(m.Links) == 1 && m.Links[0].Href == "https://maps.example.org/beach" && m.Links[0].Rel == "noopener noreferrer"
	})

	// 500 px: still one pane at a time, the Send button in view.
	bt.resize(500, 740)
	bt.waitMedia("bob at 500 px", func(p mediaPage) bool { return p.Width == 500 && p.Chat && !p.List && p.Send && !p.Overflow })
	bt.resize(360, 740)
	bt.waitMedia("bob at 360 px again, the image loaded", func(p mediaPage) bool {
		return p.Width == 360 && p.Send && len(p.Msgs) == 4 && p.Msgs[1].ThumbW == 320 && p.Msgs[3].Status == "acked"
	})
	at.waitMedia("alice's thumbnails loaded", func(p mediaPage) bool { return len(p.Msgs) == 4 && p.Msgs[1].ThumbW == 320 })
	docShots(t, at, "webchat-1280", shots)
	docShots(t, bt, "webchat-360", shots)

	// Refused uploads: shown with their code, nothing sent.
	var before, after wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?group="+gid+"&since=0", bobTok, nil, &before)
	at.attach("big.bin", "application/octet-stream", bytes.Repeat([]byte{0x01, 0x02}, 20<<10))
	at.waitMedia("too large", func(p mediaPage) bool {
		return strings.Contains(p.Error, "big.bin") && strings.Contains(p.Error, "("+wire.CodeTooLarge+")") && p.Upload == ""
	})
	at.attach("fake.png", "image/png", []byte("not a picture at all"))
	at.waitMedia("the wrong type", func(p mediaPage) bool {
		return strings.Contains(p.Error, "fake.png") && strings.Contains(p.Error, "("+wire.CodeTypeMismatch+")")
	})
	httpJSON(t, "GET", s.HTTP+"/v1/sync?group="+gid+"&since=0", bobTok, nil, &after)
	if len(before.Items) != 5 || len(after.Items) != len(before.Items) {
		t.Errorf("the group holds %d items before the refusals (4 messages and the rename), %d after", len(before.Items), len(after.Items))
	}
	if p := at.media(); len(p.Msgs) != 4 {
		t.Errorf("alice's page shows %d messages after the refusals, want 4", len(p.Msgs))
	}

	// Back to the list: the conversation closes, so what comes counts as unread.
	bt.click(`#back`)
	bt.waitMedia("bob's list once more", func(p mediaPage) bool { return p.List && !p.Chat })
	at.send("see you there")
	bt.waitState("bob's badge", func(p chatPage) bool { return p.badge(key) == 1 })
}

// TestWebChatImageWithoutThumb: an image the server made no thumbnail of
// (more pixels than it decodes) is shown in its place when small; a large
// one is not downloaded by every page that draws the message: it waits
// for a tap, which opens it in the full view.
func TestWebChatImageWithoutThumb(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t, func(c *daemon.Config) { c.Media.ThumbPixels, c.Media.FFmpeg = 100_000, "off" })
	aliceTok := account(t, s, "alice", "cli")
	account(t, s, "bob", "cli")
	noise := image.NewNRGBA(image.Rect(0, 0, 1200, 1000)) // 1.2 Mpx of noise: about 4.8 MB as PNG
	_, _ = rand.NewChaCha8([32]byte{1}).Read(noise.Pix)   // a seeded source: the same picture every run
	var big bytes.Buffer
	if err := png.Encode(&big, noise); err != nil || big.Len() <= 2<<20 {
		t.Fatalf("the large image: %d bytes, %v", big.Len(), err)
	}
	for i, img := range [][]byte{photoPNG(t), big.Bytes()} {
		code, info, e := uploadRaw(t, s, aliceTok, "image/png", img, "")
		if code != http.StatusCreated || info.Thumb {
			t.Fatalf("upload %d: %d %+v %+v (want no thumbnail)", i, code, info, e)
		}
		send := wire.Send{CMID: fmt.Sprint("img", i), To: "bob", Type: "image", Media: info.ID}
		if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", aliceTok, send, nil); code != http.StatusOK {
			t.Fatalf("send %d: %d", i, code)
		}
	}
	bt := startBrowser(t, chromium, "bob").open(s.HTTP + "/chat/")
	bt.login("bob", "secret-bob")
	bt.openChat("alice")
	bt.waitMedia("the small image in its thumbnail's place, the large one waiting", func(p mediaPage) bool {
		return len(p.Msgs) == 2 && p.Msgs[0].State == "ok" && p.Msgs[0].ThumbW == 640 && p.Msgs[1].State == "large" && p.Msgs[1].Thumb == ""
	})
	bt.click(`#messages .msg:last-child .thumb`)
	bt.waitMedia("the large image in the full view", func(p mediaPage) bool { return p.Viewer.Open && p.Viewer.State == "ok" && p.Viewer.Width == 1200 })
}

// photoPNG is a 640×480 picture, large enough that the server makes a
// 320 px thumbnail of it.
func photoPNG(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, mediatest.Quadrants(640, 480)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// docShots saves the tab's screenshot in shots, and in docs/ as name.png
// when IMQTT_DOCS_SHOTS=1.
func docShots(t *testing.T, tb *tab, name, shots string) {
	t.Helper()
	tb.shot(shots, name)
	if os.Getenv("IMQTT_DOCS_SHOTS") != "1" {
		return
	}
	tb.shot(filepath.Join("..", "docs"), name)
}
