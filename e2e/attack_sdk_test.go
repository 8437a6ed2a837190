package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// The client side of the hardening issue: the SDK (and so the CLI) must not
// believe a forged live event, and must not stall on a message it cannot
// decode.

// sdkInbox is a user's SDK client with what it delivered.
type sdkInbox struct {
	c   *client.Client
	cur *client.FileCursor
	mu  sync.Mutex
	got []wire.Msg
}

func dialInbox(t *testing.T, s *testserver.Server, user, device, token string) *sdkInbox {
	t.Helper()
	in := &sdkInbox{cur: client.NewFileCursor(filepath.Join(t.TempDir(), "cursor.json"))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Server: s.HTTP, MQTT: s.MQTT, User: user, Device: device, Token: token, Cursor: in.cur,
		SyncTimeout: 2 * time.Second,
		OnEvent: func(ev client.Event) {
			if ev.Msg != nil {
				in.mu.Lock()
				in.got = append(in.got, *ev.Msg)
				in.mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	in.c = c
	return in
}

// bodies returns the bodies delivered so far, in order.
func (in *sdkInbox) bodies() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, len(in.got))
	for i, m := range in.got {
		out[i] = m.Body
	}
	return out
}

func (in *sdkInbox) has(body string) bool {
	for _, b := range in.bodies() {
		if b == body {
			return true
		}
	}
	return false
}

// sendAs sends a text from h's user to peer over HTTP.
func sendAs(t *testing.T, h *client.HTTP, to, body string) wire.Ack {
	t.Helper()
	ack, err := h.Send(context.Background(), wire.Send{CMID: client.NewCMID(), To: to, Type: "text", Body: body})
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return ack
}

// Why 1 (client side): a forged msg event with "ver":1000000 on bob's inbox
// (what a forged will published) made the SDK save the cursor at 1,000,000
// and silently drop every real message after it. Injected here the way a
// malicious peer's publish arrives: through the broker, to bob's inbox.
func TestAttackSDKForgedHighVerNotBelieved(t *testing.T) {
	s := testserver.Start(t)
	alice := &client.HTTP{Server: s.HTTP, Token: account(t, s, "alice", "phone")}
	bob := dialInbox(t, s, "bob", "phone", account(t, s, "bob", "phone"))
	if err := bob.c.WaitSynced(context.Background()); err != nil {
		t.Fatal(err)
	}
	sendAs(t, alice, "bob", "one")
	wait.For(t, "bob gets the first message", 10*time.Second, func() bool { return bob.has("one") })

	forged, _ := json.Marshal(wire.Msg{Kind: wire.KindMsg, ID: "7000000000000000001", Ver: 1_000_000, From: "alice",
		To: "bob", Type: "text", Body: "forged", TS: time.Now().UnixMilli()})
	if err := s.Broker().Publish(wire.InboxTopic("bob"), forged); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the SDK to settle the forged event", 10*time.Second, func() bool { return bob.c.Unconfirmed() > 0 || bob.has("forged") })
	if bob.has("forged") {
		t.Fatal("the SDK believed a live event whose ver jumped to 1,000,000")
	}

	sendAs(t, alice, "bob", "two")
	sendAs(t, alice, "bob", "three")
	wait.For(t, "real messages after the forgery", 10*time.Second, func() bool { return bob.has("three") })
	if got := bob.bodies(); strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("bob was shown %q", got)
	}
	bob.mu.Lock()
	last := bob.got[len(bob.got)-1].Ver
	bob.mu.Unlock()
	// The cursor is saved after the handler has the event: wait for it to
	// reach the last real message, and never let it pass it (the forged
	// ver is 1,000,000).
	wait.ForErr(t, "bob's saved cursor at the last real message", 10*time.Second, func() error {
		c, err := bob.cur.Load()
		if err != nil {
			t.Fatal(err)
		}
		if c.Ver > last {
			t.Fatalf("saved cursor %d, past the last real message at %d", c.Ver, last)
		}
		if c.Ver != last {
			return fmt.Errorf("saved cursor %d, but the last real message is at %d", c.Ver, last)
		}
		return nil
	})
}

// storePoison plants, straight into the store, a message from `from` in
// user's inbox whose meta nests depth levels; it returns its version.
// Restart the server afterwards.
func storePoison(t *testing.T, s *testserver.Server, user, from string, depth int) uint64 {
	t.Helper()
	return s.PlantMessage(t, user, from, "poison", testserver.DeepMeta(depth))
}

// Why 4 (client side): a stored message whose meta nests 9,998 levels made
// every sync batch holding it fail to decode, so the SDK (imqtt listen)
// asked for it again forever and delivered nothing more, and HTTP sync
// (imqtt sync) failed on every retry. The server no longer takes such a
// meta, and drops one stored before the bound from everything it sends
// (sync.ToMsg), so the message arrives without it and nothing stalls. The
// SDK's own skip of an item it cannot decode, for a server that still sent
// one, is client's TestDecodeSyncBigBatch and FuzzDecodeSync and cmd/imqtt's
// TestAttackCLIPoisonItem.
func TestAttackPoisonItemDoesNotStall(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok := account(t, s, "bob", "phone")
	alice := &client.HTTP{Server: s.HTTP, Token: aliceTok}
	sendAs(t, alice, "bob", "before")
	poison := storePoison(t, s, "bob", "alice", 9_998)
	s.Restart(t)
	alice.Server = s.HTTP
	sendAs(t, alice, "bob", "after")

	// The SDK, as imqtt listen uses it.
	bob := dialInbox(t, s, "bob", "phone", bobTok)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := bob.c.WaitSynced(ctx); err != nil {
		t.Fatalf("the sync never ended: %v", err)
	}
	if got := bob.bodies(); strings.Join(got, ",") != "before,poison,after" {
		t.Fatalf("bob was shown %q", got)
	}
	bob.mu.Lock()
	if meta := bob.got[1].Meta; meta != nil {
		t.Errorf("the poison's meta reached bob: %.60s…", meta)
	}
	bob.mu.Unlock()
	if ver := bob.c.Cursor().Ver; ver <= poison {
		t.Fatalf("cursor %d did not move past the poison at %d", ver, poison)
	}
	sendAs(t, alice, "bob", "live")
	wait.For(t, "a live message after the poison", 10*time.Second, func() bool { return bob.has("live") })

	// HTTP sync, as imqtt sync uses it, from the start.
	h := &client.HTTP{Server: s.HTTP, Token: bobTok}
	var got []string
	cur := &client.MemoryCursor{}
	if err := h.SyncCursor(ctx, cur, 0, func(m wire.Msg) error {
		got = append(got, m.Body)
		return nil
	}); err != nil {
		t.Fatalf("HTTP sync: %v", err)
	}
	if strings.Join(got, ",") != "before,poison,after,live" || h.Skipped() != 0 {
		t.Fatalf("HTTP sync gave %q, skipped %d", got, h.Skipped())
	}
	if c, _ := cur.Load(); c.Ver <= poison {
		t.Fatalf("HTTP sync cursor %d did not move past the poison at %d", c.Ver, poison)
	}
}

// Why 1 and 4 (web chat): the page believed a forged live event with a far
// version (and showed it as from whoever it claimed), and then dropped the
// real messages below it. Now it syncs instead of believing: the forgery is
// dropped unconfirmed, events it cannot use (not JSON, odd fields, a 1:1
// message not in this inbox) are skipped with a console warning, a poison
// message stored before the server bounded meta arrives without it, and the
// page never throws.
func TestAttackWebChatForgedAndPoison(t *testing.T) {
	chromium := findChromium(t)
	port := freePort(t) // the page keeps its origin across the restart below
	s := testserver.Start(t, func(c *daemon.Config) { c.HTTPAddr = "127.0.0.1:" + port })
	alice := &client.HTTP{Server: s.HTTP, Token: account(t, s, "alice", "cli")}
	account(t, s, "bob", "cli")
	bob := startBrowser(t, chromium, "bob")
	bt := bob.open(s.HTTP + "/chat/")
	bt.login("bob", "secret-bob")
	bt.openChat("alice")
	counter := func(name string) int {
		n, err := chromedp.Run(bt.ctx, chromedp.Evaluate[int](`imqttChat.`+name+` || 0`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	sendAs(t, alice, "bob", "one")
	p := bt.waitState("the first message", func(p chatPage) bool { return p.bodies() == "one" })
	next := p.Cursor.Ver + 1
	for _, junk := range []string{
		`not json`,
		`{"kind":"msg","ver":"x","id":"1","from":"alice","to":"bob"}`,
		fmt.Sprintf(`{"kind":"msg","id":"5","ver":%d,"from":"carol","to":"dave","type":"text","body":"not yours"}`, next),
		`{"kind":"msg","id":"7000000000000000001","ver":1000000,"from":"alice","to":"bob","type":"text","body":"forged","ts":1}`,
	} {
		if err := s.Broker().Publish(wire.InboxTopic("bob"), []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, "the page to settle the forgery", 10*time.Second, func() bool {
		return counter("unconfirmed") > 0 || strings.Contains(bt.state().bodies(), "forged")
	})
	if n := counter("skipped"); n != 3 {
		t.Errorf("the page skipped %d events, want 3", n)
	}
	sendAs(t, alice, "bob", "two")
	p = bt.waitState("the real message after the forgery", func(p chatPage) bool { return p.bodies() == "one|two" })
	if p.Cursor.Ver != next {
		t.Errorf("the page's cursor is %d, want %d", p.Cursor.Ver, next)
	}

	// A poison message in bob's inbox, and a real one after it.
	storePoison(t, s, "bob", "alice", 9_998)
	s.Restart(t)
	sendAs(t, alice, "bob", "three")
	// The page reconnects with a backoff of its own: give it time.
	wait.ForErr(t, "the page past the poison", 40*time.Second, func() error {
		if p = bt.state(); p.Status != "online" || !sameBodies(p.bodies(), "one|two|poison|three") {
			return fmt.Errorf("status %s, bodies %q, skipped %d, cursor %+v", p.Status, p.bodies(), counter("skipped"), p.Cursor)
		}
		return nil
	})

	for _, m := range p.Msgs {
		if m.From != "alice" {
			t.Errorf("message %q shown as from %q", m.Body, m.From)
		}
	}
}

// sameBodies reports whether two "|"-joined lists of bodies hold the same
// bodies in any order (the page orders by message ID, and the poison's,
// written straight into the store, is not a snowflake of this server).
func sameBodies(a, b string) bool {
	x, y := strings.Split(a, "|"), strings.Split(b, "|")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
