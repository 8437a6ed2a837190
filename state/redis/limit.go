package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/imqtt/imqtt/state"
)

// The Limiter is GCRA (the generic cell rate algorithm, a token bucket
// that keeps one number per key: the theoretical arrival time) from
// github.com/go-redis/redis_rate, one Lua script and one round trip per
// call. Its clock is Redis's TIME, so nodes whose clocks differ still
// share one bucket exactly, and its key expires once the bucket is full
// again, so idle keys cost nothing.
//
// Compared with github.com/ulule/limiter (its Redis store): that counts
// INCR+EXPIRE fixed windows, as imqtt did before, which let twice the
// limit through across a window boundary and has no burst separate from
// the rate; and it numbers windows by each node's clock. GCRA gives the
// same rate+burst semantics as golang.org/x/time/rate in the memory
// State, so one conformance suite holds for both.

// Allow implements state.Limiter: the bucket is {prefix}{r:KEY}, under
// redis_rate's own "rate:" prefix. After Redis lost its data every
// bucket starts full.
func (s *State) Allow(ctx context.Context, key string, l state.Limit) (state.Decision, error) {
	return s.gcra(ctx, key, l, true)
}

// Peek implements state.Limiter with redis_rate's AllowAtMost for 0
// events: it answers whether at least one is there and takes none.
func (s *State) Peek(ctx context.Context, key string, l state.Limit) (state.Decision, error) {
	return s.gcra(ctx, key, l, false)
}

func (s *State) gcra(ctx context.Context, key string, l state.Limit, take bool) (state.Decision, error) {
	if s.closed.Load() {
		return state.Decision{}, state.ErrClosed
	}
	if !l.Valid() || l.Per < time.Millisecond {
		return state.Decision{}, fmt.Errorf("limit %s: %+v: %w", key, l, ErrInvalid)
	}
	lim := s.limiter
	k := s.opts.Prefix + "{r:" + key + "}"
	rl := redis_rate.Limit{Rate: l.Rate, Period: l.Per, Burst: l.Burst}
	var (
		res *redis_rate.Result
		err error
	)
	if take {
		res, err = lim.Allow(ctx, k, rl)
	} else {
		res, err = lim.AllowAtMost(ctx, k, rl, 0)
	}
	if err != nil {
		return state.Decision{}, fmt.Errorf("limit %s: %w", key, translate(err))
	}
	if res.RetryAfter < 0 { // redis_rate: -1 when allowed
		return state.Decision{OK: true}, nil
	}
	return state.Decision{RetryAfter: max(res.RetryAfter, time.Nanosecond)}, nil
}
