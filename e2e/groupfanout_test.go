package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	imaccount "github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Fan-out to every online member: real SDK clients (client.Dial) record
// the seq of every group message their OnEvent gets, and each must end with
// every message sent, once, in seq order. The SDK is trusted, not helped:
// nothing here syncs on its behalf.

// groupSeqs is what one member's application was handed of one group: the
// seqs, in the order OnEvent got them.
type groupSeqs struct {
	group string
	mu    sync.Mutex
	seqs  []uint64
}

func (r *groupSeqs) on(ev client.Event) {
	if ev.Kind == wire.KindMsg && ev.Msg != nil && ev.Msg.Group == r.group {
		r.mu.Lock()
		r.seqs = append(r.seqs, ev.Msg.Seq)
		r.mu.Unlock()
	}
}

func (r *groupSeqs) get() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// fanoutGroup is a group under test and its online members' records.
type fanoutGroup struct {
	id     string
	owner  string
	token  string // the owner's
	online map[string]*groupSeqs
	mu     sync.Mutex
}

// makeUsers creates n users named prefix000... straight in the store, with
// the password login() uses: faster than registering each over HTTP.
func makeUsers(t *testing.T, st store.Store, prefix string, n int) []string {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%03d", prefix, i)
		hash, err := imaccount.HashPassword("secret-"+users[i], testserver.CheapPasswords)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(context.Background(), store.User{ID: users[i], PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	return users
}

// newFanoutGroup registers owner on s and makes it create group id with members.
func newFanoutGroup(t *testing.T, s *testserver.Server, owner, id string, members []string) *fanoutGroup {
	t.Helper()
	tok := account(t, s, owner, "http")
	var g wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", tok, wire.GroupCreate{ID: id, Members: members}, &g); code != 201 || g.Count != len(members)+1 {
		t.Fatalf("create group %s: %d %+v", id, code, g)
	}
	return &fanoutGroup{id: g.ID, owner: owner, token: tok, online: map[string]*groupSeqs{}}
}

// join dials user's device with the SDK on node s; its group messages are
// recorded. Safe to call from several goroutines; failures are returned.
func (g *fanoutGroup) join(s *testserver.Server, user string) (*client.Client, error) {
	var sess wire.Session
	raw, _ := json.Marshal(wire.Login{User: user, Password: "secret-" + user, Device: "app"})
	resp, err := http.Post(s.HTTP+"/v1/sessions", "application/json", bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || json.Unmarshal(body, &sess) != nil {
		return nil, fmt.Errorf("login %s: %d", user, resp.StatusCode)
	}
	rec := &groupSeqs{group: g.id}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Server: s.HTTP, MQTT: s.MQTT, User: user, Device: "app", Token: sess.Token,
		OnEvent: rec.on, Logger: sdkLogger(user + "/app"), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		ResendInterval: time.Second, SyncTimeout: 3 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", user, err)
	}
	g.mu.Lock()
	g.online[user] = rec
	g.mu.Unlock()
	return c, nil
}

// joinAll dials users at once, user i on nodes[i%len(nodes)]; the clients
// close when the test ends.
func (g *fanoutGroup) joinAll(t *testing.T, nodes []*testserver.Server, users []string) map[string]*client.Client {
	t.Helper()
	var mu sync.Mutex
	var failed atomic.Bool
	out := map[string]*client.Client{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, u := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := g.join(nodes[i%len(nodes)], u)
			if err != nil {
				t.Error(err)
				failed.Store(true)
				return
			}
			mu.Lock()
			out[u] = c
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, c := range out {
		t.Cleanup(func() { c.Close() })
	}
	if failed.Load() {
		t.FailNow()
	}
	return out
}

// groupSender sends n messages to the group, one after another, and
// returns their seqs.
type groupSender struct {
	name string
	send func(ctx context.Context, body string) (wire.Ack, error)
}

// sdkSender sends through an SDK client (MQTT).
func sdkSender(name string, c *client.Client, group string) groupSender {
	return groupSender{name: name + " (mqtt)", send: func(ctx context.Context, body string) (wire.Ack, error) {
		return c.Send(ctx, wire.Send{Group: group, Type: "text", Body: body})
	}}
}

// httpSender sends with POST /v1/messages on base as token's user.
func httpSender(name, base, token, group string) groupSender {
	api := &client.HTTP{Server: base, Token: token}
	return groupSender{name: name + " (http)", send: func(ctx context.Context, body string) (wire.Ack, error) {
		return api.Send(ctx, wire.Send{CMID: client.NewCMID(), Group: group, Type: "text", Body: body})
	}}
}

// sendConcurrently has every sender send n messages at the same time and
// returns the seqs the server acked, ascending, checking they are the next
// len seqs after from without a hole.
func sendConcurrently(t *testing.T, senders []groupSender, n int, from uint64) []uint64 {
	t.Helper()
	var mu sync.Mutex
	var failed atomic.Bool
	var seqs []uint64
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() {
			for i := range n {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				ack, err := s.send(ctx, fmt.Sprintf("%s #%d", s.name, i))
				cancel()
				if err != nil {
					t.Errorf("%s: send %d: %v", s.name, i, err)
					failed.Store(true)
					return
				}
				mu.Lock()
				seqs = append(seqs, ack.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != from+uint64(i)+1 {
			t.Fatalf("acked seqs %v: want %d..%d", seqs, from+1, from+uint64(len(seqs)))
		}
	}
	return seqs
}

// head is the group's newest seq as a member sees it.
func (g *fanoutGroup) head(t *testing.T, s *testserver.Server) uint64 {
	t.Helper()
	var gr wire.Group
	if code := httpJSON(t, "GET", s.HTTP+"/v1/groups/"+g.id+"?limit=1", g.token, nil, &gr); code != 200 {
		t.Fatalf("group %s: %d", g.id, code)
	}
	return gr.Seq
}

// everyMemberGotAll waits until every online member was handed exactly
// want, in order, and fails as soon as one was handed a seq twice or out
// of order, or when within passes with one still short.
func (g *fanoutGroup) everyMemberGotAll(t *testing.T, want []uint64, within time.Duration) {
	t.Helper()
	g.mu.Lock()
	online := make(map[string]*groupSeqs, len(g.online))
	for u, r := range g.online {
		online[u] = r
	}
	g.mu.Unlock()
	wait.ForErr(t, fmt.Sprintf("every online member to get the %d messages", len(want)), within, func() error {
		var short []string
		for _, u := range slices.Sorted(maps.Keys(online)) {
			got := online[u].get()
			n := min(len(got), len(want))
			if len(got) > len(want) || !slices.Equal(got[:n], want[:n]) {
				t.Fatalf("%s was handed seqs %v of group %s; want each of %d..%d once, in order", u, got, g.id, want[0], want[len(want)-1])
			}
			if len(got) < len(want) {
				short = append(short, fmt.Sprintf("%s (%d of %d, next seq %d)", u, len(got), len(want), want[len(got)]))
			}
		}
		if len(short) > 0 {
			return fmt.Errorf("%d of %d online members short: %s", len(short), len(online), strings.Join(short[:min(len(short), 10)], ", "))
		}
		return nil
	})
}

// TestGroupFanoutEveryMember: a 200-member group, 60 members online with
// the SDK, four senders at once (two over MQTT, two over HTTP): every
// online member gets every message once, in seq order.
func TestGroupFanoutEveryMember(t *testing.T) {
	s := testserver.Start(t)
	users := makeUsers(t, s.Store(), "gf", 199)
	g := newFanoutGroup(t, s, "gf-owner", "fan", users)
	var online []string
	for i := 0; i < len(users) && len(online) < 60; i += 3 {
		online = append(online, users[i])
	}
	clients := g.joinAll(t, []*testserver.Server{s}, online)
	base := g.head(t, s)
	senders := []groupSender{
		sdkSender(online[0], clients[online[0]], g.id),
		sdkSender(online[1], clients[online[1]], g.id),
		httpSender(users[1], s.HTTP, login(t, s, users[1], "http"), g.id),
		httpSender(g.owner, s.HTTP, g.token, g.id),
	}
	want := sendConcurrently(t, senders, 25, base)
	g.everyMemberGotAll(t, want, 30*time.Second)
}

// TestClusterGroupFanoutEveryMember is the same over three nodes sharing
// one store and Redis: members spread over the nodes, senders on different
// nodes, each message reaching the members of every node.
func TestClusterGroupFanoutEveryMember(t *testing.T) {
	c := newCluster(t, sharedPebble(t))
	nodes := []*testserver.Server{c.start("n1"), c.start("n2"), c.start("n3")}
	users := makeUsers(t, c.st, "cf", 199)
	g := newFanoutGroup(t, nodes[0], "cf-owner", "cfan", users)
	var online []string
	for i := 0; i < len(users) && len(online) < 60; i += 3 {
		online = append(online, users[i])
	}
	clients := g.joinAll(t, nodes, online) // online[i] on nodes[i%3]
	for i, n := range nodes {
		if got := len(n.Broker().ClientList()); got != 20 {
			t.Fatalf("node %d holds %d clients, want 20", i+1, got)
		}
	}
	base := g.head(t, nodes[0])
	senders := []groupSender{
		sdkSender(online[0], clients[online[0]], g.id), // on n1
		sdkSender(online[1], clients[online[1]], g.id), // on n2
		httpSender(users[1], nodes[1].HTTP, login(t, nodes[1], users[1], "http"), g.id),
		httpSender(g.owner, nodes[2].HTTP, g.token, g.id),
	}
	want := sendConcurrently(t, senders, 25, base)
	g.everyMemberGotAll(t, want, 30*time.Second)
}

// errInjected is the fault faultStore injects.
var errInjected = errors.New("injected store fault")

// faultStore is a real store whose UserGroups, the call with which chat's
// fan-out loads the groups of a user whose first device connects, can be
// made to fail at once, to hang until lifted (or its context ends), or to
// hold one user's answer, read, until released.
type faultStore struct {
	store.Store

	mu      sync.Mutex
	fail    bool
	hang    chan struct{} // non-nil: calls wait until it is closed
	holds   map[string]chan struct{}
	held    map[string]bool
	faulted map[string]int // calls failed or hung, per user
}

func newFaultStore(st store.Store) *faultStore {
	return &faultStore{Store: st, holds: map[string]chan struct{}{}, held: map[string]bool{}, faulted: map[string]int{}}
}

func (f *faultStore) UserGroups(ctx context.Context, user string) ([]store.Member, error) {
	f.mu.Lock()
	fail, hang, hold := f.fail, f.hang, f.holds[user]
	if fail || hang != nil {
		f.faulted[user]++
	}
	f.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("user groups of %s: %w", user, errInjected)
	}
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ms, err := f.Store.UserGroups(ctx, user)
	if hold != nil {
		f.mu.Lock()
		f.held[user] = true
		f.mu.Unlock()
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return ms, err
}

// failing makes UserGroups fail at once (or stop failing).
func (f *faultStore) failing(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = on
}

// hanging makes UserGroups hang; the returned func lifts it, letting the
// calls waiting go on.
func (f *faultStore) hanging() (lift func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.hang = ch
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.hang = nil
		close(ch)
	}
}

// holdUser makes user's next UserGroups read its answer and then wait until
// release is called; held reports whether one is waiting.
func (f *faultStore) holdUser(user string) (held func() bool, release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.holds[user] = ch
	f.mu.Unlock()
	return func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.held[user]
		}, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.holds, user)
			close(ch)
		}
}

func (f *faultStore) faults(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faulted[user]
}

// loadLog records the users whose groups the server's fan-out loaded after
// a failure (its Info line "loaded groups for fan-out after a failure": the
// user is in its groups' fan-out from that moment).
type loadLog struct {
	mu     sync.Mutex
	loaded map[string]bool
	attrs  []slog.Attr
}

func (l *loadLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }
func (l *loadLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "loaded groups for fan-out after a failure" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "user" {
			l.mu.Lock()
			l.loaded[a.Value.String()] = true
			l.mu.Unlock()
		}
		return true
	})
	return nil
}
func (l *loadLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *loadLog) WithGroup(string) slog.Handler      { return l }

func (l *loadLog) has(user string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loaded[user]
}

// TestGroupFanoutStoreFaultOnConnect: members connect while the store
// fails the fan-out's load of their groups (at once, or by hanging past
// the connect's 2s), and one is added to the group while its load is in
// flight. Once the store is back, the background retry puts each into its
// groups' fan-out (never "connected, but in no group") and every online
// member gets every message live, once, in order.
func TestGroupFanoutStoreFaultOnConnect(t *testing.T) {
	fs := newFaultStore(sharedPebble(t))
	logs := &loadLog{loaded: map[string]bool{}}
	c := newCluster(t, fs) // one node: a store given in the config takes the scale-out wiring
	c.edit = func(cfg *daemon.Config) { cfg.Logger = slog.New(logs) }
	s := c.start("n1")
	users := makeUsers(t, fs, "sf", 40)
	members, late := users[:39], users[39]
	g := newFanoutGroup(t, s, "sf-owner", "faulty", members)
	nodes := []*testserver.Server{s}

	// Members online before the fault, as a reference.
	clients := g.joinAll(t, nodes, members[:5])

	// Five connect while the store fails at once.
	fs.failing(true)
	failed := members[5:10]
	g.joinAll(t, nodes, failed)
	fs.failing(false)

	// Five connect while it hangs: each connect's load gives up after 2s,
	// the retries hang too until the store is back.
	lift := fs.hanging()
	hung := members[10:15]
	g.joinAll(t, nodes, hung)
	lift()

	for _, u := range slices.Concat(failed, hung) {
		if fs.faults(u) == 0 {
			t.Fatalf("%s connected without meeting the fault: the test proves nothing", u)
		}
	}
	// Until the server says it loaded them, a message could miss them
	// live; one it never loads fails below, short of every message.
	wait.ForErr(t, "the groups of those who connected during the fault to be loaded", 15*time.Second, func() error {
		var missing []string
		for _, u := range slices.Concat(failed, hung) {
			if !logs.has(u) {
				missing = append(missing, u)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not loaded for %v", missing)
		}
		return nil
	})

	// late connects; while the load of its groups (none yet) is in
	// flight, the owner adds it to the group: the add is not lost.
	held, release := fs.holdUser(late)
	joined := make(chan error, 1)
	go func() {
		_, err := g.join(s, late)
		joined <- err
	}()
	wait.For(t, late+"'s group load in flight", 10*time.Second, held)
	var gr wire.Group
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups/"+g.id+"/members", g.token, wire.GroupMembers{Users: []string{late}}, &gr); code != 200 {
		t.Fatalf("add %s: %d", late, code)
	}
	release()
	if err := <-joined; err != nil {
		t.Fatal(err)
	}

	base := g.head(t, s)
	senders := []groupSender{
		sdkSender(members[0], clients[members[0]], g.id),
		httpSender(g.owner, s.HTTP, g.token, g.id),
	}
	want := sendConcurrently(t, senders, 20, base)
	g.everyMemberGotAll(t, want, 30*time.Second)
}
