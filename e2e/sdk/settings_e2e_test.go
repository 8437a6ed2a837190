package sdk

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestE2EConversationSettings: settings set through the SDK reach the
// user's other device as a settings event, read back, and mark the
// conversation list (a muted conversation out of the total, pinned first);
// a group message's mentions reach a member as sent.
func TestE2EConversationSettings(t *testing.T) {
	s := testserver.Start(t)
	alicePhone, aliceLaptop, bobSess := login(t, s, "alice", "phone"), login(t, s, "alice", "laptop"), login(t, s, "bob", "phone")
	var phoneRec, laptopRec, bobRec recorder
	dial(t, s, alicePhone, nil, &phoneRec)
	dial(t, s, aliceLaptop, nil, &laptopRec)
	bob := dial(t, s, bobSess, nil, &bobRec)
	ctx := testCtx(t)
	for _, body := range []string{"one", "two"} {
		if _, err := bob.Send(ctx, wire.Send{To: "alice", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	h := &client.HTTP{Server: s.HTTP, Token: alicePhone.Token}
	got, err := h.SetConversationSettings(ctx, "Bob", client.ConvSettings{Mute: true})
	if err != nil || got != (wire.ConvSettings{Peer: "bob", Mute: true}) {
		t.Fatalf("set bob: %+v %v", got, err)
	}
	wait.For(t, "the laptop's settings event", 15*time.Second, func() bool {
		for _, ev := range laptopRec.events() {
			if ev.Settings != nil && *ev.Settings == (wire.ConvSettings{Kind: wire.KindSettings, Peer: "bob", Mute: true}) {
				return true
			}
		}
		return false
	})
	if got, err := h.ConversationSettings(ctx, "bob"); err != nil || !got.Mute {
		t.Fatalf("get bob: %+v %v", got, err)
	}
	if _, err := h.CreateGroup(ctx, wire.GroupCreate{ID: "team", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SetGroupSettings(ctx, "team", client.ConvSettings{Pin: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.GroupSettings(ctx, "team"); err != nil || got != (wire.ConvSettings{Group: "team", Pin: true}) {
		t.Fatalf("get team: %+v %v", got, err)
	}
	convs, err := h.Conversations(ctx)
	if err != nil || convs.TotalUnread != 0 || len(convs.Conversations) != 2 {
		t.Fatalf("conversations: %+v %v; want bob's 2 unread left out of the total", convs, err)
	}
	if c := convs.Conversations; c[0].Group != "team" || !c[0].Pinned || c[1].Peer != "bob" || !c[1].Muted || c[1].Unread != 2 {
		t.Fatalf("conversations %+v: want team pinned first, bob muted", c)
	}
	// A refusal comes back as the wire error.
	if _, err := h.SetGroupSettings(ctx, "nope", client.ConvSettings{Mute: true}); !isCode(err, wire.CodeNotMember) {
		t.Fatalf("settings of a group alice is not in: %v", err)
	}

	if _, err := bob.Send(ctx, wire.Send{Group: "team", Body: "@alice look", Mentions: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the mention on alice's phone", 15*time.Second, func() bool {
		for _, m := range phoneRec.msgs() {
			if m.Group == "team" && slices.Equal(m.Mentions, []string{"alice"}) {
				return true
			}
		}
		return false
	})
	if _, err := bob.Send(ctx, wire.Send{Group: "team", Body: "all", Mentions: []string{wire.MentionAll}}); !isCode(err, wire.CodeForbidden) {
		t.Fatalf("@all by a member: %v, want forbidden", err)
	}
}

func isCode(err error, code string) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == code
}
