package chat_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// socialEnv is a service with a limiter, users alice, bob and u0..u9.
func socialEnv(t *testing.T, o chat.Options) (*chat.Service, store.Store, *lifeEvents) {
	t.Helper()
	st := openStore(t)
	for i := range 10 {
		if err := st.CreateUser(context.Background(), store.User{ID: fmt.Sprintf("u%d", i), PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	mem := memory.New(st.ReserveVersions, memory.Options{})
	ev := &lifeEvents{}
	o.Limiter, o.Logger, o.Metrics = mem, slog.New(slog.DiscardHandler), metrics.New()
	svc, err := chat.New(st, mem, pathTo(ev), o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc, st, ev
}

// TestContactRate: requests and blocks share one bucket per user, of
// ContactRate a minute; past it they are refused rate_limited and write
// nothing; another user's bucket is its own.
func TestContactRate(t *testing.T) {
	svc, st, _ := socialEnv(t, chat.Options{ContactRate: 3})
	ctx := context.Background()
	for i := range 2 {
		if _, err := svc.RequestContact(ctx, "alice", fmt.Sprintf("u%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Block(ctx, "alice", "u5"); err != nil {
		t.Fatal(err)
	}
	_, err := svc.RequestContact(ctx, "alice", "u3")
	wantCode(t, err, wire.CodeRateLimited)
	_, err = svc.Block(ctx, "alice", "u6")
	wantCode(t, err, wire.CodeRateLimited)
	if n, _ := st.CountContacts(ctx, "alice", 0); n != 2 {
		t.Errorf("alice has %d contacts after a refused request, want 2", n)
	}
	if n, _ := st.CountBlocks(ctx, "alice", 0); n != 1 {
		t.Errorf("alice has %d blocks after a refused block, want 1", n)
	}
	if _, err := svc.RequestContact(ctx, "bob", "u3"); err != nil {
		t.Errorf("bob's first request: %v", err)
	}
}

// TestContactCaps: a user at MaxContacts can ask no one more, nor be
// asked; at MaxBlocks it can block no one more (blocking one blocked
// already is no change); each refusal writes nothing.
func TestContactCaps(t *testing.T) {
	svc, st, ev := socialEnv(t, chat.Options{MaxContacts: 2, MaxBlocks: 1})
	ctx := context.Background()
	for _, u := range []string{"u0", "u1"} {
		if _, err := svc.RequestContact(ctx, "alice", u); err != nil {
			t.Fatal(err)
		}
	}
	_, err := svc.RequestContact(ctx, "alice", "u2")
	wantCode(t, err, wire.CodeTooManyContacts)
	_, err = svc.RequestContact(ctx, "u3", "alice")
	wantCode(t, err, wire.CodeTooManyContacts)
	if n, _ := st.CountContacts(ctx, "alice", 0); n != 2 {
		t.Errorf("alice has %d contacts, want 2", n)
	}
	if n, _ := st.CountContacts(ctx, "u3", 0); n != 0 {
		t.Errorf("u3 has %d contacts after a refused request", n)
	}
	if len(ev.other("u2", wire.KindContact)) != 0 || len(ev.other("u3", wire.KindContact)) != 0 {
		t.Error("a refused request was told")
	}
	// A request already made is answered as it is, cap or not.
	if c, err := svc.RequestContact(ctx, "alice", "u0"); err != nil || c.State != wire.ContactPendingOut {
		t.Errorf("request again at the cap: %+v, %v", c, err)
	}

	if _, err := svc.Block(ctx, "alice", "u5"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Block(ctx, "alice", "u5"); err != nil {
		t.Errorf("blocking again at the cap: %v", err)
	}
	_, err = svc.Block(ctx, "alice", "u6")
	wantCode(t, err, wire.CodeTooManyBlocks)
	if by, _ := st.Blockers(ctx, "u6", []string{"alice"}); by["alice"] {
		t.Error("a refused block was written")
	}
}

// TestContactsHideBlocked: requests from users one blocked are left out
// of one's list, and a page thinned by them is filled from after it, so
// that a page shorter than asked still means the end.
func TestContactsHideBlocked(t *testing.T) {
	svc, _, ev := socialEnv(t, chat.Options{})
	ctx := context.Background()
	for _, u := range []string{"u0", "u1", "u2"} {
		if _, err := svc.Block(ctx, "bob", u); err != nil {
			t.Fatal(err)
		}
		if c, err := svc.RequestContact(ctx, u, "bob"); err != nil || c.State != wire.ContactPendingOut {
			t.Fatalf("request of %s to its blocker: %+v, %v", u, c, err)
		}
	}
	if _, err := svc.RequestContact(ctx, "u3", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 0} {
		cs, err := svc.Contacts(ctx, "bob", "", limit)
		if err != nil || len(cs.Contacts) != 1 || cs.Contacts[0].User != "u3" {
			t.Errorf("bob's list, limit %d: %+v, %v", limit, cs, err)
		}
	}
	if n := len(ev.other("bob", wire.KindContact)); n != 1 {
		t.Errorf("bob was told of %d requests, want u3's only", n)
	}
}
