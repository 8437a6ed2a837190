// Package retention runs the two background jobs that delete messages
// (docs/operations.md#retention): the sweeper, which deletes messages older
// than the retention period at a bounded rate and then the media objects
// as old that no message grants any more, and the burner, which
// recalls burn-after-reading messages when they are due
// (docs/protocol.md#burn-after-reading). Every node runs both: on MongoDB
// two sweepers delete the same rows, which is harmless, and two burners
// store one recall (chat.Expire is deduplicated).
package retention

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/imqtt/imqtt/store"
)

// The defaults of Options.
const (
	// DefaultPeriod keeps messages forever (imqttd --retention).
	DefaultPeriod time.Duration = 0
	// DefaultRate is how many messages a second a node's sweeper deletes
	// at most (imqttd --retention-rate): far below what the store commits
	// (bench p2p), so a sweep takes a small share of the server however
	// much is due at once: at 2,000/s a busy sweeper cost sends ~9% more
	// server CPU per message on two cores (BENCHMARKS.md), at 1,000 half
	// that; 1,000/s is 86 million messages a day.
	DefaultRate = 1000
	// DefaultChunk is how many messages one atomic write deletes: small
	// enough that the write (which holds the conversation lock on Pebble)
	// stalls no send noticeably.
	DefaultChunk = 200
	// DefaultInterval is how often an idle sweeper looks for work, at
	// most: a tenth of the period if that is shorter (not under
	// minInterval).
	DefaultInterval = time.Minute
	minInterval     = 100 * time.Millisecond
	// DefaultBurnPoll is how often the burner looks for due burns: a burnt
	// message goes at most this long after its time.
	DefaultBurnPoll = time.Second
	// burnBatch bounds the due burns one look takes.
	burnBatch = 100
)

// Store is what the jobs need of the store.
type Store interface {
	store.Retention
	store.Burns
	store.Grants
}

// Media is what the sweeper needs of the media store (media.Deleting: FS
// and GridFS are).
type Media interface {
	Older(ctx context.Context, before int64, after string, limit int) ([]string, error)
	Delete(ctx context.Context, id string) error
}

// Expirer recalls a burnt message for both sides (chat.Service.Expire).
type Expirer interface {
	Expire(ctx context.Context, id int64) error
}

// Options tune the jobs; zero values take the defaults.
type Options struct {
	// Period is the retention: messages older than it are deleted. 0
	// keeps them forever (no sweeper).
	Period   time.Duration
	Rate     int           // messages a second, at most
	Chunk    int           // messages per atomic write
	Interval time.Duration // between sweeps when there is nothing to do
	BurnPoll time.Duration // between looks for due burns
	// Media, if set, is swept too (SweepMedia), at most every 10
	// Intervals: its listing reads every old object.
	Media  Media
	Logger *slog.Logger

	// Now and Sleep are the clock (tests replace them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o *Options) fill() {
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.Interval <= 0 {
		// A tenth of the period, so the store holds at most about 10%
		// more than the period's messages: a short retention is swept often.
		o.Interval = min(DefaultInterval, max(o.Period/10, minInterval))
	}
	if o.BurnPoll <= 0 {
		o.BurnPoll = DefaultBurnPoll
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Jobs are a node's sweeper and burner.
type Jobs struct {
	st   Store
	exp  Expirer
	opts Options
	stop context.CancelFunc
	wg   sync.WaitGroup
	// mediaAt is when the sweeper last swept media (the sweeper's own).
	mediaAt time.Time
}

// mediaEvery is how many Intervals apart media sweeps are, at least.
const mediaEvery = 10

// New returns the jobs; Start runs them.
func New(st Store, exp Expirer, opts Options) *Jobs {
	opts.fill()
	return &Jobs{st: st, exp: exp, opts: opts}
}

// Start runs the sweeper (if Period is set) and the burner (if exp is
// set) until Close.
func (j *Jobs) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	j.stop = cancel
	if j.opts.Period > 0 {
		j.wg.Go(func() { j.loop(ctx, j.opts.Interval, j.Sweep) })
	}
	if j.exp != nil {
		j.wg.Go(func() { j.loop(ctx, j.opts.BurnPoll, j.Burn) })
	}
}

// Close stops the jobs and waits for them: a chunk under way is finished
// or not written at all.
func (j *Jobs) Close() {
	if j.stop != nil {
		j.stop()
	}
	j.wg.Wait()
}

func (j *Jobs) loop(ctx context.Context, every time.Duration, run func(context.Context) (int, error)) {
	for {
		if _, err := run(ctx); err != nil && ctx.Err() == nil {
			j.opts.Logger.Error("retention", "err", err)
		}
		if j.opts.Sleep(ctx, every) != nil {
			return
		}
	}
}

// Bound is the ID below which messages are older than the period at now:
// snowflake IDs start with their time.
func Bound(now time.Time, period time.Duration) int64 {
	ms := now.Add(-period).UnixMilli() - snowflake.Epoch
	if ms <= 0 {
		return 0
	}
	return ms << (snowflake.NodeBits + snowflake.StepBits)
}

// Sweep deletes every message older than the period, in chunks of Chunk,
// at most Rate a second, and returns how many it deleted. It resumes from
// the store's cursor, so a sweep cut short (a crash, Close) loses nothing.
func (j *Jobs) Sweep(ctx context.Context) (int, error) {
	if j.opts.Period <= 0 {
		return 0, nil
	}
	before := Bound(j.opts.Now(), j.opts.Period)
	total := 0
	for {
		start := j.opts.Now()
		sw, err := j.st.SweepMessages(ctx, before, j.opts.Chunk)
		if err != nil {
			return total, err
		}
		total += sw.Messages
		if sw.Done {
			if total > 0 {
				j.opts.Logger.Info("retention sweep", "messages", total, "cursor", sw.Cursor)
			}
			if now := j.opts.Now(); j.opts.Media != nil && now.Sub(j.mediaAt) >= mediaEvery*j.opts.Interval {
				j.mediaAt = now
				_, err := j.SweepMedia(ctx)
				return total, err
			}
			return total, nil
		}
		// The rate: a chunk of n takes at least n/Rate seconds.
		want := time.Duration(sw.Messages) * time.Second / time.Duration(j.opts.Rate)
		if wait := want - j.opts.Now().Sub(start); wait > 0 {
			if err := j.opts.Sleep(ctx, wait); err != nil {
				return total, err
			}
		}
	}
}

// SweepMedia deletes the media objects created before the period that no
// message grants any more, and returns how many it deleted. The sweep of
// messages deletes a message's grant with it, so an object whose messages
// are all swept has none left; one that a younger message refers to (a
// forward, a group avatar shared in the group) still has that message's
// and stays. An upload never sent has none: its owner reads it by
// Info.Owner alone, until it is as old as the period. A recalled message's
// media (store.RevokedGrant) is served to no one and goes too once old.
// It checks at most Rate objects a second, a chunk of Chunk at a time
// (one read of the grants each, and the listing).
func (j *Jobs) SweepMedia(ctx context.Context) (int, error) {
	if j.opts.Period <= 0 || j.opts.Media == nil {
		return 0, nil
	}
	before := j.opts.Now().Add(-j.opts.Period).UnixMilli()
	deleted, after := 0, ""
	for {
		start := j.opts.Now()
		ids, err := j.opts.Media.Older(ctx, before, after, j.opts.Chunk)
		if err != nil {
			return deleted, err
		}
		for _, id := range ids {
			principals, err := j.st.MediaGrants(ctx, id)
			if err != nil {
				return deleted, err
			}
			if granted(principals) {
				continue
			}
			if err := j.opts.Media.Delete(ctx, id); err != nil {
				return deleted, err
			}
			deleted++
		}
		if len(ids) < j.opts.Chunk {
			if deleted > 0 {
				j.opts.Logger.Info("retention sweep", "media", deleted)
			}
			return deleted, nil
		}
		after = ids[len(ids)-1]
		want := time.Duration(len(ids)) * time.Second / time.Duration(j.opts.Rate)
		if wait := want - j.opts.Now().Sub(start); wait > 0 {
			if err := j.opts.Sleep(ctx, wait); err != nil {
				return deleted, err
			}
		}
	}
}

// granted reports whether principals let anyone read the media: some, and
// none a recall's revocation.
func granted(principals []string) bool {
	return len(principals) > 0 && !slices.Contains(principals, store.RevokedGrant)
}

// Burn recalls the burns due now and deletes them once recalled; it
// returns how many it recalled. A recall that fails is tried at the next
// look (the burn stays).
func (j *Jobs) Burn(ctx context.Context) (int, error) {
	if j.exp == nil {
		return 0, nil
	}
	n := 0
	for {
		due, err := j.st.DueBurns(ctx, j.opts.Now().UnixMilli(), burnBatch)
		if err != nil || len(due) == 0 {
			return n, err
		}
		var done []int64
		var errs []error
		for _, b := range due {
			if err := j.exp.Expire(ctx, b.MsgID); err != nil {
				errs = append(errs, err)
				continue
			}
			done = append(done, b.MsgID)
		}
		if len(done) > 0 {
			if err := j.st.DeleteBurns(ctx, done); err != nil {
				return n, err
			}
		}
		n += len(done)
		if len(errs) > 0 || len(due) < burnBatch {
			return n, errors.Join(errs...)
		}
	}
}
