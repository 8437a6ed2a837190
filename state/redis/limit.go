package redis

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/state"
)

//go:embed lua/allow.lua
var allowLua string

var allowScript = goredis.NewScript(allowLua)

// Allow implements state.Limiter with one counter per key and window,
// {prefix}{r:KEY}:WINDOW, expiring with its window: every node counts into
// the same one. Windows are numbered by this node's clock; nodes whose
// clocks differ by d may count a window's events d apart. After Redis
// lost its data a window starts again from zero.
func (s *State) Allow(ctx context.Context, key string, limit int64, per time.Duration) (bool, error) {
	if s.closed.Load() {
		return false, state.ErrClosed
	}
	if per < time.Millisecond || limit < 0 {
		return false, fmt.Errorf("allow %s: limit %d per %v: %w", key, limit, per, ErrInvalid)
	}
	win := time.Now().UnixNano() / int64(per)
	k := s.opts.Prefix + "{r:" + key + "}:" + strconv.FormatInt(win, 10)
	n, err := allowScript.Run(ctx, s.rdb, []string{k}, per.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("allow %s: %w", key, translate(err))
	}
	return n <= limit, nil
}
