package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestLifeGroup: in a group, over MQTT and over HTTP, a change is a seq of
// the group's log: the owner recalls a member's message, edits her own, a
// member reacts, each live on the others' MQTT connections; mentions mark
// the conversation until read, @all only from the owner; the group's reads
// count the members' read positions; carol, who was away, syncs the group
// (im/sync and GET /v1/sync) and gets the changes and the messages as they
// are now.
func TestLifeGroup(t *testing.T) {
	transports(t, func(t *testing.T, s *testserver.Server, act func(string) (actor, *device)) {
		ok := mustOK(t)
		alice, alicePhone := act("alice")
		bob, bobPhone := act("bob")
		carolTok := account(t, s, "carol", "phone")
		aliceTok, bobTok := login(t, s, "alice", "web"), login(t, s, "bob", "web")
		if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", aliceTok, wire.GroupCreate{ID: "g1", Name: "friends", Members: []string{"bob", "carol"}}, nil); code != 201 {
			t.Fatalf("create group: %d", code)
		}
		gsend := func(a actor, cmid, body string, mentions ...string) wire.Ack {
			t.Helper()
			return ok(a.send(wire.Send{CMID: cmid, Group: "g1", Type: "text", Body: body, Mentions: mentions}))
		}
		mentioned := func(token string) bool {
			t.Helper()
			c, found := conv(conversations(t, s, token), "g1")
			if !found {
				t.Fatalf("no g1 in the list")
			}
			return c.Mentioned
		}

		g1 := gsend(alice, "a1", "hello @bob", "bob")
		if !mentioned(bobTok) || mentioned(carolTok) {
			t.Fatalf("after a mention of bob: bob %v, carol %v", mentioned(bobTok), mentioned(carolTok))
		}
		// @all from a plain member: forbidden, nothing stored.
		_, werr := bob.send(wire.Send{CMID: "b-all", Group: "g1", Type: "text", Body: "hey all", Mentions: []string{wire.MentionAll}})
		refused(t, "@all from a member", werr, wire.CodeForbidden)
		if mentioned(carolTok) {
			t.Fatalf("carol mentioned by a refused @all")
		}
		b1 := gsend(bob, "b1", "bob's, to be recalled by the owner")
		bobPhone.await(wire.KindMsg, b1.ID)

		// The owner recalls bob's message: a seq of the log, live to all.
		rc := ok(alice.recall("r1", b1.ID))
		if rc.Group != "g1" || rc.Seq <= b1.Seq {
			t.Fatalf("recall ack %+v", rc)
		}
		for _, d := range []*device{bobPhone, alicePhone} {
			if ev := d.await(wire.KindRecall, b1.ID); ev.By != "alice" || ev.Group != "g1" || ev.Seq != rc.Seq || ev.Ver != 0 {
				t.Fatalf("%s's recall event %+v", d.user, ev)
			}
		}
		ok(alice.edit("e1", g1.ID, "hello @bob, edited"))
		if ev := bobPhone.await(wire.KindEdit, g1.ID); ev.Body != "hello @bob, edited" || ev.Seq == 0 || ev.Group != "g1" || ev.Edited == 0 {
			t.Fatalf("edit event %+v", ev)
		}
		ok(bob.react("x1", g1.ID, "🎉", wire.ReactAdd))
		if ev := alicePhone.await(wire.KindReaction, g1.ID); ev.From != "bob" || ev.Emoji != "🎉" || ev.Seq == 0 || ev.Group != "g1" {
			t.Fatalf("reaction event %+v", ev)
		}
		all := gsend(alice, "a-all", "all of you", wire.MentionAll)
		if !mentioned(carolTok) {
			t.Fatalf("carol not mentioned by the owner's @all")
		}

		// bob reads the group: his mention clears; the reads count him.
		bob.read(wire.Read{Group: "g1", Seq: all.Seq})
		wait.For(t, "bob's mention cleared by his read", 10*time.Second, func() bool { return !mentioned(bobTok) })
		if !mentioned(carolTok) {
			t.Fatalf("carol's mention cleared by bob's read")
		}
		var reads wire.GroupReads
		path := fmt.Sprintf("%s/v1/groups/g1/messages/%d/reads", s.HTTP, all.Seq)
		wait.For(t, "the reads of alice's message count bob", 10*time.Second, func() bool {
			if code := httpJSON(t, "GET", path, aliceTok, nil, &reads); code != 200 {
				t.Fatalf("reads: %d", code)
			}
			return reads.Read == 1
		})
		if reads.Unread != 1 || len(reads.Users) != 1 || reads.Users[0] != "bob" {
			t.Fatalf("reads %+v", reads)
		}
		var e wire.Error
		if code := httpJSON(t, "GET", path, carolTok, nil, &e); code != 403 || e.Code != wire.CodeNotAllowed {
			t.Fatalf("reads by a plain member: %d %+v", code, e)
		}

		// Typing in the group reaches the members online, never stored.
		bob.typing(wire.Typing{Group: "g1", State: wire.TypingStart})
		wait.For(t, "alice sees bob typing in g1", 10*time.Second, func() bool { return len(alicePhone.typings()) == 1 })
		if ev := alicePhone.typings()[0]; ev.From != "bob" || ev.Group != "g1" || ev.State != wire.TypingStart {
			t.Fatalf("group typing %+v", ev)
		}

		// carol was away: the group's sync has the changes and the current state.
		viaMQTT := mqttSync(t, s, "carol", "tablet", wire.SyncRequest{Group: "g1", Since: 0, Limit: 1000})
		viaHTTP := getSync(t, s, carolTok, "g1", 0)
		for name, b := range map[string]wire.Sync{"im/sync": viaMQTT, "GET /v1/sync": viaHTTP} {
			got := byID(b.Items)
			if m := got[b1.ID]; !m.Recalled || m.Body != "" {
				t.Errorf("%s: the recalled message %+v", name, m)
			}
			if m := got[g1.ID]; m.Body != "hello @bob, edited" || m.Edited == 0 || m.Reactions["🎉"].Count != 1 {
				t.Errorf("%s: the edited message %+v", name, m)
			}
			if b.Group != "g1" || kinds(b.Items) != "msg,msg,recall,edit,reaction,msg" {
				t.Errorf("%s: group %q items %s", name, b.Group, kinds(b.Items))
			}
			for i, it := range b.Items {
				if strings.Contains(it.Body, "to be recalled") || (i > 0 && it.Seq <= b.Items[i-1].Seq) {
					t.Errorf("%s: item %d %+v", name, i, it)
				}
			}
		}
	})
}
