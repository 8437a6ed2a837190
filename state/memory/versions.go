package memory

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/imqtt/imqtt/state"
)

type versionShard struct {
	mu   sync.Mutex
	keys map[string]*counter
}

// counter is one key's cached block [next, end). Its own lock is held
// across a refill, so one slow reservation stalls only its key.
type counter struct {
	mu        sync.Mutex
	next, end uint64
}

func (s *State) counter(key string) *counter {
	sh := &s.versions[s.shard(key)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.keys[key]
	if c == nil {
		if sh.keys == nil {
			sh.keys = make(map[string]*counter)
		}
		c = &counter{}
		sh.keys[key] = c
	}
	return c
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
	defer c.mu.Unlock()
	if c.end-c.next < n {
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
	}
	first := c.next
	c.next += n
	return first, nil
}
