// Package loglimit bounds the log lines others can cause at will: a
// client reconnecting in a loop, a scanner's 404s, a flood of bad
// passwords. A Limit lets lines through at a rate after a burst and
// counts the ones it holds back, so that the next line written can say
// how many were left out ("suppressed").
package loglimit

import (
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Limit is one bound; safe for concurrent use.
type Limit struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

// New lets perSecond lines a second through after a burst of burst.
func New(perSecond float64, burst int) *Limit {
	return &Limit{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// Allow reports whether a line may be written now and, when it may, how
// many were held back since the last one allowed (write it with the
// line). A line held back is counted.
func (l *Limit) Allow() (ok bool, suppressed int64) {
	if !l.lim.Allow() {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
