package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
)

// Life guards a store's calls against its Close: every call runs between
// Begin and End, Close waits for the calls in progress, and calls after it
// get ErrClosed. Implementations embed it.
type Life struct {
	mu     sync.RWMutex
	closed bool
}

// Begin checks ctx and that the store is open, and holds it open until
// End. op names the call in the error.
func (l *Life) Begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	return nil
}

// End ends a call that Begin let in.
func (l *Life) End() { l.mu.RUnlock() }

// Close waits for the calls in progress, then runs release once; later
// Closes return nil and do nothing.
func (l *Life) Close(release func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return release()
}

// SortConversations puts rows in the order Conversations returns them:
// newest LastTS first, ties by Last descending.
func SortConversations(rows []Conversation) {
	slices.SortFunc(rows, func(a, b Conversation) int {
		return cmp.Or(cmp.Compare(b.LastTS, a.LastTS), cmp.Compare(b.Last, a.Last))
	})
}

// ClampLimit applies DefaultLimit to a limit of 0 or less, and caps it at
// max (an implementation's MaxLimit).
func ClampLimit(limit, max int) int {
	switch {
	case limit <= 0:
		return DefaultLimit
	case limit > max:
		return max
	}
	return limit
}
