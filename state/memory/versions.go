package memory

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/imqtt/imqtt/state"
)

// DefaultVersionKeys is how many keys' version blocks the State keeps by
// default: past it the key used longest ago forgets its block (its next
// Next reserves a new one; the rest of the old block is a hole, which
// sync's upto covers, as after a restart).
const DefaultVersionKeys = 1 << 20

// versionShard holds a shard's counters in an LRU (hashicorp/golang-lru)
// of at most VersionKeys/shards keys: a node that has sent to millions of users keeps
// the blocks of the recent ones, not one for every key it ever saw.
type versionShard struct {
	mu   sync.Mutex
	keys *simplelru.LRU[string, *counter] // made at the first key
}

// counter is one key's cached block [next, end). Its own lock is held
// across a refill, so one slow reservation stalls only its key. A counter
// evicted from its shard is dead: a Next that holds it sees that under its
// lock, before it hands out a version, and moves to the key's new counter.
// So a call that begins after another returned still gets a higher
// version: the other's counter, or a newer one whose block was reserved
// later and lies above.
type counter struct {
	mu        sync.Mutex
	next, end uint64
	dead      atomic.Bool
	used      bool // since it was last passed over for eviction; under the shard's lock
}

// secondChances bounds how many used counters a new key passes over
// before it evicts one anyway.
const secondChances = 8

func (s *State) counter(key string) *counter {
	sh := &s.versions[s.shard(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.keys == nil {
		var err error
		sh.keys, err = simplelru.NewLRU(max(1, s.versionKeys/shards), func(_ string, c *counter) { c.dead.Store(true) })
		if err != nil {
			panic(err) // only for a size < 1
		}
	}
	// A hit marks the counter used rather than moving it in the LRU's
	// list (a Get): at 100,000 keys that move cost more than the rest of
	// Next. A full shard gives the oldest counter a second chance if it
	// was used since (CLOCK, an approximate LRU).
	if c, ok := sh.keys.Peek(key); ok {
		c.used = true
		return c
	}
	for range secondChances {
		k, old, ok := sh.keys.GetOldest()
		if !ok || sh.keys.Len() < max(1, s.versionKeys/shards) || !old.used {
			break
		}
		old.used = false
		sh.keys.Get(k) // to the front
	}
	c := &counter{}
	sh.keys.Add(key, c) // evicts the oldest when full
	return c
}

// versionKeysHeld is how many keys' counters s holds now.
func (s *State) versionKeysHeld() int {
	n := 0
	for i := range s.versions {
		sh := &s.versions[i]
		sh.mu.Lock()
		if sh.keys != nil {
			n += sh.keys.Len()
		}
		sh.mu.Unlock()
	}
	return n
}

// Next hands out [first, first+n) from key's cached block, reserving a new
// block from the store when fewer than n are left (the rest is abandoned).
func (s *State) Next(ctx context.Context, key string, n uint64) (uint64, error) {
	if s.closed.Load() {
		return 0, state.ErrClosed
	}
	if n < 1 || n > s.block {
		return 0, fmt.Errorf("next %d versions of %s (block %d): %w", n, key, s.block, ErrInvalid)
	}
	c := s.counter(key)
	c.mu.Lock()
	defer func() { c.mu.Unlock() }()
	for {
		if c.dead.Load() { // evicted: the key's counter is another now
			c.mu.Unlock()
			c = s.counter(key)
			c.mu.Lock()
			continue
		}
		if c.end-c.next >= n {
			break
		}
		first, err := s.reserve(ctx, key, s.block)
		if err != nil {
			return 0, fmt.Errorf("reserve versions of %s: %w", key, err)
		}
		// A store that hands out a block below the last one, or one that
		// would wrap, would break "increasing"; refuse it.
		if first < c.end || first > math.MaxUint64-s.block {
			return 0, fmt.Errorf("reserve versions of %s: block at %d is below %d", key, first, c.end)
		}
		c.next, c.end = first, first+s.block
		// Checked again (the loop) after the reservation: a counter
		// evicted while it reserved may have a successor that reserved
		// first and handed out versions below this block already.
	}
	first := c.next
	c.next += n
	return first, nil
}
