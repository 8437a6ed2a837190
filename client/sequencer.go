package client

import (
	"cmp"
	"slices"

	"github.com/imqtt/imqtt/wire"
)

// sequencer turns a device's two sources of inbox events, live events on the
// inbox topic and sync batches on the device topic, into one stream in which
// every versioned event appears exactly once and in version order (docs/protocol.md#versions-and-offline-sync).
// One sequencer orders the inbox by ver; one per group orders that group's
// messages by seq (docs/protocol.md#groups) by the same rules, with "version" read as "seq".
// It is pure state: the caller sends the sync requests it asks for and hands
// it every event and batch. It is not safe for concurrent use.
//
// A live event is a claim, a sync reply is the server's word: anyone who can
// get a publish onto the inbox topic can claim any version, and a cursor
// moved to a forged version 1,000,000 would silently drop every real event
// below it. So:
//
// Rules:
//   - the cursor is the highest version seen without a gap, and it moves only
//     on versions the server vouched for in a sync reply (its items and its
//     Upto) or on a live event that directly continues it (cursor+1);
//   - while a sync is under way live events wait; when the sync ends, its
//     items have been delivered and the waiting events follow, each only if
//     it then continues the cursor (cursor+1, then the next, ...);
//   - outside a sync, a live event at cursor+1 is delivered at once, one at or
//     below the cursor is a duplicate and dropped, and one further on waits and
//     asks for a sync (a gap); a second live event of a version already
//     waiting is a duplicate too;
//   - a waiting event that maxStalls syncs end without reaching (their
//     replies say complete through an Upto below it) is dropped, unconfirmed,
//     and counted (dropped): it was forged, or it lies above a hole that a
//     scale-out server still waits for (sync.Options.Settle), and then a
//     later sync brings it from the store; it never moves the cursor;
//   - at most maxHeld events, of maxHeldBytes in all, wait, counted over
//     the inbox and every group together (a shared room); a live event past
//     that is dropped and the sync after the current one is asked for
//     anyway, to fetch it;
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
//   - events without a version (unread counts, receipts, typing) pass
//     straight through.
type sequencer struct {
	pos      func(Event) uint64 // where an event is: its ver, or its seq in a group
	room     *room              // the bound on waiting events this sequencer shares
	cursor   uint64
	epoch    string
	syncing  bool            // a sync request is outstanding
	reset    string          // the epoch the cursor was last reset into
	budget   int             // items the latest request may still bring
	expect   uint64          // the Since of the latest request's next batch
	pending  map[uint64]held // live events above cursor+1, or held during a sync
	overflow bool            // a live event was dropped for want of room: sync again
	dropped  int             // waiting events given up unconfirmed, until takeDropped
}

// held is a live event waiting for the cursor to reach it.
type held struct {
	ev    Event
	syncs int // syncs that ended without reaching it
}

// maxStalls is how many syncs may end without reaching a waiting live event
// before it is dropped unconfirmed. On one node a sync answers at once and
// a real event above a gap is reached by the first; on several, a young
// hole makes each sync wait up to sync.Options.SettleWait (2s) before it
// answers up to the hole, so three syncs outlast the server's Settle (5s).
const maxStalls = 3

// maxHeld and maxHeldBytes bound the live events that wait, whatever a
// peer publishes, in the inbox and all groups together: a real gap needs a
// handful, and one dropped for want of room costs only another sync.
const (
	maxHeld      = 4096
	maxHeldBytes = 8 << 20
)

// room counts the live events waiting in a set of sequencers (a client's
// inbox and groups), against maxHeld and maxHeldBytes.
type room struct{ events, bytes int }

// ver and seq are the positions of the inbox and of a group.
func ver(ev Event) uint64 { return ev.Ver }

func seq(ev Event) uint64 {
	m := ev.Item() // a message or a change of one: both are the group log's
	if m == nil {
		return 0
	}
	return m.Seq
}

// newSequencer returns a sequencer at cursor, ordering by pos and holding
// waiting events in r.
func newSequencer(cursor uint64, epoch string, pos func(Event) uint64, r *room) *sequencer {
	return &sequencer{pos: pos, room: r, cursor: cursor, epoch: epoch, pending: map[uint64]held{}}
}

// connected starts a new connection: live events held from the last one are
// dropped, since the sync that follows brings everything after the cursor,
// and they may even belong to a history the server has since lost.
func (s *sequencer) connected() {
	s.clear()
	s.syncing, s.overflow = false, false
}

// clear drops every waiting event.
func (s *sequencer) clear() {
	for v := range s.pending {
		s.unhold(v)
	}
}

// begin records that a sync request for everything after s.cursor, with
// this item limit, is being sent.
func (s *sequencer) begin(limit int) {
	s.syncing, s.budget, s.expect = true, limit, s.cursor
}

// abort ends a sync whose request failed; the events that wait go on
// waiting, for the sync that is sent again.
func (s *sequencer) abort() { s.syncing = false }

// live takes an event that arrived on the inbox. It returns the events now
// deliverable, and whether a sync request should be sent (a gap).
func (s *sequencer) live(ev Event) (out []Event, again bool) {
	p := s.pos(ev)
	if p == 0 {
		return []Event{ev}, false
	}
	if !s.syncing && p <= s.cursor {
		return nil, false
	}
	// During a sync even one at or below the cursor waits: a Reset may
	// still move the cursor below it.
	s.hold(ev)
	if s.syncing {
		return nil, false
	}
	out = s.drain(nil)
	return out, len(s.pending) > 0 || s.overflow
}

// hold makes a live event wait, unless its version already does or no room
// is left.
func (s *sequencer) hold(ev Event) {
	p := s.pos(ev)
	if _, ok := s.pending[p]; ok {
		return
	}
	if s.room.events >= maxHeld || s.room.bytes+len(ev.Raw) > maxHeldBytes {
		s.overflow = true
		return
	}
	s.pending[p] = held{ev: ev}
	s.room.events++
	s.room.bytes += len(ev.Raw)
}

// batch takes one sync batch, its decoded items, and n, how many items the
// server sent (more than len(items) when some could not be decoded: they
// use up the request's limit all the same). It returns the events now
// deliverable, and whether a sync request should be sent: the request's
// limit ran out with more to come, or a gap remains after the sync.
func (s *sequencer) batch(b wire.Sync, items []Event, n int) (out []Event, again bool) {
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
	slices.SortStableFunc(items, func(a, b Event) int { return cmp.Compare(s.pos(a), s.pos(b)) })
	for _, ev := range items {
		p := s.pos(ev)
		if p == 0 {
			out = append(out, ev)
			continue
		}
		if p <= s.cursor {
			continue
		}
		out = append(out, ev)
		s.cursor = p
	}
	s.cursor = max(s.cursor, b.Upto)
	switch {
	case !s.syncing: // a late batch of an earlier request: still good data
		return s.drain(out), false
	case !current:
		return out, false
	}
	s.expect = b.Upto
	s.budget -= n
	if b.More {
		return out, s.budget <= 0
	}
	out, again = s.finish(out)
	return out, again
}

// ahead reports whether batch(b, items, n) is sure to ask for another sync
// and to leave the cursor at b.Upto: b continues the latest request, which
// it uses up with more to come. The next request can then go out, from
// b.Upto, before the items are decoded. It changes nothing. A batch that
// ends below the cursor (live events moved it past the request) is not
// ahead: the cursor stays above b.Upto.
func (s *sequencer) ahead(b wire.Sync, n int) bool {
	return s.syncing && !b.Reset && b.Since == s.expect && b.Since <= s.cursor && b.Upto >= s.cursor && b.More && s.budget-n <= 0
}

// resets reports whether a batch with Reset set would reset the cursor.
func (s *sequencer) resets(b wire.Sync) bool {
	return b.Reset && (b.Epoch != s.epoch || b.Epoch != s.reset)
}

// finish ends a sync: the held live events that continue the cursor follow
// the synced ones; the others have waited one more sync, and those that
// have waited maxStalls are dropped.
func (s *sequencer) finish(out []Event) ([]Event, bool) {
	s.syncing = false
	out = s.drain(out)
	for v, h := range s.pending {
		if h.syncs++; h.syncs >= maxStalls {
			s.unhold(v)
			s.dropped++
			continue
		}
		s.pending[v] = h
	}
	again := len(s.pending) > 0 || s.overflow
	s.overflow = false
	return out, again
}

// takeDropped returns how many waiting events were dropped unconfirmed since
// it was last called.
func (s *sequencer) takeDropped() int {
	n := s.dropped
	s.dropped = 0
	return n
}

// drain drops waiting events at or below the cursor and appends to out those
// that now follow it without a gap.
func (s *sequencer) drain(out []Event) []Event {
	for v := range s.pending {
		if v <= s.cursor {
			s.unhold(v)
		}
	}
	for {
		h, ok := s.pending[s.cursor+1]
		if !ok {
			return out
		}
		s.unhold(s.cursor + 1)
		out = append(out, h.ev)
		s.cursor++
	}
}

// unhold drops the waiting event of version v.
func (s *sequencer) unhold(v uint64) {
	h, ok := s.pending[v]
	if !ok {
		return
	}
	s.room.events--
	s.room.bytes -= len(h.ev.Raw)
	delete(s.pending, v)
}
