// Package pebble is the embedded store.Store, on CockroachDB's Pebble
// LSM engine: one directory, no server. Every Commit is one Pebble batch
// written with fsync, so a batch is applied whole or not at all.
package pebble

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
	// level) and those of a format upgrade (upgrade.go). Nil discards them.
	Logger *slog.Logger
	// MinFreeDisk is the free space, in bytes, the store keeps on its disk:
	// under it writes are refused with store.ErrNoSpace (reads go on) and
	// Open refuses to start, leaving Pebble room for the flushes and
	// compactions it needs to keep going. 0 means the default,
	// DefaultMinFreeDisk; a negative value turns the guard off.
	MinFreeDisk int64
	// OnRefused is called for each write refused for lack of space (nil:
	// nothing); the daemon counts them.
	OnRefused func()
	// SyncInterval chooses the durability mode (walsync.go). 0, the
	// default: a commit returns after its write-ahead log record is synced
	// to the disk. Above 0: it returns once the record is written to the
	// operating system, and the log is synced every SyncInterval: a
	// process crash loses nothing, a machine crash at most the interval.
	SyncInterval time.Duration
	// AckFilterMax caps the in-memory filter that spares LookupAcks a
	// store read for nearly every new send (ackfilter.go), in stored acks:
	// about 1.4 bytes each. Past it every lookup reads the store. 0 means
	// DefaultAckFilterMax; a negative value turns the filter off.
	AckFilterMax int
	// WALDir, if set, is the directory the write-ahead log is kept in, on
	// a device of its own (waldir.go): it must exist, be writable, and be
	// empty or this store's; a store whose log is there opens only with it.
	// Empty: the log is in the store's directory.
	WALDir string

	// poll is how often the free space is looked at (default 1s).
	poll time.Duration
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
	if o.AckFilterMax == 0 {
		o.AckFilterMax = DefaultAckFilterMax
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.MinFreeDisk == 0:
		o.MinFreeDisk = DefaultMinFreeDisk
	case o.MinFreeDisk < 0:
		o.MinFreeDisk = 0
	}
	if o.poll <= 0 {
		o.poll = time.Second
	}
	if o.fs == nil {
		o.fs = vfs.Default
	}
	return o
}

// absDirs makes the store's directory and WALDir absolute: Pebble compares
// the log directories it is given with the one its OPTIONS file records.
func (o *Options) absDirs(dir string) (string, error) {
	if o.WALDir == "" {
		return dir, nil
	}
	w, err := filepath.Abs(o.WALDir)
	if err != nil {
		return "", fmt.Errorf("%w %s: %v", ErrWALDir, o.WALDir, err)
	}
	o.WALDir = w
	if o.fs != vfs.Default {
		return dir, nil // an in-memory file system (tests): names as given
	}
	return filepath.Abs(dir)
}

// DefaultMinFreeDisk is the free space kept by default: 512 MiB. It holds
// the largest upload imqttd takes by default (a 200 MiB video, and as much
// again for its HLS segments) with room left for Pebble to flush several
// 16 MiB memtables and run its compactions, so the store meets a full disk
// only if something else fills it faster than one look a second sees.
const DefaultMinFreeDisk = 512 << 20

// Store is a store.Store in a Pebble database.
type Store struct {
	// db is replaced when the monitor reopens the database after a failed
	// commit (nil if even a read-only open failed); swap is held for
	// reading by every call, for writing while db is replaced.
	db     *pebble.DB
	swap   sync.RWMutex
	ro     bool // db is open read-only
	dir    string
	opts   Options
	health *health
	walFS  *walSyncFS // the interval durability mode's; nil: sync every commit
	acks   *ackFilter // which acks are certainly not stored
	// ackReads counts the ack keys LookupAcks sought in Pebble (tests).
	ackReads atomic.Int64
	stop     chan struct{} // closed by Close: the monitor ends
	done     chan struct{} // closed by the monitor as it ends
	epoch    string

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
	// sessions serializes the read-modify-write of session rows
	// (SaveSessions keeps the higher position) and their deletes.
	sessions sync.Mutex
	// social serializes the read-modify-write of contact and block rows
	// (social.go).
	social sync.Mutex
	// push serializes the read-modify-writes of push rows (push.go) and
	// holds the claims of push jobs and devices.
	push      pushState
	pushUsers pushUsers
	// webhook holds the webhook outbox's lanes and claims (webhook.go).
	webhook webhookState
	// burns serializes the read-modify-writes of burns (retention.go).
	burns sync.Mutex
}

// Store implements every role: store.Store embeds them all.
var _ store.Store = (*Store)(nil)

// Open opens or creates the store in dir. It refuses a directory it cannot
// create or whose disk has less than MinFreeDisk free: on a full disk,
// Pebble's open would retry its first flush forever.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	dir, err := opts.absDirs(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	s.health = newHealth(opts.Logger, opts.fs, dir, opts.MinFreeDisk, opts.OnRefused)
	if err := opts.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	if opts.WALDir != "" {
		if err := checkWALDir(opts.fs, dir, opts.WALDir, false); err != nil {
			return nil, err
		}
		if opts.fs == vfs.Default && onTmpfs(opts.WALDir) {
			opts.Logger.Warn("the write-ahead log directory is in memory (tmpfs): a reboot loses every commit not yet in the store's tables",
				"component", "store", "wal_dir", opts.WALDir)
		}
	}
	if opts.SyncInterval > 0 {
		s.walFS = newWALSyncFS(opts.fs, opts.Logger)
	}
	if free := s.health.look(); under(free, opts.MinFreeDisk) {
		return nil, fmt.Errorf("%w: %d MiB free in %s, under the %d MiB to keep free (free some space, or lower --min-free-disk)",
			store.ErrNoSpace, free>>20, dir, opts.MinFreeDisk>>20)
	}
	db, err := s.openPebble(false)
	if errors.Is(err, syscall.EAGAIN) { // flock(2) of the LOCK file
		return nil, fmt.Errorf("open pebble %s: in use by another process (its LOCK is held): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", dir, walOpenError(err))
	}
	s.db = db
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if s.epoch, err = s.loadEpoch(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.health.poll()
	if err := s.loadPushUsers(context.Background()); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("open %s: count push registrations: %w", dir, err)
	}
	s.acks = newAckFilter(opts.AckFilterMax, opts.Logger)
	go s.fillAckFilter()
	go s.monitor(opts.poll, s.stop)
	if s.walFS != nil {
		go s.walFS.run(opts.SyncInterval, s.stop)
	}
	return s, nil
}

// pebbleOptions are the options of Pebble's Open, read-only or not.
func (s *Store) pebbleOptions(readOnly bool) *pebble.Options {
	opts := s.opts
	po := &pebble.Options{
		CacheSize:          opts.CacheSize,
		MemTableSize:       opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             slogLogger{opts.Logger, s.health},
		EventListener:      &pebble.EventListener{BackgroundError: s.health.backgroundError},
		FS:                 s.pebbleFS(),
		ReadOnly:           readOnly,
	}
	applyWALDir(po, s.pebbleFS(), s.dir, opts.WALDir)
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
	return po
}

// pebbleFS is the file system Pebble runs on: the interval durability
// mode's wrapper, or the store's own.
func (s *Store) pebbleFS() vfs.FS {
	if s.walFS != nil {
		return s.walFS
	}
	return s.opts.fs
}

// reservationGap is how far skipReservations moves each reservation mark:
// more versions of one key than a process hands out between two synced
// commits (one commit batch's worth).
const reservationGap = 1 << 20

// skipReservations moves every version reservation mark up by gap
// (reservationGap after a failed commit; Restamp's after a restore), with
// sync. ReserveVersions writes marks without sync,
// counting on the next commit's sync; after a failed commit the last marks
// may be lost while the versions cache still hands out of their blocks, so
// without the skip a later reservation could return a block already in
// use. The skip leaves a hole in each sequence, which sync covers (upto).
func skipReservations(db *pebble.DB, gap uint64) (err error) {
	defer catchFatal(&err)
	prefix := []byte(pfxReserve)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("skip reservations: %w", err)
	}
	wb := db.NewBatch()
	defer wb.Close()
	for ok := it.First(); ok; ok = it.Next() {
		val := it.Value()
		if len(val) != 8 {
			continue // corrupt: ReserveVersions reports it
		}
		mark := binary.BigEndian.Uint64(val)
		if mark > math.MaxUint64-gap {
			continue
		}
		_ = wb.Set(it.Key(), binary.BigEndian.AppendUint64(nil, mark+gap), nil)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("skip reservations: %w", err)
	}
	if err := wb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("skip reservations: %w", err)
	}
	return nil
}

// reopen replaces a database whose commit failed: read-only at once, then
// read-write once the disk has room (MinFreeDisk, and at least two
// memtables, which the open may flush). The monitor calls it.
func (s *Store) reopen() {
	s.swap.Lock()
	defer s.swap.Unlock()
	if !s.ro {
		if s.db != nil {
			_ = s.db.Close() // returns the failed write's error; nothing else to do
		}
		s.db, s.ro = nil, true
		db, err := s.openPebble(true)
		if err != nil {
			s.opts.Logger.Error("store: reopen read-only failed; reads fail too until there is room", "err", err)
		} else {
			s.db = db
		}
	}
	need := max(s.opts.MinFreeDisk, 2*int64(s.opts.MemTableSize))
	if under(s.health.free.Load(), need) {
		return
	}
	if s.db != nil {
		_ = s.db.Close()
		s.db = nil
	}
	if s.walFS != nil {
		s.walFS.err.Store(nil) // a new database, new logs: the failed sync was the old one's
	}
	db, err := s.openPebble(false)
	if err == nil {
		if err = skipReservations(db, reservationGap); err != nil {
			_ = db.Close()
		}
	}
	if err != nil {
		s.opts.Logger.Error("store: reopen failed; trying again", "err", err)
		if db, err = s.openPebble(true); err == nil {
			s.db = db
		}
		return
	}
	s.db, s.ro = db, false
	s.health.failed.Store(false)
	s.opts.Logger.Info("store reopened: accepting writes", "component", "store", "dir", s.dir)
}

// loadEpoch reads the epoch, creating it on the first open.
func (s *Store) loadEpoch() (string, error) {
	val, closer, err := s.db.Get([]byte(keyEpoch))
	if err == nil {
		epoch := string(val)
		_ = closer.Close()
		return epoch, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return "", fmt.Errorf("read epoch: %w", err)
	}
	epoch := rand.Text()
	if err := s.set([]byte(keyEpoch), []byte(epoch), pebble.Sync); err != nil {
		return "", fmt.Errorf("write epoch: %w", err)
	}
	return epoch, nil
}

// begin and end bracket every call (store.Life), and hold the database
// open (swap).
func (s *Store) begin(ctx context.Context, op string) error {
	if err := s.life.Begin(ctx, op); err != nil {
		return err
	}
	s.swap.RLock()
	if s.db == nil {
		s.swap.RUnlock()
		s.life.End()
		return fmt.Errorf("%s: %w: the database could not be reopened", op, store.ErrFailed)
	}
	return nil
}

func (s *Store) end() {
	s.swap.RUnlock()
	s.life.End()
}

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
// A database Pebble declared unsafe is left as it is.
func (s *Store) Close() error {
	return s.life.Close(func() error {
		close(s.stop)
		// The monitor ends, unless a MANIFEST failure parked it for good.
		for wait := true; wait; {
			select {
			case <-s.done:
				wait = false
			case <-time.After(100 * time.Millisecond):
				wait = s.health.broken.Load() == nil
			}
		}
		s.swap.Lock()
		defer s.swap.Unlock()
		if msg := s.health.broken.Load(); msg != nil {
			return fmt.Errorf("close pebble: %w: %s; left unclosed", store.ErrFailed, *msg)
		}
		if s.db == nil {
			return nil
		}
		var syncErr error
		if !s.ro && !s.health.failed.Load() {
			syncErr = s.write(0, func() error { return s.db.LogData([]byte("close"), pebble.Sync) })
		}
		if err := s.db.Close(); err != nil && syncErr == nil && !s.health.failed.Load() {
			return fmt.Errorf("close pebble: %w", err)
		}
		if syncErr != nil {
			return fmt.Errorf("sync log on close: %w", syncErr)
		}
		return nil
	})
}

// clampLimit applies store.DefaultLimit and MaxLimit.
func clampLimit(limit int) int { return store.ClampLimit(limit, MaxLimit) }
