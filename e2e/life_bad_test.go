package e2e

import (
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestLifeBadInput: over MQTT and HTTP, each bad change is refused with a
// clear code and changes nothing: someone else's message (not_allowed), a
// non-text or recalled one (not_allowed), a message one cannot see and one
// that does not exist (not_found, alike), an emoji that is not one, a
// reply to another conversation (bad_request). The same cmid resent is
// one change acked twice alike, one event to the peer.
func TestLifeBadInput(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		ok := mustOK(t)
		alice, alicePhone := act("alice")
		bob, bobPhone := act("bob")
		carol, _ := act("carol")
		bobTok := login(t, s, "bob", "web")
		m := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "keep me"}))
		custom := ok(alice.send(wire.Send{CMID: "a2", To: "bob", Type: "custom", Body: `{"card":1}`}))
		gone := ok(alice.send(wire.Send{CMID: "a3", To: "bob", Type: "text", Body: "gone"}))
		toCarol := ok(alice.send(wire.Send{CMID: "a4", To: "carol", Type: "text", Body: "for carol"}))
		ok(alice.recall("r1", gone.ID))
		bobPhone.await(wire.KindRecall, gone.ID)
		syncBefore := getSync(t, s, bobTok, "", 0)

		_, werr := bob.recall("b1", m.ID)
		refused(t, "bob recalls alice's", werr, wire.CodeNotAllowed)
		_, werr = bob.edit("b2", m.ID, "bob's words")
		refused(t, "bob edits alice's", werr, wire.CodeNotAllowed)
		_, werr = alice.edit("a5", custom.ID, "text now")
		refused(t, "edit of a custom message", werr, wire.CodeNotAllowed)
		_, werr = alice.edit("a6", gone.ID, "back from the dead")
		refused(t, "edit of a recalled message", werr, wire.CodeNotAllowed)
		_, werr = alice.recall("a7", gone.ID)
		refused(t, "a second recall", werr, wire.CodeNotAllowed)

		// carol cannot see alice's message to bob: as if it did not exist.
		_, hidden := carol.react("c1", m.ID, "👍", wire.ReactAdd)
		_, missing := carol.react("c2", "2129834618342232064", "👍", wire.ReactAdd)
		refused(t, "carol reacts to a message she cannot see", hidden, wire.CodeNotFound)
		refused(t, "carol reacts to no message", missing, wire.CodeNotFound)
		if hidden.Message != missing.Message {
			t.Fatalf("an existence leak: %q for a hidden message, %q for none", hidden.Message, missing.Message)
		}
		_, werr = carol.recall("c3", m.ID)
		refused(t, "carol recalls a message she cannot see", werr, wire.CodeNotFound)
		_, werr = carol.edit("c4", m.ID, "x")
		refused(t, "carol edits a message she cannot see", werr, wire.CodeNotFound)

		for _, emoji := range []string{"a", "👍👍", "$", "x👍"} {
			_, werr = bob.react("e-"+emoji, m.ID, emoji, wire.ReactAdd)
			refused(t, "reaction "+emoji, werr, wire.CodeBadRequest)
		}
		// A reply to a message of alice and carol's, in alice and bob's conversation.
		_, werr = alice.send(wire.Send{CMID: "a8", To: "bob", Type: "text", Body: "re", ReplyTo: toCarol.ID})
		refused(t, "reply_to another conversation", werr, wire.CodeBadRequest)

		// Nothing changed: bob's sync is as it was.
		after := getSync(t, s, bobTok, "", 0)
		if kinds(after.Items) != kinds(syncBefore.Items) || after.Upto != syncBefore.Upto {
			t.Fatalf("bob's sync moved: %s (upto %d), was %s (upto %d)", kinds(after.Items), after.Upto, kinds(syncBefore.Items), syncBefore.Upto)
		}
		if got := byID(after.Items)[m.ID]; got.Body != "keep me" || got.Edited != 0 || len(got.Reactions) != 0 {
			t.Fatalf("the message changed: %+v", got)
		}

		// The same cmid twice: one change, two equal acks, one event.
		first := ok(bob.react("dup", m.ID, "👍", wire.ReactAdd))
		second := ok(bob.react("dup", m.ID, "👍", wire.ReactAdd))
		if first != second || first.Ver == 0 {
			t.Fatalf("acks of one cmid: %+v then %+v", first, second)
		}
		r1 := ok(alice.recall("dup-r", m.ID))
		r2 := ok(alice.recall("dup-r", m.ID))
		if r1 != r2 || r1.Ver == 0 {
			t.Fatalf("recall acks of one cmid: %+v then %+v", r1, r2)
		}
		marker := ok(bob.send(wire.Send{CMID: "b-marker", To: "alice", Type: "text", Body: "marker"}))
		alicePhone.await(wire.KindMsg, marker.ID)
		bobPhone.await(wire.KindMsg, marker.ID)
		if n := len(alicePhone.find(wire.KindReaction, m.ID)); n != 1 {
			t.Errorf("alice got %d reaction events of one cmid", n)
		}
		if n := len(bobPhone.find(wire.KindRecall, m.ID)); n != 1 {
			t.Errorf("bob got %d recall events of one cmid", n)
		}
		var reactions, recalls int
		for _, it := range getSync(t, s, bobTok, "", syncBefore.Upto).Items {
			switch it.Kind {
			case wire.KindReaction:
				reactions++
			case wire.KindRecall:
				recalls++
			}
		}
		if reactions != 1 || recalls != 1 {
			t.Errorf("stored %d reactions and %d recalls of one cmid each", reactions, recalls)
		}
	})
}

// TestLifeTooLate: past --recall-window and --edit-window (short here),
// a recall and an edit are too_late and change nothing; a message inside
// them still may be changed.
func TestLifeTooLate(t *testing.T) {
	const window = 2 * time.Second // room for the fresh message's edit and recall on a loaded CI machine
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		ok := mustOK(t)
		alice, _ := act("alice")
		bobTok := account(t, s, "bob", "phone")
		old := ok(alice.send(wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "old words"}))
		sent := time.UnixMilli(old.TS)
		wait.For(t, "the windows to pass", 10*time.Second, func() bool { return time.Since(sent) > window+100*time.Millisecond })
		_, werr := alice.recall("r1", old.ID)
		refused(t, "recall past the window", werr, wire.CodeTooLate)
		_, werr = alice.edit("e1", old.ID, "new words")
		refused(t, "edit past the window", werr, wire.CodeTooLate)
		if got := byID(getSync(t, s, bobTok, "", 0).Items)[old.ID]; got.Body != "old words" || got.Recalled || got.Edited != 0 {
			t.Fatalf("changed past the window: %+v", got)
		}
		fresh := ok(alice.send(wire.Send{CMID: "a2", To: "bob", Type: "text", Body: "fresh"}))
		ok(alice.edit("e2", fresh.ID, "fresh, edited"))
		ok(alice.recall("r2", fresh.ID))
	}, func(c *daemon.Config) { c.RecallWindow, c.EditWindow = window, window })
}
