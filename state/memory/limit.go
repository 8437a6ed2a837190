package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/imqtt/imqtt/state"
)

// limits are the Limiter's windows: key -> the current window and its count.
type limits struct {
	mu sync.Mutex
	m  map[string]window
}

type window struct {
	start int64 // unix ns of the window's start
	n     int64
}

// maxLimitKeys bounds the map: past it, windows that have ended are dropped.
const maxLimitKeys = 1 << 16

// Allow implements state.Limiter.
func (s *State) Allow(ctx context.Context, key string, limit int64, per time.Duration) (bool, error) {
	if s.closed.Load() {
		return false, state.ErrClosed
	}
	if per <= 0 || limit < 0 {
		return false, fmt.Errorf("allow %s: limit %d per %v: %w", key, limit, per, ErrInvalid)
	}
	now := time.Now().UnixNano()
	start := now - now%int64(per)
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]window{}
	}
	if len(l.m) >= maxLimitKeys {
		for k, w := range l.m {
			if w.start != start {
				delete(l.m, k)
			}
		}
	}
	w := l.m[key]
	if w.start != start {
		w = window{start: start}
	}
	w.n++
	l.m[key] = w
	return w.n <= limit, nil
}
