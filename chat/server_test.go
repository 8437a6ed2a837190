package chat_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// TestDeletedUserOnAnotherNode: two services on one store, as two nodes.
// The node that deletes a user refuses sends to them at once (ForgetUser);
// the other stops within knownTTL, as its cache of existing users expires.
func TestDeletedUserOnAnotherNode(t *testing.T) {
	defer chat.SetKnownTTL(200 * time.Millisecond)()
	ctx := context.Background()
	st := openStore(t)
	a, b := newService(t, st, &recorder{}), newService(t, st, &recorder{})
	send := func(svc *chat.Service, cmid string) error {
		_, err := svc.Send(ctx, chat.Sender{User: "bob", Device: "d"}, wire.Send{CMID: cmid, To: "alice", Type: "text", Body: "x"})
		return err
	}
	for i, svc := range []*chat.Service{a, b} { // both nodes know alice
		if err := send(svc, "warm-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.TombstoneUser(ctx, "alice", 1); err != nil {
		t.Fatal(err)
	}
	a.ForgetUser("alice")
	if err := send(a, "after-a"); !errors.Is(err, chat.ErrNoSuchUser) {
		t.Fatalf("the deleting node took a send to a deleted user: %v", err)
	}
	n := 0
	wait.For(t, "the other node refuses sends to the deleted user", 5*time.Second, func() bool {
		n++
		return errors.Is(send(b, "after-b-"+strconv.Itoa(n)), chat.ErrNoSuchUser)
	})
}

// TestLeaveGroups: a deleted user leaves every group; a group they owned
// stays, with its other members.
func TestLeaveGroups(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	svc := newService(t, st, &recorder{})
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "ga", Name: "a", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateGroup(ctx, "bob", wire.GroupCreate{ID: "gb", Name: "b", Members: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	n, err := svc.LeaveGroups(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("left %d groups, %v; want 2", n, err)
	}
	for _, g := range []string{"ga", "gb"} {
		if _, err := st.GetMember(ctx, g, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("alice still in %s: %v", g, err)
		}
		if _, err := st.GetMember(ctx, g, "bob"); err != nil {
			t.Errorf("bob left %s: %v", g, err)
		}
	}
	if g, err := st.GetGroup(ctx, "ga"); err != nil || g.Owner != "alice" {
		t.Errorf("alice's group: %+v, %v; want it kept, owned by the tombstone", g, err)
	}
	if n, err := svc.LeaveGroups(ctx, "alice"); err != nil || n != 0 {
		t.Errorf("leave again: %d, %v", n, err)
	}
}
