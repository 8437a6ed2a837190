// Package outbox is what imqtt's workers over a store outbox share (the
// push worker, internal/push; the webhook events, internal/webhook): the
// loop that wakes on commits and a poll and runs at most one pass every
// PassEvery, and the retry arithmetic of their HTTP providers (a
// jittered exponential backoff, Retry-After).
package outbox

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// PassEvery bounds how often a worker's pass runs: every commit wakes it,
// and a pass per commit would pay a pass's reads for a few rows.
const PassEvery = 50 * time.Millisecond

// Loop runs a worker's passes until Close. Its zero value is not usable:
// New makes one.
type Loop struct {
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// Work counts what the worker has in flight on goroutines of its own
	// (a send, a lane); Close waits for it.
	Work sync.WaitGroup
}

// New returns a Loop.
func New() *Loop {
	return &Loop{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// Notify wakes the loop for a pass now rather than at its next poll; it
// never blocks.
func (l *Loop) Notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Stopping is closed when Close begins.
func (l *Loop) Stopping() <-chan struct{} { return l.stop }

// Run calls, until Close, on each wake-up, on each poll and at most every
// PassEvery: step (if not nil), and then pass. step reports a backlog (a
// full round): it then runs again at once, before the next pass is due.
// sweep runs every minute. Run returns when Close is called.
func (l *Loop) Run(poll time.Duration, step func() (backlog bool), pass, sweep func()) {
	defer close(l.done)
	t := time.NewTicker(poll)
	defer t.Stop()
	sw := time.NewTicker(time.Minute)
	defer sw.Stop()
	var last time.Time
	var later sync.Mutex // held while a wake-up for the next pass is set
	backlog := false
	for {
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-t.C:
		case <-sw.C:
			sweep()
			continue
		}
		since := time.Since(last)
		if step != nil && (since >= PassEvery || backlog) {
			if backlog = step(); backlog {
				l.Notify()
			}
		}
		if since < PassEvery {
			if later.TryLock() {
				time.AfterFunc(PassEvery-since, func() { later.Unlock(); l.Notify() })
			}
			continue
		}
		last = time.Now()
		pass()
	}
}

// Close stops the loop and waits, up to ctx, for Run to return and the
// work in flight to end; it reports whether all of it did.
func (l *Loop) Close(ctx context.Context) bool {
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-ctx.Done():
		return false
	}
	idle := make(chan struct{})
	go func() { l.Work.Wait(); close(idle) }()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backoff is the wait before attempt n+1 of something that failed n
// times: 1 s doubling up to most, jittered over its upper half (so that
// a provider's recovery is not met by every retry at once).
func Backoff(n int, most time.Duration) time.Duration {
	d := min(time.Second<<min(n, 20), most)
	return d/2 + rand.N(d/2+1)
}

// RetryAfter reads a Retry-After header (seconds, or an HTTP date) at
// now; 0 if it is absent, malformed or past.
func RetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
