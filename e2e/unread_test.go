package e2e

import (
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestUnreadAndConversations: unread per conversation and in total, never
// counting one's own messages; a read reaches every device; the list is
// newest first; history pages newest first with before.
func TestUnreadAndConversations(t *testing.T) {
	s := testserver.Start(t)
	bobTok := account(t, s, "bob", "phone")
	carolTok := account(t, s, "carol", "phone")
	aliceTok := account(t, s, "alice", "phone")
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)
	bobPad := connect(t, s.MQTT, "bob", "pad", login(t, s, "bob", "pad"))
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	carol := connect(t, s.MQTT, "carol", "phone", carolTok)

	var ids []string
	for i, body := range []string{"a1", "a2", "a3"} {
		ack, werr := alice.send("bob", "a"+string(rune('0'+i)), body)
		if werr != nil {
			t.Fatal(werr)
		}
		ids = append(ids, ack.ID)
	}
	if _, werr := bob.send("alice", "b0", "b1"); werr != nil { // bob's own: never unread for bob
		t.Fatal(werr)
	}
	if _, werr := carol.send("bob", "c0", "c1"); werr != nil {
		t.Fatal(werr)
	}

	var list wire.Conversations
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", bobTok, nil, &list); code != 200 {
		t.Fatalf("conversations: %d", code)
	}
	if list.TotalUnread != 4 || len(list.Conversations) != 2 {
		t.Fatalf("bob's list: %+v", list)
	}
	if c := list.Conversations[0]; c.Peer != "carol" || c.Unread != 1 || c.Last == nil || c.Last.Body != "c1" {
		t.Fatalf("newest conversation: %+v", c)
	}
	if c := list.Conversations[1]; c.Peer != "alice" || c.Unread != 3 || c.Last.Body != "b1" || c.Last.Ver != 4 {
		t.Fatalf("alice conversation: %+v %+v", c, c.Last)
	}
	var aliceList wire.Conversations
	httpJSON(t, "GET", s.HTTP+"/v1/conversations", aliceTok, nil, &aliceList)
	if aliceList.TotalUnread != 1 {
		t.Fatalf("alice's unread: %+v", aliceList)
	}

	// Read up to the second message over MQTT: one left with alice; every device hears it.
	bob.publish(wire.TopicRead, wire.Read{Peer: "alice", Upto: ids[1]})
	for _, d := range []*device{bob, bobPad} {
		wait.For(t, d.device+" gets the unread event", 10*time.Second, func() bool { return len(d.inboxOf("unread")) == 1 })
		var u wire.Unread
		mustUnmarshal(t, d.inboxOf("unread")[0], &u)
		if u.Peer != "alice" || u.Count != 1 || u.Total != 2 {
			t.Fatalf("%s unread event: %+v", d.device, u)
		}
	}
	// A read never moves back.
	var u wire.Unread
	httpJSON(t, "POST", s.HTTP+"/v1/read", bobTok, wire.Read{Peer: "alice", Upto: ids[0]}, &u)
	if u.Count != 1 || u.Total != 2 {
		t.Fatalf("read backwards: %+v", u)
	}
	// Everything with carol.
	httpJSON(t, "POST", s.HTTP+"/v1/read", bobTok, wire.Read{Peer: "carol"}, &u)
	if u.Count != 0 || u.Total != 1 {
		t.Fatalf("read all of carol: %+v", u)
	}

	var h wire.History
	httpJSON(t, "GET", s.HTTP+"/v1/conversations/alice/messages?limit=2", bobTok, nil, &h)
	if len(h.Messages) != 2 || h.Messages[0].Body != "b1" || h.Messages[1].Body != "a3" {
		t.Fatalf("history page 1: %+v", h.Messages)
	}
	httpJSON(t, "GET", s.HTTP+"/v1/conversations/alice/messages?limit=10&before="+h.Messages[1].ID, bobTok, nil, &h)
	if len(h.Messages) != 2 || h.Messages[0].Body != "a2" || h.Messages[1].Body != "a1" {
		t.Fatalf("history page 2: %+v", h.Messages)
	}
}
