package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// Every lifecycle kind decodes to its typed field, with what the server
// puts in it, live or from a sync; receipts and typing never take a place
// in the stream, whatever version they claim.
func TestDecodeLifecycleKinds(t *testing.T) {
	for _, c := range []struct {
		in    string
		check func(ev Event) bool
	}{
		{`{"kind":"recall","id":"7","by":"alice","ver":12,"ts":99}`, func(ev Event) bool {
			r := ev.Recall
			return r != nil && r.Kind == wire.KindRecall && r.ID == "7" && r.By == "alice" && r.TS == 99 && ev.Ver == 12 && ev.Item() == r
		}},
		{`{"kind":"recall","id":"7","by":"owner","group":"g1","seq":40,"ts":99}`, func(ev Event) bool {
			r := ev.Recall
			return r != nil && r.Group == "g1" && r.Seq == 40 && ev.Ver == 0 && groupItem(ev)
		}},
		{`{"kind":"edit","id":"7","body":"fixed","meta":{"a":1},"edited":123,"ver":13,"ts":5}`, func(ev Event) bool {
			e := ev.Edit
			return e != nil && e.ID == "7" && e.Body == "fixed" && string(e.Meta) == `{"a":1}` && e.Edited == 123 && ev.Ver == 13 && !groupItem(ev)
		}},
		{`{"kind":"reaction","id":"7","from":"bob","emoji":"👍🏽","op":"add","group":"g1","seq":41,"ts":5}`, func(ev Event) bool {
			r := ev.Reaction
			return r != nil && r.From == "bob" && r.Emoji == "👍🏽" && r.Op == wire.ReactAdd && r.Seq == 41 && groupItem(ev)
		}},
		{`{"kind":"reaction","id":"7","from":"bob","emoji":"♥","op":"remove","ver":14,"ts":5}`, func(ev Event) bool {
			return ev.Reaction != nil && ev.Reaction.Op == wire.ReactRemove && ev.Ver == 14
		}},
		{`{"kind":"delete","ids":["7","8"],"ver":15,"ts":5}`, func(ev Event) bool {
			d := ev.Delete
			return d != nil && slices.Equal(d.IDs, []string{"7", "8"}) && ev.Ver == 15 && !groupItem(ev)
		}},
		// A delete of group messages is the deleter's alone: its inbox's.
		{`{"kind":"delete","ids":["9"],"group":"g1","ver":16,"ts":5}`, func(ev Event) bool {
			return ev.Delete != nil && ev.Delete.Group == "g1" && ev.Ver == 16 && !groupItem(ev)
		}},
		{`{"kind":"delete","peer":"bob","ver":17,"ts":5}`, func(ev Event) bool {
			return ev.Delete != nil && ev.Delete.Peer == "bob" && len(ev.Delete.IDs) == 0
		}},
		{`{"kind":"receipt","peer":"bob","upto":"7","ts":55}`, func(ev Event) bool {
			return ev.Receipt != nil && *ev.Receipt == (wire.Receipt{Kind: wire.KindReceipt, Peer: "bob", Upto: "7", TS: 55}) && ev.Item() == nil
		}},
		{`{"kind":"receipt","peer":"bob","upto":"7","ts":55,"ver":1000000}`, func(ev Event) bool {
			return ev.Receipt != nil && ev.Ver == 0
		}},
		{`{"kind":"typing","from":"bob","peer":"alice","state":"start"}`, func(ev Event) bool {
			return ev.Typing != nil && *ev.Typing == (wire.TypingEvent{Kind: wire.KindTyping, From: "bob", Peer: "alice", State: wire.TypingStart})
		}},
		{`{"kind":"typing","from":"bob","group":"g1","state":"stop","ver":3}`, func(ev Event) bool {
			return ev.Typing != nil && ev.Typing.Group == "g1" && ev.Typing.State == wire.TypingStop && ev.Ver == 0 && !groupItem(ev)
		}},
		// A message as it is now: a tombstone, an edited one with reactions, a reply.
		{`{"kind":"msg","id":"7","ver":3,"from":"a","to":"b","type":"text","recalled":true,"ts":1}`, func(ev Event) bool {
			return ev.Msg != nil && ev.Msg.Recalled && ev.Msg.Body == "" && ev.Recall == nil
		}},
		{`{"kind":"msg","id":"8","ver":4,"from":"a","to":"b","type":"text","body":"b","edited":9,"reply_to":"7","quote":{"from":"b","type":"text","body":"q"},"reactions":{"👍":{"count":2,"users":["a","b"]}},"ts":1}`, func(ev Event) bool {
			m := ev.Msg
			return m != nil && m.Edited == 9 && m.ReplyTo == "7" && m.Quote != nil && m.Quote.Body == "q" &&
				m.Reactions["👍"].Count == 2 && slices.Equal(m.Reactions["👍"].Users, []string{"a", "b"})
		}},
	} {
		for _, synced := range []bool{false, true} {
			ev, err := decodeEvent(json.RawMessage(c.in), synced)
			if err != nil || ev.Synced != synced || !c.check(ev) {
				t.Errorf("decode %s (synced %v): %+v %v", c.in, synced, ev, err)
			}
			checkEvent(t, ev, synced)
		}
	}
	// A lifecycle event of the wrong shape is skipped (its version's gap
	// syncs it), not delivered as a kind the SDK does not know.
	for _, in := range []string{`{"kind":"recall","id":7,"ver":3}`, `{"kind":"delete","ids":"7","ver":3}`, `{"kind":"typing","state":1}`} {
		if ev, err := decodeEvent(json.RawMessage(in), false); err == nil {
			t.Errorf("decode %s: %+v, want an error", in, ev)
		}
	}
}

// change is a change item of the inbox at ver.
func change(kind string, ver uint64) Event {
	m := &wire.Msg{Kind: kind, ID: "1", Ver: ver}
	ev := Event{Kind: kind, Ver: ver}
	switch kind {
	case wire.KindRecall:
		ev.Recall = m
	case wire.KindEdit:
		ev.Edit = m
	case wire.KindReaction:
		ev.Reaction = m
	case wire.KindDelete:
		ev.Delete = m
	default:
		ev.Msg = m
	}
	return ev
}

func kinds(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprint(e.Kind, "@", e.Ver)
	}
	return out
}

// Change items are items of the inbox's stream: a sync batch of messages
// and changes moves the cursor over both, in version order; a live change
// continuing the cursor is delivered at once, a live one past a gap waits
// for the sync like a message, and one the sync brought is not delivered
// again live. Receipts and typing pass through, even during a sync.
func TestSequencerChangeItems(t *testing.T) {
	s := inboxSequencer(0, "")
	s.begin(500)
	// While the sync is out: a live recall of version 4 waits; a receipt
	// and a typing notice do not.
	out, _ := s.live(change(wire.KindRecall, 4))
	wantVers(t, "live recall during the sync", out)
	out, _ = s.live(Event{Kind: wire.KindReceipt, Receipt: &wire.Receipt{Peer: "bob"}})
	if len(out) != 1 || out[0].Receipt == nil {
		t.Fatalf("a receipt during a sync: %v", kinds(out))
	}
	out, _ = s.live(Event{Kind: wire.KindTyping, Typing: &wire.TypingEvent{From: "bob"}})
	if len(out) != 1 || out[0].Typing == nil {
		t.Fatalf("typing during a sync: %v", kinds(out))
	}
	b := wire.Sync{Kind: wire.KindSync, Since: 0, Upto: 3, Epoch: "e1"}
	items := []Event{change(wire.KindMsg, 1), change(wire.KindEdit, 3), change(wire.KindReaction, 2)}
	out, again := s.batch(b, items, len(items))
	if got := kinds(out); !slices.Equal(got, []string{"msg@1", "reaction@2", "edit@3", "recall@4"}) || again {
		t.Fatalf("sync with changes, then the held recall: %v again=%v", got, again)
	}
	if s.cursor != 4 {
		t.Fatalf("cursor %d after changes through 4", s.cursor)
	}
	// Live: the delete at 5 continues the cursor; the same again is a repeat.
	out, again = s.live(change(wire.KindDelete, 5))
	if got := kinds(out); !slices.Equal(got, []string{"delete@5"}) || again {
		t.Fatalf("live delete: %v", got)
	}
	out, _ = s.live(change(wire.KindDelete, 5))
	wantVers(t, "the delete again", out)
	// A live edit past a gap waits and asks for a sync, which brings the
	// recall it missed; the edit then follows, once.
	out, again = s.live(change(wire.KindEdit, 7))
	wantVers(t, "live edit past a gap", out)
	if !again {
		t.Fatal("a change past a gap asked for no sync")
	}
	s.begin(500)
	out, _ = s.batch(wire.Sync{Kind: wire.KindSync, Since: 5, Upto: 7, Epoch: "e1"}, []Event{change(wire.KindRecall, 6), change(wire.KindEdit, 7)}, 2)
	if got := kinds(out); !slices.Equal(got, []string{"recall@6", "edit@7"}) {
		t.Fatalf("the gap's sync: %v", got)
	}
	if s.cursor != 7 || len(s.pending) != 0 {
		t.Fatalf("cursor %d, pending %v", s.cursor, s.pending)
	}
}

// gchange is a change of a group message at seq s.
func gchange(kind, g string, s uint64) Event {
	ev := change(kind, 0)
	m := ev.Item()
	m.Group, m.Seq, m.ID = g, s, fmt.Sprint(g, s)
	ev.Raw = []byte(`{}`)
	return ev
}

func gitems(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprint(e.Kind, "@", e.Item().Seq)
	}
	return out
}

// A group's changes are items of its log: a live one continuing the
// group's cursor is delivered, one past a gap syncs the group, and a group
// batch of messages and changes moves the group's cursor over both.
func TestGroupSetChangeItems(t *testing.T) {
	gs := newGroupSet(map[string]GroupCursor{"a": {Seq: 5}}, &room{}, 100, 10*time.Second)
	gs.connected(t0)
	gs.onHeads(heads(wire.GroupHead{Group: "a", Seq: 5}), t0)
	out, reqs := gs.live(gchange(wire.KindReaction, "a", 6), t0)
	if got := gitems(out); !slices.Equal(got, []string{"reaction@6"}) || len(reqs) != 0 {
		t.Fatalf("live reaction in order: %v %v", got, described(reqs))
	}
	out, reqs = gs.live(gchange(wire.KindRecall, "a", 9), t0)
	if len(out) != 0 {
		t.Fatalf("a recall past a gap delivered %v", gitems(out))
	}
	wantReqs(t, "gap", reqs, "a@6")
	b := wire.Sync{Kind: wire.KindSync, Group: "a", Since: 6, Upto: 9, Epoch: "e1"}
	items := []Event{gev("a", 7), gchange(wire.KindEdit, "a", 8), gchange(wire.KindRecall, "a", 9)}
	out, _, _ = gs.batchAt(b, items, len(items))
	if got := gitems(out); !slices.Equal(got, []string{"msg@7", "edit@8", "recall@9"}) {
		t.Fatalf("the group's sync: %v (the live recall must not come twice)", got)
	}
	if c := gs.cursors()["a"]; c.Seq != 9 {
		t.Fatalf("group cursor %+v, want 9", c)
	}
	// A change of a group without a cursor asks heads, as a message does.
	_, reqs = gs.live(gchange(wire.KindEdit, "x", 1), t0.Add(2*time.Second))
	wantReqs(t, "change of an unknown group", reqs, "heads")
}

// Apply's requests: each kind to its topic with a filled CMID, a given
// CMID kept (a resend is the same change), and what is not a request
// refused before anything is sent.
func TestChangeRequests(t *testing.T) {
	for _, c := range []struct {
		req   any
		topic string
	}{
		{wire.Recall{ID: "7"}, wire.TopicRecall},
		{&wire.Edit{ID: "7", Body: "x"}, wire.TopicEdit},
		{wire.React{ID: "7", Emoji: "👍", Op: wire.ReactAdd}, wire.TopicReact},
		{wire.React{ID: "7", Emoji: "👍", Op: wire.ReactRemove}, wire.TopicReact},
		{wire.Delete{IDs: []string{"7", "8"}}, wire.TopicDelete},
		{wire.Delete{Peer: "Bob"}, wire.TopicDelete},
	} {
		topic, cmid, _, out, err := changeRequest(c.req)
		if err != nil || topic != c.topic || !strings.HasPrefix(cmid, "c-") {
			t.Fatalf("%+v: %s %s %v", c.req, topic, cmid, err)
		}
		p, _ := json.Marshal(out)
		if !strings.Contains(string(p), `"cmid":"`+cmid+`"`) {
			t.Fatalf("%+v: payload %s lacks its cmid", c.req, p)
		}
	}
	if _, cmid, _, _, _ := changeRequest(wire.Recall{CMID: "mine", ID: "7"}); cmid != "mine" {
		t.Fatalf("a given cmid became %q", cmid)
	}
	many := make([]string, wire.MaxDeleteIDs+1)
	for i := range many {
		many[i] = fmt.Sprint(i + 1)
	}
	for _, req := range []any{
		wire.Send{To: "bob"},
		wire.Recall{},
		wire.Recall{ID: ".."},
		wire.Edit{ID: "7/../8"},
		wire.React{ID: "7", Emoji: "👍", Op: "toggle"},
		wire.React{ID: "7", Op: wire.ReactAdd},
		wire.Delete{},
		wire.Delete{IDs: []string{"7"}, Peer: "bob"},
		wire.Delete{IDs: many},
		wire.Delete{Peer: "../x"},
	} {
		if _, _, _, _, err := changeRequest(req); err == nil {
			t.Errorf("%+v: no error", req)
		}
	}
	for _, ty := range []wire.Typing{{}, {Peer: "bob", Group: "g"}, {Peer: "bob", State: "maybe"}} {
		if err := checkTyping(&ty); err == nil {
			t.Errorf("typing %+v: no error", ty)
		}
	}
}

// Each lifecycle call over HTTP: its method, path (the emoji escaped) and
// body, and the reply decoded; an error status comes back as the
// wire.Error.
func TestHTTPLifecycle(t *testing.T) {
	type seen struct{ method, uri, body string }
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		got = append(got, seen{r.Method, r.URL.RequestURI(), string(body)})
		switch {
		case r.URL.Path == "/v1/typing":
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/v1/me/settings":
			fmt.Fprint(w, `{"read_receipts":false}`)
		case strings.HasSuffix(r.URL.Path, "/reads"):
			fmt.Fprint(w, `{"read":2,"unread":1,"users":["a","b"]}`)
		case strings.HasPrefix(r.URL.Path, "/v1/messages/9"):
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"code":"too_late","message":"past the window"}`)
		default:
			fmt.Fprint(w, `{"cmid":"c1","id":"7","ver":30,"ts":9}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	h := &HTTP{Server: srv.URL, Token: "tok"}
	for name, call := range map[string]func() (wire.Ack, error){
		"recall": func() (wire.Ack, error) { return h.Recall(ctx, wire.Recall{CMID: "c1", ID: "7"}) },
		"edit":   func() (wire.Ack, error) { return h.Edit(ctx, wire.Edit{CMID: "c1", ID: "7", Body: "new"}) },
		"react": func() (wire.Ack, error) {
			return h.React(ctx, wire.React{CMID: "c1", ID: "7", Emoji: "👨‍👩‍👧", Op: wire.ReactAdd})
		},
		"unreact": func() (wire.Ack, error) {
			return h.React(ctx, wire.React{CMID: "c1", ID: "7", Emoji: "👍", Op: wire.ReactRemove})
		},
		"delete": func() (wire.Ack, error) { return h.Delete(ctx, wire.Delete{CMID: "c1", IDs: []string{"7", "8"}}) },
		"clear":  func() (wire.Ack, error) { return h.Delete(ctx, wire.Delete{CMID: "c1", Peer: "Bob"}) },
	} {
		if a, err := call(); err != nil || a != (wire.Ack{Kind: wire.KindAck, CMID: "c1", ID: "7", Ver: 30, TS: 9}) {
			t.Fatalf("%s: %+v %v", name, a, err)
		}
	}
	if err := h.Typing(ctx, wire.Typing{Group: "g1"}); err != nil {
		t.Fatal(err)
	}
	off := false
	if s, err := h.SetUserSettings(ctx, wire.UserSettings{ReadReceipts: &off}); err != nil || s.ReadReceipts == nil || *s.ReadReceipts {
		t.Fatalf("set user settings: %+v %v", s, err)
	}
	if _, err := h.UserSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := h.GroupReads(ctx, "G1", 42, "a", 10); err != nil || r.Read != 2 || r.Unread != 1 || len(r.Users) != 2 {
		t.Fatalf("group reads: %+v %v", r, err)
	}
	_, err := h.Recall(ctx, wire.Recall{CMID: "c2", ID: "9"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeTooLate {
		t.Fatalf("a refused recall: %v", err)
	}
	want := map[seen]bool{
		{"POST", "/v1/messages/7/recall", `{"cmid":"c1","id":"7"}`}:                                                                                     true,
		{"PATCH", "/v1/messages/7", `{"cmid":"c1","id":"7","body":"new"}`}:                                                                              true,
		{"PUT", "/v1/messages/7/reactions/%F0%9F%91%A8%E2%80%8D%F0%9F%91%A9%E2%80%8D%F0%9F%91%A7", `{"cmid":"c1","id":"7","emoji":"👨‍👩‍👧","op":"add"}`}: true,
		{"DELETE", "/v1/messages/7/reactions/%F0%9F%91%8D", `{"cmid":"c1","id":"7","emoji":"👍","op":"remove"}`}:                                         true,
		{"POST", "/v1/messages/delete", `{"cmid":"c1","ids":["7","8"]}`}:                                                                                true,
		{"DELETE", "/v1/conversations/bob", `{"cmid":"c1","peer":"Bob"}`}:                                                                               true,
		{"POST", "/v1/typing", `{"group":"g1","state":"start"}`}:                                                                                        true,
		{"PUT", "/v1/me/settings", `{"read_receipts":false}`}:                                                                                           true,
		{"GET", "/v1/me/settings", ""}:                                                                                                                  true,
		{"GET", "/v1/groups/g1/messages/42/reads?after=a&limit=10", ""}:                                                                                 true,
		{"POST", "/v1/messages/9/recall", `{"cmid":"c2","id":"9"}`}:                                                                                     true,
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected request %+v", g)
		}
		delete(want, g)
	}
	for w := range want {
		t.Errorf("missing request %+v", w)
	}
	// Refused before a request: a path that would name another route.
	n := len(got)
	if _, err := h.Recall(ctx, wire.Recall{ID: ".."}); err == nil {
		t.Fatal("recall of \"..\" was sent")
	}
	if _, err := h.React(ctx, wire.React{ID: "7", Op: wire.ReactAdd}); err == nil {
		t.Fatal("a reaction without an emoji was sent")
	}
	if len(got) != n {
		t.Fatalf("refused calls made requests: %+v", got[n:])
	}
}

// loopFixture is a loop with no connection: what it would publish goes
// nowhere, what it delivers is recorded.
func loopFixture(t *testing.T, groups map[string]GroupCursor) (*loopState, *[]Event) {
	t.Helper()
	var got []Event
	c := &Client{cfg: Config{OnEvent: func(ev Event) { got = append(got, ev) }}.withDefaults(),
		inbox: wire.InboxTopic("alice"), device: wire.DeviceTopic("alice", "phone"),
		synced: make(chan struct{}), up: make(chan struct{})}
	c.log = c.cfg.Logger
	r := &room{}
	l := &loopState{c: c, seq: newSequencer(0, "", ver, r), groups: newGroupSet(groups, r, 100, time.Minute),
		timer: time.NewTimer(time.Hour), recheck: time.NewTimer(time.Hour)}
	t.Cleanup(func() { l.timer.Stop(); l.recheck.Stop() })
	l.handle(item{kind: itemUp, gen: 1})
	return l, &got
}

func (l *loopState) feed(topic, payload string) {
	l.handle(item{kind: itemMsg, gen: l.gen, topic: topic, payload: []byte(payload)})
}

// The loop sends a live change of a group message through that group's
// sequencer (by seq, exactly once with the group's sync), a delete through
// the inbox's (by ver, whatever group it names), and receipts and typing
// straight to the application, even while a sync is out.
func TestLoopRoutesLifecycleEvents(t *testing.T) {
	l, got := loopFixture(t, map[string]GroupCursor{"g1": {Seq: 5}})
	inbox, device := l.c.inbox, l.c.device
	l.feed(device, `{"kind":"sync","since":0,"upto":0,"more":false,"epoch":"e1","items":[]}`)
	l.feed(device, `{"kind":"heads","groups":[{"group":"g1","seq":5,"join":0,"read":0}]}`)
	l.feed(inbox, `{"kind":"recall","id":"50","by":"bob","group":"g1","seq":6,"ts":1}`)
	l.feed(inbox, `{"kind":"typing","from":"bob","group":"g1","state":"start"}`)
	l.feed(inbox, `{"kind":"receipt","peer":"bob","upto":"50","ts":2}`)
	l.feed(inbox, `{"kind":"delete","ids":["50"],"group":"g1","ver":1,"ts":3}`)
	// The group's sync brings the recall again, and what followed it.
	l.feed(device, `{"kind":"sync","group":"g1","since":5,"upto":7,"more":false,"epoch":"e1","items":[`+
		`{"kind":"recall","id":"50","by":"bob","group":"g1","seq":6,"ts":1},`+
		`{"kind":"reaction","id":"51","from":"bob","emoji":"👍","op":"add","group":"g1","seq":7,"ts":4}]}`)
	var desc []string
	for _, ev := range *got {
		desc = append(desc, fmt.Sprintf("%s v%d s%d", ev.Kind, ev.Ver, func() uint64 {
			if m := ev.Item(); m != nil {
				return m.Seq
			}
			return 0
		}()))
	}
	want := []string{"recall v0 s6", "typing v0 s0", "receipt v0 s0", "delete v1 s0", "reaction v0 s7"}
	if !slices.Equal(desc, want) {
		t.Fatalf("delivered %q, want %q", desc, want)
	}
	if cur := l.groups.cursors()["g1"]; cur.Seq != 7 || l.seq.cursor != 1 {
		t.Fatalf("cursors: group %+v, inbox %d", cur, l.seq.cursor)
	}
}

// The same typing notice goes out at most once a second, a different one
// (another conversation, or stop after start) at once; the gate's memory
// stays bounded.
func TestTypingGate(t *testing.T) {
	var g typingGate
	bob := wire.Typing{Peer: "bob", State: wire.TypingStart}
	for _, c := range []struct {
		t    wire.Typing
		at   time.Duration
		want bool
	}{
		{bob, 0, true},
		{bob, 300 * time.Millisecond, false},
		{wire.Typing{Peer: "carol", State: wire.TypingStart}, 300 * time.Millisecond, true},
		{wire.Typing{Peer: "bob", State: wire.TypingStop}, 400 * time.Millisecond, true},
		{bob, 999 * time.Millisecond, false},
		{bob, time.Second, true},
		{bob, 1500 * time.Millisecond, false},
	} {
		if got := g.allow(c.t, t0.Add(c.at)); got != c.want {
			t.Fatalf("%+v at %v: allow %v, want %v", c.t, c.at, got, c.want)
		}
	}
	for i := range 3 * maxTypingGate {
		g.allow(wire.Typing{Group: fmt.Sprint("g", i), State: wire.TypingStart}, t0.Add(2*time.Second))
	}
	if n := len(g.last); n > maxTypingGate {
		t.Fatalf("the gate remembers %d notices, at most %d", n, maxTypingGate)
	}
}

// BenchmarkDecodeLifecycle: what decoding each lifecycle event costs the
// loop (one pass, as a message).
func BenchmarkDecodeLifecycle(b *testing.B) {
	for _, c := range []struct{ name, in string }{
		{"kind=recall", `{"kind":"recall","id":"7340000000000000000","ver":43,"by":"bench-sender","ts":1700000000000}`},
		{"kind=edit", `{"kind":"edit","id":"7340000000000000000","ver":44,"body":"` + strings.Repeat("b", 64) + `","edited":1700000000000,"ts":1700000000000}`},
		{"kind=reaction", `{"kind":"reaction","id":"7340000000000000000","group":"bench-group","seq":45,"from":"bench-sender","emoji":"👍🏽","op":"add","ts":1700000000000}`},
		{"kind=receipt", `{"kind":"receipt","peer":"bench-sender","upto":"7340000000000000000","ts":1700000000000}`},
		{"kind=typing", `{"kind":"typing","from":"bench-sender","peer":"bench-receiver","state":"start"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := []byte(c.in)
			b.ReportAllocs()
			for range b.N {
				if _, err := decodeEvent(p, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
