package memory

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/imqtt/imqtt/state"
)

// DefaultLimitKeys is how many keys the Limiter remembers by default.
const DefaultLimitKeys = 1 << 16

// limits are the Limiter's token buckets (golang.org/x/time/rate), in an
// LRU (hashicorp/golang-lru) of at most max keys: a flood of new keys (one
// per spoofed user name or IP) evicts the least recently used bucket
// instead of growing memory. A forgotten bucket starts full again; the
// oldest is almost always full already (it refilled while nobody used it),
// so eviction rarely gives anyone events back.
type limits struct {
	mu  sync.Mutex
	max int
	lru *simplelru.LRU[string, *rate.Limiter]
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
	if !take && (ls.lru == nil || !ls.lru.Contains(key)) {
		// A key with no bucket has a full one: a Peek makes none, so
		// that peeks at many keys cannot evict the buckets that count.
		return state.Decision{OK: true}, nil
	}
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
	if ls.lru == nil {
		if ls.max <= 0 {
			ls.max = DefaultLimitKeys
		}
		ls.lru, _ = simplelru.NewLRU[string, *rate.Limiter](ls.max, nil) // errs only for a size <= 0
	}
	if lim, ok := ls.lru.Get(key); ok {
		return lim
	}
	lim := rate.NewLimiter(every, burst)
	ls.lru.Add(key, lim)
	return lim
}

// limitKeys is how many keys the Limiter holds (tests).
func (s *State) limitKeys() int {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	if s.limits.lru == nil {
		return 0
	}
	return s.limits.lru.Len()
}
