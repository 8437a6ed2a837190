// Package pebble is the embedded store.Store, on CockroachDB's Pebble
// LSM engine: one directory, no server. Every Commit is one Pebble batch
// written with fsync, so a batch is applied whole or not at all.
package pebble

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/store"
)

// ErrInvalid is returned for input the key layout cannot hold: an ID with a
// NUL byte, a negative message ID, an entry with version 0, n of 0.
var ErrInvalid = errors.New("invalid argument")

// MaxLimit caps the limit of Range and History.
const MaxLimit = 1000

// Options tunes the store. The zero value is usable.
type Options struct {
	// CacheSize is the block cache in bytes (default 64 MiB).
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes (default 16 MiB).
	MemTableSize uint64
	// Logger receives Pebble's own messages (informational ones at debug
	// level). Nil discards them.
	Logger *slog.Logger

	// fs replaces the operating system's file system (tests only).
	fs vfs.FS
	// noFilters turns the bloom filters off (benchmarks only).
	noFilters bool
}

// withDefaults fills in the defaults, in one place.
func (o Options) withDefaults() Options {
	if o.CacheSize <= 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is a store.Store in a Pebble database.
type Store struct {
	db    *pebble.DB
	epoch string

	// life is held for reading by every call and for writing by Close, so
	// the database is never used after it is closed.
	life store.Life

	// conv serializes the read-modify-write of conversation rows: Commit
	// and SetRead hold it from their first read to their durable write.
	conv sync.Mutex
	// reserve serializes ReserveVersions.
	reserve sync.Mutex
	// users makes CreateUser's check-then-set atomic.
	users sync.Mutex
	// groups serializes the read-modify-write of group and member rows
	// (membership changes, read positions, heads).
	groups sync.Mutex
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	po := &pebble.Options{
		CacheSize:          opts.CacheSize,
		MemTableSize:       opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             slogLogger{opts.Logger},
		FS:                 opts.fs,
	}
	// Bloom filters (10 bits per key, ~1% false positives) on every level,
	// for point reads of absent keys (LookupAck of a new cmid, the row of a
	// new contact): an sstable whose filter rules the key out is skipped.
	// Pebble's Get consults them in L0-L5 only, never in L6, and memtables
	// have none; see BenchmarkLookupAck for what a miss costs.
	if !opts.noFilters {
		for i := range po.Levels {
			po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
			po.Levels[i].FilterType = pebble.TableFilter
		}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, err)
	}
	epoch, err := loadEpoch(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, epoch: epoch}, nil
}

// loadEpoch reads the epoch, creating it on the first open.
func loadEpoch(db *pebble.DB) (string, error) {
	val, closer, err := db.Get([]byte(keyEpoch))
	if err == nil {
		epoch := string(val)
		_ = closer.Close()
		return epoch, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return "", fmt.Errorf("read epoch: %w", err)
	}
	epoch := rand.Text()
	if err := db.Set([]byte(keyEpoch), []byte(epoch), pebble.Sync); err != nil {
		return "", fmt.Errorf("write epoch: %w", err)
	}
	return epoch, nil
}

// begin and end bracket every call (store.Life).
func (s *Store) begin(ctx context.Context, op string) error { return s.life.Begin(ctx, op) }
func (s *Store) end()                                       { s.life.End() }

// Epoch identifies this store's history; it is created on the first Open.
func (s *Store) Epoch() string { return s.epoch }

// Ping reads the epoch back.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.begin(ctx, "ping"); err != nil {
		return err
	}
	defer s.end()
	_, closer, err := s.db.Get([]byte(keyEpoch))
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return closer.Close()
}

// Close syncs the log (making NoSync version reservations durable) and
// closes the database. It waits for calls in progress; later calls,
// including Close, do nothing but return ErrClosed (Close returns nil).
func (s *Store) Close() error {
	return s.life.Close(func() error {
		syncErr := s.db.LogData([]byte("close"), pebble.Sync)
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("close pebble: %w", err)
		}
		if syncErr != nil {
			return fmt.Errorf("sync log on close: %w", syncErr)
		}
		return nil
	})
}

// slogLogger routes Pebble's log to slog.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Infof(format string, args ...any) {
	s.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (s slogLogger) Errorf(format string, args ...any) {
	s.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf must not return: Pebble calls it when continuing could corrupt
// the database (a failed WAL write, for instance).
func (s slogLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}

// clampLimit applies store.DefaultLimit and MaxLimit.
func clampLimit(limit int) int { return store.ClampLimit(limit, MaxLimit) }
