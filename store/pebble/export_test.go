package pebble

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// WithFS returns o with the file system replaced, for crash tests.
func WithFS(o Options, fs vfs.FS) Options {
	o.fs = fs
	return o
}

// WithoutFilters returns o with the bloom filters off, for benchmarks.
func WithoutFilters(o Options) Options {
	o.noFilters = true
	return o
}

// Flush writes the memtables to L0, for benchmarks that read sstables.
func (s *Store) Flush() error { return s.db.Flush() }

// CompactAll flushes the memtables and compacts everything into the
// lowest level, for benchmarks that read sstables.
func (s *Store) CompactAll() error {
	if err := s.db.Flush(); err != nil {
		return err
	}
	return s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false)
}

// WithPoll returns o looking at the free space every d, for disk tests.
func WithPoll(o Options, d time.Duration) Options {
	o.poll = d
	return o
}

// Step is a format migration step, for upgrade tests.
type Step = step

// SetFormat makes f the format this build writes, reached by steps
// (steps[N-1] migrates N to N+1) and the only one it reads without them,
// until the test ends.
func SetFormat(t testing.TB, f int, s ...Step) {
	oldFormat, oldSteps, oldReads := format, steps, readsFrom
	format, steps, readsFrom = f, s, f
	t.Cleanup(func() { format, steps, readsFrom = oldFormat, oldSteps, oldReads })
}

// SyncWAL makes the interval durability mode's sync now; WALSyncs counts
// the real syncs it made (0 in the default mode, which has no wrapper).
func (s *Store) SyncWAL() { s.walFS.syncAll() }
func (s *Store) WALSyncs() int64 {
	if s.walFS == nil {
		return 0
	}
	return s.walFS.syncs.Load()
}

// AckReads counts the ack keys LookupAcks sought in Pebble: the ones the
// ack filter could not rule out.
func (s *Store) AckReads() int64 { return s.ackReads.Load() }

// AckFilterReady reports whether the open-time scan of the acks has ended.
func (s *Store) AckFilterReady() bool {
	s.acks.mu.Lock()
	defer s.acks.mu.Unlock()
	return s.acks.ready
}

// WALBytesIn is how many bytes the store has written to its WAL: what a
// commit writes, for tests of how a write's size grows.
func (s *Store) WALBytesIn() uint64 { return s.db.Metrics().WAL.BytesIn }

// SetRaw writes a raw key and value, for tests of values older releases wrote.
func (s *Store) SetRaw(key, val []byte) error { return s.db.Set(key, val, nil) }
