package redis_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/internal/redistest"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state"
	staterds "github.com/imqtt/imqtt/state/redis"
	"github.com/imqtt/imqtt/state/statetest"
)

// sharedURL is the Redis most tests share, each under its own key prefix:
// IMQTT_REDIS_URL (default redis://127.0.0.1:6379/0) if a server answers
// there, else a redis-server that TestMain starts. Tests that flush or
// restart Redis start their own.
var sharedURL string

// runID keeps the prefixes of this run apart from another's on a shared
// server.
var runID = func() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

func TestMain(m *testing.M) {
	url := cmp.Or(os.Getenv("IMQTT_REDIS_URL"), "redis://127.0.0.1:6379/0")
	var srv *redistest.Server
	if err := redistest.Answers(url); err != nil {
		if srv, err = redistest.Start(false); err != nil {
			fmt.Fprintf(os.Stderr, "state/redis: no Redis at %s and none could be started: %v\n", url, err)
			os.Exit(1)
		}
		url = srv.URL()
	}
	sharedURL = url
	code := m.Run()
	if srv != nil {
		srv.Close()
	}
	os.Exit(code)
}

// prefix returns t's key prefix on the shared Redis and deletes its keys
// when t ends (after the States that t opened are closed).
func prefix(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if strings.ContainsRune("{}*?[]\\ ", r) {
			return '_'
		}
		return r
	}, t.Name())
	p := "imqtt-test:" + runID + ":" + name + ":"
	t.Cleanup(func() { deleteKeys(t, sharedURL, p) })
	return p
}

func deleteKeys(t testing.TB, url, prefix string) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Errorf("parse %s: %v", url, err)
		return
	}
	c := goredis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
		return
	}
	for chunk := range slices.Chunk(keys, 500) {
		if err := c.Del(ctx, chunk...).Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
			return
		}
	}
}

// open opens a State on url, closed when t ends.
func open(t testing.TB, url string, reserve state.ReserveFunc, opts staterds.Options) *staterds.State {
	t.Helper()
	s, err := staterds.Open(context.Background(), url, reserve, opts)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func conformance(opts staterds.Options) func(t *testing.T, reserve state.ReserveFunc) state.State {
	return func(t *testing.T, reserve state.ReserveFunc) state.State {
		o := opts
		o.Prefix = prefix(t) // the same for every open of one subtest: nodes share it
		s, err := staterds.Open(t.Context(), sharedURL, reserve, o)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	statetest.Run(t, conformance(staterds.Options{}))
}

// TestConformanceSmallBlock refills all the time, so the install script's
// races (stale blocks, waiters) run.
func TestConformanceSmallBlock(t *testing.T) {
	statetest.Run(t, conformance(staterds.Options{Block: 8}))
}

// TestConformanceCluster runs the suite on a one-node Redis Cluster through
// a cluster client: a script whose keys are not under one hash tag fails
// with CROSSSLOT there.
func TestConformanceCluster(t *testing.T) {
	srv, err := redistest.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	statetest.Run(t, func(t *testing.T, reserve state.ReserveFunc) state.State {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{srv.Addr()}})
		t.Cleanup(func() { c.Close() })
		s, err := staterds.New(t.Context(), c, reserve, staterds.Options{Prefix: prefix(t), Block: 8})
		if err != nil {
			t.Fatalf("new: %v", err)
		}
		return s
	})
}

// TestReserveBackwards: a store that hands out a block below the cached one
// would break "increasing"; Next refuses it instead of looping.
func TestReserveBackwards(t *testing.T) {
	reserve := func(ctx context.Context, key string, n uint64) (uint64, error) { return 1, nil }
	s := open(t, sharedURL, reserve, staterds.Options{Prefix: prefix(t), Block: 2})
	for want := uint64(1); want <= 2; want++ {
		if got, err := s.Next(t.Context(), "alice", 1); err != nil || got != want {
			t.Fatalf("next: %d, %v; want %d", got, err, want)
		}
	}
	if got, err := s.Next(t.Context(), "alice", 1); err == nil {
		t.Fatalf("next after a block that went backwards: %d, no error", got)
	}
}

func TestOptions(t *testing.T) {
	reserve := statetest.NewReserveFunc()
	for _, o := range []staterds.Options{
		{Prefix: "a{b}:"},
		{PresenceTTL: time.Millisecond},
		{Block: 1 << 60},
	} {
		if _, err := staterds.Open(t.Context(), sharedURL, reserve, o); !errors.Is(err, staterds.ErrInvalid) {
			t.Errorf("open with %+v: %v, want ErrInvalid", o, err)
		}
	}
	if _, err := staterds.Open(t.Context(), "http://nope", reserve, staterds.Options{}); !errors.Is(err, staterds.ErrInvalid) {
		t.Errorf("open with a bad URL: %v, want ErrInvalid", err)
	}
	port, err := redistest.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = staterds.Open(ctx, fmt.Sprintf("redis://127.0.0.1:%d/0?max_retries=-1", port), reserve, staterds.Options{})
	if !errors.Is(err, staterds.ErrUnavailable) {
		t.Errorf("open with no server: %v, want ErrUnavailable", err)
	}
}

// grant is one Next result.
type grant struct {
	key      string
	first, n uint64
}

// checkDisjoint fails if two grants of one key share a version.
func checkDisjoint(t *testing.T, grants []grant) {
	t.Helper()
	gs := slices.Clone(grants)
	slices.SortFunc(gs, func(a, b grant) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.first, b.first))
	})
	for i := 1; i < len(gs); i++ {
		a, b := gs[i-1], gs[i]
		if a.key == b.key && a.first+a.n > b.first {
			t.Fatalf("%s: [%d,+%d) and [%d,+%d) overlap", a.key, a.first, a.n, b.first, b.n)
		}
	}
}

// hammer runs workers that each call Next each times on the given states
// (worker w on states[w%len]), checks that each worker's versions of a key
// increase, and returns every grant. after, if set, runs on the worker
// that made the i-th grant overall (counting from 1), while the others go on.
func hammer(t *testing.T, states []*staterds.State, workers, each int, after func(i int64)) []grant {
	t.Helper()
	var (
		mu    sync.Mutex
		all   []grant
		total atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range workers {
		s := states[w%len(states)]
		wg.Go(func() {
			last := map[string]uint64{}
			var mine []grant
			defer func() {
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
			for i := range each {
				key := []string{"alice", "bob"}[(w+i)%2]
				n := uint64(1 + i%3)
				first, err := s.Next(t.Context(), key, n)
				if err != nil {
					t.Errorf("worker %d: next: %v", w, err)
					return
				}
				if first <= last[key] {
					t.Errorf("worker %d, %s: %d after %d", w, key, first, last[key])
				}
				last[key] = first + n - 1
				mine = append(mine, grant{key, first, n})
				if i := total.Add(1); after != nil {
					after(i)
				}
			}
		})
	}
	wg.Wait()
	return all
}

// TestTwoNodes: two States (two nodes, two connections) on one Redis and
// one store hand out disjoint versions under concurrency, with blocks small
// enough that refills race all the time.
func TestTwoNodes(t *testing.T) {
	reserve := statetest.NewReserveFunc()
	p := prefix(t)
	a := open(t, sharedURL, reserve, staterds.Options{Prefix: p, Block: 8})
	b := open(t, sharedURL, reserve, staterds.Options{Prefix: p, Block: 8})
	grants := hammer(t, []*staterds.State{a, b}, 8, 250, nil)
	if len(grants) != 8*250 {
		t.Fatalf("%d grants, want %d", len(grants), 8*250)
	}
	checkDisjoint(t, grants)
}

// flushAll empties the Redis at url.
func flushAll(t *testing.T, url string) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Errorf("parse %s: %v", url, err)
		return
	}
	c := goredis.NewClient(o)
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Errorf("flushall: %v", err)
	}
}

// TestFlushAll: Redis loses everything several times while two nodes hand
// out versions: nothing repeats, each worker's versions keep increasing,
// and a sequential stream continues above everything handed out before.
func TestFlushAll(t *testing.T) {
	srv, err := redistest.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	reserve := statetest.NewReserveFunc()
	a := open(t, srv.URL(), reserve, staterds.Options{Block: 16})
	b := open(t, srv.URL(), reserve, staterds.Options{Block: 16})

	var flushes atomic.Int64
	grants := hammer(t, []*staterds.State{a, b}, 8, 200, func(i int64) {
		if i%250 == 0 { // mid-stream: the other workers are still running
			flushAll(t, srv.URL())
			flushes.Add(1)
		}
	})
	if flushes.Load() < 5 {
		t.Fatalf("%d flushes, want at least 5", flushes.Load())
	}
	checkDisjoint(t, grants)

	// One caller, a flush between every few calls: every version is above all
	// earlier ones, of this stream and of the hammer.
	high := uint64(0)
	for _, g := range grants {
		if g.key == "alice" {
			high = max(high, g.first+g.n-1)
		}
	}
	for i := range 100 {
		if i%7 == 0 {
			flushAll(t, srv.URL())
		}
		v, err := []*staterds.State{a, b}[i%2].Next(t.Context(), "alice", 1)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if v <= high {
			t.Fatalf("call %d: %d, not above %d", i, v, high)
		}
		high = v
	}
}

// throughout polls cond until d has passed and fails the first time it does
// not hold. Not a wait: that cond still holds as time passes (a TTL that
// would expire) is the check.
func throughout(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// devicesAre checks user's devices and the count as seen from s.
func devicesAre(ctx context.Context, s state.Presence, user string, count int64, want ...state.Device) func() error {
	return func() error {
		got, err := s.Devices(ctx, user)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("devices of %s: %+v, want %+v", user, got, want)
		}
		n, err := s.Count(ctx)
		if err != nil {
			return err
		}
		if n != count {
			return fmt.Errorf("count %d, want %d", n, count)
		}
		return nil
	}
}

// TestPresenceExpiry: a device stays while its node refreshes it, well past
// the TTL, and goes (with its node's count) once the node stops.
func TestPresenceExpiry(t *testing.T) {
	const ttl = time.Second
	reserve := statetest.NewReserveFunc()
	p := prefix(t)
	a := open(t, sharedURL, reserve, staterds.Options{Prefix: p, PresenceTTL: ttl})
	b := open(t, sharedURL, reserve, staterds.Options{Prefix: p, PresenceTTL: ttl})
	ctx := t.Context()
	phone := state.Device{User: "alice", Device: "phone", Node: "node-a", Since: 1}
	if _, err := a.Online(ctx, phone); err != nil {
		t.Fatal(err)
	}
	throughout(t, 3*ttl, "refreshed by its node", devicesAre(ctx, b, "alice", 1, phone))
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	wait.ForErr(t, "expired after its node stopped", 3*ttl, devicesAre(ctx, b, "alice", 0))
	t.Logf("gone %v after its node stopped (TTL %v)", time.Since(start).Round(10*time.Millisecond), ttl)
}

// TestTakeoverAcrossNodes: a device that reconnects to another node is that
// node's; the old node's late Offline changes nothing, and the old node,
// even without an Offline, stops refreshing it.
func TestTakeoverAcrossNodes(t *testing.T) {
	const ttl = 600 * time.Millisecond
	reserve := statetest.NewReserveFunc()
	p := prefix(t)
	a := open(t, sharedURL, reserve, staterds.Options{Prefix: p, PresenceTTL: ttl})
	b := open(t, sharedURL, reserve, staterds.Options{Prefix: p, PresenceTTL: ttl})
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	online := func(s *staterds.State, d state.Device) {
		t.Helper()
		_, err := s.Online(ctx, d)
		must(err)
	}
	online(a, state.Device{User: "alice", Device: "phone", Node: "node-a", Since: 1})
	online(a, state.Device{User: "bob", Device: "tablet", Node: "node-a", Since: 2})
	phone := state.Device{User: "alice", Device: "phone", Node: "node-b", Since: 3}
	tablet := state.Device{User: "bob", Device: "tablet", Node: "node-b", Since: 4}
	online(b, phone)
	online(b, tablet)
	must(devicesAre(ctx, a, "alice", 2, phone)())
	must(a.Offline(ctx, "alice", "phone", "node-a")) // the old node's late disconnect
	must(devicesAre(ctx, a, "alice", 2, phone)())
	// a never calls Offline for bob's tablet; its refresher sees the takeover.
	wait.ForErr(t, "counts settled", 3*ttl, devicesAre(ctx, a, "bob", 2, tablet))
	throughout(t, 2*ttl, "counts stay", devicesAre(ctx, a, "bob", 2, tablet))
	must(b.Close())
	// Had a kept refreshing the tablet, it would come back on node-a.
	wait.ForErr(t, "gone with node-b", 3*ttl, devicesAre(ctx, a, "bob", 0))
	throughout(t, ttl, "not brought back by node-a", devicesAre(ctx, a, "bob", 0))
}

// TestRestart: Redis is killed and a new, empty one starts on the same
// port. While it is down every call fails with an error; afterwards calls
// work again, no version repeats, and the node re-records its devices.
func TestRestart(t *testing.T) {
	srv, err := redistest.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	const ttl = 600 * time.Millisecond
	s := open(t, srv.URL(), statetest.NewReserveFunc(), staterds.Options{Block: 16, PresenceTTL: ttl})
	ctx := t.Context()
	var before []uint64
	for range 40 {
		v, err := s.Next(ctx, "alice", 1)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, v)
	}
	phone := state.Device{User: "alice", Device: "phone", Node: "n1", Since: 1}
	if _, err := s.Online(ctx, phone); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	down, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	wantDown := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, staterds.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", what, err)
		}
	}
	_, err = s.Next(down, "alice", 1)
	wantDown("next", err)
	wantDown("ping", s.Ping(down))
	_, err = s.Online(down, state.Device{User: "bob", Device: "d", Node: "n1"})
	wantDown("online", err)
	wantDown("offline", s.Offline(down, "bob", "d", "n1"))
	_, err = s.Devices(down, "alice")
	wantDown("devices", err)
	_, err = s.Count(down)
	wantDown("count", err)

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	wait.ForErr(t, "ping after restart", 10*time.Second, func() error { return s.Ping(ctx) })
	last := before[len(before)-1]
	for i := range 40 {
		v, err := s.Next(ctx, "alice", 1)
		if err != nil {
			t.Fatalf("next after restart: %v", err)
		}
		if v <= last {
			t.Fatalf("call %d after restart: %d, not above %d", i, v, last)
		}
		last = v
	}
	// The script cache is empty on the new server: the refresher's pipeline
	// and the callers fall back to EVAL.
	wait.ForErr(t, "devices re-recorded", 3*ttl, devicesAre(ctx, s, "alice", 1, phone))
}

// gatedReserve wraps reserve: its first call reserves, then reports the
// block on reserved and returns only when release is closed.
func gatedReserve(reserve state.ReserveFunc) (r state.ReserveFunc, reserved chan uint64, release chan struct{}) {
	reserved, release = make(chan uint64, 1), make(chan struct{})
	var once atomic.Bool
	return func(ctx context.Context, key string, n uint64) (uint64, error) {
		first, err := reserve(ctx, key, n)
		if err == nil && once.CompareAndSwap(false, true) {
			reserved <- first
			<-release
		}
		return first, err
	}, reserved, release
}

// TestStaleRefill: node a reserves a block, node b reserves a later one and
// hands it out, then a's refill arrives: it must not move the key back
// below what b handed out.
func TestStaleRefill(t *testing.T) {
	store := statetest.NewReserveFunc()
	gated, reserved, release := gatedReserve(store)
	p := prefix(t)
	a := open(t, sharedURL, gated, staterds.Options{Prefix: p, Block: 10})
	b := open(t, sharedURL, store, staterds.Options{Prefix: p, Block: 10})
	ctx := t.Context()
	got := make(chan uint64, 1)
	go func() {
		v, err := a.Next(ctx, "alice", 1)
		if err != nil {
			t.Errorf("a: %v", err)
		}
		got <- v
	}()
	stale := <-reserved
	vb, err := b.Next(ctx, "alice", 1)
	if err != nil || vb <= stale {
		t.Fatalf("b: %d, %v; want above a's block at %d", vb, err, stale)
	}
	close(release)
	if va := <-got; va <= vb {
		t.Errorf("a's stale refill handed out %d after b handed out %d", va, vb)
	}
	if vb2, err := b.Next(ctx, "alice", 1); err != nil || vb2 <= vb {
		t.Errorf("b again: %d, %v; want above %d", vb2, err, vb)
	}
}

// TestStaleRefillAfterFlush: the same race with Redis flushed between b's
// versions and a's refill. Redis has nothing left to compare a's block
// with, so a installs it (the documented window: a hands out versions below
// b's); b must still not go back below its own.
func TestStaleRefillAfterFlush(t *testing.T) {
	srv, err := redistest.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	store := statetest.NewReserveFunc()
	gated, reserved, release := gatedReserve(store)
	a := open(t, srv.URL(), gated, staterds.Options{Block: 10})
	b := open(t, srv.URL(), store, staterds.Options{Block: 10})
	ctx := t.Context()
	got := make(chan uint64, 1)
	go func() {
		v, err := a.Next(ctx, "alice", 1)
		if err != nil {
			t.Errorf("a: %v", err)
		}
		got <- v
	}()
	<-reserved
	vb, err := b.Next(ctx, "alice", 1)
	if err != nil {
		t.Fatal(err)
	}
	flushAll(t, srv.URL())
	close(release)
	va := <-got
	t.Logf("a: %d after b: %d (the window Redis cannot see)", va, vb)
	for range 25 { // more than a block: b passes over a's stale one
		v, err := b.Next(ctx, "alice", 1)
		if err != nil || v <= vb {
			t.Fatalf("b after the flush: %d, %v; want above %d", v, err, vb)
		}
		if v == va {
			t.Fatalf("b repeated a's %d", v)
		}
		vb = v
	}
}

// DevicesOf answers for many users at once, as Devices does for each.
func TestDevicesOf(t *testing.T) {
	ctx := t.Context()
	s := open(t, sharedURL, statetest.NewReserveFunc(), staterds.Options{Prefix: prefix(t)})
	a := state.Device{User: "ann", Device: "phone", Node: "n1", Since: 1}
	b1 := state.Device{User: "bo", Device: "a", Node: "n1", Since: 2}
	b2 := state.Device{User: "bo", Device: "b", Node: "n2", Since: 3}
	for _, d := range []state.Device{a, b1, b2} {
		if _, err := s.Online(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.DevicesOf(ctx, []string{"ann", "bo", "cy"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got["ann"], []state.Device{a}) || len(got["bo"]) != 2 || len(got["cy"]) != 0 || len(got) != 3 {
		t.Fatalf("DevicesOf: %+v", got)
	}
}

// Two nodes taking one key's versions at once, across many refills, leave
// no hole: a refill is one node's at a time (a hole would make sync wait).
func TestRefillNoHoles(t *testing.T) {
	reserve := statetest.NewReserveFunc()
	p := prefix(t)
	nodes := []*staterds.State{
		open(t, sharedURL, reserve, staterds.Options{Prefix: p, Block: 8}),
		open(t, sharedURL, reserve, staterds.Options{Prefix: p, Block: 8}),
	}
	var (
		mu   sync.Mutex
		got  []uint64
		wg   sync.WaitGroup
		each = 200
	)
	for i := range 4 {
		wg.Go(func() {
			for range each {
				v, err := nodes[i%2].Next(t.Context(), "alice", 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, v)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("versions not contiguous: %d at position %d (a hole or a repeat)", v, i+1)
		}
	}
}
