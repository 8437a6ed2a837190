package pebble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/store"
)

// A full disk must not crash the store. What Pebble v2.1.7 does on ENOSPC,
// tried on a small tmpfs:
//
//   - A WAL write or fsync that fails makes DB.Apply call Logger.Fatalf
//     ("pebble: fatal commit error"), on the committing goroutine; the WAL
//     writer stays failed, so every later commit does the same. Reads still
//     work but see the failed batch (it reached the memtable), until the
//     database is reopened. Close returns the WAL error and releases it.
//   - A memtable flush or compaction that fails is a background error,
//     retried at once without backoff (a busy loop of error lines); once
//     the memtables are full, commits block until a flush succeeds.
//   - Open with a WAL to replay flushes it first, so on a full disk it never
//     returns (the restart that spun at 125% CPU). Open with ReadOnly works.
//   - Open of a new store whose first MANIFEST cannot be written calls
//     Fatalf on Open's goroutine (openPebble makes it Open's error).
//   - A failed MANIFEST write (after a flush or compaction) calls Fatalf on
//     a background goroutine, leaving the version state unsafe to go on.
//
// So the guard below refuses writes (store.ErrNoSpace) while the free space
// is under Options.MinFreeDisk, which leaves Pebble room for its flushes and
// compactions; Open refuses to start under it. What can still happen is
// handled without a crash: a failed commit marks the store failed
// (store.ErrFailed), and the monitor reopens the database read-only (so
// reads see only what is durable) and read-write once there is room again.
// A MANIFEST failure parks the goroutine that met it and leaves the store
// failed until a restart: Pebble said continuing is unsafe, so nothing
// writes to that database again.

// fatalCommit starts the message of Pebble's Fatalf for a failed WAL write.
const fatalCommit = "pebble: fatal commit error"

// fatalError is what Fatalf panics with on the committing goroutine; write
// recovers it.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return e.msg }
func (e fatalError) Unwrap() error { return store.ErrFailed }

// health is the store's write state, shared by the Store, Pebble's logger
// and event listener, and the space monitor.
type health struct {
	log       *slog.Logger
	fs        vfs.FS
	dir       string
	min       int64 // refuse writes under this many free bytes; 0: off
	onRefused func()

	free    atomic.Int64 // free bytes at the last look (-1: unknown)
	written atomic.Int64 // bytes written since
	low     atomic.Bool  // last look: under min (or Pebble met ENOSPC)
	enospc  atomic.Bool  // Pebble met ENOSPC since the last look
	failed  atomic.Bool  // a commit failed; reopen needed
	broken  atomic.Pointer[string]
	opening atomic.Int32  // Store.openPebble is running
	wake    chan struct{} // a commit failed: reopen now

	// bgMu guards the rate limit of background error lines.
	bgMu     sync.Mutex
	bgLogged time.Time
	bgMuted  int
}

func newHealth(log *slog.Logger, fs vfs.FS, dir string, min int64, onRefused func()) *health {
	h := &health{log: log, fs: fs, dir: dir, min: min, onRefused: onRefused, wake: make(chan struct{}, 1)}
	h.free.Store(-1)
	return h
}

// look reads the free space of the data directory; -1 if the file system
// cannot say.
func (h *health) look() int64 {
	u, err := h.fs.GetDiskUsage(h.dir)
	if err != nil {
		return -1
	}
	return int64(min(u.AvailBytes, 1<<62))
}

// under reports whether free (-1: unknown) is below need.
func under(free, need int64) bool { return free >= 0 && free < need }

// poll takes one look and logs a change of state, once.
func (h *health) poll() {
	free := h.look()
	h.free.Store(free)
	h.written.Store(0)
	low := under(free, h.min) || h.enospc.Swap(false)
	if h.low.Swap(low) == low {
		return
	}
	if low {
		h.log.Warn("disk space low: refusing writes until there is room", "component", "store", "dir", h.dir,
			"free_mib", free>>20, "min_free_mib", h.min>>20)
	} else {
		h.log.Info("disk space back: accepting writes", "component", "store", "dir", h.dir, "free_mib", free>>20)
	}
}

// writable says whether a write may go on now: nil, or an error wrapping
// store.ErrFailed or store.ErrNoSpace. Between looks, the bytes written
// since the last one count against its free space. A write refused for
// space is counted (onRefused) if count.
func (h *health) writable(count bool) error {
	if err := h.failure(); err != nil {
		return err
	}
	free := h.free.Load()
	if free >= 0 {
		free = max(free-h.written.Load(), 0)
	}
	if h.low.Load() || under(free, h.min) {
		if count && h.onRefused != nil {
			h.onRefused()
		}
		return fmt.Errorf("%w: %d MiB free in %s, under the %d MiB kept free", store.ErrNoSpace, max(free, 0)>>20, h.dir, h.min>>20)
	}
	return nil
}

// failure is nil, or an error wrapping store.ErrFailed if the database
// must not be written (nor its unsynced state trusted).
func (h *health) failure() error {
	if msg := h.broken.Load(); msg != nil {
		return fmt.Errorf("%w: %s; restart imqttd", store.ErrFailed, *msg)
	}
	if h.failed.Load() {
		return fmt.Errorf("%w: a write failed; read-only until the database is reopened", store.ErrFailed)
	}
	return nil
}

// fatal records a Fatalf of Pebble's, logging the first one.
func (h *health) fatal(msg string, commit bool) {
	if commit {
		if !h.failed.Swap(true) {
			h.log.Error("store write failed; serving reads only until it can reopen the database",
				"component", "pebble", "err", msg)
		}
		select {
		case h.wake <- struct{}{}:
		default:
		}
		return
	}
	if h.broken.CompareAndSwap(nil, &msg) {
		h.log.Error("store failed; serving reads only until imqttd restarts", "component", "pebble", "err", msg)
	}
}

// backgroundError is Pebble's event for a failed flush or compaction, which
// it retries at once and forever: ENOSPC stops writes until the next look
// shows room, and the lines are limited to one a minute.
func (h *health) backgroundError(err error) {
	if errors.Is(err, syscall.ENOSPC) {
		h.enospc.Store(true)
		h.low.Store(true)
	}
	h.bgMu.Lock()
	defer h.bgMu.Unlock()
	if time.Since(h.bgLogged) < time.Minute {
		h.bgMuted++
		return
	}
	h.log.Error("store background work failed; Pebble retries it", "component", "pebble", "err", err,
		"repeats", h.bgMuted)
	h.bgLogged, h.bgMuted = time.Now(), 0
}

// slogLogger routes Pebble's log to slog.
type slogLogger struct {
	l *slog.Logger
	h *health
}

func (s slogLogger) Infof(format string, args ...any) {
	s.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (s slogLogger) Errorf(format string, args ...any) {
	s.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf must not return: Pebble calls it when continuing could corrupt the
// database. A failed commit (on our goroutine, inside Store.write) panics
// with fatalError, which write turns into an error; so does a failure while
// opening (openPebble). A failed MANIFEST write
// (on one of Pebble's goroutines) parks that goroutine for good, so the
// process keeps serving reads. Anything else is an invariant broken or data
// corrupt, and still panics.
func (s slogLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case strings.HasPrefix(msg, fatalCommit):
		s.h.fatal(msg, true)
		panic(fatalError{msg})
	case s.h.opening.Load() > 0:
		// Open's own goroutine (a MANIFEST it cannot write on a full
		// disk): openPebble turns it into Open's error.
		panic(fatalError{msg})
	case strings.Contains(msg, "MANIFEST"):
		s.h.fatal(msg, false)
		select {}
	}
	s.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}

// write runs one Pebble write of n bytes, turning a failed commit's Fatalf
// into an error.
func (s *Store) write(n int, fn func() error) (err error) {
	defer catchFatal(&err)
	if err := fn(); err != nil {
		return err
	}
	s.health.written.Add(int64(n))
	return nil
}

// catchFatal, deferred, turns a panic with fatalError into *err; any other
// panic goes on.
func catchFatal(err *error) {
	if r := recover(); r != nil {
		fe, ok := r.(fatalError)
		if !ok {
			panic(r)
		}
		*err = fe
	}
}

// openPebble opens the database in s.dir, turning a Fatalf of Pebble's
// during the open into an error.
func (s *Store) openPebble(readOnly bool) (db *pebble.DB, err error) {
	s.health.opening.Add(1)
	defer s.health.opening.Add(-1)
	defer catchFatal(&err)
	return pebble.Open(s.dir, s.pebbleOptions(readOnly))
}

// set, del and commit are the store's writes, through write.
func (s *Store) set(key, val []byte, o *pebble.WriteOptions) error {
	return s.write(len(key)+len(val), func() error { return s.db.Set(key, val, o) })
}

func (s *Store) del(key []byte, o *pebble.WriteOptions) error {
	return s.write(len(key), func() error { return s.db.Delete(key, o) })
}

func (s *Store) commit(wb *pebble.Batch) error {
	return s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.Sync) })
}

// beginWrite is begin for a call that writes: it also refuses the write
// while the disk is short of space or the store has failed.
func (s *Store) beginWrite(ctx context.Context, op string) error {
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	if err := s.health.writable(true); err != nil {
		s.end()
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Writable reports whether writes are accepted now: nil, or why not (an
// error wrapping store.ErrNoSpace or store.ErrFailed). The daemon's
// readiness check and the media store ask it.
func (s *Store) Writable() error { return s.health.writable(false) }

// monitor looks at the free space every poll, and reopens the database
// after a failed commit: read-only at once (reads then see only what is
// durable), read-write once there is room. It ends when done closes.
func (s *Store) monitor(poll time.Duration, done <-chan struct{}) {
	defer close(s.done)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		case <-s.health.wake:
		}
		s.health.poll()
		if s.health.failed.Load() && s.health.broken.Load() == nil {
			s.reopen()
		}
	}
}
