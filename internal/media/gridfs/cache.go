package gridfs

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/imqtt/imqtt/internal/media"
)

// cache is the node-local read-through cache of committed parts: one file
// per part, {dir}/{id[2:4]}/{id}/{part}, downloaded to {tmp} first and
// renamed into place once complete and fsynced, so a cached file is always
// whole. Parts never change, so a cached file is never stale.
//
// It holds at most max bytes, give or take the part just added: the least
// recently opened parts are deleted first. Recency lives in memory; a new
// process starts from the files' modification times (when each was
// downloaded). A deleted part that a reader still has open stays readable
// until it is closed (POSIX unlink).
type cache struct {
	dir, tmp string
	max      int64
	log      *slog.Logger

	mu    sync.Mutex
	parts map[string]*list.Element // key "{id}/{part}" -> element of lru holding *entry
	lru   list.List                // front: most recently opened
	size  int64                    // bytes in parts
	loads map[string]*load         // downloads in progress, by key
}

type entry struct {
	key  string
	size int64
}

// load is one download of a part, shared by every Open waiting for it.
type load struct {
	done    chan struct{} // closed when err is set
	err     error
	waiters int                // Opens waiting; the download stops when the last one leaves
	cancel  context.CancelFunc // of the download
}

// openCache takes over the parts cached under dir, clears tmp of partial
// downloads and deletes parts until under max.
func openCache(dir, tmp string, limit int64, log *slog.Logger) (*cache, error) {
	c := &cache{dir: dir, tmp: tmp, max: limit, log: log, parts: map[string]*list.Element{}, loads: map[string]*load{}}
	if err := resetDir(tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	type found struct {
		entry
		mod int64
	}
	var all []found
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		// rel is {id[2:4]}/{id}/{part}; anything else is not ours.
		shard, key, _ := strings.Cut(filepath.ToSlash(rel), "/")
		id, part, _ := strings.Cut(key, "/")
		if !media.ValidID(id) || shard != id[2:4] || !validPart(part) {
			return nil
		}
		all = append(all, found{entry{key: key, size: fi.Size()}, fi.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b found) int { return cmp.Compare(b.mod, a.mod) }) // newest first
	for _, f := range all {
		e := f.entry
		c.parts[e.key] = c.lru.PushBack(&e)
		c.size += e.size
	}
	c.mu.Lock()
	c.evict(nil)
	c.mu.Unlock()
	return c, nil
}

func (c *cache) path(key string) string {
	return filepath.Join(c.dir, key[2:4], filepath.FromSlash(key))
}

// open opens a cached part; ok is false if it is not cached.
func (c *cache) open(key string) (f *os.File, ok bool, err error) {
	c.mu.Lock()
	el := c.parts[key]
	if el != nil {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if el == nil {
		return nil, false, nil
	}
	f, err = os.Open(c.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		// Evicted since we looked, or deleted by hand: forget it.
		c.mu.Lock()
		if c.parts[key] == el {
			c.remove(el)
		}
		c.mu.Unlock()
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return f, true, nil
}

// fill downloads the part key into the cache with fetch unless a download
// of it is already running, and waits for that download or for ctx.
func (c *cache) fill(ctx context.Context, key string, fetch func(ctx context.Context, w io.Writer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	l := c.loads[key]
	if l == nil {
		// The download belongs to all its waiters, not to the first: it
		// keeps ctx's values but ends only when every waiter has left.
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		l = &load{done: make(chan struct{}), cancel: cancel}
		c.loads[key] = l
		go c.run(lctx, key, l, fetch)
	}
	l.waiters++
	c.mu.Unlock()

	select {
	case <-l.done:
		c.mu.Lock()
		l.waiters--
		c.mu.Unlock()
		return l.err
	case <-ctx.Done():
		c.mu.Lock()
		l.waiters--
		if l.waiters == 0 && c.loads[key] == l {
			delete(c.loads, key) // the next Open starts afresh
			l.cancel()
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *cache) run(ctx context.Context, key string, l *load, fetch func(ctx context.Context, w io.Writer) error) {
	defer l.cancel()
	l.err = c.download(ctx, key, fetch)
	c.mu.Lock()
	if c.loads[key] == l {
		delete(c.loads, key)
	}
	c.mu.Unlock()
	close(l.done)
}

// download writes the part to a temporary file, fsyncs it and renames it
// into place.
func (c *cache) download(ctx context.Context, key string, fetch func(ctx context.Context, w io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(c.tmp, "part-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := fetch(ctx, tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	path := c.path(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	// Under the lock, so that eviction never deletes a directory between
	// the MkdirAll and the rename.
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if el := c.parts[key]; el != nil { // cached by hand or by another process meanwhile
		c.remove(el)
	}
	el := c.lru.PushFront(&entry{key: key, size: fi.Size()})
	c.parts[key] = el
	c.size += fi.Size()
	c.evict(el)
	return nil
}

// evict deletes the least recently opened parts, never keep, until the
// cache is within its bound. c.mu is held: deleting under the lock keeps a
// part from being deleted just after a new download put it back.
func (c *cache) evict(keep *list.Element) {
	for c.size > c.max {
		el := c.lru.Back()
		if el == nil || el == keep {
			return
		}
		e := el.Value.(*entry)
		path := c.path(e.key)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("gridfs: evict a cached part", "part", e.key, "err", err)
			return // retried after the next download; better over the bound than lost track of
		}
		c.remove(el)
		// Empty directories go too; a directory still in use is not empty.
		for dir := filepath.Dir(path); dir != c.dir && os.Remove(dir) == nil; dir = filepath.Dir(dir) {
		}
	}
}

// remove forgets a part. c.mu is held.
func (c *cache) remove(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.parts, e.key)
	c.size -= e.size
}

// resetDir empties dir, creating it if needed.
func resetDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o750)
}
