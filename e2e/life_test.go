package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// The message lifecycle (docs/protocol.md#message-lifecycle, SPEC §11) end
// to end: each change made over MQTT (a real paho connection publishing to
// im/recall, im/edit, …) and over HTTP (the routes of docs/http.md), seen
// live on the other party's real MQTT connection, then by a device that
// was away, through im/sync and GET /v1/sync. These tests talk raw MQTT
// and HTTP, never the SDK: they check the wire as any client sees it.

// actor is one user changing messages over one transport: MQTT (its
// device publishes and waits for the reply on its device topic) or HTTP
// (its token). Each call returns the ack or the refusal.
type actor interface {
	send(s wire.Send) (wire.Ack, *wire.Error)
	recall(cmid, id string) (wire.Ack, *wire.Error)
	edit(cmid, id, body string) (wire.Ack, *wire.Error)
	react(cmid, id, emoji, op string) (wire.Ack, *wire.Error)
	del(cmid string, ids []string) (wire.Ack, *wire.Error)
	clear(cmid, peer string) (wire.Ack, *wire.Error)
	read(r wire.Read)
	typing(ty wire.Typing)
}

// mqttActor changes messages through d's MQTT connection.
type mqttActor struct{ d *device }

// do publishes v and waits for a new reply to cmid (a resent cmid is
// answered again).
func (a mqttActor) do(topic, cmid string, v any) (wire.Ack, *wire.Error) {
	a.d.t.Helper()
	before := len(a.d.replies(cmid))
	a.d.publish(topic, v)
	wait.For(a.d.t, "reply to "+cmid, 10*time.Second, func() bool { return len(a.d.replies(cmid)) > before })
	raw := a.d.replies(cmid)[before]
	var probe struct{ Kind string }
	mustUnmarshal(a.d.t, raw, &probe)
	if probe.Kind == wire.KindError {
		e := &wire.Error{}
		mustUnmarshal(a.d.t, raw, e)
		return wire.Ack{}, e
	}
	var ack wire.Ack
	mustUnmarshal(a.d.t, raw, &ack)
	return ack, nil
}

// replies returns the acks and errors of cmid d received, in order.
func (d *device) replies(cmid string) []json.RawMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []json.RawMessage
	for _, raw := range d.direct {
		var probe struct{ Kind, CMID string }
		if json.Unmarshal(raw, &probe) == nil && probe.CMID == cmid && (probe.Kind == wire.KindAck || probe.Kind == wire.KindError) {
			out = append(out, raw)
		}
	}
	return out
}

func (a mqttActor) send(s wire.Send) (wire.Ack, *wire.Error) { return a.do(wire.TopicSend, s.CMID, s) }
func (a mqttActor) recall(cmid, id string) (wire.Ack, *wire.Error) {
	return a.do(wire.TopicRecall, cmid, wire.Recall{CMID: cmid, ID: id})
}
func (a mqttActor) edit(cmid, id, body string) (wire.Ack, *wire.Error) {
	return a.do(wire.TopicEdit, cmid, wire.Edit{CMID: cmid, ID: id, Body: body})
}
func (a mqttActor) react(cmid, id, emoji, op string) (wire.Ack, *wire.Error) {
	return a.do(wire.TopicReact, cmid, wire.React{CMID: cmid, ID: id, Emoji: emoji, Op: op})
}
func (a mqttActor) del(cmid string, ids []string) (wire.Ack, *wire.Error) {
	return a.do(wire.TopicDelete, cmid, wire.Delete{CMID: cmid, IDs: ids})
}
func (a mqttActor) clear(cmid, peer string) (wire.Ack, *wire.Error) {
	return a.do(wire.TopicDelete, cmid, wire.Delete{CMID: cmid, Peer: peer})
}
func (a mqttActor) read(r wire.Read)      { a.d.publish(wire.TopicRead, r) }
func (a mqttActor) typing(ty wire.Typing) { a.d.publish(wire.TopicTyping, ty) }

// httpActor changes messages through the HTTP API with token.
type httpActor struct {
	t     testing.TB
	base  string
	token string
}

// call sends body (nil: none) and returns the ack of a 200 or the error
// of anything else, whose status must be the one its code has.
func (a httpActor) call(method, path string, body any) (wire.Ack, *wire.Error) {
	a.t.Helper()
	var raw json.RawMessage
	code := httpJSON(a.t, method, a.base+path, a.token, body, &raw)
	if code == http.StatusOK {
		var ack wire.Ack
		mustUnmarshal(a.t, raw, &ack)
		return ack, nil
	}
	e := &wire.Error{}
	mustUnmarshal(a.t, raw, e)
	if want := wire.HTTPStatus(e.Code); code != want {
		a.t.Fatalf("%s %s: status %d for %q, want %d", method, path, code, e.Code, want)
	}
	return wire.Ack{}, e
}

func (a httpActor) send(s wire.Send) (wire.Ack, *wire.Error) {
	return a.call("POST", "/v1/messages", s)
}
func (a httpActor) recall(cmid, id string) (wire.Ack, *wire.Error) {
	return a.call("POST", "/v1/messages/"+url.PathEscape(id)+"/recall", wire.Recall{CMID: cmid})
}
func (a httpActor) edit(cmid, id, body string) (wire.Ack, *wire.Error) {
	return a.call("PATCH", "/v1/messages/"+url.PathEscape(id), wire.Edit{CMID: cmid, Body: body})
}
func (a httpActor) react(cmid, id, emoji, op string) (wire.Ack, *wire.Error) {
	method := "PUT"
	if op == wire.ReactRemove {
		method = "DELETE"
	}
	return a.call(method, "/v1/messages/"+url.PathEscape(id)+"/reactions/"+url.PathEscape(emoji)+"?cmid="+url.QueryEscape(cmid), nil)
}
func (a httpActor) del(cmid string, ids []string) (wire.Ack, *wire.Error) {
	return a.call("POST", "/v1/messages/delete", wire.Delete{CMID: cmid, IDs: ids})
}
func (a httpActor) clear(cmid, peer string) (wire.Ack, *wire.Error) {
	return a.call("DELETE", "/v1/conversations/"+url.PathEscape(peer)+"?cmid="+url.QueryEscape(cmid), nil)
}
func (a httpActor) read(r wire.Read) {
	a.t.Helper()
	if code := httpJSON(a.t, "POST", a.base+"/v1/read", a.token, r, nil); code/100 != 2 {
		a.t.Fatalf("POST /v1/read: %d", code)
	}
}
func (a httpActor) typing(ty wire.Typing) {
	a.t.Helper()
	if code := httpJSON(a.t, "POST", a.base+"/v1/typing", a.token, ty, nil); code != http.StatusNoContent {
		a.t.Fatalf("POST /v1/typing: %d", code)
	}
}

// transports runs f once with MQTT actors and once with HTTP ones, each
// on its own server. act makes user's actor; its MQTT device (user/phone)
// is connected either way, to watch the live events.
// edit, if given, adjusts the servers' configuration.
func transports(t *testing.T, f func(t *testing.T, s *testserver.Server, act func(user string) (actor, *device)), edit ...func(*daemon.Config)) {
	for _, tr := range []string{"mqtt", "http"} {
		t.Run(tr, func(t *testing.T) {
			s := testserver.Start(t, edit...)
			f(t, s, func(user string) (actor, *device) {
				tok := account(t, s, user, "phone")
				d := connect(t, s.MQTT, user, "phone", tok)
				if tr == "mqtt" {
					return mqttActor{d}, d
				}
				return httpActor{t, s.HTTP, login(t, s, user, "api")}, d
			})
		})
	}
}

// mustOK returns a check that fails the test on a refusal and returns the ack.
func mustOK(t testing.TB) func(wire.Ack, *wire.Error) wire.Ack {
	return func(ack wire.Ack, werr *wire.Error) wire.Ack {
		t.Helper()
		if werr != nil {
			t.Fatalf("refused: %+v", werr)
		}
		return ack
	}
}

// refused fails the test unless werr has code.
func refused(t testing.TB, what string, werr *wire.Error, code string) {
	t.Helper()
	if werr == nil || werr.Code != code {
		t.Fatalf("%s: got %+v, want %s", what, werr, code)
	}
}

// events returns every inbox event d received, in order, as wire.Msg
// (kind, id and the change's fields; receipts and typing too, roughly).
func (d *device) events() []wire.Msg {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]wire.Msg, 0, len(d.inbox))
	for _, raw := range d.inbox {
		var m wire.Msg
		if json.Unmarshal(raw, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// find returns the events of kind about message id ("" any).
func (d *device) find(kind, id string) []wire.Msg {
	var out []wire.Msg
	for _, m := range d.events() {
		if m.Kind == kind && (id == "" || m.ID == id) {
			out = append(out, m)
		}
	}
	return out
}

// await waits for the first event of kind about id and returns it.
func (d *device) await(kind, id string) wire.Msg {
	d.t.Helper()
	wait.For(d.t, fmt.Sprintf("%s/%s gets %s of %s", d.user, d.device, kind, id), 10*time.Second, func() bool { return len(d.find(kind, id)) > 0 })
	return d.find(kind, id)[0]
}

// getSync is GET /v1/sync?since=… (&group=…).
func getSync(t testing.TB, s *testserver.Server, token, group string, since uint64) wire.Sync {
	t.Helper()
	var b wire.Sync
	q := fmt.Sprintf("?since=%d&limit=1000", since)
	if group != "" {
		q += "&group=" + group
	}
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync"+q, token, nil, &b); code != 200 {
		t.Fatalf("GET /v1/sync%s: %d", q, code)
	}
	return b
}

// mqttSync connects user's device dev (away until now), asks im/sync and
// returns the batch.
func mqttSync(t testing.TB, s *testserver.Server, user, dev string, req wire.SyncRequest) wire.Sync {
	t.Helper()
	d := connect(t, s.MQTT, user, dev, "secret-"+user)
	d.publish(wire.TopicSync, req)
	wait.For(t, user+"/"+dev+" gets its sync batch", 10*time.Second, func() bool { return len(d.directOf(wire.KindSync)) > 0 })
	var b wire.Sync
	mustUnmarshal(t, d.directOf(wire.KindSync)[0], &b)
	d.c.Disconnect(50)
	return b
}

func history(t testing.TB, s *testserver.Server, token, peer string) []wire.Msg {
	t.Helper()
	var h wire.History
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations/"+peer+"/messages", token, nil, &h); code != 200 {
		t.Fatalf("history with %s: %d", peer, code)
	}
	return h.Messages
}

func conversations(t testing.TB, s *testserver.Server, token string) wire.Conversations {
	t.Helper()
	var cs wire.Conversations
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", token, nil, &cs); code != 200 {
		t.Fatalf("conversations: %d", code)
	}
	return cs
}

// conv returns the conversation with peer (or group) in cs.
func conv(cs wire.Conversations, peer string) (wire.Conversation, bool) {
	for _, c := range cs.Conversations {
		if c.Peer == peer || c.Group == peer {
			return c, true
		}
	}
	return wire.Conversation{}, false
}

// byID indexes the messages (kind msg) of items.
func byID(items []wire.Msg) map[string]wire.Msg {
	out := map[string]wire.Msg{}
	for _, m := range items {
		if m.Kind == wire.KindMsg {
			out[m.ID] = m
		}
	}
	return out
}

// kinds lists items' kinds in order.
func kinds(items []wire.Msg) string {
	ks := make([]string, len(items))
	for i, m := range items {
		ks[i] = m.Kind
	}
	return strings.Join(ks, ",")
}

// metric returns the value of one sample line of /metrics (0 if absent).
func metric(t testing.TB, s *testserver.Server, sample string) float64 {
	t.Helper()
	resp, err := http.Get(s.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// TestLifeDirect: in a 1:1 conversation, over MQTT and over HTTP, alice
// recalls, edits, gets a reaction and a reply with a quote; bob deletes
// one message for himself and then clears the conversation. Each change
// is live on the other party's MQTT connection (and on the actor's own);
// a device of bob that was away gets the changes and the messages as
// they are now, through im/sync and GET /v1/sync; history and the
// conversation list agree.
func TestLifeDirect(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		alice, alicePhone := act("alice")
		bob, bobPhone := act("bob")
		aliceTok, bobTok := login(t, s, "alice", "web"), login(t, s, "bob", "web")
		ok := mustOK(t)
		text := func(cmid, body string) wire.Send { return wire.Send{CMID: cmid, To: "bob", Type: "text", Body: body} }
		m1 := ok(alice.send(text("a1", "first, to be recalled")))
		m2 := ok(alice.send(text("a2", "secnod")))
		m3 := ok(alice.send(text("a3", "third")))
		for _, id := range []string{m1.ID, m2.ID, m3.ID} {
			bobPhone.await(wire.KindMsg, id)
		}

		// Recall: both parties' devices get it, with its own ver.
		rc := ok(alice.recall("r1", m1.ID))
		if rc.CMID != "r1" || rc.ID == "" || rc.Ver <= m3.Ver {
			t.Fatalf("recall ack %+v (after %+v)", rc, m3)
		}
		for _, d := range []*device{bobPhone, alicePhone} {
			ev := d.await(wire.KindRecall, m1.ID)
			if ev.By != "alice" || ev.Ver == 0 || ev.TS == 0 || ev.Body != "" {
				t.Fatalf("%s's recall event %+v", d.user, ev)
			}
		}
		// Edit.
		ok(alice.edit("e1", m2.ID, "second"))
		if ev := bobPhone.await(wire.KindEdit, m2.ID); ev.Body != "second" || ev.Edited == 0 || ev.Ver == 0 {
			t.Fatalf("edit event %+v", ev)
		}
		// Reactions: bob adds two and takes one back.
		ok(bob.react("x1", m2.ID, "👍", wire.ReactAdd))
		ok(bob.react("x2", m2.ID, "❤️", wire.ReactAdd))
		ok(bob.react("x3", m2.ID, "❤️", wire.ReactRemove))
		wait.For(t, "alice sees bob's three reactions", 10*time.Second, func() bool { return len(alicePhone.find(wire.KindReaction, m2.ID)) == 3 })
		rs := alicePhone.find(wire.KindReaction, m2.ID)
		if rs[0].From != "bob" || rs[0].Emoji != "👍" || rs[0].Op != wire.ReactAdd || rs[2].Emoji != "❤️" || rs[2].Op != wire.ReactRemove || rs[0].Ver == 0 {
			t.Fatalf("reaction events %+v", rs)
		}
		// A reply quotes the message as it is now.
		reply := ok(bob.send(wire.Send{CMID: "b1", To: "alice", Type: "text", Body: "ok", ReplyTo: m2.ID}))
		if ev := alicePhone.await(wire.KindMsg, reply.ID); ev.ReplyTo != m2.ID || ev.Quote == nil || ev.Quote.From != "alice" || ev.Quote.Body != "second" {
			t.Fatalf("reply event %+v quote %+v", ev, ev.Quote)
		}
		// Delete for me: bob's devices hear of it, alice's do not.
		dl := ok(bob.del("d1", []string{m3.ID}))
		if ev := bobPhone.await(wire.KindDelete, ""); len(ev.IDs) != 1 || ev.IDs[0] != m3.ID || ev.Ver == 0 {
			t.Fatalf("delete event %+v (ack %+v)", ev, dl)
		}

		// bob's tablet was away: it syncs, over MQTT and HTTP alike.
		viaMQTT := mqttSync(t, s, "bob", "tablet", wire.SyncRequest{Since: 0, Limit: 1000})
		viaHTTP := getSync(t, s, bobTok, "", 0)
		for name, b := range map[string]wire.Sync{"im/sync": viaMQTT, "GET /v1/sync": viaHTTP} {
			got := byID(b.Items)
			if m, ok := got[m1.ID]; !ok || !m.Recalled || m.Body != "" {
				t.Errorf("%s: the recalled message %+v (present %v)", name, m, ok)
			}
			if m := got[m2.ID]; m.Body != "second" || m.Edited == 0 || m.Reactions["👍"].Count != 1 || len(m.Reactions["👍"].Users) != 1 || m.Reactions["👍"].Users[0] != "bob" || len(m.Reactions["❤️"].Users) != 0 {
				t.Errorf("%s: the edited message %+v", name, m)
			}
			if _, ok := got[m3.ID]; ok {
				t.Errorf("%s: the message bob deleted is there", name)
			}
			if m := got[reply.ID]; m.Quote == nil || m.Quote.Body != "second" || m.ReplyTo != m2.ID {
				t.Errorf("%s: the reply %+v", name, m)
			}
			var recalls, edits, reactions, deletes int
			for _, it := range b.Items {
				if strings.Contains(it.Body, "recalled") || strings.Contains(it.Body, "secnod") {
					t.Errorf("%s: an old body in %+v", name, it)
				}
				switch it.Kind {
				case wire.KindRecall:
					recalls++
				case wire.KindEdit:
					edits++
				case wire.KindReaction:
					reactions++
				case wire.KindDelete:
					deletes++
				}
			}
			if recalls != 1 || edits != 1 || reactions != 3 || deletes != 1 {
				t.Errorf("%s: items %s", name, kinds(b.Items))
			}
		}
		// History: bob's without m3, alice's with it; both with the tombstone.
		bh, ah := byID(history(t, s, bobTok, "alice")), byID(history(t, s, aliceTok, "bob"))
		if _, ok := bh[m3.ID]; ok || ah[m3.ID].Body != "third" {
			t.Errorf("history: bob has m3 %v, alice's %+v", ok, ah[m3.ID])
		}
		for who, h := range map[string]map[string]wire.Msg{"bob": bh, "alice": ah} {
			if m := h[m1.ID]; !m.Recalled || m.Body != "" {
				t.Errorf("%s's history: %+v", who, m)
			}
			if m := h[m2.ID]; m.Body != "second" || m.Edited == 0 || m.Reactions["👍"].Count != 1 {
				t.Errorf("%s's history: %+v", who, m)
			}
		}
		// The list's last shows the message as it is now: a tombstone.
		m4 := ok(alice.send(text("a4", "last, to be recalled")))
		ok(alice.recall("r4", m4.ID))
		for who, tok := range map[string]string{"alice": aliceTok, "bob": bobTok} {
			peer := map[string]string{"alice": "bob", "bob": "alice"}[who]
			c, ok := conv(conversations(t, s, tok), peer)
			if !ok || c.Last == nil || c.Last.ID != m4.ID || !c.Last.Recalled || c.Last.Body != "" {
				t.Errorf("%s's list: %+v (last %+v)", who, c, c.Last)
			}
		}

		// Clearing: bob's list and history lose the conversation, alice's keep it.
		ok(bob.clear("c1", "alice"))
		wait.For(t, "bob hears of the clear", 10*time.Second, func() bool {
			for _, ev := range bobPhone.find(wire.KindDelete, "") {
				if ev.Peer == "alice" {
					return true
				}
			}
			return false
		})
		if _, ok := conv(conversations(t, s, bobTok), "alice"); ok {
			t.Errorf("bob's list still has alice after the clear")
		}
		if h := history(t, s, bobTok, "alice"); len(h) != 0 {
			t.Errorf("bob's history after the clear: %d messages", len(h))
		}
		if h := history(t, s, aliceTok, "bob"); len(h) != 5 {
			t.Errorf("alice's history after bob's clear: %d messages, want 5", len(h))
		}
		for _, ev := range alicePhone.events() {
			if ev.Kind == wire.KindDelete {
				t.Errorf("alice got bob's delete: %+v", ev)
			}
		}
		b := getSync(t, s, bobTok, "", viaHTTP.Upto)
		if len(b.Items) == 0 || b.Items[len(b.Items)-1].Kind != wire.KindDelete || b.Items[len(b.Items)-1].Peer != "alice" {
			t.Errorf("bob's sync after the clear: %s", kinds(b.Items))
		}
	})
}
