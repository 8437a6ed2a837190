package pebble

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// The ack filter's sizing (Options.AckFilterMax sets the cap).
const (
	// DefaultAckFilterMax is the default cap of the ack filter: the acks
	// (stored sends) it holds before it answers "maybe" for every key.
	// At ackFilterFP it costs about 11 bits, 1.4 bytes, per ack: ~44 MiB
	// at the cap, grown to as acks are stored (a new store uses ~1.4 MiB).
	DefaultAckFilterMax = 1 << 25
	// ackFilterFirst is the capacity of the first segment; each next one
	// is twice the last.
	ackFilterFirst = 1 << 20
	// ackFilterFP is each segment's false-positive rate at capacity; with
	// k segments a key is a false "maybe" with probability at most k times
	// it (six segments up to the default cap: 3%).
	ackFilterFP = 0.005
	// ackScanChunk is how many keys the open-time scan reads under one
	// begin/end and one hold of the filter's lock, so that Close, a reopen
	// after a failed commit, a Commit and a lookup wait for one chunk at
	// most (about a millisecond).
	ackScanChunk = 1 << 12
)

// ackFilter answers "certainly not stored" for nearly every fresh
// (sender, cmid) so that LookupAcks reads Pebble only for the rest. It is
// a scalable Bloom filter (segments of doubling capacity) over the ack keys
// (d/{from}\x00{cmid}): filled by a scan of the stored acks after Open and
// by Commit, which adds a batch's keys before it writes the batch. A key is
// never removed, so the filter has false positives only (a key whose
// commit failed, a key of a store restored under it), each costing one
// store read, never a false "not stored": a key is in the filter before
// its ack can be durable, and a restart rebuilds the filter from what the
// store holds. Until the scan ends, and once the acks pass the cap, every
// key is a maybe and LookupAcks reads the store as it did without it.
//
// This holds because the embedded store is the only writer of its acks;
// the MongoDB store, written by every node, has no such filter.
type ackFilter struct {
	max    uint   // cap in keys; 0: the filter is off
	onFull func() // called once, under mu, when the filter fills

	mu     sync.Mutex
	ready  bool // the open-time scan has ended
	full   bool // more than max keys: every key is a maybe
	segs   []*bloom.BloomFilter
	segCap uint // keys the last segment was made for
	n      uint // keys added to the last segment
	total  uint // keys added to all segments
}

func newAckFilter(max int, log *slog.Logger) *ackFilter {
	if max < 0 {
		max = 0
	}
	return &ackFilter{max: uint(max), onFull: func() {
		log.Warn("ack filter full: from now on every send's dedupe reads the store, as without the filter",
			"component", "store", "acks", max)
	}}
}

// mayHave reports whether key (an ack key) may be stored: false only if
// it certainly is not.
func (f *ackFilter) mayHave(key []byte) bool {
	if f == nil { // a read-only store has none
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready || f.full {
		return true
	}
	for _, s := range f.segs {
		if s.Test(key) {
			return true
		}
	}
	return false
}

// addAcks adds the keys of acks; buf is scratch space, returned grown.
func (f *ackFilter) addAcks(acks []store.Ack, buf []byte) []byte {
	if f == nil || f.max == 0 || len(acks) == 0 {
		return buf
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range acks {
		buf = ackKey(buf[:0], acks[i].From, acks[i].CMID)
		f.addLocked(buf)
	}
	return buf
}

// addLocked adds key; the caller holds mu. Past max keys the filter
// drops its segments and is full: every key is a maybe from then on.
func (f *ackFilter) addLocked(key []byte) {
	if f.full {
		return
	}
	if f.total >= f.max {
		f.full, f.segs = true, nil
		f.onFull()
		return
	}
	if len(f.segs) == 0 || f.n >= f.segCap {
		next := uint(ackFilterFirst)
		if len(f.segs) > 0 {
			next = 2 * f.segCap
		}
		next = min(next, f.max-f.total)
		f.segs = append(f.segs, bloom.NewWithEstimates(next, ackFilterFP))
		f.segCap, f.n = next, 0
	}
	f.segs[len(f.segs)-1].Add(key)
	f.n++
	f.total++
}

// fillAckFilter scans the acks of the store into the filter, a chunk at a time,
// and marks it ready. It gives up (the filter stays "maybe" for every
// key) when the store closes or a read fails.
func (s *Store) fillAckFilter() {
	f := s.acks
	if f.max == 0 {
		return
	}
	lower := []byte(pfxAck)
	upper := prefixEnd(lower)
	var after []byte
	for {
		done, err := s.scanAcks(lower, upper, &after)
		if errors.Is(err, store.ErrClosed) {
			return // closed while building (a failed start): nothing to say, and its logger may be gone
		}
		if err != nil {
			s.opts.Logger.Warn("ack filter not built; sends are deduplicated by store reads", "component", "store", "err", err)
			return
		}
		if done {
			break
		}
	}
	f.mu.Lock()
	f.ready = true
	f.mu.Unlock()
}

// scanAcks adds up to ackScanChunk ack keys above *after to the filter
// and moves *after to the last; done when there are no more.
func (s *Store) scanAcks(lower, upper []byte, after *[]byte) (done bool, err error) {
	if err := s.begin(context.Background(), "build ack filter"); err != nil {
		return false, err
	}
	defer s.end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return false, err
	}
	defer it.Close()
	ok := it.First()
	if *after != nil {
		if ok = it.SeekGE(*after); ok && bytes.Equal(it.Key(), *after) {
			ok = it.Next()
		}
	}
	f := s.acks
	f.mu.Lock()
	defer f.mu.Unlock()
	for n := 0; ok; ok = it.Next() {
		f.addLocked(it.Key())
		if n++; n == ackScanChunk {
			*after = append((*after)[:0], it.Key()...)
			break
		}
	}
	if err := it.Error(); err != nil {
		return false, err
	}
	return !ok || f.full, nil
}
