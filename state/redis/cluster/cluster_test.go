package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/internal/redistest"
	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

var srv *redistest.Server

func TestMain(m *testing.M) {
	var err error
	if srv, err = redistest.Start(false); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Close()
	os.Exit(code)
}

func client(t *testing.T) goredis.UniversalClient {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFrames(t *testing.T) {
	f := frames{origin: "n1"}
	recs := []record{{kind: kindUser, key: "alice", payload: []byte(`{"kind":"msg"}`)},
		{kind: kindMember, key: "g1", payload: []byte("bob1")}, {kind: kindKick}, {kind: kindAll, payload: []byte("n")}}
	big := record{kind: kindUser, key: "alice", payload: make([]byte, 1000)}
	for range 3000 { // past maxMessage: several messages
		f.add(big)
	}
	msgs := f.done()
	if len(msgs) < 2 {
		t.Fatalf("%d messages for 3000 records", len(msgs))
	}
	n := 0
	for _, m := range msgs {
		origin, got, err := decode(m)
		if err != nil || origin != "n1" {
			t.Fatalf("decode: %q %v", origin, err)
		}
		n += len(got)
	}
	if n != 3000 {
		t.Fatalf("%d records decoded, want 3000", n)
	}
	f = frames{origin: "n2"}
	for _, r := range recs {
		f.add(r)
	}
	_, got, err := decode(f.done()[0])
	if err != nil || len(got) != 4 || got[1].key != "g1" || string(got[1].payload) != "bob1" || got[2].kind != kindKick {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if string(got[0].payload) != `{"kind":"msg"}` || string(got[3].payload) != "n" {
		t.Fatalf("decode events: %+v", got)
	}
	// The records are byte for byte what nodes of earlier releases send and
	// read ('u' and 'a' carry the event alone: the sending node counted
	// it), so a rolling upgrade delivers across versions.
	f = frames{origin: "n1"}
	f.add(record{kind: kindUser, key: "bob", payload: []byte("ev")})
	f.add(record{kind: kindAll, payload: []byte("no")})
	if got, want := f.done()[0], []byte("\x02n1u\x03bob\x02eva\x00\x02no"); string(got) != string(want) {
		t.Fatalf("frame %q, want the earlier releases' %q", got, want)
	}
	for _, bad := range [][]byte{{}, {5, 'a'}, {1, 'a', 'u', 9}, {1, 'a', 'u', 1, 'x', 200}} {
		if _, _, err := decode(bad); err == nil {
			t.Errorf("decode(%v): no error", bad)
		}
	}
}

// fakeLocal records what a node was handed.
type fakeLocal struct {
	mu     sync.Mutex
	events []string
}

func (l *fakeLocal) TypingLocal(group string, ev wire.TypingEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, "typing "+group+" "+ev.From)
}

func (l *fakeLocal) add(s string) {
	l.mu.Lock()
	l.events = append(l.events, s)
	l.mu.Unlock()
}
func (l *fakeLocal) Arrived(user string, p []byte) { l.add("user " + user + " " + string(p)) }
func (l *fakeLocal) FanOutLocal(m store.Message)   { l.add("group " + m.Group + " " + m.Body) }
func (l *fakeLocal) MemberLocal(g, u string, joined bool) {
	l.add(fmt.Sprint("member ", g, " ", u, " ", joined))
}
func (l *fakeLocal) KickLocal(id string)    { l.add("kick " + id) }
func (l *fakeLocal) EveryoneLocal(p []byte) { l.add("all " + string(p)) }
func (l *fakeLocal) ForgetToken(h string)   { l.add("forget " + h) }
func (l *fakeLocal) got() []string          { l.mu.Lock(); defer l.mu.Unlock(); return slices.Clone(l.events) }
func (l fixedLocator) DevicesOf(_ context.Context, us []string) (map[string][]state.Device, error) {
	out := map[string][]state.Device{}
	for _, u := range us {
		out[u] = l[u]
	}
	return out, nil
}

type fixedLocator map[string][]state.Device

// sameEvents is a condition for wait.ForErr: l has had want, in order
// within each channel (a node's own, and the broadcast one: group and
// member records); the two interleave.
func sameEvents(l *fakeLocal, want ...string) func() error {
	split := func(evs []string) (own, all []string) {
		for _, e := range evs {
			if strings.HasPrefix(e, "group ") || strings.HasPrefix(e, "member ") || strings.HasPrefix(e, "all ") || strings.HasPrefix(e, "forget ") {
				all = append(all, e)
			} else {
				own = append(own, e)
			}
		}
		return own, all
	}
	return func() error {
		got := l.got()
		o1, a1 := split(got)
		o2, a2 := split(want)
		if !slices.Equal(o1, o2) || !slices.Equal(a1, a2) {
			return fmt.Errorf("events %q, want %q", got, want)
		}
		return nil
	}
}

// A user event goes only to the nodes of the user's devices, in order;
// group messages and membership changes go to every other node once.
func TestBusRouting(t *testing.T) {
	ctx := t.Context()
	loc := fixedLocator{"bob": {{User: "bob", Device: "p", Node: "n2"}, {User: "bob", Device: "q", Node: "n2"}},
		"cy": {{User: "cy", Device: "p", Node: "n1"}}}
	locals := map[string]*fakeLocal{}
	buses := map[string]*Bus{}
	for _, n := range []string{"n1", "n2", "n3"} {
		locals[n] = &fakeLocal{}
		buses[n] = NewBus(client(t), BusOptions{Prefix: t.Name() + ":", Node: n, Locator: loc, Local: locals[n]})
		if err := buses[n].Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { buses[n].Close(context.Background()) })
	}
	b := buses["n1"]
	b.User("bob", []byte("1"))
	b.User("bob", []byte("2"))
	b.User("cy", []byte("own node: nothing to send"))
	b.User("nobody", []byte("offline: nothing to send"))
	b.Group(store.Message{Group: "g", Body: "hi"})
	b.Member("g", "dan", true)
	b.Everyone([]byte("text"))
	b.Revoked("h1")
	b.Kick("bob", "bob/q")
	b.KickOn("n3", "eve/z")
	b.KickOn("n1", "self/x") // nothing: not to oneself
	wait.ForErr(t, "n2's events", 5*time.Second, sameEvents(locals["n2"], "user bob 1", "user bob 2", "kick bob/q", "group g hi", "member g dan true", "all text", "forget h1"))
	wait.ForErr(t, "n3's events", 5*time.Second, sameEvents(locals["n3"], "kick eve/z", "group g hi", "member g dan true", "all text", "forget h1"))
	// Not its own broadcasts: n2's, on the same channel after them, comes
	// to n1 alone, so n1's own would have come before it.
	buses["n2"].Everyone([]byte("n2"))
	wait.ForErr(t, "n1's events", 5*time.Second, sameEvents(locals["n1"], "all n2"))
	if d := b.Dropped(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b.User("bob", []byte("after close"))
	if d := b.Dropped(); d != 1 {
		t.Fatalf("after Close: %d dropped, want 1", d)
	}
}

// A node that stops beating leaves the list within the TTL; Leave removes
// it at once; the list is ordered by load.
func TestRegistry(t *testing.T) {
	ctx := t.Context()
	rdb := client(t)
	reg := func(node string, load float64) *Registry {
		r := NewRegistry(rdb, RegistryOptions{Prefix: t.Name() + ":", Node: node, Interval: 20 * time.Millisecond, TTL: 200 * time.Millisecond,
			Self: func() wire.Endpoint { return wire.Endpoint{Node: node, MQTT: node + ":1883", Load: load} }})
		if err := r.Join(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, c := reg("a", 0.5), reg("b", 0.1), reg("c", 0.3)
	nodes := func() []string {
		eps, err := a.Endpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range eps {
			out = append(out, e.Node)
		}
		return out
	}
	if got := nodes(); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("nodes %v, want b c a (by load)", got)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if got := nodes(); !slices.Equal(got, []string{"c", "a"}) {
		t.Fatalf("after b left: %v", got)
	}
	// c dies: its heartbeats stop without a Leave.
	c.mu.Lock()
	c.stopped = true
	close(c.stop)
	c.mu.Unlock()
	<-c.done
	onlyA := func() error {
		if got := nodes(); !slices.Equal(got, []string{"a"}) {
			return fmt.Errorf("nodes %v", got)
		}
		return nil
	}
	wait.ForErr(t, "dead c to leave the list", 2*time.Second, onlyA)
	// Redis loses everything: a is back within one heartbeat.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	wait.ForErr(t, "a back after FLUSHALL", 100*time.Millisecond, onlyA)
	a.Leave(ctx)
}

// Every process gets its own number, even with one node ID; a number lost
// with Redis's data and taken by another process is replaced.
func TestLease(t *testing.T) {
	ctx := t.Context()
	rdb := client(t)
	opts := LeaseOptions{Prefix: t.Name() + ":", Node: "same", TTL: 300 * time.Millisecond}
	seen := map[int64]bool{}
	var leases []*Lease
	for range 20 {
		l, err := TakeLease(ctx, rdb, opts)
		if err != nil {
			t.Fatal(err)
		}
		if seen[l.Number()] {
			t.Fatalf("number %d given twice", l.Number())
		}
		seen[l.Number()] = true
		leases = append(leases, l)
	}
	// Renewal keeps them past the TTL. Not a wait: the TTL passing is the test.
	time.Sleep(500 * time.Millisecond)
	l2, err := TakeLease(ctx, rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	if seen[l2.Number()] {
		t.Fatalf("a renewed number %d was given again", l2.Number())
	}
	// Redis loses the keys and a newcomer takes the first number before its
	// holder renews: the holder moves.
	changed := make(chan int64, 1)
	o := opts
	o.Node, o.Changed = "mover", func(n int64) { changed <- n }
	mover, err := TakeLease(ctx, rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	n := mover.Number()
	if err := rdb.Del(ctx, mover.key(n)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := leaseScript.Run(ctx, rdb, []string{mover.key(n)}, "newcomer", 60_000).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-changed:
		if m == n || mover.Number() != m {
			t.Fatalf("moved from %d to %d (Number %d)", n, m, mover.Number())
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the holder did not move off a taken number")
	}
	for _, l := range append(leases, l2, mover) {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := rdb.Keys(ctx, opts.Prefix+"*").Result()
	if len(keys) != 1 { // the newcomer's
		t.Fatalf("keys after release: %v", keys)
	}
}

// Events sent while Redis is down are delivered when it is back, and the
// bus carries events again after a restart that lost everything (go-redis
// resubscribes).
func TestBusAfterRedisRestart(t *testing.T) {
	own, err := redistest.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	rdb := goredis.NewClient(&goredis.Options{Addr: own.Addr()})
	defer rdb.Close()
	loc := fixedLocator{"bob": {{User: "bob", Device: "p", Node: "n2"}}}
	l1, l2 := &fakeLocal{}, &fakeLocal{}
	var log syncbuf.Buffer
	b1 := NewBus(rdb, BusOptions{Node: "n1", Locator: loc, Local: l1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	b2 := NewBus(rdb, BusOptions{Node: "n2", Locator: loc, Local: l2})
	for _, b := range []*Bus{b1, b2} {
		if err := b.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer b.Close(context.Background())
	}
	b1.User("bob", []byte("before"))
	wait.ForErr(t, "the event before", 5*time.Second, sameEvents(l2, "user bob before"))
	// Sent while Redis is down: kept and retried, delivered once it is back.
	own.Kill()
	b1.User("bob", []byte("during"))
	wait.For(t, "a publish to fail with Redis down", 5*time.Second, func() bool { return strings.Contains(log.String(), "cluster bus: publish") })
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	wait.ForErr(t, "the event sent while Redis was down", 5*time.Second, sameEvents(l2, "user bob before", "user bob during"))
	// Until go-redis has resubscribed an event is lost: send one a poll.
	sent := 0
	wait.ForErr(t, "an event after the restart", 10*time.Second, func() error {
		if len(l2.got()) > 2 {
			return nil
		}
		b1.User("bob", []byte(fmt.Sprint("after ", sent)))
		sent++
		return fmt.Errorf("nothing received after %d sends; dropped %d", sent, b1.Dropped())
	})
	t.Logf("first after the restart: %q (of %d sent)", l2.got()[2], sent)
}

// One event for many users (a presence change to 5,000 contacts) costs a
// message per node that holds any of them, each naming only its own
// users; nothing to this node's channel or for users with no device.
func TestBusUsers(t *testing.T) {
	ctx := t.Context()
	loc := fixedLocator{}
	var users []string
	want := map[string][]string{}
	for i := range 5000 {
		u := fmt.Sprintf("u%04d", i)
		users = append(users, u)
		switch node := []string{"n1", "n2", "n3", ""}[i%4]; node {
		case "":
		case "n2": // two devices: still once
			loc[u] = []state.Device{{User: u, Device: "p", Node: "n2"}, {User: u, Device: "q", Node: "n2"}}
			want["n2"] = append(want["n2"], "user "+u+" ev")
		default:
			loc[u] = []state.Device{{User: u, Device: "p", Node: node}}
			want[node] = append(want[node], "user "+u+" ev")
		}
	}
	prefix := t.Name() + ":"
	watch := client(t).Subscribe(ctx, prefix+"bus:node:n1", prefix+"bus:node:n2", prefix+"bus:node:n3", prefix+"bus:all")
	defer watch.Close()
	for range 4 {
		if _, err := watch.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	msgs := map[string]int{}
	go func() {
		for m := range watch.Channel() {
			mu.Lock()
			msgs[strings.TrimPrefix(m.Channel, prefix)]++
			mu.Unlock()
		}
	}()
	locals := map[string]*fakeLocal{}
	buses := map[string]*Bus{}
	for _, n := range []string{"n1", "n2", "n3"} {
		locals[n] = &fakeLocal{}
		buses[n] = NewBus(client(t), BusOptions{Prefix: prefix, Node: n, Locator: loc, Local: locals[n]})
		if err := buses[n].Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { buses[n].Close(context.Background()) })
	}
	buses["n1"].Users(users, []byte("ev"))
	buses["n1"].User("u0001", []byte("after")) // in order after it
	wait.ForErr(t, "n2's events", 5*time.Second, sameEvents(locals["n2"], append(want["n2"], "user u0001 after")...))
	wait.ForErr(t, "n3's events", 5*time.Second, sameEvents(locals["n3"], want["n3"]...))
	wait.For(t, "the watcher's messages", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return msgs["bus:node:n2"] > 0 && msgs["bus:node:n3"] > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if msgs["bus:node:n2"] > 2 || msgs["bus:node:n3"] != 1 || msgs["bus:node:n1"]+msgs["bus:all"] != 0 {
		t.Errorf("messages by channel %v: want one to n3, at most two to n2 (its own and the later event's), none to n1 or all", msgs)
	}
	if n := len(locals["n1"].got()); n != 0 {
		t.Errorf("n1 got %d events of its own", n)
	}
}
