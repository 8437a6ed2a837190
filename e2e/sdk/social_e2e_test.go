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

// waitEvent waits until rec has an event ok accepts, and returns it.
func waitEvent(t *testing.T, what string, rec *recorder, ok func(client.Event) bool) client.Event {
	t.Helper()
	var got client.Event
	wait.For(t, what, 15*time.Second, func() bool {
		for _, ev := range rec.events() {
			if ok(ev) {
				got = ev
				return true
			}
		}
		return false
	})
	return got
}

// wantCode fails unless err is a *wire.Error with code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// TestE2EContactsAndBlocks: through the SDK, a contact request reaches
// both sides as typed events, the acceptance too; a block reaches the
// blocker's other device, refuses the blocked user's sends, and marks its
// group messages for the blocker only.
func TestE2EContactsAndBlocks(t *testing.T) {
	s := testserver.Start(t)
	alicePhone, aliceLaptop, bobSess := login(t, s, "alice", "phone"), login(t, s, "alice", "laptop"), login(t, s, "bob", "phone")
	var phoneRec, laptopRec, bobRec recorder
	dial(t, s, alicePhone, nil, &phoneRec)
	dial(t, s, aliceLaptop, nil, &laptopRec)
	bob := dial(t, s, bobSess, nil, &bobRec)
	ctx := testCtx(t)
	for _, c := range []*client.Client{bob} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	alice := &client.HTTP{Server: s.HTTP, Token: alicePhone.Token}
	bobH := &client.HTTP{Server: s.HTTP, Token: bobSess.Token}
	if c, err := alice.RequestContact(ctx, "Bob"); err != nil || c.User != "bob" || c.State != wire.ContactPendingOut {
		t.Fatalf("request: %+v %v", c, err)
	}
	waitEvent(t, "bob's request event", &bobRec, func(ev client.Event) bool {
		return ev.Contact != nil && ev.Contact.Action == wire.ContactRequested && ev.Contact.User == "alice"
	})
	if c, err := bobH.AcceptContact(ctx, "alice"); err != nil || c.State != wire.ContactAccepted {
		t.Fatalf("accept: %+v %v", c, err)
	}
	waitEvent(t, "alice's laptop hears of the acceptance", &laptopRec, func(ev client.Event) bool {
		return ev.Contact != nil && ev.Contact.Action == wire.ContactAccepted && ev.Contact.User == "bob"
	})
	if cs, err := alice.Contacts(ctx, "", 0); err != nil || len(cs.Contacts) != 1 || cs.Contacts[0].State != wire.ContactAccepted {
		t.Fatalf("contacts: %+v %v", cs, err)
	}

	if _, err := alice.CreateGroup(ctx, wire.GroupCreate{ID: "team", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, "alice's laptop hears of the block", &laptopRec, func(ev client.Event) bool {
		return ev.Block != nil && ev.Block.User == "bob" && ev.Block.Blocked
	})
	if bs, err := alice.Blocks(ctx, "", 0); err != nil || len(bs.Blocks) != 1 || bs.Blocks[0].User != "bob" {
		t.Fatalf("blocks: %+v %v", bs, err)
	}
	_, err := bob.Send(ctx, wire.Send{To: "alice", Body: "let me in"})
	wantCode(t, "bob's send to alice, who blocked him", err, wire.CodeBlocked)
	if _, err := bob.Send(ctx, wire.Send{Group: "team", Body: "in the group"}); err != nil {
		t.Fatal(err)
	}
	m := waitEvent(t, "alice's phone gets bob's group message, marked", &phoneRec, func(ev client.Event) bool {
		return ev.Msg != nil && ev.Msg.Body == "in the group"
	})
	if !m.Msg.Blocked {
		t.Fatalf("bob's group message to alice, who blocked him: %+v", m.Msg)
	}
	if err := alice.Unblock(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, wire.Send{To: "alice", Body: "thanks"}); err != nil {
		t.Fatal(err)
	}

	_, err = alice.RequestContact(ctx, "alice")
	wantCode(t, "a request to oneself", err, wire.CodeSelf)
	_, err = alice.RequestContact(ctx, "carol")
	wantCode(t, "a request to no one", err, wire.CodeNoSuchUser)
	wantCode(t, "a block of no one", alice.Block(ctx, "carol"), wire.CodeNoSuchUser)
	login(t, s, "carol", "phone")
	_, err = alice.AcceptContact(ctx, "carol")
	wantCode(t, "accepting a request never made", err, wire.CodeNoRequest)
}

// TestE2EPresenceEvents: a contact's device coming online reaches the
// user as a typed presence event; Presence answers for the contact.
func TestE2EPresenceEvents(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	ctx := testCtx(t)
	alice := &client.HTTP{Server: s.HTTP, Token: aliceSess.Token}
	if _, err := alice.RequestContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := (&client.HTTP{Server: s.HTTP, Token: bobSess.Token}).AcceptContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	var aliceRec, bobRec recorder
	a := dial(t, s, aliceSess, nil, &aliceRec)
	if err := a.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	dial(t, s, bobSess, nil, &bobRec)
	waitEvent(t, "bob online", &aliceRec, func(ev client.Event) bool {
		return ev.Presence != nil && ev.Presence.User == "bob" && ev.Presence.Online
	})
	pl, err := alice.Presence(ctx, "bob", "nobody")
	if err != nil || len(pl.Presence) != 1 || pl.Presence[0] != (wire.Presence{User: "bob", Online: true}) {
		t.Fatalf("presence: %+v %v", pl, err)
	}
}

// TestE2EGroupAdminItems: a group's changes reach a member live as typed
// group items in seq order with the messages; a device that was away gets
// them from its sync, once; after the disband the group is synced no
// further, the application hears "disbanded" once (and not again after a
// restart from the saved cursor), and sends get group_gone.
func TestE2EGroupAdminItems(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobPhone, bobLaptop := login(t, s, "alice", "phone"), login(t, s, "bob", "phone"), login(t, s, "bob", "laptop")
	ctx := testCtx(t)
	alice := &client.HTTP{Server: s.HTTP, Token: aliceSess.Token}
	if _, err := alice.CreateGroup(ctx, wire.GroupCreate{ID: "team", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	var phoneRec recorder
	phone := dial(t, s, bobPhone, nil, &phoneRec)
	if err := phone.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	laptopCur := &client.MemoryCursor{}
	var laptopRec recorder
	laptop := dial(t, s, bobLaptop, laptopCur, &laptopRec)
	if err := laptop.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	laptop.Close() // away while the group changes

	name := "The Team"
	if _, err := alice.UpdateGroup(ctx, "team", wire.GroupPatch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, wire.Send{CMID: client.NewCMID(), Group: "team", Type: "text", Body: "hello"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.MuteMember(ctx, "team", "bob", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err := phone.Send(ctx, wire.Send{Group: "team", Body: "muted?"})
	wantCode(t, "a muted member's send", err, wire.CodeMuted)
	if err := alice.MuteMember(ctx, "team", "bob", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.TransferGroup(ctx, "team", "bob"); err != nil {
		t.Fatal(err)
	}
	bobH := &client.HTTP{Server: s.HTTP, Token: bobPhone.Token}
	if err := bobH.DisbandGroup(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "a second disband", bobH.DisbandGroup(ctx, "team"), wire.CodeGroupGone)
	_, err = phone.Send(ctx, wire.Send{Group: "team", Body: "anyone?"})
	wantCode(t, "a send to a disbanded group", err, wire.CodeGroupGone)

	want := []string{"group updated", "msg ", "group mute", "group mute", "group owner", "group disbanded"}
	items := func(rec *recorder) (got []string, told int) {
		for _, ev := range rec.events() {
			if m := ev.Item(); m != nil && m.Group == "team" {
				got = append(got, ev.Kind+" "+m.Action)
			}
			if ev.Group != nil && ev.Group.Group == "team" && ev.Group.Action == wire.GroupDisbanded {
				told++
			}
		}
		return got, told
	}
	wait.For(t, "the phone's live group items", 15*time.Second, func() bool {
		got, told := items(&phoneRec)
		return slices.Equal(got, want) && told == 1
	})

	laptop = dial(t, s, bobLaptop, laptopCur, &laptopRec)
	if err := laptop.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the laptop's synced group items", 15*time.Second, func() bool {
		got, told := items(&laptopRec)
		return slices.Equal(got, want) && told == 1
	})
	if c := laptop.Cursor().Groups["team"]; !c.Gone || c.Seq == 0 {
		t.Fatalf("the laptop's cursor of the disbanded group: %+v", c)
	}
	laptop.Close()
	var again recorder
	laptop = dial(t, s, bobLaptop, laptopCur, &again)
	if err := laptop.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if got, told := items(&again); len(got) != 0 || told != 0 {
		t.Fatalf("after a restart the laptop got %v and %d disbanded events", got, told)
	}
}

// TestE2EBurnAfterReading: a send with TTL, once read, comes back to both
// sides as a recall with Expired set.
func TestE2EBurnAfterReading(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec)
	ctx := testCtx(t)
	ack, err := alice.Send(ctx, wire.Send{To: "bob", Body: "burn me", TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := waitEvent(t, "bob gets it", &bobRec, func(ev client.Event) bool { return ev.Msg != nil && ev.Msg.ID == ack.ID })
	if m.Msg.TTL != 1 {
		t.Fatalf("the message: %+v", m.Msg)
	}
	if err := bob.Read(ctx, "alice", ack.ID); err != nil {
		t.Fatal(err)
	}
	for who, rec := range map[string]*recorder{"alice": &aliceRec, "bob": &bobRec} {
		waitEvent(t, who+"'s expired recall", rec, func(ev client.Event) bool {
			return ev.Recall != nil && ev.Recall.ID == ack.ID && ev.Recall.Expired
		})
	}
	_, err = alice.Send(ctx, wire.Send{To: "bob", Body: "x", TTL: wire.MaxTTL + 1})
	wantCode(t, "a ttl past the most", err, wire.CodeBadRequest)
}
