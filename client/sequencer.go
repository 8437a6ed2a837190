package client

import (
	"slices"

	"github.com/imqtt/imqtt/wire"
)

// sequencer turns a device's two sources of inbox events, live events on the
// inbox topic and sync batches on the device topic, into one stream in which
// every versioned event appears exactly once and in version order (SPEC §5).
// It is pure state: the caller sends the sync requests it asks for and hands
// it every event and batch. It is not safe for concurrent use.
//
// Rules:
//   - the cursor is the highest version seen without a gap;
//   - while a sync is under way live events wait; when the sync ends, its
//     items have been delivered and the waiting events follow, each only if
//     above the cursor;
//   - outside a sync, a live event at cursor+1 is delivered at once, one at or
//     below the cursor is a duplicate and dropped, and one further on waits and
//     asks for a sync (a gap);
//   - a batch covers (Since, Upto]: its items above the cursor are delivered
//     and the cursor moves to Upto, since the server says nothing else lies
//     there; a batch that does not start at or below the cursor is ignored;
//   - only a batch that continues the latest request (its Since is where that
//     request or its previous batch left off) can end the sync or use up the
//     request's limit: a late answer to an earlier request (a resend after a
//     timeout overlaps) gives good data but no news about the latest one;
//   - a batch with Reset (the cursor belonged to lost history) makes its Since
//     the cursor, once per epoch: requests that overlapped (a resend after a
//     timeout) may each be answered by a reset, and only the first counts. A
//     server's epoch changes only with a lost store, which a new connection
//     follows, and a cursor is only ever reset into a new epoch once;
//   - a new connection drops the held events: its first sync brings them;
//   - events without a version (unread counts) pass straight through.
type sequencer struct {
	cursor  uint64
	epoch   string
	syncing bool             // a sync request is outstanding
	reset   string           // the epoch the cursor was last reset into
	budget  int              // items the latest request may still bring
	from    uint64           // the cursor when the latest sync began
	expect  uint64           // the Since of the latest request's next batch
	stalls  int              // syncs in a row that left a gap without progress
	pending map[uint64]Event // live events above cursor+1, or held during a sync
}

// maxStalls is how many fruitless syncs a gap gets before the sequencer skips
// it: a server that says it is complete past a version it has not got is
// trusted rather than asked forever.
const maxStalls = 3

func newSequencer(cursor uint64, epoch string) *sequencer {
	return &sequencer{cursor: cursor, epoch: epoch, pending: map[uint64]Event{}}
}

// connected starts a new connection: live events held from the last one are
// dropped, since the sync that follows brings everything after the cursor,
// and they may even belong to a history the server has since lost.
func (s *sequencer) connected() {
	clear(s.pending)
	s.syncing = false
}

// begin records that a sync request for everything after s.cursor, with
// this item limit, is being sent.
func (s *sequencer) begin(limit int) {
	if !s.syncing {
		s.from = s.cursor
	}
	s.syncing, s.budget, s.expect = true, limit, s.cursor
}

// live takes an event that arrived on the inbox. It returns the events now
// deliverable, and whether a sync request should be sent (a gap).
func (s *sequencer) live(ev Event) (out []Event, again bool) {
	if ev.Ver == 0 {
		return []Event{ev}, false
	}
	if s.syncing { // even one at or below the cursor: a Reset may still move it
		s.pending[ev.Ver] = ev
		return nil, false
	}
	if ev.Ver <= s.cursor {
		return nil, false
	}
	s.pending[ev.Ver] = ev
	out = s.drain(nil)
	return out, len(s.pending) > 0
}

// batch takes one sync batch and its decoded items. It returns the events now
// deliverable, and whether a sync request should be sent: the request's
// limit ran out with more to come, or a gap remains after the sync.
func (s *sequencer) batch(b wire.Sync, items []Event) (out []Event, again bool) {
	current := s.syncing && b.Since == s.expect
	if b.Reset {
		if !s.resets(b) { // another answer to a request already answered by a reset
			return nil, false
		}
		s.cursor, s.reset = b.Since, b.Epoch
		current = s.syncing
	}
	if b.Since > s.cursor {
		return nil, false
	}
	if b.Epoch != "" {
		s.epoch = b.Epoch
	}
	items = slices.Clone(items)
	slices.SortStableFunc(items, func(a, b Event) int {
		switch {
		case a.Ver < b.Ver:
			return -1
		case a.Ver > b.Ver:
			return 1
		}
		return 0
	})
	for _, ev := range items {
		if ev.Ver == 0 {
			out = append(out, ev)
			continue
		}
		if ev.Ver <= s.cursor {
			continue
		}
		out = append(out, ev)
		s.cursor = ev.Ver
	}
	s.cursor = max(s.cursor, b.Upto)
	switch {
	case !s.syncing: // a late batch of an earlier request: still good data
		return s.drain(out), false
	case !current:
		return out, false
	}
	s.expect = b.Upto
	s.budget -= len(items)
	if b.More {
		return out, s.budget <= 0
	}
	out, again = s.finish(out)
	return out, again
}

// ahead reports whether batch(b, items), with n items, is sure to ask for
// another sync and to leave the cursor at b.Upto: b continues the latest
// request, which it uses up with more to come. The next request can then go
// out, from b.Upto, before the items are decoded. It changes nothing.
func (s *sequencer) ahead(b wire.Sync, n int) bool {
	return s.syncing && !b.Reset && b.Since == s.expect && b.Since <= s.cursor && b.More && s.budget-n <= 0
}

// resets reports whether a batch with Reset set would reset the cursor.
func (s *sequencer) resets(b wire.Sync) bool {
	return b.Reset && (b.Epoch != s.epoch || b.Epoch != s.reset)
}

// finish ends a sync: the held live events follow the synced ones.
func (s *sequencer) finish(out []Event) ([]Event, bool) {
	s.syncing = false
	progress := s.cursor != s.from
	out = s.drain(out)
	if len(s.pending) == 0 {
		s.stalls = 0
		return out, false
	}
	if progress {
		s.stalls = 0
	} else {
		s.stalls++
	}
	if s.stalls < maxStalls {
		return out, true
	}
	// Skip the hole up to the lowest waiting event.
	s.stalls = 0
	s.cursor = slices.Min(keys(s.pending)) - 1
	out = s.drain(out)
	return out, len(s.pending) > 0
}

// drain drops waiting events at or below the cursor and appends to out those
// that now follow it without a gap.
func (s *sequencer) drain(out []Event) []Event {
	for v := range s.pending {
		if v <= s.cursor {
			delete(s.pending, v)
		}
	}
	for {
		ev, ok := s.pending[s.cursor+1]
		if !ok {
			return out
		}
		delete(s.pending, s.cursor+1)
		out = append(out, ev)
		s.cursor++
	}
}

func keys(m map[uint64]Event) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
