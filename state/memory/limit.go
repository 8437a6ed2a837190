package memory

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imqtt/imqtt/state"
)

// DefaultLimitKeys is how many keys the Limiter remembers by default.
const DefaultLimitKeys = 1 << 16

// limits are the Limiter's token buckets (golang.org/x/time/rate), in an
// LRU of at most max keys: a flood of new keys (one per spoofed user name
// or IP) evicts the least recently used bucket instead of growing memory.
// A forgotten bucket starts full again; the oldest is almost always full
// already (it refilled while nobody used it), so eviction rarely gives
// anyone events back.
type limits struct {
	mu  sync.Mutex
	max int
	m   map[string]*list.Element // -> *bucket
	lru list.List                // front: most recently used
}

type bucket struct {
	key string
	lim *rate.Limiter
}

// Allow implements state.Limiter.
func (s *State) Allow(ctx context.Context, key string, l state.Limit) (state.Decision, error) {
	return s.limits.take(s, key, l, true)
}

// Peek implements state.Limiter.
func (s *State) Peek(ctx context.Context, key string, l state.Limit) (state.Decision, error) {
	return s.limits.take(s, key, l, false)
}

func (ls *limits) take(s *State, key string, l state.Limit, take bool) (state.Decision, error) {
	if s.closed.Load() {
		return state.Decision{}, state.ErrClosed
	}
	if !l.Valid() {
		return state.Decision{}, fmt.Errorf("limit %s: %+v: %w", key, l, ErrInvalid)
	}
	now := time.Now()
	every := rate.Every(l.Interval())
	ls.mu.Lock()
	defer ls.mu.Unlock()
	lim := ls.get(key, every, l.Burst)
	if lim.Limit() != every || lim.Burst() != l.Burst {
		lim.SetLimitAt(now, every)
		lim.SetBurstAt(now, l.Burst)
	}
	if take && lim.AllowN(now, 1) {
		return state.Decision{OK: true}, nil
	}
	tokens := lim.TokensAt(now)
	if !take && tokens >= 1 {
		return state.Decision{OK: true}, nil
	}
	wait := time.Duration(math.Ceil((1 - tokens) * float64(l.Interval())))
	return state.Decision{RetryAfter: max(wait, time.Nanosecond)}, nil
}

// get returns key's limiter, making it (and evicting the least recently
// used past max) if need be. ls.mu is held.
func (ls *limits) get(key string, every rate.Limit, burst int) *rate.Limiter {
	if e, ok := ls.m[key]; ok {
		ls.lru.MoveToFront(e)
		return e.Value.(*bucket).lim
	}
	if ls.m == nil {
		ls.m = map[string]*list.Element{}
	}
	if ls.max <= 0 {
		ls.max = DefaultLimitKeys
	}
	for len(ls.m) >= ls.max {
		old := ls.lru.Back()
		delete(ls.m, old.Value.(*bucket).key)
		ls.lru.Remove(old)
	}
	b := &bucket{key: key, lim: rate.NewLimiter(every, burst)}
	ls.m[key] = ls.lru.PushFront(b)
	return b.lim
}

// limitKeys is how many keys the Limiter holds (tests).
func (s *State) limitKeys() int {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	return len(s.limits.m)
}
