package bench

import (
	"sync"
	"sync/atomic"
	"time"
)

// bitset is a growable set of small non-negative integers.
type bitset []uint64

// set adds i and reports whether it was already there.
func (b *bitset) set(i int) (was bool) {
	w := i / 64
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w-len(*b)+1)...)
	}
	m := uint64(1) << (i % 64)
	was = (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b bitset) has(i int) bool {
	w := i / 64
	return w < len(b) && b[w]&(uint64(1)<<(i%64)) != 0
}

// Tracker counts, for a set of streams (a sender-receiver pair, a group
// member), which numbered messages were acked by the server and which the
// receiving application saw, how often, how late, and whether live or by
// sync. A message counts as delivered the first time the receiver sees it;
// every later sighting is a duplicate. A message acked but never seen is lost.
// Safe for concurrent use.
type Tracker struct {
	streams []stream

	sent, acked, seen, both, dups, synced, failed atomic.Int64
	lastSeen                                      atomic.Int64 // unix nanoseconds of the latest first sighting
}

type stream struct {
	mu    sync.Mutex
	acked bitset
	seen  bitset
	lat   []int64 // nanoseconds from send to first sighting
}

// NewTracker tracks n streams.
func NewTracker(n int) *Tracker { return &Tracker{streams: make([]stream, n)} }

// Sent counts a message handed to the server (once per message, not per resend).
func (t *Tracker) Sent() { t.sent.Add(1) }

// Failed counts a message whose send gave up without an ack.
func (t *Tracker) Failed() { t.failed.Add(1) }

// Ack records that the server acknowledged message seq of stream s.
func (t *Tracker) Ack(s, seq int) {
	st := &t.streams[s]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.acked.set(seq) {
		return
	}
	t.acked.Add(1)
	if st.seen.has(seq) {
		t.both.Add(1)
	}
}

// Deliver records that the receiver of stream s saw message seq at time
// now, sent at time sent; synced says it came by sync rather than live. It
// reports whether this was a duplicate.
func (t *Tracker) Deliver(s, seq int, sent, now time.Time, synced bool) (dup bool) {
	st := &t.streams[s]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.seen.set(seq) {
		t.dups.Add(1)
		return true
	}
	st.lat = append(st.lat, int64(now.Sub(sent)))
	t.seen.Add(1)
	if synced {
		t.synced.Add(1)
	}
	if st.acked.has(seq) {
		t.both.Add(1)
	}
	for {
		old := t.lastSeen.Load()
		if now.UnixNano() <= old || t.lastSeen.CompareAndSwap(old, now.UnixNano()) {
			break
		}
	}
	return false
}

// Has reports whether the receiver of stream s has seen message seq.
func (t *Tracker) Has(s, seq int) bool {
	st := &t.streams[s]
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.seen.has(seq)
}

// Missing lists the messages of stream s below n that its receiver has not seen.
func (t *Tracker) Missing(s, n int) []int {
	st := &t.streams[s]
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []int
	for i := range n {
		if !st.seen.has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Incomplete lists the streams with an acked message their receiver has not seen.
func (t *Tracker) Incomplete() []int {
	var out []int
	for i := range t.streams {
		st := &t.streams[i]
		st.mu.Lock()
		for w, a := range st.acked {
			var s uint64
			if w < len(st.seen) {
				s = st.seen[w]
			}
			if a&^s != 0 {
				out = append(out, i)
				break
			}
		}
		st.mu.Unlock()
	}
	return out
}

// Complete reports whether every acked message has been seen.
func (t *Tracker) Complete() bool { return t.both.Load() == t.acked.Load() }

// Counts is a snapshot of a Tracker.
type Counts struct {
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Delivered  int64 `json:"delivered"`  // distinct messages the receivers saw
	Lost       int64 `json:"lost"`       // acked, never seen
	Duplicated int64 `json:"duplicated"` // sightings after the first
	Synced     int64 `json:"synced"`     // delivered by sync rather than live
	Unacked    int64 `json:"unacked"`    // sends that gave up without an ack
}

// Counts returns the current counts; Lost is what is acked and not yet seen,
// which is loss only once the run is over.
func (t *Tracker) Counts() Counts {
	both := t.both.Load()
	return Counts{
		Sent: t.sent.Load(), Acked: t.acked.Load(), Delivered: t.seen.Load(),
		Lost: t.acked.Load() - both, Duplicated: t.dups.Load(), Synced: t.synced.Load(), Unacked: t.failed.Load(),
	}
}

// LastSeen is when the latest message was first seen (zero if none was).
func (t *Tracker) LastSeen() time.Time {
	n := t.lastSeen.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Latencies returns every stream's send-to-delivery samples, merged.
func (t *Tracker) Latencies() []int64 {
	var out []int64
	for i := range t.streams {
		st := &t.streams[i]
		st.mu.Lock()
		out = append(out, st.lat...)
		st.mu.Unlock()
	}
	return out
}
