package bans

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Rows is ban storage shared by the nodes of a cluster (store/mongo).
type Rows interface {
	// PutBan stores b durably (its ID is new).
	PutBan(ctx context.Context, b Ban) error
	// DeleteBan removes the ban with this ID; ErrNotFound if there is none.
	DeleteBan(ctx context.Context, id string) error
	// LoadBans returns every stored ban, expired ones included.
	LoadBans(ctx context.Context) ([]Ban, error)
}

// SharedOptions configure a Shared list.
type SharedOptions struct {
	// Refresh is how often the list is reloaded from Rows (default 2s): a
	// ban added on another node is in force here within it.
	Refresh time.Duration
	// Added, if set, is called with bans that appeared on a reload (added
	// on another node), so this node can disconnect whom they cover.
	Added  func([]Ban)
	Now    func() time.Time
	Logger *slog.Logger
}

// Shared is the List of scale-out mode: bans are rows in the shared store,
// and each node answers Banned from memory, reloaded every Refresh. A
// change made here is in force here at once, elsewhere within Refresh.
// If the store is unreachable the last list stays in force.
type Shared struct {
	view
	rows Rows
	opts SharedOptions
	log  *slog.Logger

	mu   sync.Mutex // serialises reloads and changes
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ List = (*Shared)(nil)

// OpenShared loads the list and keeps it fresh until Close.
func OpenShared(ctx context.Context, rows Rows, opts SharedOptions) (*Shared, error) {
	if opts.Refresh <= 0 {
		opts.Refresh = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Shared{rows: rows, opts: opts, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	s.now = opts.Now
	s.idx.Store(build(nil))
	if _, err := s.reload(ctx); err != nil {
		return nil, err
	}
	go s.refresher()
	return s, nil
}

// reload replaces the index with the stored bans in force, newest first,
// and returns those that were not in the index before.
func (s *Shared) reload(ctx context.Context) ([]Ban, error) {
	list, err := s.rows.LoadBans(ctx)
	if err != nil {
		return nil, fmt.Errorf("load bans: %w", err)
	}
	list = active(list, s.now().UnixMilli())
	slices.SortFunc(list, func(a, b Ban) int {
		if a.Created != b.Created {
			return int(b.Created - a.Created)
		}
		return cmp.Compare(b.ID, a.ID)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.idx.Load().all
	var added []Ban
	for _, b := range list {
		if !slices.ContainsFunc(old, func(o Ban) bool { return o.ID == b.ID }) {
			added = append(added, b)
		}
	}
	s.idx.Store(build(list))
	return added, nil
}

func (s *Shared) refresher() {
	defer close(s.done)
	t := time.NewTicker(s.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Refresh)
		added, err := s.reload(ctx)
		cancel()
		if err != nil {
			s.log.Warn("reload bans; keeping the last list", "err", err)
			continue
		}
		if len(added) > 0 && s.opts.Added != nil {
			s.opts.Added(added)
		}
	}
}

// Add implements List. The limit of MaxBans is checked against this node's
// view, so nodes adding at once may pass it by a few.
func (s *Shared) Add(ctx context.Context, b Ban) (Ban, error) {
	now := s.now().UnixMilli()
	if err := normalise(&b, now); err != nil {
		return Ban{}, err
	}
	b.ID, b.Created = newID(), now
	if len(active(s.idx.Load().all, now)) >= MaxBans {
		return Ban{}, ErrFull
	}
	if err := s.rows.PutBan(ctx, b); err != nil {
		return Ban{}, fmt.Errorf("store ban: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idx.Store(build(append([]Ban{b}, active(s.idx.Load().all, now)...)))
	return b, nil
}

// Remove implements List.
func (s *Shared) Remove(ctx context.Context, id string) error {
	now := s.now().UnixMilli()
	if !slices.ContainsFunc(active(s.idx.Load().all, now), func(b Ban) bool { return b.ID == id }) {
		// Not in force here; another node may have just added it.
		if _, err := s.reload(ctx); err != nil {
			return err
		}
		if !slices.ContainsFunc(active(s.idx.Load().all, now), func(b Ban) bool { return b.ID == id }) {
			return ErrNotFound
		}
	}
	if err := s.rows.DeleteBan(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete ban: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	live := active(s.idx.Load().all, now)
	s.idx.Store(build(slices.DeleteFunc(slices.Clone(live), func(b Ban) bool { return b.ID == id })))
	return nil
}

// Close stops the reloads. Idempotent.
func (s *Shared) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
	})
	return nil
}
