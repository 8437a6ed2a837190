package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestWebChat drives /chat/ in headless Chromium: alice and bob, each in a
// browser of their own (separate profiles, so separate localStorage), chat
// both ways with acks shown; bob closes his tab, alice sends three, bob opens
// the chat again and catches up by sync (each message once, the unread badge
// showing 3); then a version gap (bob's inbox subscription is cut while
// alice sends) is detected and filled, a repeated event is dropped, and a
// connection the server drops comes back by itself.
// Screenshots go to $IMQTT_ARTIFACTS/webchat (or a temporary directory).
func TestWebChat(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	bobToken := account(t, s, "bob", "cli")
	shots := artifactsDir(t, "webchat")
	url := s.HTTP + "/chat/"

	alice := startBrowser(t, chromium, "alice")
	bob := startBrowser(t, chromium, "bob")
	at := alice.open(url)
	bt := bob.open(url)
	at.login("alice", "secret-alice")
	bt.login("bob", "secret-bob")

	// alice starts the conversation; her message is acked (✓) and reaches
	// bob live, with an unread badge until he opens it.
	at.openChat("bob")
	at.send("hello bob")
	at.waitState("alice's first message acked", func(p chatPage) bool { return p.mine("hello bob", "acked") })
	bt.waitState("bob's badge for alice", func(p chatPage) bool { return p.badge("alice") == 1 && p.Total == 1 })
	bt.shot(shots, "1-bob-badge")
	bt.click(`#convs .conv[data-peer="alice"]`)
	bt.waitState("bob reads alice", func(p chatPage) bool {
		return p.bodies() == "hello bob" && p.badge("alice") == 0 && p.Total == 0
	})
	bt.send("hi alice")
	bt.waitState("bob's answer acked", func(p chatPage) bool { return p.mine("hi alice", "acked") })
	at.waitState("alice sees bob's answer", func(p chatPage) bool { return p.bodies() == "hello bob|hi alice" })
	at.shot(shots, "2-alice-chat")

	// bob goes away; alice sends three, each acked although bob is offline.
	before := bt.state()
	bt.close()
	for i := 1; i <= 3; i++ {
		at.send(fmt.Sprint("while away ", i))
	}
	at.waitState("alice's three acked", func(p chatPage) bool {
		return p.mine("while away 1", "acked") && p.mine("while away 2", "acked") && p.mine("while away 3", "acked")
	})

	// bob comes back: the saved session and cursor bring the three by sync, once each.
	bt = bob.open(url)
	p := bt.waitState("bob synced with a badge of 3", func(p chatPage) bool {
		return p.Status == "online" && p.badge("alice") == 3 && p.Total == 3
	})
	bt.shot(shots, "3-bob-back-badge")
	if p.Cursor == nil || before.Cursor == nil || p.Cursor.Ver != before.Cursor.Ver+3 {
		t.Errorf("bob's cursor: before %+v, after %+v; want 3 more", before.Cursor, p.Cursor)
	}
	if len(p.Delivered) != 3 {
		t.Fatalf("bob's page delivered %+v after coming back, want the 3 missed", p.Delivered)
	}
	for i, d := range p.Delivered {
		if !d.Synced || d.Ver != before.Cursor.Ver+uint64(i)+1 {
			t.Errorf("delivered[%d] = %+v, want synced version %d", i, d, before.Cursor.Ver+uint64(i)+1)
		}
	}
	bt.click(`#convs .conv[data-peer="alice"]`)
	p = bt.waitState("bob reads the three", func(p chatPage) bool {
		return p.bodies() == "hello bob|hi alice|while away 1|while away 2|while away 3" && p.badge("alice") == 0 && p.Total == 0
	})
	bt.shot(shots, "4-bob-caught-up")
	var convs wire.Conversations
	wait.For(t, "bob's read reaching the server", 10*time.Second, func() bool {
		httpJSON(t, "GET", s.HTTP+"/v1/conversations", bobToken, nil, &convs)
		return convs.TotalUnread == 0
	})

	// A gap: bob's inbox subscription is cut while alice sends one message,
	// then restored; the next message shows a gap in ver and the page syncs.
	subscription := `imqttChat.client.%s('im/u/bob/inbox', %s)`
	bt.evalAsync(fmt.Sprintf(`new Promise((ok, fail) => `+subscription+`)`, "unsubscribe", `(e) => e ? fail(e) : ok(true)`))
	at.send("during the gap")
	at.waitState("the gap message acked", func(p chatPage) bool { return p.mine("during the gap", "acked") })
	bt.evalAsync(fmt.Sprintf(`new Promise((ok, fail) => `+subscription+`)`, "subscribe", `{qos: 1}, (e) => e ? fail(e) : ok(true)`))
	at.send("after the gap")
	p = bt.waitState("bob fills the gap", func(p chatPage) bool {
		return strings.HasSuffix(p.bodies(), "|while away 3|during the gap|after the gap")
	})
	gap := p.Delivered[len(p.Delivered)-2:]
	if !gap[0].Synced || gap[1].Ver != gap[0].Ver+1 {
		t.Errorf("the gap was filled as %+v; want the missed message synced, then the next", gap)
	}

	// A repeat: the last event published to bob's inbox again is dropped.
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?since=0", bobToken, nil, &sync)
	last, _ := json.Marshal(sync.Items[len(sync.Items)-1])
	if err := s.Broker().Publish(wire.InboxTopic("bob"), last); err != nil {
		t.Fatal(err)
	}
	at.send("marker")
	p = bt.waitState("the marker after the repeat", func(p chatPage) bool { return strings.HasSuffix(p.bodies(), "|after the gap|marker") })
	checkDeliveredOnce(t, p.Delivered)
	if n := len(p.Delivered); n != 3+2+1 {
		t.Errorf("bob's page delivered %d events since coming back, want 6: %+v", n, p.Delivered)
	}

	// The server drops bob's connection: the page reconnects by itself (after
	// a jittered backoff) and syncs what it missed meanwhile.
	device, err := chromedp.Run(bt.ctx, chromedp.Evaluate[string](`imqttChat.session.device`))
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, "bob kicked", 10*time.Second, func() bool { return s.KickDevice("bob/" + device) })
	at.send("after a kick")
	p = bt.waitState("bob back after the kick", func(p chatPage) bool {
		return p.Status == "online" && strings.HasSuffix(p.bodies(), "|marker|after a kick")
	})
	checkDeliveredOnce(t, p.Delivered)
	if n := len(p.Delivered); n != 7 {
		t.Errorf("bob's page delivered %d events since coming back, want 7: %+v", n, p.Delivered)
	}
	bt.shot(shots, "5-bob-final")
	at.shot(shots, "6-alice-final")

	// A second tab of alice's browser is the same device: it takes the MQTT
	// session over, and the first tab says so instead of taking it back.
	at2 := alice.open(url)
	at2.waitState("alice's second tab online", func(p chatPage) bool { return p.Status == "online" })
	at.waitState("alice's first tab taken over", func(p chatPage) bool { return p.Status == "taken-over" })
	bt.send("to the second tab")
	at2.click(`#convs .conv[data-peer="bob"]`)
	at2.waitState("the second tab receives", func(p chatPage) bool { return strings.HasSuffix(p.bodies(), "|after a kick|to the second tab") })
	if p := at.state(); p.Status != "taken-over" {
		t.Fatalf("alice's first tab took the session back: %s", p.Status)
	}
}

// TestWebChatGroupsAndErrors: an account registered on the page, a group
// conversation (added live, unread badge, history, a send to the group), a
// send that the server refuses (shown as ✗ with its code), and logging out
// (the token is revoked).
func TestWebChatGroupsAndErrors(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	daveToken := account(t, s, "dave", "cli")
	shots := artifactsDir(t, "webchat")
	ct := startBrowser(t, chromium, "carol").open(s.HTTP + "/chat/")
	ct.do(
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=user]`), "carol"),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), "carol-pw"),
	)
	ct.click(`#login-form button[name=register]`)
	ct.waitState("carol registered and online", func(p chatPage) bool { return p.Status == "online" && p.Me == "carol" })

	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", daveToken, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"carol"}}, &g); code != 201 && code != 200 {
		t.Fatalf("create group: %d %+v", code, g)
	}
	var ack wire.Ack
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", daveToken, wire.Send{CMID: "g-1", Group: "g1", Type: "text", Body: "hi group"}, &ack); code != 200 {
		t.Fatalf("group send: %d", code)
	}
	ct.waitState("the group with a badge", func(p chatPage) bool { return p.badge("#g1") == 1 })
	ct.click(`#convs .conv[data-group="g1"]`)
	ct.waitState("the group read", func(p chatPage) bool { return p.bodies() == "hi group" && p.badge("#g1") == 0 })
	ct.send("hello group")
	ct.waitState("the group send acked", func(p chatPage) bool { return p.mine("hello group", "acked") })
	ct.shot(shots, "7-carol-group")
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?group=g1&since=0", daveToken, nil, &sync)
	if len(sync.Items) != 2 || sync.Items[1].Body != "hello group" || sync.Items[1].From != "carol" {
		t.Fatalf("the group has %+v", sync.Items)
	}

	ct.openChat("nobody")
	ct.send("anyone there?")
	p := ct.waitState("the refused send marked", func(p chatPage) bool { return p.mine("anyone there?", "failed") })
	if m := p.Msgs[len(p.Msgs)-1]; m.Mark != "✗" || !strings.Contains(p.Error, wire.CodeNoSuchUser) {
		t.Fatalf("refused send shown as %+v, error line %q", m, p.Error)
	}
	ct.shot(shots, "8-carol-refused")

	token, err := chromedp.Run(ct.ctx, chromedp.Evaluate[string](`imqttChat.session.token`))
	if err != nil {
		t.Fatal(err)
	}
	ct.click(`#logout`)
	ct.waitState("the login form", func(p chatPage) bool { return p.Login && p.Me == "" })
	wait.For(t, "the token revoked", 10*time.Second, func() bool {
		return httpJSON(t, "GET", s.HTTP+"/v1/conversations", token, nil, nil) == 401
	})
}

// chatPage is what the test reads from the page.
type chatPage struct {
	Login  bool       `json:"login"`
	Status string     `json:"status"`
	Total  int        `json:"total"`
	Convs  []pageConv `json:"convs"`
	Msgs   []struct {
		ID, CMID, From, Body, Status, Mark string
	} `json:"msgs"`
	Delivered []deliveredEvent `json:"delivered"`
	Cursor    *struct {
		Ver    uint64 `json:"ver"`
		Epoch  string `json:"epoch"`
		Groups map[string]struct {
			Seq   uint64 `json:"seq"`
			Epoch string `json:"epoch"`
		} `json:"groups"`
		Left []string `json:"left"`
	} `json:"cursor"`
	Me    string `json:"me"`
	Error string `json:"error"` // the chat view's error line
}

type pageConv struct {
	Peer  string `json:"peer"`
	Group string `json:"group"`
	Badge int    `json:"badge"`
	Left  bool   `json:"left"` // a group the user is no longer in
}

type deliveredEvent struct {
	ID     string `json:"id"`
	Ver    uint64 `json:"ver"`
	Group  string `json:"group"`
	Seq    uint64 `json:"seq"`
	Synced bool   `json:"synced"`
}

const chatPageJS = `(() => {
  const q = (s) => [...document.querySelectorAll(s)];
  const st = window.imqttChat && imqttChat.session;
  return {
    login: !document.querySelector('#login').hidden,
    status: document.querySelector('#status').dataset.state,
    total: document.querySelector('#total').hidden ? 0 : +document.querySelector('#total').textContent,
    convs: q('#convs .conv').map((li) => ({peer: li.dataset.peer || '', group: li.dataset.group || '', badge: li.querySelector('.badge').hidden ? 0 : +li.querySelector('.badge').textContent, left: li.dataset.left === 'true'})),
    msgs: q('#messages .msg').map((li) => ({ID: li.dataset.id || '', CMID: li.dataset.cmid || '', From: li.dataset.from,
      Body: li.querySelector('.body').textContent, Status: li.dataset.status, Mark: (li.querySelector('.status') || {}).textContent || ''})),
    delivered: window.imqttChat ? imqttChat.delivered : [],
    cursor: st ? JSON.parse(localStorage.getItem('imqtt.cursor.' + st.user + '.' + st.device)) : null,
    me: st ? st.user : '',
    error: document.querySelector('#chat-error').textContent,
  };
})()`

// bodies joins the bodies of the open conversation with "|".
func (p chatPage) bodies() string {
	b := make([]string, len(p.Msgs))
	for i, m := range p.Msgs {
		b[i] = m.Body
	}
	return strings.Join(b, "|")
}

// badge is the unread badge of the conversation with a peer, or with a
// group written "#g1" (0: none shown; -1: no such conversation).
func (p chatPage) badge(key string) int {
	for _, c := range p.Convs {
		if c.Peer == key || (c.Group != "" && "#"+c.Group == key) {
			return c.Badge
		}
	}
	return -1
}

// mine reports whether the open conversation shows exactly one own message
// with body in that status; acked ones carry the ✓.
func (p chatPage) mine(body, status string) bool {
	n := 0
	for _, m := range p.Msgs {
		if m.Body == body && m.From == p.Me {
			if m.Status != status || (status == "acked") != (m.Mark == "✓") {
				return false
			}
			n++
		}
	}
	return n == 1
}

func checkDeliveredOnce(t *testing.T, evs []deliveredEvent) {
	t.Helper()
	seen := map[string]bool{}
	for i, d := range evs {
		if seen[d.ID] || (i > 0 && d.Ver <= evs[i-1].Ver) {
			t.Fatalf("delivered twice or out of order at %d: %+v", i, evs)
		}
		seen[d.ID] = true
	}
}

// findChromium finds Debian's chromium (or another Chrome); missing fails.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: run ./scripts/test.sh, which installs it")
	return ""
}

// artifactsDir is $IMQTT_ARTIFACTS/name, or a temporary directory.
func artifactsDir(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("IMQTT_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium with a profile of its own.
type browser struct {
	t    *testing.T
	ctx  context.Context
	name string
}

func startBrowser(t *testing.T, chromium, name string) *browser {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 700),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium for %s: %v", name, err)
	}
	return &browser{t: t, ctx: ctx, name: name}
}

// tab is one page of a browser.
type tab struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	problems []string // uncaught exceptions and CSP refusals
}

// open opens url in a new tab (opts: chromedp.WithNewBrowserContext for a
// profile of its own). Exceptions and refusals of the content security
// policy fail the test.
func (b *browser) open(url string, opts ...chromedp.ContextOption) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, opts...)
	tb := &tab{t: b.t, name: b.name, ctx: ctx, cancel: cancel}
	b.t.Cleanup(tb.close)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: new tab: %v", b.name, err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				tb.mu.Lock()
				tb.problems = append(tb.problems, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	tb.do(chromedp.Navigate(url))
	return tb
}

// close closes the tab (the page goes offline) and reports its problems.
func (tb *tab) close() {
	if tb.cancel == nil {
		return
	}
	tb.cancel()
	tb.cancel = nil
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("%s's page: %s", tb.name, p)
	}
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s's page: %v", tb.name, err)
	}
}

func (tb *tab) evalAsync(js string) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](js, chromedp.EvalAwaitPromise))
}

func (tb *tab) state() chatPage {
	tb.t.Helper()
	p, err := chromedp.Run(tb.ctx, chromedp.Evaluate[chatPage](chatPageJS))
	if err != nil {
		tb.t.Fatalf("%s's page: %v", tb.name, err)
	}
	return p
}

// waitState polls the page until cond holds; a timeout shows the page.
func (tb *tab) waitState(what string, cond func(chatPage) bool) chatPage {
	tb.t.Helper()
	var p chatPage
	wait.ForErr(tb.t, tb.name+": "+what, 10*time.Second, func() error {
		if p = tb.state(); cond(p) {
			return nil
		}
		return pageErr{p}
	})
	return p
}

// pageErr shows the page that did not hold, formatted only when shown.
type pageErr struct{ p chatPage }

func (e pageErr) Error() string {
	raw, _ := json.MarshalIndent(e.p, "", "  ")
	return "page:\n" + string(raw)
}

func (tb *tab) login(user, password string) {
	tb.t.Helper()
	tb.do(
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=user]`), user),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`#login-form button[name=login]`)),
	)
	tb.waitState(user+" online", func(p chatPage) bool { return p.Status == "online" && p.Me == user })
}

func (tb *tab) openChat(peer string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.CSS(`#new-chat input[name=peer]`), peer+"\r"))
	tb.waitState("chat with "+peer+" open", func(p chatPage) bool {
		return slices.ContainsFunc(p.Convs, func(c pageConv) bool { return c.Peer == peer })
	})
}

func (tb *tab) send(body string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.CSS(`#composer input[name=text]`), body+"\r"))
}

// click clicks the element sel in the page's own JavaScript: the lists are
// drawn again on every event, so a node found by the protocol may be gone
// by the time a protocol click reaches it.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (e) e.click(); return !!e; })()`, sel)
	wait.For(tb.t, fmt.Sprintf("%s's page to have a %s to click", tb.name, sel), 10*time.Second, func() bool {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			tb.t.Fatalf("%s's page: click %s: %v", tb.name, sel, err)
		}
		return ok
	})
}

// shot saves a screenshot of the page as dir/name.png.
func (tb *tab) shot(dir, name string) {
	tb.t.Helper()
	buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s", path)
}
