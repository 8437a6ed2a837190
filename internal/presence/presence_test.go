package presence

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// fakeSocial is store.Social's reads in memory: the unit tests' stand-in
// (store/storetest tests the real ones; the e2e tests use them).
type fakeSocial struct {
	mu       sync.Mutex
	contacts map[string]map[string]string // user -> peer -> state
	blocks   map[string]map[string]bool   // user -> peers it blocked
	seen     map[string]int64
	calls    map[string]int
}

func newSocial() *fakeSocial {
	return &fakeSocial{contacts: map[string]map[string]string{}, blocks: map[string]map[string]bool{},
		seen: map[string]int64{}, calls: map[string]int{}}
}

func (f *fakeSocial) befriend(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if f.contacts[p[0]] == nil {
			f.contacts[p[0]] = map[string]string{}
		}
		f.contacts[p[0]][p[1]] = store.ContactAccepted
	}
}

func (f *fakeSocial) ask(from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.contacts[from] == nil {
		f.contacts[from] = map[string]string{}
	}
	if f.contacts[to] == nil {
		f.contacts[to] = map[string]string{}
	}
	f.contacts[from][to], f.contacts[to][from] = store.ContactPendingOut, store.ContactPendingIn
}

func (f *fakeSocial) block(user, peer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocks[user] == nil {
		f.blocks[user] = map[string]bool{}
	}
	f.blocks[user][peer] = true
}

func (f *fakeSocial) count(op string) { f.calls[op]++ }

func (f *fakeSocial) Contacts(_ context.Context, user, st, after string, limit int) ([]store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("contacts")
	var out []store.Contact
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range f.contacts[user] {
			if !yield(p) {
				return
			}
		}
	}) {
		if p > after && (st == "" || f.contacts[user][p] == st) && len(out) < limit {
			out = append(out, store.Contact{User: user, Peer: p, State: f.contacts[user][p]})
		}
	}
	return out, nil
}

func (f *fakeSocial) GetContact(_ context.Context, user, peer string) (store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("get_contact")
	st, ok := f.contacts[user][peer]
	if !ok {
		return store.Contact{}, store.ErrNotFound
	}
	return store.Contact{User: user, Peer: peer, State: st}, nil
}

func (f *fakeSocial) Blocks(_ context.Context, user, after string, limit int) ([]store.Block, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("blocks")
	var out []store.Block
	for p := range f.blocks[user] {
		if p > after {
			out = append(out, store.Block{User: user, Peer: p})
		}
	}
	slices.SortFunc(out, func(a, b store.Block) int { return strings.Compare(a.Peer, b.Peer) })
	return out[:min(len(out), limit)], nil
}

func (f *fakeSocial) Blockers(_ context.Context, peer string, users []string) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("blockers")
	out := map[string]bool{}
	for _, u := range users {
		if f.blocks[u][peer] {
			out[u] = true
		}
	}
	return out, nil
}

func (f *fakeSocial) SetLastSeen(_ context.Context, user string, ts int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[user] = ts
	return nil
}

func (f *fakeSocial) LastSeen(_ context.Context, users []string) (map[string]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("last_seen")
	out := map[string]int64{}
	for _, u := range users {
		if ts, ok := f.seen[u]; ok {
			out[u] = ts
		}
	}
	return out, nil
}

// sent records what the Service delivered: "to user online|offline@ts".
type sent struct {
	mu    sync.Mutex
	got   []string
	calls int
}

func (s *sent) SendUsers(users []string, ev wire.Event) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	p := ev.(wire.PresenceEvent)
	what := "online"
	if !p.Online {
		what = "offline@" + strconv.FormatInt(p.LastSeen, 10)
	}
	for _, u := range users {
		s.got = append(s.got, u+" "+p.User+" "+what)
	}
	return len(users), nil
}

func (s *sent) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	slices.Sort(out)
	return out
}

// rig is a node's Service on a shared social graph and hot state, with a
// clock the test moves; step runs its workers' queued changes and expired
// debounces on the test's goroutine.
type rig struct {
	s      *Service
	soc    *fakeSocial
	st     state.Presence
	out    *sent
	now    *time.Time
	hidden map[string]bool
	node   string
}

var t0 = time.UnixMilli(1_700_000_000_000)

func newRig(t *testing.T, soc *fakeSocial, st state.Presence, now *time.Time, node string) *rig {
	t.Helper()
	r := &rig{soc: soc, st: st, out: &sent{}, now: now, hidden: map[string]bool{}, node: node}
	s, err := New(Options{Social: soc, Devices: st, Sender: r.out, Workers: 2,
		Hidden: func(_ context.Context, users []string) (map[string]bool, error) {
			out := map[string]bool{}
			for _, u := range users {
				out[u] = r.hidden[u]
			}
			return out, nil
		},
		Now: func() time.Time { return *now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	return r
}

func newState() *memory.State {
	return memory.New(func(context.Context, string, uint64) (uint64, error) { return 1, nil }, memory.Options{})
}

// connect and leave do what hooks.Presence does: record the device in
// the state, then tell the Service.
func (r *rig) connect(t *testing.T, user, device string) {
	t.Helper()
	if _, err := r.st.Online(context.Background(), state.Device{User: user, Device: device, Node: r.node}); err != nil {
		t.Fatal(err)
	}
	r.s.Online(user, device, r.node, *r.now)
}

func (r *rig) leave(t *testing.T, user, device string) {
	t.Helper()
	if err := r.st.Offline(context.Background(), user, device, r.node); err != nil {
		t.Fatal(err)
	}
	r.s.Offline(user, device, r.node, *r.now)
}

func (r *rig) step() {
	for _, w := range r.s.workers {
		for len(w.q) > 0 {
			w.handle(<-w.q)
		}
		w.expire()
	}
}

func eq(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}

// TestDebounce: online at the first device, offline once the last has
// been away for the debounce (10 s by default), and nothing for a device
// that comes back within it.
func TestDebounce(t *testing.T) {
	soc := newSocial()
	soc.befriend("alice", "bob")
	now := t0
	r := newRig(t, soc, newState(), &now, "n1")
	if r.s.o.Debounce != 10*time.Second {
		t.Fatalf("default debounce %v", r.s.o.Debounce)
	}

	r.connect(t, "alice", "phone")
	r.step()
	eq(t, "first device", r.out.take(), "bob alice online")
	r.connect(t, "alice", "laptop")
	r.step()
	eq(t, "second device", r.out.take())

	r.leave(t, "alice", "laptop")
	now = now.Add(time.Minute)
	r.step()
	eq(t, "one of two devices left", r.out.take())

	left := now
	r.leave(t, "alice", "phone")
	now = now.Add(9999 * time.Millisecond)
	r.step()
	eq(t, "within the debounce", r.out.take())
	now = now.Add(time.Millisecond)
	r.step()
	eq(t, "the debounce ran out", r.out.take(), "bob alice offline@"+strconv.FormatInt(left.UnixMilli(), 10))
	if soc.seen["alice"] != left.UnixMilli() {
		t.Errorf("last seen %d, want %d", soc.seen["alice"], left.UnixMilli())
	}

	// Back, away 9 s, back: no change either way.
	r.connect(t, "alice", "phone")
	r.step()
	eq(t, "back", r.out.take(), "bob alice online")
	r.leave(t, "alice", "phone")
	now = now.Add(9 * time.Second)
	r.step()
	r.connect(t, "alice", "phone")
	now = now.Add(time.Hour)
	r.step()
	eq(t, "reconnect within the debounce", r.out.take())
	if soc.seen["alice"] != 0 {
		t.Errorf("last seen %d, want 0 (online)", soc.seen["alice"])
	}

	// Away, back and away again within the debounce: the debounce counts
	// from the last departure.
	r.leave(t, "alice", "phone")
	now = now.Add(5 * time.Second)
	r.step()
	r.connect(t, "alice", "phone")
	r.step()
	now = now.Add(time.Second)
	left = now
	r.leave(t, "alice", "phone")
	now = now.Add(5 * time.Second) // 11 s after the first departure
	r.step()
	eq(t, "10 s after the first of two departures", r.out.take())
	now = now.Add(5 * time.Second)
	r.step()
	eq(t, "10 s after the last", r.out.take(), "bob alice offline@"+strconv.FormatInt(left.UnixMilli(), 10))
}

// TestAcrossNodes: two nodes share the hot state and the store; a device
// that leaves node 1 and comes back on node 2 within the debounce is no
// change, and a user announced offline by one node is not announced again
// by the other.
func TestAcrossNodes(t *testing.T) {
	soc := newSocial()
	soc.befriend("alice", "bob")
	st := newState()
	now := t0
	a, b := newRig(t, soc, st, &now, "n1"), newRig(t, soc, st, &now, "n2")

	a.connect(t, "alice", "phone")
	a.step()
	eq(t, "online on node 1", a.out.take(), "bob alice online")
	a.leave(t, "alice", "phone")
	now = now.Add(3 * time.Second)
	b.connect(t, "alice", "phone")
	a.step()
	b.step()
	now = now.Add(time.Minute)
	a.step()
	b.step()
	eq(t, "node 1 after moving", a.out.take())
	eq(t, "node 2 after moving", b.out.take())

	// Devices leave both nodes at once: one offline, from one of them.
	a.connect(t, "alice", "laptop")
	a.step()
	left := now
	a.leave(t, "alice", "laptop")
	b.leave(t, "alice", "phone")
	now = now.Add(10 * time.Second)
	a.step()
	b.step()
	got := append(a.out.take(), b.out.take()...)
	eq(t, "left both nodes", got, "bob alice offline@"+strconv.FormatInt(left.UnixMilli(), 10))
}

// TestPrivacy: events reach accepted contacts only, not one who blocked
// the user or whom it blocked, and none while the user hides its presence
// (a change of the setting holds from the next event on).
func TestPrivacy(t *testing.T) {
	soc := newSocial()
	for _, c := range []string{"bob", "carol", "dave", "erin"} {
		soc.befriend("alice", c)
	}
	soc.ask("alice", "frank") // pending: not a contact yet
	soc.ask("gina", "alice")
	soc.block("carol", "alice") // carol blocked alice
	soc.block("alice", "dave")  // alice blocked dave
	now := t0
	r := newRig(t, soc, newState(), &now, "n1")

	r.connect(t, "alice", "phone")
	r.step()
	eq(t, "online", r.out.take(), "bob alice online", "erin alice online")

	r.hidden["alice"] = true
	r.leave(t, "alice", "phone")
	now = now.Add(time.Minute)
	r.step()
	eq(t, "hidden", r.out.take())
	if soc.seen["alice"] == 0 {
		t.Error("a hidden user's last seen is not kept: showing it again would show a stale state")
	}
	r.hidden["alice"] = false
	r.connect(t, "alice", "phone")
	r.step()
	eq(t, "shown again", r.out.take(), "bob alice online", "erin alice online")
}

// TestShown: a user who hides its presence while online is offline to its
// contacts at once (with no last seen), not left shown online; shown
// again while connected it is online; hidden or shown again while away,
// nothing (its contacts saw it go). Its announced state does not move.
func TestShown(t *testing.T) {
	soc := newSocial()
	soc.befriend("alice", "bob")
	soc.befriend("alice", "carol")
	soc.block("carol", "alice")
	now := t0
	r := newRig(t, soc, newState(), &now, "n1")
	r.connect(t, "alice", "phone")
	r.step()
	eq(t, "online", r.out.take(), "bob alice online")

	r.hidden["alice"] = true
	r.s.Shown("alice", false)
	r.step()
	eq(t, "hidden while online", r.out.take(), "bob alice offline@0")
	if seen, ok := soc.seen["alice"]; !ok || seen != 0 {
		t.Errorf("hiding moved the announced state: last seen %d, %v", seen, ok)
	}
	r.hidden["alice"] = false
	r.s.Shown("alice", true)
	r.step()
	eq(t, "shown again while online", r.out.take(), "bob alice online")

	r.leave(t, "alice", "phone")
	now = now.Add(time.Minute)
	r.step()
	eq(t, "left", r.out.take(), "bob alice offline@"+strconv.FormatInt(t0.UnixMilli(), 10))
	r.s.Shown("alice", false)
	r.s.Shown("alice", true)
	r.step()
	eq(t, "hidden and shown again while away", r.out.take())
}

// TestFanOutPages: 2,500 contacts are read and sent in pages of 1,000,
// one delivery call each, and the blockers among them asked once a page.
func TestFanOutPages(t *testing.T) {
	soc := newSocial()
	var want []string
	for i := range 2500 {
		c := "c" + strconv.Itoa(10000+i)
		soc.befriend("alice", c)
		if i%100 == 7 {
			soc.block(c, "alice")
			continue
		}
		want = append(want, c+" alice online")
	}
	now := t0
	r := newRig(t, soc, newState(), &now, "n1")
	r.connect(t, "alice", "phone")
	r.step()
	eq(t, "fan-out", r.out.take(), want...)
	if r.out.calls != 3 || soc.calls["contacts"] != 3 || soc.calls["blockers"] != 3 {
		t.Errorf("%d deliveries, %d contact pages, %d blocker reads; want 3 each", r.out.calls, soc.calls["contacts"], soc.calls["blockers"])
	}
}

// TestQueueBound: the hooks never wait; a full queue drops the change and
// counts it.
func TestQueueBound(t *testing.T) {
	var refused []string
	s, err := New(Options{Social: newSocial(), Devices: newState(), Sender: &sent{}, Workers: 1, QueueLen: 3,
		Hidden:  func(context.Context, []string) (map[string]bool, error) { return nil, nil },
		Refused: func(l string) { refused = append(refused, l) }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // not started: nothing takes from the queue
		for i := range 5 {
			s.Online("u"+strconv.Itoa(i), "d", "n1", t0)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Online blocked on a full queue")
	}
	if s.Dropped() != 2 || len(refused) != 2 || refused[0] != "presence_queue" {
		t.Errorf("dropped %d, refused %q; want 2 presence_queue", s.Dropped(), refused)
	}
}

// TestList: GET /v1/presence answers contacts who share their presence,
// and oneself; strangers, pending contacts, blocks either way, hidden
// users and unknown IDs are absent, each after the same reads.
func TestList(t *testing.T) {
	soc := newSocial()
	for _, c := range []string{"bob", "carol", "dave", "erin"} {
		soc.befriend("alice", c)
	}
	soc.ask("alice", "frank")
	soc.block("carol", "alice")
	soc.block("alice", "dave")
	st := newState()
	now := t0
	r := newRig(t, soc, st, &now, "n1")
	r.hidden["erin"] = true
	ctx := context.Background()
	for _, u := range []string{"bob", "erin", "frank", "zed", "alice"} {
		if _, err := st.Online(ctx, state.Device{User: u, Device: "d", Node: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	soc.seen["carol"], soc.seen["dave"] = 5, 6

	got, err := r.s.List(ctx, "alice", []string{"Bob", "carol", "dave", "erin", "frank", "zed", "nobody-here", "bob", "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.Presence{{User: "bob", Online: true}, {User: "alice", Online: true}}
	if !slices.Equal(got.Presence, want) {
		t.Errorf("alice sees %+v, want %+v", got.Presence, want)
	}

	// Offline with last seen; nothing for a stranger, whoever asks.
	soc.seen["bob"] = 1234
	if err := st.Offline(ctx, "bob", "d", "n1"); err != nil {
		t.Fatal(err)
	}
	got, _ = r.s.List(ctx, "alice", []string{"bob"})
	if want := []wire.Presence{{User: "bob", LastSeen: 1234}}; !slices.Equal(got.Presence, want) {
		t.Errorf("offline bob: %+v", got.Presence)
	}
	got, _ = r.s.List(ctx, "zed", []string{"bob", "alice"})
	if len(got.Presence) != 0 || got.Presence == nil {
		t.Errorf("a stranger sees %+v (want an empty list)", got.Presence)
	}

	// The same reads for a stranger as for a contact.
	reads := func(users ...string) map[string]int {
		soc.mu.Lock()
		soc.calls = map[string]int{}
		soc.mu.Unlock()
		if _, err := r.s.List(ctx, "alice", users); err != nil {
			t.Fatal(err)
		}
		return soc.calls
	}
	friend, stranger := reads("bob"), reads("zed")
	if len(friend) == 0 || !maps.Equal(friend, stranger) {
		t.Errorf("reads for a contact %v, for a stranger %v", friend, stranger)
	}

	// Bad input: each a bad_request, reading nothing.
	many := make([]string, wire.MaxPresenceUsers+1)
	for i := range many {
		many[i] = "u" + strconv.Itoa(i)
	}
	for name, users := range map[string][]string{"too many": many, "malformed": {"bob", "a/b"}, "empty id": {""}} {
		soc.calls = map[string]int{}
		_, err := r.s.List(ctx, "alice", users)
		if code, _, _ := chat.Describe(err); code != wire.CodeBadRequest || len(soc.calls) != 0 {
			t.Errorf("%s: %v (code %s), reads %v", name, err, code, soc.calls)
		}
	}
	if _, err := r.s.List(ctx, "alice", many[:wire.MaxPresenceUsers]); err != nil {
		t.Errorf("%d users: %v", wire.MaxPresenceUsers, err)
	}
}

// TestListRate: a user's GETs are within its rate.
func TestListRate(t *testing.T) {
	st := newState()
	var refused []string
	s, err := New(Options{Social: newSocial(), Devices: st, Sender: &sent{}, Limiter: st, Rate: 1, Burst: 2,
		Hidden:  func(context.Context, []string) (map[string]bool, error) { return nil, nil },
		Refused: func(l string) { refused = append(refused, l) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if _, err := s.List(ctx, "alice", []string{"bob"}); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	_, err = s.List(ctx, "alice", []string{"bob"})
	if !errors.Is(err, chat.ErrRateLimited) || !slices.Equal(refused, []string{"presence_rate"}) {
		t.Errorf("third GET in a burst of 2: %v, refused %q", err, refused)
	}
	if _, err := s.List(ctx, "bob", []string{"alice"}); err != nil {
		t.Errorf("another user's GET: %v", err)
	}
}

// TestCloseFlushes: a node that stops records its departed users offline
// at once rather than leave them announced online with nobody to end
// their debounce.
func TestCloseFlushes(t *testing.T) {
	soc := newSocial()
	soc.befriend("alice", "bob")
	soc.befriend("carol", "bob")
	now := t0
	r := newRig(t, soc, newState(), &now, "n1")
	r.connect(t, "alice", "phone")
	r.connect(t, "carol", "phone")
	r.step()
	r.out.take()
	r.leave(t, "alice", "phone")
	r.step()                     // alice waits for her debounce
	r.s.Start()                  // the workers run ...
	r.leave(t, "carol", "phone") // ... and carol's departure may still be queued
	r.s.Close(context.Background())
	eq(t, "at Close", r.out.take(), "bob alice offline@"+strconv.FormatInt(t0.UnixMilli(), 10),
		"bob carol offline@"+strconv.FormatInt(t0.UnixMilli(), 10))
	if soc.seen["alice"] == 0 || soc.seen["carol"] == 0 {
		t.Errorf("last seen %v: not recorded offline", soc.seen)
	}
}
