package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// contactEvents returns the contact events d received.
func (d *device) contactEvents() []wire.ContactEvent {
	var out []wire.ContactEvent
	for _, raw := range d.inboxOf(wire.KindContact) {
		var ev wire.ContactEvent
		if json.Unmarshal(raw, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// blockEvents returns the block events d received.
func (d *device) blockEvents() []wire.BlockEvent {
	var out []wire.BlockEvent
	for _, raw := range d.inboxOf(wire.KindBlock) {
		var ev wire.BlockEvent
		if json.Unmarshal(raw, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// fromUser counts the messages of ms that user sent.
func fromUser(ms []wire.Msg, user string) int {
	n := 0
	for _, m := range ms {
		if m.From == user {
			n++
		}
	}
	return n
}

// social calls one route of docs/http.md#contacts-and-privacy and
// returns the status, checking that an error's status is its code's.
func social(t *testing.T, s *testserver.Server, method, path, token string, body, out any) (int, *wire.Error) {
	t.Helper()
	var raw json.RawMessage
	code := httpJSON(t, method, s.HTTP+path, token, body, &raw)
	if code/100 == 2 {
		if out != nil && len(raw) > 0 {
			mustUnmarshal(t, raw, out)
		}
		return code, nil
	}
	e := &wire.Error{}
	mustUnmarshal(t, raw, e)
	if want := wire.HTTPStatus(e.Code); code != want {
		t.Fatalf("%s %s: status %d for %q, want %d", method, path, code, e.Code, want)
	}
	return code, e
}

func contactsOf(t *testing.T, s *testserver.Server, token string) []wire.Contact {
	t.Helper()
	var cs wire.Contacts
	if code, e := social(t, s, "GET", "/v1/contacts", token, nil, &cs); code != 200 {
		t.Fatalf("GET /v1/contacts: %d %+v", code, e)
	}
	return cs.Contacts
}

// TestSocialContacts: a request, its acceptance and a removal each reach
// both sides' devices as contact events, and both lists follow; bad
// input (oneself, an unknown user, a request never made, a bad page)
// gets its code and writes nothing.
func TestSocialContacts(t *testing.T) {
	s := testserver.Start(t)
	aliceTok, bobTok := account(t, s, "alice", "phone"), account(t, s, "bob", "phone")
	account(t, s, "carol", "phone")
	alicePhone, bobPhone := connect(t, s.MQTT, "alice", "phone", aliceTok), connect(t, s.MQTT, "bob", "phone", bobTok)

	for _, bad := range []struct {
		method, path string
		body         any
		code         string
	}{
		{"POST", "/v1/contacts", wire.ContactAsk{User: "alice"}, wire.CodeSelf},
		{"POST", "/v1/contacts", wire.ContactAsk{User: "ALICE"}, wire.CodeSelf},
		{"POST", "/v1/contacts", wire.ContactAsk{User: "nobody"}, wire.CodeNoSuchUser},
		{"POST", "/v1/contacts", wire.ContactAsk{User: "system"}, wire.CodeNoSuchUser},
		{"POST", "/v1/contacts", wire.ContactAsk{User: ""}, wire.CodeBadRequest},
		{"POST", "/v1/contacts", map[string]any{"user": "bob", "x": 1}, wire.CodeBadRequest},
		{"POST", "/v1/contacts/carol/accept", nil, wire.CodeNoRequest},
		{"POST", "/v1/contacts/alice/accept", nil, wire.CodeSelf},
		{"DELETE", "/v1/contacts/carol", nil, wire.CodeNotFound},
		{"PUT", "/v1/blocks/alice", nil, wire.CodeSelf},
		{"PUT", "/v1/blocks/nobody", nil, wire.CodeNoSuchUser},
		{"GET", "/v1/contacts?limit=x", nil, wire.CodeBadRequest},
		{"GET", "/v1/blocks?limit=5000", nil, wire.CodeBadRequest},
	} {
		if _, e := social(t, s, bad.method, bad.path, aliceTok, bad.body, nil); e == nil || e.Code != bad.code {
			t.Errorf("%s %s %v: %+v, want %s", bad.method, bad.path, bad.body, e, bad.code)
		}
	}
	if cs := contactsOf(t, s, aliceTok); len(cs) != 0 {
		t.Fatalf("bad input wrote contacts: %+v", cs)
	}
	var bs wire.Blocks
	if social(t, s, "GET", "/v1/blocks", aliceTok, nil, &bs); len(bs.Blocks) != 0 {
		t.Fatalf("bad input wrote blocks: %+v", bs)
	}

	var c wire.Contact
	if code, e := social(t, s, "POST", "/v1/contacts", aliceTok, wire.ContactAsk{User: "Bob"}, &c); code != 200 ||
		c.User != "bob" || c.State != wire.ContactPendingOut || c.Since == 0 {
		t.Fatalf("request: %d %+v %+v", code, c, e)
	}
	wait.For(t, "both sides told of the request", 10*time.Second, func() bool {
		return len(alicePhone.contactEvents()) == 1 && len(bobPhone.contactEvents()) == 1
	})
	if a, b := alicePhone.contactEvents()[0], bobPhone.contactEvents()[0]; a.Action != wire.ContactRequested || a.User != "bob" ||
		b.Action != wire.ContactRequested || b.User != "alice" {
		t.Fatalf("request events: alice %+v, bob %+v", a, b)
	}
	if cs := contactsOf(t, s, bobTok); len(cs) != 1 || cs[0].User != "alice" || cs[0].State != wire.ContactPendingIn {
		t.Fatalf("bob's contacts: %+v", cs)
	}
	// A request again is no change, told to no one.
	if _, e := social(t, s, "POST", "/v1/contacts", aliceTok, wire.ContactAsk{User: "bob"}, &c); e != nil || c.State != wire.ContactPendingOut {
		t.Fatalf("request again: %+v %+v", c, e)
	}
	// The asker cannot accept its own request.
	if _, e := social(t, s, "POST", "/v1/contacts/bob/accept", aliceTok, nil, nil); e == nil || e.Code != wire.CodeNoRequest {
		t.Fatalf("alice accepting her own request: %+v", e)
	}

	if _, e := social(t, s, "POST", "/v1/contacts/alice/accept", bobTok, nil, &c); e != nil || c.State != wire.ContactAccepted || c.User != "alice" {
		t.Fatalf("accept: %+v %+v", c, e)
	}
	wait.For(t, "both sides told of the acceptance", 10*time.Second, func() bool {
		return len(alicePhone.contactEvents()) == 2 && len(bobPhone.contactEvents()) == 2
	})
	if a, b := alicePhone.contactEvents()[1], bobPhone.contactEvents()[1]; a.Action != wire.ContactAccepted || a.User != "bob" ||
		b.Action != wire.ContactAccepted || b.User != "alice" {
		t.Fatalf("accept events: alice %+v, bob %+v", a, b)
	}
	if cs := contactsOf(t, s, aliceTok); len(cs) != 1 || cs[0].State != wire.ContactAccepted {
		t.Fatalf("alice's contacts: %+v", cs)
	}

	if code, e := social(t, s, "DELETE", "/v1/contacts/bob", aliceTok, nil, nil); code != http.StatusNoContent {
		t.Fatalf("remove: %d %+v", code, e)
	}
	wait.For(t, "both sides told of the removal", 10*time.Second, func() bool {
		return len(alicePhone.contactEvents()) == 3 && len(bobPhone.contactEvents()) == 3
	})
	if b := bobPhone.contactEvents()[2]; b.Action != wire.ContactRemoved || b.User != "alice" {
		t.Fatalf("remove event: %+v", b)
	}
	if a, b := contactsOf(t, s, aliceTok), contactsOf(t, s, bobTok); len(a) != 0 || len(b) != 0 {
		t.Fatalf("after removal: alice %+v, bob %+v", a, b)
	}
}

// TestSocialBlocks: over MQTT and HTTP, once bob blocks alice her sends
// to him are refused blocked and her typing never reaches him (HTTP:
// 403 blocked), while a resend of a message stored before the block
// still gets its ack; he may still send to her; his devices hear of the
// block; after the unblock her sends go through.
func TestSocialBlocks(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		ok := mustOK(t)
		alice, alicePhone := act("alice")
		bob, bobPhone := act("bob")
		aliceTok, bobTok := login(t, s, "alice", "web"), login(t, s, "bob", "web")

		before := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "before"}))
		bobPhone.await(wire.KindMsg, before.ID)

		var b wire.Block
		if code, e := social(t, s, "PUT", "/v1/blocks/alice", bobTok, nil, &b); code != 200 || b.User != "alice" || b.Since == 0 {
			t.Fatalf("block: %d %+v %+v", code, b, e)
		}
		wait.For(t, "bob's device told of the block", 10*time.Second, func() bool { return len(bobPhone.blockEvents()) == 1 })
		if ev := bobPhone.blockEvents()[0]; ev.User != "alice" || !ev.Blocked {
			t.Fatalf("block event %+v", ev)
		}
		if n := len(alicePhone.blockEvents()); n != 0 {
			t.Fatalf("alice, the blocked, heard of it: %d events", n)
		}

		_, werr := alice.send(wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "blocked"})
		refused(t, "a send to a blocker", werr, wire.CodeBlocked)
		if again := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "before"})); again.ID != before.ID {
			t.Fatalf("resend of a stored message: ack %+v, want id %s", again, before.ID)
		}
		// (HTTP first: one typing a second per conversation is relayed.)
		if _, e := social(t, s, "POST", "/v1/typing", aliceTok, wire.Typing{Peer: "bob", State: wire.TypingStart}, nil); e == nil || e.Code != wire.CodeBlocked {
			t.Fatalf("HTTP typing to a blocker: %+v", e)
		}
		alicePhone.publish(wire.TopicTyping, wire.Typing{Peer: "bob", State: wire.TypingStop})
		// bob may still write to alice: a block is one way.
		back := ok(bob.send(wire.Send{CMID: "b1", To: "alice", Type: "text", Body: "still here"}))
		alicePhone.await(wire.KindMsg, back.ID)
		// A marker from a third user: whatever alice's refused send and
		// typing would have caused reached bob before it.
		carol := account(t, s, "carol", "phone")
		var ack wire.Ack
		if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", carol, wire.Send{CMID: "c1", To: "bob", Type: "text", Body: "marker"}, &ack); code != 200 {
			t.Fatalf("carol's marker: %d", code)
		}
		bobPhone.await(wire.KindMsg, ack.ID)
		if n := fromUser(bobPhone.find(wire.KindMsg, ""), "alice"); n != 1 {
			t.Fatalf("bob got %d messages from alice, want only the one before the block", n)
		}
		if n := len(bobPhone.typings()); n != 0 {
			t.Fatalf("bob got %d typing events from the user he blocked", n)
		}
		var bs wire.Blocks
		if social(t, s, "GET", "/v1/blocks", bobTok, nil, &bs); len(bs.Blocks) != 1 || bs.Blocks[0].User != "alice" {
			t.Fatalf("bob's blocks: %+v", bs)
		}

		if code, e := social(t, s, "DELETE", "/v1/blocks/alice", bobTok, nil, nil); code != http.StatusNoContent {
			t.Fatalf("unblock: %d %+v", code, e)
		}
		after := ok(alice.send(wire.Send{CMID: "a3", To: "bob", Type: "text", Body: "after"}))
		bobPhone.await(wire.KindMsg, after.ID)
	})
}

// TestSocialRequestToBlocker: a request to a user who blocked the asker
// is answered exactly as one to a user who does not answer (pending_out,
// the same fields), shows in the asker's list the same way, and reaches
// the blocker neither as an event nor in its list.
func TestSocialRequestToBlocker(t *testing.T) {
	s := testserver.Start(t)
	aliceTok := account(t, s, "alice", "phone")
	bobTok, carolTok := account(t, s, "bob", "phone"), account(t, s, "carol", "phone")
	bobPhone := connect(t, s.MQTT, "bob", "phone", bobTok)
	if code, e := social(t, s, "PUT", "/v1/blocks/alice", bobTok, nil, nil); code != 200 {
		t.Fatalf("block: %d %+v", code, e)
	}
	var toBob, toCarol map[string]any
	codeBob, _ := social(t, s, "POST", "/v1/contacts", aliceTok, wire.ContactAsk{User: "bob"}, &toBob)
	codeCarol, _ := social(t, s, "POST", "/v1/contacts", aliceTok, wire.ContactAsk{User: "carol"}, &toCarol)
	delete(toBob, "since")
	delete(toCarol, "since")
	toBob["user"], toCarol["user"] = "?", "?"
	if codeBob != codeCarol || len(toBob) != len(toCarol) || toBob["state"] != wire.ContactPendingOut || toCarol["state"] != toBob["state"] {
		t.Fatalf("to the blocker: %d %v; to one who does not answer: %d %v", codeBob, toBob, codeCarol, toCarol)
	}
	cs := contactsOf(t, s, aliceTok)
	if len(cs) != 2 || cs[0].State != wire.ContactPendingOut || cs[1].State != wire.ContactPendingOut {
		t.Fatalf("alice's list: %+v", cs)
	}
	// A marker sent to bob after the request: the request's event would
	// have reached him first.
	var ack wire.Ack
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", carolTok, wire.Send{CMID: "m", To: "bob", Type: "text", Body: "marker"}, &ack); code != 200 {
		t.Fatalf("marker: %d", code)
	}
	bobPhone.await(wire.KindMsg, ack.ID)
	if evs := bobPhone.contactEvents(); len(evs) != 0 {
		t.Fatalf("the blocker heard of the request: %+v", evs)
	}
	if cs := contactsOf(t, s, bobTok); len(cs) != 0 {
		t.Fatalf("the blocker's list shows the request: %+v", cs)
	}
}

// TestSocialAcceptFrom: with accept_from "contacts" a send from anyone
// but an accepted contact is refused not_contact (a pending request is
// not enough), and typing too; once accepted it goes through. The
// settings are validated, returned whole and kept.
func TestSocialAcceptFrom(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		ok := mustOK(t)
		alice, _ := act("alice")
		_, bobPhone := act("bob")
		aliceTok, bobTok := login(t, s, "alice", "web"), login(t, s, "bob", "web")

		var got wire.UserSettings
		if code, _ := social(t, s, "GET", "/v1/me/settings", bobTok, nil, &got); code != 200 || got.AcceptFrom != wire.AcceptAnyone ||
			got.Presence != wire.PresenceContacts || got.ReadReceipts == nil || !*got.ReadReceipts {
			t.Fatalf("default settings: %d %+v", code, got)
		}
		for _, bad := range []any{map[string]any{"accept_from": "friends"}, map[string]any{"presence": "everyone"},
			map[string]any{"accept_from": 1}} {
			if _, e := social(t, s, "PUT", "/v1/me/settings", bobTok, bad, nil); e == nil || e.Code != wire.CodeBadRequest {
				t.Fatalf("PUT %v: %+v", bad, e)
			}
		}
		if _, e := social(t, s, "PUT", "/v1/me/settings", bobTok, wire.UserSettings{AcceptFrom: wire.AcceptContacts}, &got); e != nil ||
			got.AcceptFrom != wire.AcceptContacts || got.Presence != wire.PresenceContacts {
			t.Fatalf("PUT accept_from contacts: %+v %+v", got, e)
		}
		if _, e := social(t, s, "PUT", "/v1/me/settings", bobTok, wire.UserSettings{Presence: wire.PresenceNobody}, &got); e != nil ||
			got.AcceptFrom != wire.AcceptContacts || got.Presence != wire.PresenceNobody {
			t.Fatalf("PUT presence nobody: %+v %+v", got, e)
		}
		if social(t, s, "GET", "/v1/me/settings", bobTok, nil, &got); got.AcceptFrom != wire.AcceptContacts || got.Presence != wire.PresenceNobody {
			t.Fatalf("settings kept: %+v", got)
		}

		_, werr := alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "hi"})
		refused(t, "a stranger's send", werr, wire.CodeNotContact)
		if _, e := social(t, s, "POST", "/v1/typing", aliceTok, wire.Typing{Peer: "bob", State: wire.TypingStart}, nil); e == nil || e.Code != wire.CodeNotContact {
			t.Fatalf("a stranger's typing: %+v", e)
		}
		if _, e := social(t, s, "POST", "/v1/contacts", aliceTok, wire.ContactAsk{User: "bob"}, nil); e != nil {
			t.Fatal(e)
		}
		_, werr = alice.send(wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "hi"})
		refused(t, "a send with a request pending", werr, wire.CodeNotContact)
		if _, e := social(t, s, "POST", "/v1/contacts/alice/accept", bobTok, nil, nil); e != nil {
			t.Fatal(e)
		}
		m := ok(alice.send(wire.Send{CMID: "a3", To: "bob", Type: "text", Body: "friends now"}))
		bobPhone.await(wire.KindMsg, m.ID)
		if n := fromUser(bobPhone.find(wire.KindMsg, ""), "alice"); n != 1 {
			t.Fatalf("bob got %d messages from alice, want only the contact's", n)
		}
	})
}
