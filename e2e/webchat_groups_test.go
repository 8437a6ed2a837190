package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestWebChatGroupCatchUp drives /chat/ in Chromium for groups (issue 22):
// alice's page is in g1 and g2; she closes it; bob and carol send to both;
// she opens it again and the page catches each group up from its own cursor,
// every message once, in seq order, in its own conversation. Then she is
// removed from g2 while away: the page, told by the heads, drops g2's
// cursor, syncs it no more and shows it left, while g1 still catches up.
func TestWebChatGroupCatchUp(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	carolTok := account(t, s, "carol", "cli")
	shots := artifactsDir(t, "webchat")
	url := s.HTTP + "/chat/"

	createGroup(t, s, bobTok, "g1", "alice", "carol")
	createGroup(t, s, bobTok, "g2", "alice")
	alice := startBrowser(t, chromium, "alice") // keeps alice's session and cursors across tabs
	at := alice.open(url)
	at.login("alice", "secret-alice")

	// One message each while the page is open: live, and the cursors start.
	postGroup(t, s, bobTok, "g1", "g1 live")
	postGroup(t, s, bobTok, "g2", "g2 live")
	at.waitState("the live group messages", func(p chatPage) bool { return groupCursor(p, "g1") == 1 && groupCursor(p, "g2") == 1 })

	// Away: five to each group, from two senders in g1.
	at.close()
	for i := 1; i <= 5; i++ {
		tok := bobTok
		if i%2 == 0 {
			tok = carolTok
		}
		postGroup(t, s, tok, "g1", fmt.Sprint("g1 away ", i))
		postGroup(t, s, bobTok, "g2", fmt.Sprint("g2 away ", i))
	}
	start := time.Now()
	at = alice.open(url)
	p := at.waitState("both groups caught up", func(p chatPage) bool {
		return p.Status == "online" && groupCursor(p, "g1") == 6 && groupCursor(p, "g2") == 6
	})
	t.Logf("page opened and caught up 2 groups × 5 messages in %v", time.Since(start).Round(time.Millisecond))
	checkGroupDelivered(t, p.Delivered, map[string][]uint64{"g1": {2, 3, 4, 5, 6}, "g2": {2, 3, 4, 5, 6}}, true)
	at.click(`#convs .conv[data-group="g1"]`)
	at.waitState("g1 in order, once", func(p chatPage) bool {
		return p.bodies() == "g1 live|g1 away 1|g1 away 2|g1 away 3|g1 away 4|g1 away 5"
	})
	at.shot(shots, "9-alice-g1-caught-up")
	at.click(`#convs .conv[data-group="g2"]`)
	at.waitState("g2 in order, once", func(p chatPage) bool {
		return p.bodies() == "g2 live|g2 away 1|g2 away 2|g2 away 3|g2 away 4|g2 away 5"
	})

	// Removed from g2 while away: g2 is shown left and synced no more.
	at.close()
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g2/members/alice", bobTok, nil, nil); code != http.StatusNoContent {
		t.Fatalf("remove alice from g2: %d", code)
	}
	postGroup(t, s, bobTok, "g2", "g2 without alice")
	postGroup(t, s, carolTok, "g1", "g1 after")
	at = alice.open(url)
	p = at.waitState("g1 caught up, g2 left", func(p chatPage) bool {
		return p.Status == "online" && groupCursor(p, "g1") == 7 && slices.Equal(p.Cursor.Left, []string{"g2"}) &&
			slices.ContainsFunc(p.Convs, func(c pageConv) bool { return c.Group == "g2" && c.Left })
	})
	if _, ok := p.Cursor.Groups["g2"]; ok {
		t.Errorf("g2's cursor kept after alice left: %+v", p.Cursor.Groups)
	}
	checkGroupDelivered(t, p.Delivered, map[string][]uint64{"g1": {7}}, true)
	sent, err := chromedp.Run(at.ctx, chromedp.Evaluate[int](`imqttChat.groupRequests`))
	if err != nil {
		t.Fatal(err)
	}
	if sent != 2 { // the heads, then g1's sync: nothing for g2
		t.Errorf("the page sent %d group requests after coming back, want 2 (heads, g1)", sent)
	}
	at.click(`#convs .conv[data-group="g2"]`)
	wait.For(t, "g2 open and shown left", 10*time.Second, func() bool {
		title, err := chromedp.Run(at.ctx, chromedp.Evaluate[string](`document.querySelector('#chat-title').textContent`))
		if err != nil {
			t.Fatal(err)
		}
		return title == "# g2 (left)"
	})
	if p := at.state(); strings.Contains(p.bodies(), "without alice") || p.Error != "" {
		t.Errorf("g2 left shows %q, error line %q", p.bodies(), p.Error)
	}
	at.shot(shots, "10-alice-g2-left")

	// Removed from g1 while the page is open: the live membership event
	// makes it ask the heads, whose answer drops g1's cursor.
	if code := httpJSON(t, "DELETE", s.HTTP+"/v1/groups/g1/members/alice", bobTok, nil, nil); code != http.StatusNoContent {
		t.Fatalf("remove alice from g1: %d", code)
	}
	at.waitState("g1 left live", func(p chatPage) bool {
		return slices.Equal(p.Cursor.Left, []string{"g2", "g1"}) && len(p.Cursor.Groups) == 0 &&
			slices.ContainsFunc(p.Convs, func(c pageConv) bool { return c.Group == "g1" && c.Left })
	})
}

// TestWebChatGroupLiveDrop: live group messages lost on their way to the
// page (its inbox subscription cut while they are sent) are noticed at the
// next one's seq and synced, each once, in order; a repeat is dropped, and a
// forged far-ahead seq is dropped unconfirmed without hiding what follows.
func TestWebChatGroupLiveDrop(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	createGroup(t, s, bobTok, "g1", "alice")
	at := startBrowser(t, chromium, "alice").open(s.HTTP + "/chat/")
	at.login("alice", "secret-alice")
	postGroup(t, s, bobTok, "g1", "first")
	at.waitState("the first live", func(p chatPage) bool { return groupCursor(p, "g1") == 1 })

	subscription := `new Promise((ok, fail) => imqttChat.client.%s('im/u/alice/inbox', %s))`
	at.evalAsync(fmt.Sprintf(subscription, "unsubscribe", `(e) => e ? fail(e) : ok(true)`))
	for i := 1; i <= 3; i++ {
		postGroup(t, s, bobTok, "g1", fmt.Sprint("lost ", i))
	}
	at.evalAsync(fmt.Sprintf(subscription, "subscribe", `{qos: 1}, (e) => e ? fail(e) : ok(true)`))
	postGroup(t, s, bobTok, "g1", "after the gap")
	p := at.waitState("the gap filled", func(p chatPage) bool { return groupCursor(p, "g1") == 5 })
	checkGroupDelivered(t, p.Delivered, map[string][]uint64{"g1": {1, 2, 3, 4, 5}}, false)
	for _, d := range p.Delivered[1:4] {
		if !d.Synced {
			t.Errorf("lost message %+v was not synced", d)
		}
	}

	// A repeat of the last one, and a forged one far ahead, straight onto
	// alice's inbox; then a real one.
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?group=g1&since=4", bobTok, nil, &sync)
	last, _ := json.Marshal(sync.Items[0])
	forged := sync.Items[0]
	forged.ID, forged.Seq, forged.Body = "9999", 1000000, "forged"
	fake, _ := json.Marshal(forged)
	for _, payload := range [][]byte{last, fake} {
		if err := s.Broker().Publish(wire.InboxTopic("alice"), payload); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, "the forged one dropped unconfirmed", 10*time.Second, func() bool {
		n, err := chromedp.Run(at.ctx, chromedp.Evaluate[int](`imqttChat.unconfirmed`))
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	postGroup(t, s, bobTok, "g1", "marker")
	at.click(`#convs .conv[data-group="g1"]`)
	p = at.waitState("the marker, once", func(p chatPage) bool {
		return p.bodies() == "first|lost 1|lost 2|lost 3|after the gap|marker"
	})
	checkGroupDelivered(t, p.Delivered, map[string][]uint64{"g1": {1, 2, 3, 4, 5, 6}}, false)
}

func createGroup(t *testing.T, s *testserver.Server, token, id string, members ...string) {
	t.Helper()
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", token, wire.GroupCreate{ID: id, Members: members}, nil); code != http.StatusCreated {
		t.Fatalf("create %s: %d", id, code)
	}
}

func postGroup(t *testing.T, s *testserver.Server, token, group, body string) {
	t.Helper()
	send := wire.Send{CMID: "w-" + group + "-" + strings.ReplaceAll(body, " ", "-"), Group: group, Type: "text", Body: body}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", token, send, nil); code != http.StatusOK {
		t.Fatalf("send %q to %s: %d", body, group, code)
	}
}

// groupCursor is the page's saved cursor of group g (0: none).
func groupCursor(p chatPage, g string) uint64 {
	if p.Cursor == nil {
		return 0
	}
	return p.Cursor.Groups[g].Seq
}

// checkGroupDelivered checks that the page delivered exactly want's seqs
// of each group, in that order, each once (by sync if synced).
func checkGroupDelivered(t *testing.T, evs []deliveredEvent, want map[string][]uint64, synced bool) {
	t.Helper()
	got := map[string][]uint64{}
	for _, d := range evs {
		if d.Group == "" {
			continue
		}
		got[d.Group] = append(got[d.Group], d.Seq)
		if synced && !d.Synced {
			t.Errorf("delivered live, want synced: %+v", d)
		}
	}
	for g, seqs := range want {
		if !slices.Equal(got[g], seqs) {
			t.Errorf("group %s delivered seqs %v, want %v (all: %+v)", g, got[g], seqs, evs)
		}
	}
	for g := range got {
		if _, ok := want[g]; !ok {
			t.Errorf("group %s delivered %v, want nothing", g, got[g])
		}
	}
}

// TestWebChatGroupNewDevice: a page on a new device starts each group at
// the conversation list's last message, as it does the inbox: the earlier
// messages are history (shown when the conversation is opened), not
// replayed as deliveries; what comes after is delivered once.
func TestWebChatGroupNewDevice(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	createGroup(t, s, bobTok, "g1", "alice")
	for i := 1; i <= 3; i++ {
		postGroup(t, s, bobTok, "g1", fmt.Sprint("before ", i))
	}
	at := startBrowser(t, chromium, "alice").open(s.HTTP + "/chat/")
	at.login("alice", "secret-alice")
	p := at.waitState("g1's cursor at the list's last", func(p chatPage) bool { return groupCursor(p, "g1") == 3 })
	checkGroupDelivered(t, p.Delivered, map[string][]uint64{}, false)
	postGroup(t, s, bobTok, "g1", "after")
	at.click(`#convs .conv[data-group="g1"]`)
	p = at.waitState("history, then the new one", func(p chatPage) bool {
		return p.bodies() == "before 1|before 2|before 3|after" && groupCursor(p, "g1") == 4
	})
	checkGroupDelivered(t, p.Delivered, map[string][]uint64{"g1": {4}}, false)
}

// TestWebChatGroupScale: a page catches up many groups: a user in 30 groups
// ($IMQTT_WEBCHAT_GROUPS to measure more) misses 20 messages in each, then
// opens the page. Every group is caught up, in order, with one heads
// request and one sync per group; it logs the time from opening the page
// to every group caught up (a figure, not a bar). To measure:
// IMQTT_WEBCHAT_GROUPS=500 go -C e2e test -run TestWebChatGroupScale -v .
func TestWebChatGroupScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("IMQTT_WEBCHAT_GROUPS"))
	if n <= 0 {
		n = 30 // enough for the request window to matter; the figures are from 500
	}
	const per = 20
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	for i := range n {
		createGroup(t, s, bobTok, fmt.Sprintf("g%04d", i), "alice")
	}
	alice := startBrowser(t, chromium, "alice")
	at := alice.open(s.HTTP + "/chat/")
	at.login("alice", "secret-alice")
	at.close()
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				postGroup(t, s, bobTok, g, "m "+strconv.Itoa(rand.Int()))
			}
		}()
	}
	for range per {
		for i := range n {
			work <- fmt.Sprintf("g%04d", i)
		}
	}
	close(work)
	wg.Wait()

	start := time.Now()
	at = alice.open(s.HTTP + "/chat/")
	const total = `imqttChat.groups ? Object.values(imqttChat.groups.cursors()).reduce((n, c) => n + c.seq, 0) : 0`
	wait.For(t, "every group caught up", 5*time.Minute, func() bool {
		got, err := chromedp.Run(at.ctx, chromedp.Evaluate[int](total))
		if err != nil {
			t.Fatal(err)
		}
		return got == n*per
	})
	took := time.Since(start)
	dc, _ := chromedp.Run(at.ctx, chromedp.Evaluate[float64](`imqttChat.drawCost`))
	t.Logf("the last draw of the conversation list took %.1f ms", dc)
	sent, err := chromedp.Run(at.ctx, chromedp.Evaluate[int](`imqttChat.groupRequests`))
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{} // the page keeps its last 500 to 1,000 deliveries: each in order, once
	for _, d := range at.state().Delivered {
		if d.Group != "" && last[d.Group] != 0 && d.Seq != last[d.Group]+1 {
			t.Fatalf("group %s: seq %d delivered after %d", d.Group, d.Seq, last[d.Group])
		}
		last[d.Group] = d.Seq
	}
	if sent != n+1 {
		t.Errorf("%d group requests, want %d (heads, then one sync per group)", sent, n+1)
	}
	t.Logf("%d groups × %d missed: page open to caught up in %v, %d group requests", n, per, took.Round(time.Millisecond), sent)
}
