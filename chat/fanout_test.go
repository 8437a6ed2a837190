package chat_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// groupsStore is the real Pebble store whose UserGroups can fail (a slow or
// failing store while a device connects) or wait for a signal.
type groupsStore struct {
	store.Store
	failures atomic.Int32  // UserGroups calls left to fail
	hold     chan struct{} // if set, UserGroups waits for it to close once read
	held     chan struct{} // closed when a UserGroups call is waiting on hold
	calls    atomic.Int32
}

func (g *groupsStore) UserGroups(ctx context.Context, user string) ([]store.Member, error) {
	g.calls.Add(1)
	if g.failures.Add(-1) >= 0 {
		return nil, errors.New("injected: store too slow")
	}
	if hold := g.hold; hold != nil {
		ms, err := g.Store.UserGroups(ctx, user)
		g.hold = nil
		close(g.held)
		<-hold
		return ms, err
	}
	return g.Store.UserGroups(ctx, user)
}

// msgs is a subscriber of the delivery path that keeps, per topic, the
// kinds of the events sent there.
type msgs struct {
	mu    sync.Mutex
	kinds map[string][]string
}

func (m *msgs) Sent(to deliver.To, ev wire.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kinds == nil {
		m.kinds = map[string][]string{}
	}
	m.kinds[to.Topic()] = append(m.kinds[to.Topic()], ev.EventKind())
}

// gotMsg reports whether a message event was published to user's inbox.
func (m *msgs) gotMsg(user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.kinds[wire.InboxTopic(user)], wire.KindMsg)
}

func groupSend(t *testing.T, svc *chat.Service, cmid string) {
	t.Helper()
	if _, err := svc.Send(context.Background(), chat.Sender{User: "alice", Device: "d"},
		wire.Send{CMID: cmid, Group: "g1", Type: "text", Body: cmid}); err != nil {
		t.Fatal(err)
	}
}

// Fan-out's first hole (issue 22): when loading a connecting user's groups
// failed, the user stayed connected but in no group for the life of that
// connection, and no group message reached it live. The load is now retried
// until it succeeds.
func TestFanoutRetriesFailedGroupLoad(t *testing.T) {
	st := &groupsStore{Store: openStore(t)}
	pub := &msgs{}
	svc := newService(t, st, pub)
	ctx := context.Background()
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g1", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	st.failures.Store(3)
	if err := svc.DeviceOnline(ctx, "bob"); err == nil {
		t.Fatal("the injected failure was not reported")
	}
	wait.For(t, "the load to be retried past the failures", 10*time.Second, func() bool { return st.calls.Load() >= 4 })
	groupSend(t, svc, "m1")
	wait.For(t, "bob's live group message", 10*time.Second, func() bool { return pub.gotMsg("bob") })
}

// Fan-out's second hole: a membership change racing a connect's group load
// was undone by it (the load, read before a removal, put the user back).
// A load that a change raced is done again.
func TestFanoutLoadRacingRemoval(t *testing.T) {
	st := &groupsStore{Store: openStore(t)}
	if err := st.CreateUser(context.Background(), store.User{ID: "carol", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	pub := &msgs{}
	svc := newService(t, st, pub)
	ctx := context.Background()
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g1", Members: []string{"bob", "carol"}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeviceOnline(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	st.held, st.hold = make(chan struct{}), hold
	held := st.held
	done := make(chan error, 1)
	go func() { done <- svc.DeviceOnline(ctx, "bob") }()
	<-held // bob's load has read his groups, g1 among them
	if err := svc.RemoveMember(ctx, "alice", "g1", "bob"); err != nil {
		t.Fatal(err)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	groupSend(t, svc, "m1")
	wait.For(t, "carol's live group message", 10*time.Second, func() bool { return pub.gotMsg("carol") })
	if pub.gotMsg("bob") {
		t.Fatal("bob, removed while his groups loaded, still got the group's message")
	}
}

// BenchmarkGroupHeads: the heads answer for a member of groups=N groups,
// each with a message, on Pebble: the cost a device's catch-up starts with.
func BenchmarkGroupHeads(b *testing.B) {
	for _, tc := range []struct{ groups, big int }{{10, 0}, {500, 0}, {500, 10_000}} {
		name := fmt.Sprintf("groups=%d", tc.groups)
		if tc.big > 0 { // every group has this many members: the answer must not grow with them
			name += fmt.Sprintf("/members=%d", tc.big)
		}
		n := tc.groups
		b.Run(name, func(b *testing.B) {
			st := openStore(b)
			ctx := context.Background()
			crowd := make([]store.Member, tc.big)
			for i := range crowd {
				crowd[i] = store.Member{User: fmt.Sprintf("u%05d", i), Role: store.RoleMember}
			}
			for i := range n {
				g := fmt.Sprintf("g%04d", i)
				members := append([]store.Member{{User: "alice", Role: store.RoleOwner}, {User: "bob", Role: store.RoleMember}}, crowd...)
				if err := st.CreateGroup(ctx, store.Group{ID: g, Owner: "alice"}, members); err != nil {
					b.Fatal(err)
				}
				id := int64(1000 + i)
				if err := st.Commit(ctx, &store.Batch{Messages: []store.Message{{ID: id, From: "alice", Group: g, Seq: 1, Type: "text", Body: "x", CMID: g, TS: id}},
					Heads: []store.GroupHead{{Group: g, Seq: 1, MsgID: id, TS: id}}}); err != nil {
					b.Fatal(err)
				}
			}
			svc := newService(b, st, &msgs{})
			b.ReportAllocs()
			for b.Loop() {
				h, err := svc.GroupHeads(ctx, "bob")
				if err != nil || len(h.Groups) != n {
					b.Fatalf("%d heads, %v", len(h.Groups), err)
				}
			}
		})
	}
}
