package chat_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// lifeEvents is a subscriber of the delivery path that keeps every event by
// the topic it went to.
type lifeEvents struct {
	mu sync.Mutex
	by map[string][]wire.Event
}

func (e *lifeEvents) Sent(to deliver.To, ev wire.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.by == nil {
		e.by = map[string][]wire.Event{}
	}
	e.by[to.Topic()] = append(e.by[to.Topic()], ev)
}

// of returns the items of kind sent to user's inbox.
func (e *lifeEvents) of(user, kind string) []wire.Msg {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []wire.Msg
	for _, ev := range e.by[wire.InboxTopic(user)] {
		if m, ok := ev.(wire.Msg); ok && m.EventKind() == kind {
			out = append(out, m)
		}
	}
	return out
}

func (e *lifeEvents) other(user, kind string) []wire.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []wire.Event
	for _, ev := range e.by[wire.InboxTopic(user)] {
		if ev.EventKind() == kind {
			out = append(out, ev)
		}
	}
	return out
}

type lifeEnv struct {
	t   *testing.T
	st  store.Store
	svc *chat.Service
	ev  *lifeEvents
	ctx context.Context
}

func newLife(t *testing.T, o chat.Options) *lifeEnv {
	t.Helper()
	st := openStore(t)
	for _, u := range []string{"carol", "dave"} {
		if err := st.CreateUser(context.Background(), store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	ev := &lifeEvents{}
	o.Logger, o.Metrics = slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New()
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(ev), o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return &lifeEnv{t: t, st: st, svc: svc, ev: ev, ctx: context.Background()}
}

func from(u string) chat.Sender { return chat.Sender{User: u, Device: "d"} }

func (e *lifeEnv) send(user string, req wire.Send) wire.Ack {
	e.t.Helper()
	if req.Type == "" {
		req.Type = "text"
	}
	ack, err := e.svc.Send(e.ctx, from(user), req)
	if err != nil {
		e.t.Fatalf("send %+v: %v", req, err)
	}
	return ack
}

func (e *lifeEnv) recall(user, cmid, id string) (wire.Ack, error) {
	return chat.Wait(e.ctx, func(done func(chat.Result)) { e.svc.Recall(e.ctx, from(user), wire.Recall{CMID: cmid, ID: id}, done) })
}

func (e *lifeEnv) edit(user, cmid, id, body string) (wire.Ack, error) {
	return chat.Wait(e.ctx, func(done func(chat.Result)) {
		e.svc.Edit(e.ctx, from(user), wire.Edit{CMID: cmid, ID: id, Body: body}, done)
	})
}

func (e *lifeEnv) react(user, cmid, id, emoji, op string) (wire.Ack, error) {
	return chat.Wait(e.ctx, func(done func(chat.Result)) {
		e.svc.React(e.ctx, from(user), wire.React{CMID: cmid, ID: id, Emoji: emoji, Op: op}, done)
	})
}

func (e *lifeEnv) del(user string, req wire.Delete) (wire.Ack, error) {
	return chat.Wait(e.ctx, func(done func(chat.Result)) { e.svc.Delete(e.ctx, from(user), req, done) })
}

// sync returns everything user's inbox holds, as a device syncing from 0
// gets it.
func (e *lifeEnv) sync(user string) []wire.Msg {
	e.t.Helper()
	var out []wire.Msg
	if err := e.svc.Sync(e.ctx, user, wire.SyncRequest{}, func(b wire.Sync) error {
		out = append(out, b.Items...)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *lifeEnv) syncGroup(user, group string) []wire.Msg {
	e.t.Helper()
	var out []wire.Msg
	if err := e.svc.Sync(e.ctx, user, wire.SyncRequest{Group: group}, func(b wire.Sync) error {
		out = append(out, b.Items...)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *lifeEnv) history(user, peer string) []wire.Msg {
	e.t.Helper()
	h, err := e.svc.History(e.ctx, user, peer, 0, 50)
	if err != nil {
		e.t.Fatal(err)
	}
	return h.Messages
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	got, _, _ := chat.Describe(err)
	if err == nil || got != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func find(items []wire.Msg, kind, id string) *wire.Msg {
	for i := range items {
		if items[i].Kind == kind && items[i].ID == id {
			return &items[i]
		}
	}
	return nil
}

// TestRecall1to1: only the sender recalls; both parties' devices get the
// recall live, at a new version of their own; sync, history and the
// conversation list show a tombstone; a resent cmid is acked again with
// nothing more stored.
func TestRecall1to1(t *testing.T) {
	e := newLife(t, chat.Options{})
	ack := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: "secret"})
	_, err := e.recall("bob", "r0", ack.ID)
	wantCode(t, err, wire.CodeNotAllowed)
	_, err = e.recall("carol", "r0", ack.ID) // not a party: it does not exist for carol
	wantCode(t, err, wire.CodeNotFound)
	_, err = e.recall("alice", "r0", "12345")
	wantCode(t, err, wire.CodeNotFound)

	r, err := e.recall("alice", "r1", ack.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ver <= ack.Ver {
		t.Errorf("recall ack ver %d, want above the message's %d", r.Ver, ack.Ver)
	}
	again, err := e.recall("alice", "r1", ack.ID)
	if err != nil || again != r {
		t.Errorf("resent recall: %+v %v, want %+v", again, err, r)
	}
	_, err = e.recall("alice", "r2", ack.ID)
	wantCode(t, err, wire.CodeNotAllowed) // recalled already

	for _, u := range []string{"alice", "bob"} {
		wait.For(t, "recall event to "+u, 5*time.Second, func() bool { return len(e.ev.of(u, wire.KindRecall)) == 1 })
		live := e.ev.of(u, wire.KindRecall)[0]
		if live.ID != ack.ID || live.By != "alice" || live.Ver == 0 {
			t.Errorf("%s: live recall %+v", u, live)
		}
		items := e.sync(u)
		m := find(items, wire.KindMsg, ack.ID)
		if m == nil || !m.Recalled || m.Body != "" {
			t.Errorf("%s: synced message %+v, want a tombstone", u, m)
		}
		if rc := find(items, wire.KindRecall, ack.ID); rc == nil || rc.Ver != live.Ver {
			t.Errorf("%s: synced recall %+v, live %+v", u, rc, live)
		}
		h := e.history(u, map[string]string{"alice": "bob", "bob": "alice"}[u])
		if len(h) != 1 || !h[0].Recalled || h[0].Body != "" {
			t.Errorf("%s: history %+v, want one tombstone and no change record", u, h)
		}
		convs, err := e.svc.Conversations(e.ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if c := convs.Conversations; len(c) != 1 || c[0].Last == nil || !c[0].Last.Recalled || c[0].Last.Body != "" {
			t.Errorf("%s: conversations %+v", u, convs)
		}
	}
	convs, _ := e.svc.Conversations(e.ctx, "bob")
	if convs.TotalUnread != 1 {
		t.Errorf("bob's unread %d: a change must not count as a message", convs.TotalUnread)
	}
}

// TestRecallWindow: past --recall-window the sender is told too_late.
func TestRecallWindow(t *testing.T) {
	e := newLife(t, chat.Options{RecallWindow: 20 * time.Millisecond, EditWindow: 20 * time.Millisecond})
	ack := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: "hi"})
	time.Sleep(40 * time.Millisecond) // the window passing is what is tested
	_, err := e.recall("alice", "r1", ack.ID)
	wantCode(t, err, wire.CodeTooLate)
	_, err = e.edit("alice", "e1", ack.ID, "hello")
	wantCode(t, err, wire.CodeTooLate)
	if m := find(e.sync("bob"), wire.KindMsg, ack.ID); m == nil || m.Recalled || m.Body != "hi" {
		t.Errorf("refused changes changed %+v", m)
	}
}

// maskFilter masks "darn" in every body.
type maskFilter struct{}

func (maskFilter) Check(body string) (string, error) {
	return strings.ReplaceAll(body, "darn", "****"), nil
}

// TestEdit: the sender edits a text message; history, sync and the live
// event carry the new body and edited; the filter applies to edits; others'
// messages, media messages and recalled ones cannot be edited.
func TestEdit(t *testing.T) {
	e := newLife(t, chat.Options{Filter: maskFilter{}, Media: mediaPolicy{}})
	ack := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: "helo"})
	_, err := e.edit("bob", "e0", ack.ID, "x")
	wantCode(t, err, wire.CodeNotAllowed)
	_, err = e.edit("carol", "e0", ack.ID, "x")
	wantCode(t, err, wire.CodeNotFound)
	if _, err := e.edit("alice", "e1", ack.ID, "hello darn"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "edit event", 5*time.Second, func() bool { return len(e.ev.of("bob", wire.KindEdit)) == 1 })
	if live := e.ev.of("bob", wire.KindEdit)[0]; live.Body != "hello ****" || live.Edited == 0 || live.ID != ack.ID {
		t.Errorf("live edit %+v", live)
	}
	h := e.history("bob", "alice")
	if len(h) != 1 || h[0].Body != "hello ****" || h[0].Edited == 0 {
		t.Errorf("history %+v", h)
	}
	if ed := find(e.sync("bob"), wire.KindEdit, ack.ID); ed == nil || ed.Body != "hello ****" {
		t.Errorf("synced edit %+v", ed)
	}

	img := e.send("alice", wire.Send{CMID: "m2", To: "bob", Type: "image", Media: "m-ok"})
	_, err = e.edit("alice", "e2", img.ID, "caption")
	wantCode(t, err, wire.CodeNotAllowed)

	if _, err := e.recall("alice", "r1", ack.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.edit("alice", "e3", ack.ID, "again")
	wantCode(t, err, wire.CodeNotAllowed)
	// The edit that came before the recall now syncs as the recall: no body.
	items := e.sync("bob")
	for _, it := range items {
		if it.ID == ack.ID && it.Body != "" {
			t.Errorf("after the recall, sync still carries a body: %+v", it)
		}
	}
}

// TestReactions: one per (user, message, emoji); adding it twice or
// removing an absent one stores nothing; counts show in history and sync.
func TestReactions(t *testing.T) {
	e := newLife(t, chat.Options{})
	ack := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: "hi"})
	for _, bad := range []string{"a", "👍👍", "", strings.Repeat("x", 40)} {
		_, err := e.react("bob", "x-"+bad, ack.ID, bad, wire.ReactAdd)
		wantCode(t, err, wire.CodeBadRequest)
	}
	_, err := e.react("carol", "c1", ack.ID, "👍", wire.ReactAdd) // cannot see it
	wantCode(t, err, wire.CodeNotFound)

	a1, err := e.react("bob", "b1", ack.ID, "👍", wire.ReactAdd)
	if err != nil || a1.Ver == 0 {
		t.Fatalf("react: %+v %v", a1, err)
	}
	a2, err := e.react("bob", "b2", ack.ID, "👍", wire.ReactAdd) // there already
	if err != nil || a2.Ver != 0 {
		t.Fatalf("second add: %+v %v, want an ack with no version", a2, err)
	}
	if _, err := e.react("alice", "a1", ack.ID, "👍", wire.ReactAdd); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "reaction lifeEvents", 5*time.Second, func() bool { return len(e.ev.of("alice", wire.KindReaction)) == 2 })
	h := e.history("alice", "bob")
	if r := h[0].Reactions["👍"]; r.Count != 2 || len(r.Users) != 2 {
		t.Errorf("history reactions %+v", h[0].Reactions)
	}
	if _, err := e.react("bob", "b3", ack.ID, "👍", wire.ReactRemove); err != nil {
		t.Fatal(err)
	}
	if a, err := e.react("bob", "b4", ack.ID, "👍", wire.ReactRemove); err != nil || a.Ver != 0 {
		t.Errorf("removing an absent reaction: %+v %v", a, err)
	}
	m := find(e.sync("bob"), wire.KindMsg, ack.ID)
	if r := m.Reactions["👍"]; r.Count != 1 || len(r.Users) != 1 || r.Users[0] != "alice" {
		t.Errorf("synced reactions %+v", m.Reactions)
	}
	if n := len(e.ev.of("bob", wire.KindReaction)); n != 3 {
		t.Errorf("bob got %d reaction lifeEvents, want 3 (the no-ops send none)", n)
	}
	// One user's emojis on one message are bounded.
	var lastErr error
	for i := 0; i <= chat.MaxUserEmojis; i++ {
		_, lastErr = e.react("bob", "bb"+strconv.Itoa(i), ack.ID, string(rune(0x1F600+i)), wire.ReactAdd)
	}
	wantCode(t, lastErr, wire.CodeBadRequest)
}

// TestDeleteForMe: hidden from the deleter's history, sync and list only;
// the other side keeps the message; its devices get a delete event.
func TestDeleteForMe(t *testing.T) {
	e := newLife(t, chat.Options{})
	m1 := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: "one"})
	m2 := e.send("alice", wire.Send{CMID: "m2", To: "bob", Body: "two"})
	_, err := e.del("carol", wire.Delete{CMID: "d0", IDs: []string{m1.ID}})
	wantCode(t, err, wire.CodeNotFound)
	if _, err := e.del("bob", wire.Delete{CMID: "d1", IDs: []string{m2.ID}}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "delete event", 5*time.Second, func() bool { return len(e.ev.of("bob", wire.KindDelete)) == 1 })
	if d := e.ev.of("bob", wire.KindDelete)[0]; len(d.IDs) != 1 || d.IDs[0] != m2.ID || d.Ver == 0 {
		t.Errorf("delete event %+v", d)
	}
	if len(e.ev.of("alice", wire.KindDelete)) != 0 {
		t.Error("the other side was told of a delete-for-me")
	}
	if h := e.history("bob", "alice"); len(h) != 1 || h[0].ID != m1.ID {
		t.Errorf("bob's history %+v, want only m1", h)
	}
	if find(e.sync("bob"), wire.KindMsg, m2.ID) != nil {
		t.Error("bob's sync still has the deleted message")
	}
	convs, _ := e.svc.Conversations(e.ctx, "bob")
	if c := convs.Conversations[0]; c.Last == nil || c.Last.ID != m1.ID {
		t.Errorf("bob's conversation last %+v, want m1", c.Last)
	}
	if h := e.history("alice", "bob"); len(h) != 2 {
		t.Errorf("alice's history %+v: the sender keeps both", h)
	}
	// Clearing the conversation.
	if _, err := chat.Wait(e.ctx, func(done func(chat.Result)) {
		e.svc.Delete(e.ctx, from("bob"), wire.Delete{CMID: "d2", Peer: "alice"}, done)
	}); err != nil {
		t.Fatal(err)
	}
	if h := e.history("bob", "alice"); len(h) != 0 {
		t.Errorf("bob's history after clearing %+v", h)
	}
	convs, _ = e.svc.Conversations(e.ctx, "bob")
	if len(convs.Conversations) != 0 {
		t.Errorf("bob's list after clearing %+v", convs)
	}
	if h := e.history("alice", "bob"); len(h) != 2 {
		t.Errorf("alice's history after bob cleared %+v", h)
	}
}

func (e *lifeEnv) group(owner string, members ...string) string {
	e.t.Helper()
	g, err := e.svc.CreateGroup(e.ctx, owner, wire.GroupCreate{ID: "g1", Name: "g", Members: members})
	if err != nil {
		e.t.Fatal(err)
	}
	return g.ID
}

// TestGroupLifecycle: in a group, the owner and admins recall anyone's
// message, a member only its own; changes take seqs but never count as
// unread; members online get them live, and sync replays them.
func TestGroupLifecycle(t *testing.T) {
	e := newLife(t, chat.Options{})
	g := e.group("alice", "bob", "carol")
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := e.svc.DeviceOnline(e.ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	m1 := e.send("bob", wire.Send{CMID: "m1", Group: g, Body: "from bob"})
	m2 := e.send("carol", wire.Send{CMID: "m2", Group: g, Body: "from carol"})
	_, err := e.recall("bob", "r0", m2.ID)
	wantCode(t, err, wire.CodeNotAllowed)
	_, err = e.recall("dave", "r0", m2.ID) // not a member
	wantCode(t, err, wire.CodeNotFound)
	r, err := e.recall("alice", "r1", m2.ID) // the owner
	if err != nil || r.Seq <= m2.Seq || r.Group != g {
		t.Fatalf("owner's recall %+v %v", r, err)
	}
	if _, err := e.react("carol", "x1", m1.ID, "🎉", wire.ReactAdd); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "group changes live", 5*time.Second, func() bool {
		return len(e.ev.of("bob", wire.KindRecall)) == 1 && len(e.ev.of("bob", wire.KindReaction)) == 1
	})
	items := e.syncGroup("bob", g)
	if m := find(items, wire.KindMsg, m2.ID); m == nil || !m.Recalled || m.Body != "" {
		t.Errorf("synced recalled message %+v", m)
	}
	if m := find(items, wire.KindMsg, m1.ID); m == nil || m.Reactions["🎉"].Count != 1 {
		t.Errorf("synced reactions %+v", m)
	}
	convs, _ := e.svc.Conversations(e.ctx, "alice")
	if convs.TotalUnread != 2 {
		t.Errorf("alice's unread %d, want 2 messages (not the 2 changes)", convs.TotalUnread)
	}
	if l := convs.Conversations[0].Last; l == nil || l.ID != m2.ID || !l.Recalled {
		t.Errorf("group's last %+v: want the recalled message, not a change record", l)
	}
	// Delete for me in a group hides it from bob only.
	if _, err := e.del("bob", wire.Delete{CMID: "d1", IDs: []string{m1.ID}}); err != nil {
		t.Fatal(err)
	}
	if find(e.syncGroup("bob", g), wire.KindMsg, m1.ID) != nil {
		t.Error("bob's group sync still has the message he deleted")
	}
	if find(e.syncGroup("carol", g), wire.KindMsg, m1.ID) == nil {
		t.Error("carol lost bob's message bob deleted for himself")
	}
	// dave joins after the last message; a change after that moves the
	// head, but his list must not show a message from before he joined.
	if _, err := e.svc.AddMembers(e.ctx, "alice", g, wire.GroupMembers{Users: []string{"dave"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.react("alice", "x2", m1.ID, "👍", wire.ReactAdd); err != nil {
		t.Fatal(err)
	}
	convs, _ = e.svc.Conversations(e.ctx, "dave")
	if len(convs.Conversations) != 1 || convs.Conversations[0].Last != nil || convs.Conversations[0].Unread != 0 {
		t.Errorf("dave's list %+v: a message from before he joined, or a change counted", convs.Conversations)
	}
	convs, _ = e.svc.Conversations(e.ctx, "carol")
	if l := convs.Conversations[0].Last; l == nil || l.ID != m2.ID {
		t.Errorf("carol's last %+v", l)
	}
}

// TestRepliesAndMentions: reply_to is checked and carries a quote, which
// follows the replied message (recalled: no body); mentions mark the
// conversation until read; @all only from the owner and admins.
func TestRepliesAndMentions(t *testing.T) {
	e := newLife(t, chat.Options{})
	m1 := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: strings.Repeat("é", 300)})
	other := e.send("alice", wire.Send{CMID: "o1", To: "carol", Body: "to carol"})
	_, err := e.svc.Send(e.ctx, from("bob"), wire.Send{CMID: "x1", To: "alice", Type: "text", Body: "re", ReplyTo: other.ID})
	wantCode(t, err, wire.CodeBadRequest)
	_, err = e.svc.Send(e.ctx, from("bob"), wire.Send{CMID: "x2", To: "alice", Type: "text", Body: "re", ReplyTo: "x"})
	wantCode(t, err, wire.CodeBadRequest)
	re := e.send("bob", wire.Send{CMID: "r1", To: "alice", Body: "re", ReplyTo: m1.ID})
	wait.For(t, "reply live", 5*time.Second, func() bool { return find(e.ev.of("alice", wire.KindMsg), wire.KindMsg, re.ID) != nil })
	live := find(e.ev.of("alice", wire.KindMsg), wire.KindMsg, re.ID)
	if live.ReplyTo != m1.ID || live.Quote == nil || live.Quote.From != "alice" || len([]rune(live.Quote.Body)) != wire.QuoteRunes {
		t.Errorf("live reply %+v quote %+v", live, live.Quote)
	}
	if _, err := e.recall("alice", "rc", m1.ID); err != nil {
		t.Fatal(err)
	}
	h := e.history("alice", "bob")
	if h[0].ID != re.ID || h[0].Quote == nil || !h[0].Quote.Recalled || h[0].Quote.Body != "" {
		t.Errorf("reply after its message was recalled: %+v quote %+v", h[0], h[0].Quote)
	}

	g := e.group("alice", "bob", "carol")
	_, err = e.svc.Send(e.ctx, from("bob"), wire.Send{CMID: "g0", Group: g, Type: "text", Body: "all", Mentions: []string{wire.MentionAll}})
	wantCode(t, err, wire.CodeForbidden)
	e.send("bob", wire.Send{CMID: "g1", Group: g, Body: "hey carol", Mentions: []string{"carol"}})
	mentioned := func(u string) bool {
		convs, err := e.svc.Conversations(e.ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range convs.Conversations {
			if c.Group == g {
				return c.Mentioned
			}
		}
		return false
	}
	if !mentioned("carol") || mentioned("alice") {
		t.Errorf("mentioned: carol %v alice %v", mentioned("carol"), mentioned("alice"))
	}
	if _, err := e.svc.Read(e.ctx, "carol", wire.Read{Group: g}); err != nil {
		t.Fatal(err)
	}
	if mentioned("carol") {
		t.Error("carol still mentioned after reading")
	}
	e.send("alice", wire.Send{CMID: "g2", Group: g, Body: "everyone", Mentions: []string{wire.MentionAll}})
	if !mentioned("carol") || !mentioned("bob") {
		t.Error("@all did not mention the members")
	}
}

// TestReceipts: reading tells the peer and sets its peer_read, unless
// either side turned receipts off.
func TestReceipts(t *testing.T) {
	e := newLife(t, chat.Options{})
	m := e.send("alice", wire.Send{CMID: "m1", To: "bob", Body: "hi"})
	if _, err := e.svc.Read(e.ctx, "bob", wire.Read{Peer: "alice"}); err != nil {
		t.Fatal(err)
	}
	rs := e.ev.other("alice", wire.KindReceipt)
	if len(rs) != 1 || rs[0].(wire.Receipt).Peer != "bob" || rs[0].(wire.Receipt).Upto != m.ID {
		t.Fatalf("receipts to alice %+v", rs)
	}
	convs, _ := e.svc.Conversations(e.ctx, "alice")
	if convs.Conversations[0].PeerRead != m.ID {
		t.Errorf("alice's peer_read %q, want %s", convs.Conversations[0].PeerRead, m.ID)
	}
	off := false
	if _, err := e.svc.SetUserSettings(e.ctx, "alice", wire.UserSettings{ReadReceipts: &off}); err != nil {
		t.Fatal(err)
	}
	m2 := e.send("alice", wire.Send{CMID: "m2", To: "bob", Body: "again"})
	if _, err := e.svc.Read(e.ctx, "bob", wire.Read{Peer: "alice"}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.ev.other("alice", wire.KindReceipt)); n != 1 {
		t.Errorf("alice turned receipts off and got %d", n)
	}
	convs, _ = e.svc.Conversations(e.ctx, "alice")
	if convs.Conversations[0].PeerRead != "" {
		t.Errorf("alice (receipts off) sees peer_read %q", convs.Conversations[0].PeerRead)
	}
	e.send("bob", wire.Send{CMID: "b1", To: "alice", Body: "x"})
	if _, err := e.svc.Read(e.ctx, "alice", wire.Read{Peer: "bob"}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.ev.other("bob", wire.KindReceipt)); n != 0 {
		t.Errorf("alice has receipts off, yet bob got %d", n)
	}
	_ = m2
}

// TestTyping: relayed to the peer, at most one per sender per
// conversation per second; not to a group one is not in.
func TestTyping(t *testing.T) {
	e := newLife(t, chat.Options{})
	n := 0
	for range 20 {
		ok, err := e.svc.Typing(e.ctx, "alice", wire.Typing{Peer: "bob", State: wire.TypingStart})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			n++
		}
	}
	if got := len(e.ev.other("bob", wire.KindTyping)); got != n || n < 1 || n > 2 {
		t.Errorf("20 typing lifeEvents in a burst: %d relayed (%d delivered), want 1 (2 if a second turned)", n, got)
	}
	_, err := e.svc.Typing(e.ctx, "alice", wire.Typing{Peer: "nobody", State: wire.TypingStart})
	wantCode(t, err, wire.CodeNoSuchUser)
	_, err = e.svc.Typing(e.ctx, "alice", wire.Typing{Peer: "bob", State: "dancing"})
	wantCode(t, err, wire.CodeBadRequest)
	e.group("bob", "carol")
	_, err = e.svc.Typing(e.ctx, "dave", wire.Typing{Group: "g1", State: wire.TypingStart})
	wantCode(t, err, wire.CodeNotMember)
}

// TestGroupReads counts from the members' read positions: the sender (or
// an admin) asks; others are not allowed; the sender is not counted.
func TestGroupReads(t *testing.T) {
	e := newLife(t, chat.Options{})
	g := e.group("alice", "bob", "carol", "dave")
	m := e.send("bob", wire.Send{CMID: "m1", Group: g, Body: "hi"})
	if _, err := e.svc.Read(e.ctx, "carol", wire.Read{Group: g}); err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.GroupReads(e.ctx, "bob", g, m.Seq, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Read != 1 || r.Unread != 2 || len(r.Users) != 1 || r.Users[0] != "carol" {
		t.Errorf("reads %+v, want carol read, alice and dave not", r)
	}
	if _, err := e.svc.GroupReads(e.ctx, "dave", g, m.Seq, "", 0); !errors.Is(err, chat.ErrNotAllowed) {
		t.Errorf("a plain member asking: %v", err)
	}
	if _, err := e.svc.GroupReads(e.ctx, "alice", g, m.Seq, "", 0); err != nil {
		t.Errorf("the owner asking: %v", err)
	}
	if _, err := e.svc.GroupReads(e.ctx, "bob", g, m.Seq+5, "", 0); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("a seq past the head: %v", err)
	}
}

// TestRecallRacesSync: devices syncing while the message is recalled.
// Once the recall is acked, no sync, history or conversation list returns
// the body, whatever was in flight.
func TestRecallRacesSync(t *testing.T) {
	e := newLife(t, chat.Options{})
	for round := range 20 {
		body := "secret-" + strconv.Itoa(round)
		ack := e.send("alice", wire.Send{CMID: "m" + strconv.Itoa(round), To: "bob", Body: body})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = e.svc.Sync(e.ctx, "bob", wire.SyncRequest{}, func(wire.Sync) error { return nil })
				}
			}()
		}
		if _, err := e.recall("alice", "r"+strconv.Itoa(round), ack.ID); err != nil {
			t.Fatal(err)
		}
		// Acked: from here on, nothing anywhere may show the body.
		for _, it := range e.sync("bob") {
			if it.Body == body {
				t.Fatalf("round %d: sync after the recall's ack carries the body: %+v", round, it)
			}
		}
		for _, it := range e.history("bob", "alice") {
			if it.Body == body {
				t.Fatalf("round %d: history after the ack carries the body", round)
			}
		}
		convs, _ := e.svc.Conversations(e.ctx, "bob")
		if l := convs.Conversations[0].Last; l != nil && l.Body == body {
			t.Fatalf("round %d: conversation list after the ack carries the body", round)
		}
		close(stop)
		wg.Wait()
	}
}

// TestTypingGroupBudget: in a group, at most chat.TypingPerGroup members'
// typing is relayed a second, however many type.
func TestTypingGroupBudget(t *testing.T) {
	e := newLife(t, chat.Options{})
	users := []string{"bob", "carol", "dave"}
	for i := range 5 {
		u := "m" + strconv.Itoa(i)
		if err := e.st.CreateUser(e.ctx, store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	g := e.group("alice", users...)
	sec := time.Now().Unix()
	relayed := 0
	for _, u := range append(users, "alice") {
		ok, err := e.svc.Typing(e.ctx, u, wire.Typing{Group: g, State: wire.TypingStart})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			relayed++
		}
	}
	if time.Now().Unix() == sec && relayed != chat.TypingPerGroup {
		t.Errorf("9 members typing within a second: %d relayed, want %d", relayed, chat.TypingPerGroup)
	}
}

// TestGroupReadsRate: a user asking for read counts past GroupReadsRate
// is refused rate_limited (each answer reads every member row).
func TestGroupReadsRate(t *testing.T) {
	st := openStore(t)
	mem := memory.New(st.ReserveVersions, memory.Options{})
	svc, err := chat.New(st, mem, pathTo(&lifeEvents{}), chat.Options{Limiter: mem, Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	ctx := context.Background()
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g1", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	ack, err := svc.Send(ctx, from("alice"), wire.Send{CMID: "m", Group: "g1", Type: "text", Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	var limited bool
	for range 3 * chat.GroupReadsRate {
		if _, err := svc.GroupReads(ctx, "alice", "g1", ack.Seq, "", 0); errors.Is(err, chat.ErrRateLimited) {
			limited = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !limited {
		t.Error("read counts asked in a burst were never limited")
	}
}

// TestUserSettingsRate: changing one's settings is a store write, taken
// within the user's send rate like conversation settings.
func TestUserSettingsRate(t *testing.T) {
	e := newLife(t, chat.Options{SendRate: 1, Limiter: deny{}})
	off := false
	_, err := e.svc.SetUserSettings(e.ctx, "alice", wire.UserSettings{ReadReceipts: &off})
	wantCode(t, err, wire.CodeRateLimited)
	if us, err := e.st.GetUserSettings(e.ctx, "alice"); err != nil || us.NoReadReceipts {
		t.Errorf("settings %+v %v: a refused change was stored", us, err)
	}
}

// TestTypingWithinSendRate: typing to many peers at once is bounded by
// the sender's send rate, not only one a second per conversation.
func TestTypingWithinSendRate(t *testing.T) {
	e := newLife(t, chat.Options{SendRate: 1, Limiter: deny{}})
	for _, peer := range []string{"bob", "carol", "dave"} {
		ok, err := e.svc.Typing(e.ctx, "alice", wire.Typing{Peer: peer, State: wire.TypingStart})
		if err != nil || ok {
			t.Errorf("typing to %s past the send rate: relayed %v, %v", peer, ok, err)
		}
	}
	if n := len(e.ev.other("bob", wire.KindTyping)); n != 0 {
		t.Errorf("bob got %d typing events", n)
	}
}
