package statetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/state"
)

// block is a grant [first, first+n).
type block struct{ first, n uint64 }

// checkDisjoint fails if two blocks share a version.
func checkDisjoint(t *testing.T, what string, blocks []block) {
	t.Helper()
	bs := slices.Clone(blocks)
	slices.SortFunc(bs, func(a, b block) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	for i := 1; i < len(bs); i++ {
		if bs[i-1].first+bs[i-1].n > bs[i].first {
			t.Fatalf("%s: [%d,+%d) and [%d,+%d) overlap", what, bs[i-1].first, bs[i-1].n, bs[i].first, bs[i].n)
		}
	}
}

func testVersionsIncreasing(t *testing.T, f *fixture) {
	s := f.open()
	last := map[string]uint64{}
	// Enough calls to use up more than one block of the default size.
	for i := range 2500 {
		key := []string{"alice", "bob"}[i%3/2]
		v := f.next(s, key, 1)
		if v <= last[key] {
			t.Fatalf("%s: call %d returned %d after %d", key, i, v, last[key])
		}
		last[key] = v
	}
}

func testVersionsBlocks(t *testing.T, f *fixture) {
	s := f.open()
	var blocks []block
	var end uint64
	for i := range 400 {
		n := []uint64{1, 2, 7, 1, 3, 8}[i%6]
		first := f.next(s, "alice", n)
		if first < end {
			t.Fatalf("call %d: [%d,+%d) starts inside the previous grant ending at %d", i, first, n, end)
		}
		end = first + n
		blocks = append(blocks, block{first, n})
	}
	checkDisjoint(t, "alice", blocks)
}

func testVersionsConcurrent(t *testing.T, f *fixture) {
	s := f.open()
	const workers, each = 8, 300
	var (
		mu     sync.Mutex
		blocks = map[string][]block{}
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			last := map[string]uint64{}
			mine := map[string][]block{}
			for i := range each {
				key := []string{"alice", "bob", "carol"}[(w+i)%3]
				n := uint64(1 + i%3)
				first, err := s.Next(f.ctx, key, n)
				if err != nil {
					t.Errorf("next: %v", err)
					return
				}
				if first <= last[key] {
					t.Errorf("%s: worker %d got %d after %d", key, w, first, last[key])
				}
				last[key] = first
				mine[key] = append(mine[key], block{first, n})
			}
			mu.Lock()
			for key, bs := range mine {
				blocks[key] = append(blocks[key], bs...)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	total := 0
	for key, bs := range blocks {
		total += len(bs)
		checkDisjoint(t, key, bs)
	}
	if total != workers*each {
		t.Errorf("%d grants recorded, want %d", total, workers*each)
	}
}

// testVersionsRestart opens a second and a third State on the same store,
// as after a restart or a loss of Redis, with the first still running (two
// nodes): no version may be handed out twice.
func testVersionsRestart(t *testing.T, f *fixture) {
	s1 := f.open()
	var blocks []block
	take := func(s state.Versions, n uint64) {
		blocks = append(blocks, block{f.next(s, "alice", n), n})
	}
	for range 10 {
		take(s1, 1)
	}
	s2 := f.open()
	for i := range 100 {
		take(s1, 1+uint64(i%2))
		take(s2, 1+uint64(i%3))
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s3 := f.open()
	for range 10 {
		take(s3, 2)
		take(s2, 1)
	}
	checkDisjoint(t, "alice across instances", blocks)
}

func testVersionsInvalid(t *testing.T, f *fixture) {
	s := f.open()
	if _, err := s.Next(f.ctx, "alice", 0); err == nil {
		t.Error("next 0 versions: no error")
	}
	f.next(s, "alice", 1)
}

func testVersionsReserveError(t *testing.T, f *fixture) {
	errDown := errors.New("store down")
	var down atomic.Bool
	reserve := func(ctx context.Context, key string, n uint64) (uint64, error) {
		if down.Load() {
			return 0, errDown
		}
		return f.reserve(ctx, key, n)
	}
	s := f.openWith(reserve)
	down.Store(true)
	if _, err := s.Next(f.ctx, "alice", 1); err == nil {
		t.Fatal("next with the store down and no cached block: no error")
	}
	down.Store(false)
	a := f.next(s, "alice", 1)
	b := f.next(s, "alice", 1)
	if b <= a {
		t.Errorf("after recovery: %d then %d", a, b)
	}
}

func testClosed(t *testing.T, f *fixture) {
	s := f.open()
	f.next(s, "alice", 1)
	if err := s.Ping(f.ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil && !errors.Is(err, state.ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	_, err := s.Next(f.ctx, "alice", 1)
	wantErr(t, "next", err, state.ErrClosed)
	_, err = s.Online(f.ctx, state.Device{User: "alice", Device: "d", Node: "n"})
	wantErr(t, "online", err, state.ErrClosed)
	wantErr(t, "offline", s.Offline(f.ctx, "alice", "d", "n"), state.ErrClosed)
	_, err = s.Devices(f.ctx, "alice")
	wantErr(t, "devices", err, state.ErrClosed)
	_, err = s.Count(f.ctx)
	wantErr(t, "count", err, state.ErrClosed)
	wantErr(t, "ping", s.Ping(f.ctx), state.ErrClosed)
	_, err = s.Allow(f.ctx, "k", state.Limit{Rate: 1, Per: time.Second, Burst: 1})
	wantErr(t, "allow", err, state.ErrClosed)
}

// testVersionsEach: state.NextEach (the batcher's one call per batch) gives
// each listing of a key its own version, increasing in listing order, never
// one that Next gave or gives, over block boundaries.
func testVersionsEach(t *testing.T, f *fixture) {
	s := f.open()
	seen := map[string]map[uint64]bool{}
	last := map[string]uint64{}
	take := func(key string, v uint64) {
		if seen[key] == nil {
			seen[key] = map[uint64]bool{}
		}
		if v == 0 || seen[key][v] || v <= last[key] {
			t.Fatalf("%s: version %d after %d (seen before: %v)", key, v, last[key], seen[key][v])
		}
		seen[key][v], last[key] = true, v
	}
	for round := range 60 {
		keys := []string{"a", "b", "a", "c", "a"}
		if round%7 == 0 {
			keys = append(keys, slices.Repeat([]string{"hot"}, 150)...) // past one Next's chunk
		}
		got, err := state.NextEach(f.ctx, s, keys)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i, k := range keys {
			take(k, got[i])
		}
		take("a", f.next(s, "a", 1))
	}
}
