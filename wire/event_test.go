package wire_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

// TestEventKinds: every event type names the kind it is sent with, and its
// wire form begins with that kind (what clients dispatch on).
func TestEventKinds(t *testing.T) {
	evs := []wire.Event{
		wire.Msg{Kind: wire.KindMsg, ID: "1"},
		wire.Ack{Kind: wire.KindAck, CMID: "c"},
		&wire.Error{Kind: wire.KindError, Code: wire.CodeBusy},
		wire.Sync{Kind: wire.KindSync},
		wire.Unread{Kind: wire.KindUnread},
		wire.GroupEvent{Kind: wire.KindGroup, Group: "g"},
		wire.Heads{Kind: wire.KindHeads},
		wire.Notice{Kind: wire.KindNotice, Text: "hi"},
		wire.Resync{Kind: wire.KindResync, Reason: wire.ResyncBacklog},
		wire.ConvSettings{Kind: wire.KindSettings, Group: "g", Mute: true},
		wire.Msg{Kind: wire.KindRecall, ID: "1", By: "a"},
		wire.Msg{Kind: wire.KindEdit, ID: "1", Body: "b"},
		wire.Msg{Kind: wire.KindDelete, IDs: []string{"1"}},
		wire.Msg{Kind: wire.KindReaction, ID: "1", Emoji: "👍", Op: wire.ReactAdd},
		wire.Receipt{Kind: wire.KindReceipt, Peer: "b", Upto: "1"},
		wire.TypingEvent{Kind: wire.KindTyping, From: "a", Peer: "b", State: wire.TypingStart},
		wire.ContactEvent{Kind: wire.KindContact, Action: wire.ContactRequested, User: "b"},
		wire.BlockEvent{Kind: wire.KindBlock, User: "b", Blocked: true},
		wire.PresenceEvent{Kind: wire.KindPresence, User: "a", Online: true},
	}
	var kinds []string
	for _, ev := range evs {
		payload, err := wire.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"kind":"` + ev.EventKind() + `"`; !bytes.HasPrefix(payload, []byte(want)) {
			t.Errorf("%T: %s, want it to begin %s", ev, payload, want)
		}
		kinds = append(kinds, ev.EventKind())
	}
	slices.Sort(kinds)
	all := slices.Sorted(slices.Values(wire.EventKinds))
	if !slices.Equal(kinds, all) {
		t.Errorf("event kinds %q, EventKinds %q", kinds, all)
	}
	// An error without its Kind (the HTTP body) is still an error event.
	if k := wire.NewError(wire.CodeBusy, "x").EventKind(); k != wire.KindError {
		t.Errorf("NewError(...).EventKind() = %q", k)
	}
}

func TestTopicUser(t *testing.T) {
	for topic, want := range map[string]string{
		wire.InboxTopic("bob"):           "bob",
		wire.DeviceTopic("a.b", "phone"): "a.b",
		wire.UserPrefix("cy"):            "cy",
		"im/u/bob":                       "",
		"im/u//inbox":                    "",
		"im/send":                        "",
		"im/ux/bob/inbox":                "",
		"":                               "",
	} {
		if got := wire.TopicUser(topic); got != want {
			t.Errorf("TopicUser(%q) = %q, want %q", topic, got, want)
		}
	}
}
