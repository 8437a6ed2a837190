package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestWebChatLife drives the message lifecycle (docs/protocol.md#message-lifecycle)
// through /chat/ in two headless Chromiums, alice's and bob's: "seen" under
// alice's message once bob reads it, "typing…" while bob types (real key
// presses), a reply with its quote, an edit through the menu ("edited", the
// new body), a reaction from the picker and another by clicking its chip
// (counts on both sides), a recall through the menu (a tombstone on both
// sides, and the quote of it in bob's reply too, the body gone from both
// pages). Then changes that bob's page misses live (its inbox subscription
// cut) come by sync and are applied once each; and after both reload, the
// history shows every message as it was.
func TestWebChatLife(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	account(t, s, "bob", "cli")
	shots := artifactsDir(t, "webchat")
	url := s.HTTP + "/chat/"
	alice := startBrowser(t, chromium, "alice")
	bob := startBrowser(t, chromium, "bob")
	at := alice.open(url)
	bt := bob.open(url)
	at.login("alice", "secret-alice")
	bt.login("bob", "secret-bob")

	// Seen: bob opens the conversation, which reads it; the receipt shows
	// "seen" under alice's last message.
	at.openChat("bob")
	at.send("hello bob")
	at.waitState("alice's message acked", func(p chatPage) bool { return p.mine("hello bob", "acked") })
	bt.click(`#convs .conv[data-peer="alice"]`)
	p := at.waitLife(`"seen" under alice's message`, func(p lifePage) bool { return p.msg("hello bob").Seen })
	hello := p.msg("hello bob").ID

	// Typing: bob's key presses show "typing…" on alice's page. His page
	// sends a start at most once a second, and a stop when he sends.
	bt.do(chromedp.Evaluate[chromedp.Void](`(() => {
	  const c = imqttChat.client, publish = c.publish.bind(c);
	  window.typingSent = [];
	  c.publish = (topic, payload, ...rest) => {
	    if (topic === 'im/typing') typingSent.push(JSON.parse(payload).state);
	    return publish(topic, payload, ...rest);
	  };
	})()`))
	typingFrom := time.Now()
	bt.do(chromedp.SendKeys(chromedp.CSS(`#composer input[name=text]`), "an answer"))
	at.waitLife(`"typing…" while bob types`, func(p lifePage) bool { return p.Typing == "typing…" })
	at.shot(shots, "11-alice-sees-typing")

	// A reply: bob's composer shows what it replies to; both pages show the quote.
	bt.click(fmt.Sprintf(`.msg[data-id="%s"] .act-reply`, hello))
	bt.waitLife("the composer replying", func(p lifePage) bool { return p.Composing == "Replying to alice: hello bob" })
	bt.do(chromedp.SendKeys(chromedp.CSS(`#composer input[name=text]`), " with a quote\r"))
	quoted := func(p lifePage) bool {
		m := p.msg("an answer with a quote")
		return m.QuoteFrom == "alice" && m.QuoteBody == "hello bob"
	}
	bt.waitLife("bob's reply with its quote", quoted)
	at.waitLife("alice sees the reply's quote, and bob typing no more", func(p lifePage) bool { return quoted(p) && p.Typing == "" })
	sent, err := chromedp.Run(bt.ctx, chromedp.Evaluate[[]string](`typingSent`))
	if err != nil {
		t.Fatal(err)
	}
	starts := len(sent) - 1
	if max := 1 + int(time.Since(typingFrom)/time.Second); len(sent) < 2 || sent[len(sent)-1] != "stop" || starts > max || slices.Contains(sent[:starts], "stop") {
		t.Errorf("bob's page sent im/typing %v: want at most %d starts (one a second), then a stop", sent, max)
	}

	// An edit through the menu of alice's own message; the body is never HTML.
	at.send("typo <b>mesage</b>")
	p = at.waitLife("the typo acked", func(p lifePage) bool { return p.msg("typo <b>mesage</b>").ID != "" })
	typo := p.msg("typo <b>mesage</b>").ID
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-menu`, typo))
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-edit`, typo))
	at.waitLife("the composer editing", func(p lifePage) bool {
		return p.Composing == "Editing your message" && p.Composer == "typo <b>mesage</b>"
	})
	at.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('#composer input[name=text]').value = ''`))
	at.do(chromedp.SendKeys(chromedp.CSS(`#composer input[name=text]`), "fixed message\r"))
	edited := func(p lifePage) bool {
		m := p.byID(typo)
		return m.Body == "fixed message" && m.Edited && !strings.Contains(p.Text, "mesage")
	}
	at.waitLife("alice sees her edit", edited)
	bt.waitLife("bob sees alice's edit", edited)

	// Reactions: bob from the picker, alice by clicking the chip.
	bt.click(fmt.Sprintf(`.msg[data-id="%s"] .act-react`, typo))
	bt.click(fmt.Sprintf(`.msg[data-id="%s"] .pick[data-emoji="👍"]`, typo))
	at.waitLife("alice sees bob's 👍", func(p lifePage) bool { return maps.Equal(p.byID(typo).Reactions, map[string]int{"👍": 1}) })
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .reaction[data-emoji="👍"]`, typo))
	both := func(p lifePage) bool {
		m := p.byID(typo)
		return maps.Equal(m.Reactions, map[string]int{"👍": 2}) && slices.Equal(m.Mine, []string{"👍"})
	}
	at.waitLife("👍 2 on alice's page, hers marked", both)
	bt.waitLife("👍 2 on bob's page, his marked", both)

	// A recall: bob replies to the message first; once alice recalls it,
	// both pages show the tombstone, and the quote of it as recalled.
	at.send("oops secret")
	p = at.waitLife("the secret acked", func(p lifePage) bool { return p.msg("oops secret").ID != "" })
	secret := p.msg("oops secret").ID
	bt.click(fmt.Sprintf(`.msg[data-id="%s"] .act-reply`, secret))
	bt.send("what?")
	at.waitLife("bob's reply to the secret", func(p lifePage) bool { return p.msg("what?").QuoteBody == "oops secret" })
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-menu`, secret))
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-recall`, secret))
	recalled := func(p lifePage) bool {
		m, q := p.byID(secret), p.msg("what?")
		return m.Recalled && m.Body == "message recalled" && q.QuoteBody == "message recalled" && !strings.Contains(p.Text, "secret")
	}
	at.waitLife("alice sees the tombstone", recalled)
	bt.waitLife("bob sees the tombstone", recalled)
	bt.waitLife(`"seen" under bob's reply, alice having it open`, func(p lifePage) bool { return p.msg("what?").Seen })
	at.shot(shots, "12-alice-lifecycle")
	bt.shot(shots, "13-bob-lifecycle")

	// Missed live, synced: bob's inbox subscription is cut while alice edits
	// again and takes her 👍 back; her next message shows bob's page the
	// gap, and the sync brings both changes, applied once each.
	subscription := `new Promise((ok, fail) => imqttChat.client.%s('im/u/bob/inbox', %s))`
	bt.evalAsync(fmt.Sprintf(subscription, "unsubscribe", `(e) => e ? fail(e) : ok(true)`))
	before := len(bt.life().Delivered)
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-menu`, typo))
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-edit`, typo))
	at.waitLife("the composer editing again", func(p lifePage) bool { return p.Composer == "fixed message" })
	at.do(chromedp.SendKeys(chromedp.CSS(`#composer input[name=text]`), " again\r"))
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .reaction[data-emoji="👍"]`, typo))
	again := func(p lifePage) bool {
		m := p.byID(typo)
		return m.Body == "fixed message again" && maps.Equal(m.Reactions, map[string]int{"👍": 1})
	}
	at.waitLife("alice's second edit and her 👍 taken back", again)
	bt.evalAsync(fmt.Sprintf(subscription, "subscribe", `{qos: 1}, (e) => e ? fail(e) : ok(true)`))
	at.send("after the gap")
	p = bt.waitLife("bob syncs the changes he missed", func(p lifePage) bool {
		return again(p) && p.msg("after the gap").ID != "" && slices.Equal(p.mine(typo), []string{"👍"})
	})
	var got []string
	for _, d := range p.Delivered[before:] {
		got = append(got, fmt.Sprintf("%s/%v", d.Kind, d.Synced))
	}
	// The edit and the reaction by sync; then the message that showed the
	// gap, by sync too (it waited for the sync and follows it).
	if want := []string{"edit/true", "reaction/true", "/true"}; !slices.Equal(got, want) {
		t.Errorf("bob's page delivered %v after the gap, want %v: %+v", got, want, p.Delivered[before:])
	}
	at.waitLife(`"seen" under alice's last message`, func(p lifePage) bool { return p.msg("after the gap").Seen })

	// Reload: each page anew (its cursor kept) shows the same from history
	// and the conversation list: tombstone, edits, reactions, quotes, seen.
	want := map[*tab]string{at: at.life().summary(), bt: bt.life().summary()}
	for _, b := range []*browser{alice, bob} {
		old := at
		if b == bob {
			old = bt
		}
		old.close()
		nt := b.open(url)
		peer := map[*browser]string{alice: "bob", bob: "alice"}[b]
		nt.waitState(b.name+" online again", func(p chatPage) bool { return p.Status == "online" })
		nt.click(fmt.Sprintf(`#convs .conv[data-peer="%s"]`, peer))
		nt.waitLife("the same after a reload", func(p lifePage) bool { return p.summary() == want[old] })
		if p := nt.life(); p.Markup != 0 {
			t.Errorf("%s's page made HTML of a message: %d elements", b.name, p.Markup)
		}
		nt.shot(shots, "14-"+b.name+"-reloaded")
	}
	t.Logf("after the reload: alice %s; bob %s", want[at], want[bt])
}

// lifePage is what TestWebChatLife reads of the open conversation.
type lifePage struct {
	Typing    string `json:"typing"`    // the "typing…" line, "" if hidden
	Composing string `json:"composing"` // what the composer replies to or edits, "" if neither
	Composer  string `json:"composer"`  // the composer's text
	Text      string `json:"text"`      // all the text of the messages
	Markup    int    `json:"markup"`    // elements a body made (none: bodies are text)
	Msgs      []lifeMsg
	Delivered []struct {
		Kind   string `json:"kind"`
		ID     string `json:"id"`
		Ver    uint64 `json:"ver"`
		Seq    uint64 `json:"seq"`
		Synced bool   `json:"synced"`
	} `json:"delivered"`
}

type lifeMsg struct {
	ID        string         `json:"id"`
	From      string         `json:"from"`
	Body      string         `json:"body"`
	Recalled  bool           `json:"recalled"`
	Edited    bool           `json:"edited"`
	QuoteFrom string         `json:"quote_from"`
	QuoteBody string         `json:"quote_body"`
	Reactions map[string]int `json:"reactions"`
	Mine      []string       `json:"mine"` // the emojis I reacted with
	Seen      bool           `json:"seen"`
}

const lifePageJS = `(() => {
  const q = (s, e = document) => [...e.querySelectorAll(s)];
  const t = (e) => (e ? e.textContent : '');
  const typing = document.querySelector('#typing');
  return {
    typing: typing.hidden ? '' : typing.textContent,
    composing: document.querySelector('#compose-ctx').hidden ? '' : t(document.querySelector('#compose-what')),
    composer: document.querySelector('#composer input[name=text]').value,
    text: t(document.querySelector('#messages')),
    markup: q('#messages b, #messages img, #messages script').length,
    delivered: window.imqttChat ? imqttChat.delivered : [],
    Msgs: q('#messages .msg').map((li) => ({
      id: li.dataset.id || '', from: li.dataset.from, body: t(li.querySelector('.body')),
      recalled: li.dataset.recalled === 'true', edited: !!li.querySelector('.meta .edited'),
      quote_from: t(li.querySelector('.quote .q-from')), quote_body: t(li.querySelector('.quote .q-body')),
      reactions: Object.fromEntries(q('.reactions .reaction', li).map((b) => [b.dataset.emoji, +b.dataset.count])),
      mine: q('.reactions .reaction.mine', li).map((b) => b.dataset.emoji),
      seen: li.dataset.seen === 'true',
    })),
  };
})()`

func (tb *tab) life() lifePage {
	tb.t.Helper()
	p, err := chromedp.Run(tb.ctx, chromedp.Evaluate[lifePage](lifePageJS))
	if err != nil {
		tb.t.Fatalf("%s's page: %v", tb.name, err)
	}
	return p
}

// waitLife polls the open conversation until cond holds; a timeout shows it.
func (tb *tab) waitLife(what string, cond func(lifePage) bool) lifePage {
	tb.t.Helper()
	var p lifePage
	wait.ForErr(tb.t, tb.name+": "+what, 10*time.Second, func() error {
		if p = tb.life(); cond(p) {
			return nil
		}
		raw, _ := json.MarshalIndent(p, "", "  ")
		return fmt.Errorf("page:\n%s", raw)
	})
	return p
}

// msg is the one message with body (the zero lifeMsg if none or several).
func (p lifePage) msg(body string) lifeMsg {
	var found []lifeMsg
	for _, m := range p.Msgs {
		if m.Body == body {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		return lifeMsg{}
	}
	return found[0]
}

func (p lifePage) byID(id string) lifeMsg {
	for _, m := range p.Msgs {
		if m.ID == id {
			return m
		}
	}
	return lifeMsg{}
}

// mine is the emojis I reacted with to message id.
func (p lifePage) mine(id string) []string { return p.byID(id).Mine }

// summary is every message of the open conversation as shown, one line each.
func (p lifePage) summary() string {
	var b strings.Builder
	for _, m := range p.Msgs {
		fmt.Fprintf(&b, "%s: %q", m.From, m.Body)
		if m.QuoteFrom != "" || m.QuoteBody != "" {
			fmt.Fprintf(&b, " quoting %s %q", m.QuoteFrom, m.QuoteBody)
		}
		if m.Recalled {
			b.WriteString(" recalled")
		}
		if m.Edited {
			b.WriteString(" edited")
		}
		for _, e := range slices.Sorted(maps.Keys(m.Reactions)) {
			fmt.Fprintf(&b, " %s%d", e, m.Reactions[e])
		}
		if len(m.Mine) > 0 {
			fmt.Fprintf(&b, " mine %v", m.Mine)
		}
		if m.Seen {
			b.WriteString(" seen")
		}
		b.WriteString("; ")
	}
	return b.String()
}

// TestWebChatLifeGroup: in a group the changes come by the group's seq.
// bob (over HTTP) edits his message, reacts to alice's and types; alice's
// page shows each live; alice recalls her own through the menu; a repeated
// change is dropped and a forged one never shown; and a page opened anew
// shows the same from the group's history.
func TestWebChatLifeGroup(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t)
	account(t, s, "alice", "cli")
	bobTok := account(t, s, "bob", "cli")
	createGroup(t, s, bobTok, "g1", "alice")
	url := s.HTTP + "/chat/"
	alice := startBrowser(t, chromium, "alice")
	at := alice.open(url)
	at.login("alice", "secret-alice")

	var ack wire.Ack
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "b-1", Group: "g1", Type: "text", Body: "hi all"}, &ack); code != http.StatusOK {
		t.Fatalf("bob's group send: %d", code)
	}
	at.click(`#convs .conv[data-group="g1"]`)
	at.waitLife("bob's message", func(p lifePage) bool { return p.msg("hi all").ID == ack.ID })
	at.send("mine to recall")
	p := at.waitLife("alice's acked", func(p lifePage) bool { return p.msg("mine to recall").ID != "" })
	mine := p.msg("mine to recall").ID

	if code := httpJSON(t, "POST", s.HTTP+"/v1/typing", bobTok, wire.Typing{Group: "g1", State: wire.TypingStart}, nil); code != http.StatusNoContent {
		t.Fatalf("bob types: %d", code)
	}
	at.waitLife(`"bob is typing…"`, func(p lifePage) bool { return p.Typing == "bob is typing…" })
	if code := httpJSON(t, "PATCH", s.HTTP+"/v1/messages/"+ack.ID, bobTok, wire.Edit{CMID: "b-2", Body: "hi everyone"}, nil); code != http.StatusOK {
		t.Fatalf("bob edits: %d", code)
	}
	if code := httpJSON(t, "PUT", s.HTTP+"/v1/messages/"+mine+"/reactions/"+neturl.PathEscape("🎉"), bobTok, nil, nil); code != http.StatusOK {
		t.Fatalf("bob reacts: %d", code)
	}
	at.waitLife("bob's edit and reaction, live", func(p lifePage) bool {
		m := p.byID(ack.ID)
		return m.Body == "hi everyone" && m.Edited && maps.Equal(p.byID(mine).Reactions, map[string]int{"🎉": 1})
	})
	at.waitLife(`"typing…" hidden some 6 s after bob's start`, func(p lifePage) bool { return p.Typing == "" })
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-menu`, mine))
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-recall`, mine))
	p = at.waitLife("alice's tombstone", func(p lifePage) bool {
		m := p.byID(mine)
		return m.Recalled && len(m.Reactions) == 0 && !strings.Contains(p.Text, "to recall")
	})
	// A repeat of bob's reaction and a forged edit far ahead, straight onto
	// alice's inbox: the group's sequencer drops the one and never
	// believes the other.
	var sync wire.Sync
	httpJSON(t, "GET", s.HTTP+"/v1/sync?group=g1&since=3&limit=1", bobTok, nil, &sync)
	if len(sync.Items) != 1 || sync.Items[0].Kind != wire.KindReaction {
		t.Fatalf("g1's seq 4 is %+v, want the reaction", sync.Items)
	}
	repeat, _ := json.Marshal(sync.Items[0])
	forged, _ := json.Marshal(wire.Msg{Kind: wire.KindEdit, ID: ack.ID, Group: "g1", Seq: 1000000, Body: "forged", Edited: 1})
	for _, payload := range [][]byte{repeat, forged} {
		if err := s.Broker().Publish(wire.InboxTopic("alice"), payload); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, "the forged edit dropped unconfirmed", 10*time.Second, func() bool {
		n, err := chromedp.Run(at.ctx, chromedp.Evaluate[int](`imqttChat.unconfirmed`))
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	postGroup(t, s, bobTok, "g1", "marker")
	p = at.waitLife("the marker after them", func(p lifePage) bool {
		return p.msg("marker").ID != "" && p.byID(ack.ID).Body == "hi everyone" && len(p.byID(mine).Reactions) == 0
	})
	var kinds []string
	for _, d := range p.Delivered {
		if d.Kind != "" {
			kinds = append(kinds, fmt.Sprintf("%s@%d", d.Kind, d.Seq))
		}
	}
	if want := []string{"edit@3", "reaction@4", "recall@5"}; !slices.Equal(kinds, want) {
		t.Errorf("the page applied %v, want %v (each once, by seq)", kinds, want)
	}
	want := p.summary()
	at.close()
	at = alice.open(url)
	at.click(`#convs .conv[data-group="g1"]`)
	at.waitLife("the same from the group's history", func(p lifePage) bool { return p.summary() == want })
}

// TestWebChatLifeRefused: a recall the server refuses (here past a recall
// window of a nanosecond) is shown with its code, and changes nothing.
func TestWebChatLifeRefused(t *testing.T) {
	chromium := findChromium(t)
	s := testserver.Start(t, func(c *daemon.Config) { c.RecallWindow = time.Nanosecond })
	account(t, s, "alice", "cli")
	account(t, s, "bob", "cli")
	at := startBrowser(t, chromium, "alice").open(s.HTTP + "/chat/")
	at.login("alice", "secret-alice")
	at.openChat("bob")
	at.send("too late to unsend")
	p := at.waitLife("acked", func(p lifePage) bool { return p.msg("too late to unsend").ID != "" })
	id := p.msg("too late to unsend").ID
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-menu`, id))
	at.click(fmt.Sprintf(`.msg[data-id="%s"] .act-recall`, id))
	at.waitState("the refusal shown", func(p chatPage) bool { return strings.HasPrefix(p.Error, "Not recalled ("+wire.CodeTooLate+")") })
	if m := at.life().byID(id); m.Recalled || m.Body != "too late to unsend" {
		t.Errorf("after a refused recall the message shows as %+v", m)
	}
	if n, err := chromedp.Run(at.ctx, chromedp.Evaluate[int](`imqttChat.ops.size`)); err != nil || n != 0 {
		t.Errorf("changes still waiting after the refusal: %d (%v)", n, err)
	}
}
