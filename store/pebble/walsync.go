package pebble

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The interval durability mode (Options.SyncInterval; docs/operations.md
// "Durability"). Pebble acknowledges a synced commit once its write-ahead
// log's flusher has written the record to the file and synced the file.
// On ext4 (data=ordered) that sync can wait hundreds of milliseconds
// behind other dirty data on the disk (a memtable flush, a compaction,
// another process), and every send queued behind the commit waits with it.
//
// walSyncFS wraps the file system under Pebble: the write-ahead log's
// files (Pebble creates them in the "pebble-wal" category) answer a sync
// at once, after the write before it reached the operating system, and a
// ticker syncs them for real every interval. So a commit returns once its
// record is in the kernel: a crash of the process (kill -9) loses nothing
// acknowledged, and a crash of the machine loses at most the last
// interval, as Redis's appendfsync everysec and NATS JetStream's
// sync_interval do. The rest of Pebble's files (tables, the manifest)
// sync as they always do, and a log is synced for real when Pebble closes
// it (at a memtable rotation), so a flushed memtable never waits on it.
type walSyncFS struct {
	vfs.FS
	log *slog.Logger

	mu    sync.Mutex
	files map[*lazyWAL]struct{} // the open logs
	err   atomic.Pointer[error] // the first failed sync: every later sync returns it
	syncs atomic.Int64          // real syncs made (tests)
}

// walCategory is the category Pebble creates its log files in (package
// wal: FS.Create and FS.ReuseForWrite with "pebble-wal").
const walCategory vfs.DiskWriteCategory = "pebble-wal"

func newWALSyncFS(fs vfs.FS, log *slog.Logger) *walSyncFS {
	return &walSyncFS{FS: fs, log: log, files: map[*lazyWAL]struct{}{}}
}

// Create opens a file; a log's syncs are deferred.
func (w *walSyncFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.Create(name, category)
	return w.wrap(f, category, err)
}

// ReuseForWrite opens a recycled log (or any reused file).
func (w *walSyncFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.ReuseForWrite(oldname, newname, category)
	return w.wrap(f, category, err)
}

func (w *walSyncFS) wrap(f vfs.File, category vfs.DiskWriteCategory, err error) (vfs.File, error) {
	if err != nil || category != walCategory {
		return f, err
	}
	l := &lazyWAL{File: f, fs: w}
	w.mu.Lock()
	w.files[l] = struct{}{}
	w.mu.Unlock()
	return l, nil
}

// failed is the first failed real sync, or nil.
func (w *walSyncFS) failed() error {
	if p := w.err.Load(); p != nil {
		return *p
	}
	return nil
}

// run syncs the open logs every interval until stop is closed.
func (w *walSyncFS) run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		w.syncAll()
	}
}

// syncAll syncs every open log with writes since its last real sync.
func (w *walSyncFS) syncAll() {
	w.mu.Lock()
	files := make([]*lazyWAL, 0, len(w.files))
	for f := range w.files {
		files = append(files, f)
	}
	w.mu.Unlock()
	for _, f := range files {
		if err := f.syncNow(); err != nil && !errors.Is(err, errClosed) {
			w.log.Error("pebble: sync of the write-ahead log failed; the store refuses writes", "err", err)
		}
	}
}

var errClosed = errors.New("log closed")

// lazyWAL is one log file whose syncs are deferred to the ticker.
type lazyWAL struct {
	vfs.File
	fs *walSyncFS

	mu     sync.Mutex // serializes real syncs and Close
	closed bool
	dirty  atomic.Bool // written (and asked to sync) since the last real sync
}

// Sync is answered at once: the flusher wrote the record before asking.
// A real sync that failed before is returned, so Pebble stops writing.
func (l *lazyWAL) Sync() error {
	l.dirty.Store(true)
	return l.fs.failed()
}

// SyncData is Sync.
func (l *lazyWAL) SyncData() error { return l.Sync() }

// SyncTo queues the prefix for the ticker: no persistence is promised
// (fullSync false), as vfs.File allows.
func (l *lazyWAL) SyncTo(int64) (bool, error) {
	l.dirty.Store(true)
	return false, l.fs.failed()
}

// syncNow makes a real sync if the log was written since the last one.
func (l *lazyWAL) syncNow() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	if !l.dirty.Swap(false) {
		return nil
	}
	l.fs.syncs.Add(1)
	if err := l.File.SyncData(); err != nil {
		l.fs.err.CompareAndSwap(nil, &err)
		return err
	}
	return nil
}

// Close syncs what is not yet synced, for real, then closes the file.
func (l *lazyWAL) Close() error {
	err := l.syncNow()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.fs.mu.Lock()
	delete(l.fs.files, l)
	l.fs.mu.Unlock()
	return errors.Join(err, l.File.Close())
}
