package storetest

import (
	"slices"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Versions tests the Versions role: reserved blocks never overlap and only
// grow, for each key, also when reserved concurrently.
func Versions(t *testing.T, open func(t *testing.T) store.Versions) {
	run(t, open, []testCase{
		{"ReserveVersions", testReserveVersions},
		{"ReserveVersionsConcurrent", testReserveVersionsConcurrent},
	})
}

// block is a reservation [first, first+n).
type block struct{ first, n uint64 }

// checkDisjoint fails if any two blocks overlap or one starts at 0.
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
	for i, b := range bs {
		if b.first == 0 {
			t.Fatalf("%s: a block starts at version 0", what)
		}
		if i > 0 && bs[i-1].first+bs[i-1].n > b.first {
			t.Fatalf("%s: blocks overlap: [%d,+%d) and [%d,+%d)", what,
				bs[i-1].first, bs[i-1].n, b.first, b.n)
		}
	}
}

func testReserveVersions(t *testing.T, f *fixture) {
	var end uint64
	var blocks []block
	for _, n := range []uint64{1, 5, 1, 100, 3} {
		first := f.reserve("alice", n)
		if first < 1 {
			t.Fatalf("version %d: versions start at 1", first)
		}
		if first < end {
			t.Fatalf("reserve %d: first %d is inside the previous block ending at %d", n, first, end)
		}
		end = first + n
		blocks = append(blocks, block{first, n})
	}
	// Another key has its own sequence and does not disturb alice's.
	if first := f.reserve("bob", 10); first < 1 {
		t.Fatalf("bob: version %d", first)
	}
	if first := f.reserve("alice", 1); first < end {
		t.Fatalf("after bob: alice's first %d is below %d", first, end)
	}
	checkDisjoint(t, "sequential", blocks)
}

func testReserveVersionsConcurrent(t *testing.T, f *fixture) {
	const workers, each = 8, 25
	var (
		mu     sync.Mutex
		blocks = map[string][]block{}
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			key := []string{"alice", "bob"}[w%2]
			var last uint64
			for i := range each {
				n := uint64(1 + (w+i)%4)
				first, err := f.versions.ReserveVersions(f.ctx, key, n)
				if err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				if first <= last {
					t.Errorf("%s: worker %d got %d after %d", key, w, first, last)
				}
				last = first
				mu.Lock()
				blocks[key] = append(blocks[key], block{first, n})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for key, bs := range blocks {
		if len(bs) != workers/2*each {
			t.Errorf("%s: %d blocks, want %d", key, len(bs), workers/2*each)
		}
		checkDisjoint(t, key, bs)
	}
}
