package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
)

// dashboardBrowser starts headless Chromium (Debian's chromium; a missing
// one fails the test) and returns a chromedp context on one tab. Uncaught
// exceptions and refusals by the content security policy fail the test.
func dashboardBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium := findChromium(t) // webchat_test.go
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout (see chromedp.Run)
		t.Fatalf("start chromium: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("dashboard page: %s", p)
		}
	})
	return ctx
}

// TestDashboard: in a real browser, an operator signs in with the admin
// token, watches live figures, finds a connected client, kicks it and sees
// it gone, bans and unbans a user, reads the refusals, signs out; then
// manages a cluster, its users and groups (dashboardCluster).
// Screenshots of the overview and the clients go to the artifacts.
func TestDashboard(t *testing.T) {
	s := startAdmin(t)
	art := artifactsDir(t, "dashboard") // webchat_test.go
	ctx := dashboardBrowser(t)
	step, until, shot := dashPage{t, ctx, []string{art}}.funcs()
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// Traffic, so the overview has something to show.
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	for i := range 20 {
		if _, werr := alice.send("bob", fmt.Sprintf("c-%d", i), "hi"); werr != nil {
			t.Fatal(werr)
		}
	}
	wait.For(t, "bob's messages", 10*time.Second, func() bool { return len(bob.msgs()) == 20 })

	step("open", chromedp.Navigate(s.HTTP+"/dashboard"), chromedp.WaitVisible(css("#login-token")))
	step("wrong token", chromedp.SendKeys(css("#login-token"), "not-the-token"), chromedp.Click(css("#login-form button")))
	until("the refusal", `document.getElementById("login-error").textContent.includes("wrong admin token")`)
	step("sign in", chromedp.SendKeys(css("#login-token"), adminToken), chromedp.Click(css("#login-form button")),
		chromedp.WaitVisible(css("#view-overview")))
	until("live figures and three chart points", `document.getElementById("t-conns").textContent === "2" &&
		document.getElementById("t-in-total").textContent === "20 total" &&
		!document.getElementById("t-ack").textContent.startsWith("–") && series.length >= 3 && seriesScope === "this node" &&
		document.getElementById("t-push").textContent === "0 · 0 · 0"`)
	shot("overview.png")

	carol := connect(t, s.MQTT, "carol", "phone", account(t, s, "carol", "phone"))
	step("clients", chromedp.Click(css(`#nav a[data-view="clients"]`)),
		chromedp.WaitVisible(css(`#clients-table tr[data-client="carol/phone"]`)))
	until("three clients", `document.querySelectorAll("#clients-table tr[data-client]").length === 3`)
	shot("clients.png")
	step("kick carol, confirmed", chromedp.Click(css(`tr[data-client="carol/phone"] button.kick`)),
		chromedp.WaitVisible(css("#confirm-yes")), chromedp.Click(css("#confirm-yes")),
		chromedp.WaitNotPresent(css(`tr[data-client="carol/phone"]`)))
	wait.For(t, "carol's connection to end", 10*time.Second, func() bool { return !carol.c.IsConnectionOpen() })
	until("the others still listed", `document.querySelectorAll("#clients-table tr[data-client]").length === 2`)
	step("search", chromedp.SetValue(css("#q-user"), "bo"), chromedp.Click(css("#clients-search button")))
	until("only bob", `[...document.querySelectorAll("#clients-table tr[data-client]")].map(r => r.dataset.client).join() === "bob/phone"`)

	step("bans", chromedp.Click(css(`#nav a[data-view="bans"]`)), chromedp.WaitVisible(css("#ban-form")),
		chromedp.SetValue(css("#ban-target"), "mallory"), chromedp.SetValue(css("#ban-reason"), "spam"),
		chromedp.Click(css("#ban-form button")), chromedp.WaitVisible(css("#confirm-yes")), chromedp.Click(css("#confirm-yes")))
	until("mallory's ban listed", `[...document.querySelectorAll("#bans-table tr[data-ban]")].some(r => r.textContent.includes("user mallory"))`)
	var bl struct{ Bans []banReply }
	if adminDo(t, s, "GET", "bans", nil, &bl); len(bl.Bans) != 1 || bl.Bans[0].User != "mallory" || bl.Bans[0].Reason != "spam" ||
		bl.Bans[0].Expires == 0 {
		t.Fatalf("bans after the form: %+v", bl.Bans)
	}
	step("unban", chromedp.Click(css(`#bans-table tr[data-ban] button`)), chromedp.WaitNotPresent(css(`#bans-table tr[data-ban]`)))
	if adminDo(t, s, "GET", "bans", nil, &bl); len(bl.Bans) != 0 {
		t.Fatalf("bans after removing: %+v", bl.Bans)
	}

	step("events", chromedp.Click(css(`#nav a[data-view="events"]`)), chromedp.WaitVisible(css("#events-table")))
	until("the wrong token listed", `document.getElementById("events-table").textContent.includes("wrong admin token")`)

	step("nodes", chromedp.Click(css(`#nav a[data-view="nodes"]`)))
	until("this node serving", `document.getElementById("nodes-table").textContent.includes("serving")`)

	step("sign out", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login-token")))
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	left, err := chromedp.Run(c, chromedp.Evaluate[string](`sessionStorage.getItem("imqtt-admin-token") || ""`))
	if err != nil || left != "" {
		t.Fatalf("token left in session storage after sign-out: %q %v", left, err)
	}
	t.Run("cluster", func(t *testing.T) { dashboardCluster(t, ctx) }) // one browser for both: it is slow to start
}

// TestDashboardAssets: the dashboard is served from the binary, with a
// policy that runs only its own scripts, whether or not the admin API is on.
func TestDashboardAssets(t *testing.T) {
	s := testserver.Start(t)
	for path, want := range map[string]string{"/dashboard/": "text/html", "/dashboard/app.js": "text/javascript", "/dashboard/app.css": "text/css"} {
		resp, err := http.Get(s.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) ||
			!strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'; script-src 'self'") {
			t.Errorf("%s: %d %q %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
		}
	}
	resp, err := http.Get(s.HTTP + "/dashboard/nope.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("missing asset: %d", resp.StatusCode)
	}
}

// dashPage drives a dashboard page: step runs actions within 15 s, until
// polls a JavaScript condition for 10 s, shot writes a screenshot to each
// of dirs that is set; each fails the test when it cannot.
type dashPage struct {
	t    *testing.T
	ctx  context.Context
	dirs []string
}

func (p dashPage) funcs() (step func(string, ...chromedp.Action[chromedp.Void]), until func(what, js string), shot func(name string)) {
	t := p.t
	step = func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(p.ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	until = func(what, js string) {
		t.Helper()
		step(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(10*time.Second)))
	}
	shot = func(name string) {
		t.Helper()
		c, cancel := context.WithTimeout(p.ctx, 15*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		for _, dir := range p.dirs {
			if dir != "" {
				if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return step, until, shot
}
