package pebble

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// pushUsers counts, in memory, each user's push registrations (pd/ rows),
// so that the send path can tell without I/O whether a 1:1 message's
// recipient may need a push (HasPushDevices): most users never register
// one (web, desktop, IoT), and a push job written and expanded for their
// every message was 5–10 % of a busy node's CPU (BENCHMARKS.md, issue 16).
// This store is the only writer of pd/, so the count is exact; it is
// loaded at Open and set again from the rows after each write of a user's
// registrations, under push.rows.
type pushUsers struct {
	mu sync.RWMutex
	n  map[string]int
}

// HasPushDevices reports whether user has a push registration. A
// registration being written while a message is committed may be seen
// after it: that message is not pushed (docs/http.md#offline-push).
func (s *Store) HasPushDevices(user string) bool {
	s.pushUsers.mu.RLock()
	defer s.pushUsers.mu.RUnlock()
	return s.pushUsers.n[user] > 0
}

// loadPushUsers counts the registrations of every user (Open).
func (s *Store) loadPushUsers(ctx context.Context) error {
	prefix := []byte(pfxPushDev)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	n := make(map[string]int)
	for ok := it.First(); ok; ok = it.Next() {
		user, _, found := cutSep(it.Key()[len(prefix):])
		if !found {
			_ = it.Close()
			return fmt.Errorf("push registration %q: %w", it.Key(), errCorruptRow)
		}
		n[string(user)]++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	s.pushUsers.mu.Lock()
	s.pushUsers.n = n
	s.pushUsers.mu.Unlock()
	return nil
}

// recountPushUser sets user's count from the rows, after a write of them.
// The caller holds push.rows, so no other write of them runs meanwhile. On
// a read error the user counts as registered: a push job too many is
// harmless, a message not pushed is not.
func (s *Store) recountPushUser(ctx context.Context, user string) {
	prefix := pushDevPrefix(nil, user)
	n := 1
	if it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)}); err == nil {
		c := 0
		for ok := it.First(); ok; ok = it.Next() {
			c++
		}
		if errors.Join(it.Error(), it.Close()) == nil {
			n = c
		}
	}
	s.pushUsers.mu.Lock()
	defer s.pushUsers.mu.Unlock()
	if n == 0 {
		delete(s.pushUsers.n, user)
	} else {
		s.pushUsers.n[user] = n
	}
}
