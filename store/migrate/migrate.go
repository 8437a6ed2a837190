// Package migrate copies an embedded (Pebble) store into a MongoDB
// database for scale-out: every kind of row, the media files (into
// GridFS) and the operators' bans, then checks the copy.
//
// The copy is resumable and idempotent. A marker document in the target's
// meta collection ({_id: "migration"}) is written before anything else; it
// names the source (its epoch) and holds, per kind, the key of the last
// row written. Run refuses a database that holds anything but that marker
// and Open's own stamps, or a marker of another source, so it never mixes
// two stores. Killed, then run again, it resumes behind the saved
// positions; rows written after the last saved position are written again,
// which the target's unique keys make a no-op.
//
// The kinds are copied in an order that keeps a half-done target harmless
// to a node started on it too early: messages before the indexes that
// point at them (group log, inbox entries), members before their group
// documents, acks (which say a send is stored) after all of a send's rows,
// version counters after the entries they cover, sessions (whose
// positions point into the inboxes and group logs), then the push
// registrations and outbox, last. The source's epoch is
// made the target's last, so that devices keep their cursors.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/time/rate"

	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/bans/mongorows"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/media/gridfs"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/pebble"
)

// Sentinel errors.
var (
	// ErrNotEmpty: the target database holds data that is not this
	// migration's.
	ErrNotEmpty = errors.New("target database is not empty")
	// ErrOtherSource: the target holds the marker of a migration from
	// another store.
	ErrOtherSource = errors.New("target database holds a migration from another store")
	// ErrMismatch: the verification found the target differing from the
	// source.
	ErrMismatch = errors.New("target differs from source")
	// ErrUnfinished: a migration into the database has begun and not
	// finished, so it is not yet a store to serve (Unfinished).
	ErrUnfinished = errors.New("a migration into this database has not finished")
)

// Options configure Run. The zero value is usable.
type Options struct {
	// Rate bounds the rows written per second (0: unbounded).
	Rate float64
	// Batch is the rows of one bulk write (default 500; at most Rate).
	Batch int
	// Progress, if set, is called after each batch written, on Run's
	// goroutine.
	Progress func(Progress)
	// Sample is how often rows are read back to compare: every Sample-th
	// message, inbox entry, group log entry, user and member (default
	// 100; negative: counts only).
	Sample int
	// DataDir is the embedded node's data directory, for its media
	// (DataDir/media) and bans (DataDir/admin/bans.json); empty: neither
	// is copied.
	DataDir string
	// Node names the source node in the marker (default: the host name).
	Node string
	// Logger receives notes on what is skipped (nil: discarded). It never
	// logs a row's content.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Rate > 0 && float64(o.Batch) > o.Rate {
		o.Batch = max(1, int(o.Rate))
	}
	if o.Sample == 0 {
		o.Sample = 100
	}
	if o.Node == "" {
		o.Node, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Progress is where the copy of one kind is.
type Progress struct {
	Kind        string
	Done, Total int64   // rows of Kind copied (by this run and earlier ones) and in the source
	Rate        float64 // rows per second written by this run, over all kinds
}

// Summary is what Run did and found.
type Summary struct {
	Kinds      []KindSummary
	Copied     int64 // rows written by this run (rewrites after a resume included)
	Messages   int64 // messages written by this run
	Media      int   // media objects copied (already there: not counted)
	MediaSkip  int   // media objects already in the target
	Bans       int   // bans copied
	Sampled    int   // rows read back from both stores and compared
	Mismatches []string
	Duration   time.Duration // the whole run
	Copying    time.Duration // of it, writing rows (not media, bans or the verification)
	Verifying  time.Duration // of it, the verification
	Rate       float64       // Copied per second of Copying
}

// KindSummary counts one kind in both stores after the copy.
type KindSummary struct {
	Kind       string
	Collection string
	Source     int64
	Target     int64
}

// marker is the migration's document in the target's meta collection.
type marker struct {
	ID          string            `bson:"_id"`
	SourceEpoch string            `bson:"source_epoch"`
	Node        string            `bson:"node"`
	Started     int64             `bson:"started"`
	DoneKinds   []string          `bson:"done_kinds"`
	Positions   map[string][]byte `bson:"positions"`
	Counts      map[string]int64  `bson:"counts"`
	Finished    int64             `bson:"finished,omitempty"`
}

const markerID = "migration"

// openStamps are the meta documents mongo.Open writes into any database.
// (and the locks a node holds for a moment).
var openStamps = bson.A{"format", "epoch", "rmw-lock", "upgrade-lock", markerID}

// Unfinished returns an error wrapping ErrUnfinished if db holds the marker
// of a migration that has not finished: a node started on it would serve a
// part of the history, under an epoch the migration replaces at its end
// (imqttd refuses to start on it). nil for any other database.
func Unfinished(ctx context.Context, db *driver.Database) error {
	var m marker
	err := db.Collection("meta").FindOne(ctx, bson.D{{Key: "_id", Value: markerID}}).Decode(&m)
	switch {
	case errors.Is(err, driver.ErrNoDocuments):
		return nil
	case err != nil:
		return fmt.Errorf("read migration marker: %w", err)
	case m.Finished == 0:
		return fmt.Errorf("%w: database %s is being migrated into from node %q's store (started %s, done: %s); "+
			"run imqttd migrate again to finish it before starting nodes on it", ErrUnfinished, db.Name(), m.Node,
			time.UnixMilli(m.Started).UTC().Format(time.RFC3339), strings.Join(m.DoneKinds, ", "))
	}
	return nil
}

// run is one Run's state.
type run struct {
	src   *pebble.Store
	dst   *mongo.Store
	meta  *driver.Collection
	opts  Options
	lim   *rate.Limiter
	m     marker
	start time.Time
	// copyStart is when the copy of rows began.
	copyStart time.Time
	sum       Summary
}

// Run copies src into dst (see the package comment) and verifies the
// copy. Open src with pebble.OpenReadOnly, so that it stays as it was.
// dst must be a database that is empty but for what mongo.Open wrote, or
// that holds this source's marker (a run to resume). A mismatch found by
// the verification is an error wrapping ErrMismatch, with the Summary
// saying what differs.
func Run(ctx context.Context, src *pebble.Store, dst *mongo.Store, opts Options) (Summary, error) {
	r := &run{src: src, dst: dst, meta: dst.Database().Collection("meta"), opts: opts.withDefaults(), start: time.Now()}
	r.lim = rate.NewLimiter(rate.Inf, r.opts.Batch)
	if r.opts.Rate > 0 {
		r.lim = rate.NewLimiter(rate.Limit(r.opts.Rate), r.opts.Batch)
	}
	err := r.run(ctx)
	r.sum.Duration = time.Since(r.start)
	if secs := r.sum.Copying.Seconds(); secs > 0 {
		r.sum.Rate = float64(r.sum.Copied) / secs
	}
	return r.sum, err
}

func (r *run) run(ctx context.Context) error {
	if err := r.claim(ctx); err != nil {
		return err
	}
	if r.m.Finished == 0 {
		r.copyStart = time.Now()
		err := r.copyAll(ctx)
		r.sum.Copying = time.Since(r.copyStart)
		if err != nil {
			return err
		}
		if err := r.copyMedia(ctx); err != nil {
			return err
		}
		if err := r.copyBans(ctx); err != nil {
			return err
		}
		if err := r.dst.ImportEpoch(ctx, r.src.Epoch()); err != nil {
			return err
		}
		r.m.Finished = time.Now().UnixMilli()
		if err := r.save(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	defer func() { r.sum.Verifying = time.Since(start) }()
	return r.verify(ctx)
}

// claim writes the marker into an empty target, or reads back this
// source's marker; it refuses anything else.
func (r *run) claim(ctx context.Context) error {
	err := r.meta.FindOne(ctx, bson.D{{Key: "_id", Value: markerID}}).Decode(&r.m)
	switch {
	case err == nil:
		if r.m.SourceEpoch != r.src.Epoch() {
			return fmt.Errorf("%w: database %s has the marker of a migration from the store of epoch %q (node %q, started %s), "+
				"not this one's %q: use another database, or drop it", ErrOtherSource, r.dst.Database().Name(),
				r.m.SourceEpoch, r.m.Node, time.UnixMilli(r.m.Started).UTC().Format(time.RFC3339), r.src.Epoch())
		}
		if r.m.Positions == nil {
			r.m.Positions = map[string][]byte{}
		}
		if r.m.Counts == nil {
			r.m.Counts = map[string]int64{}
		}
		r.opts.Logger.Info("migrate: resuming", "done_kinds", r.m.DoneKinds)
		return nil
	case !errors.Is(err, driver.ErrNoDocuments):
		return fmt.Errorf("read migration marker: %w", err)
	}
	if err := r.checkEmpty(ctx); err != nil {
		return err
	}
	r.m = marker{ID: markerID, SourceEpoch: r.src.Epoch(), Node: r.opts.Node, Started: time.Now().UnixMilli(),
		DoneKinds: []string{}, Positions: map[string][]byte{}, Counts: map[string]int64{}}
	if _, err := r.meta.InsertOne(ctx, r.m); err != nil {
		return fmt.Errorf("write migration marker: %w", err) // a duplicate: another migrate started at once
	}
	return nil
}

// checkEmpty refuses a database with any document but Open's stamps.
func (r *run) checkEmpty(ctx context.Context) error {
	db := r.dst.Database()
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections of %s: %w", db.Name(), err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, "system.") {
			continue
		}
		filter := bson.D{}
		if name == "meta" {
			filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$nin", Value: openStamps}}}}
		}
		n, err := db.Collection(name).CountDocuments(ctx, filter, options.Count().SetLimit(1))
		if err != nil {
			return fmt.Errorf("look into %s.%s: %w", db.Name(), name, err)
		}
		if n > 0 {
			return fmt.Errorf("%w: database %s already has documents in %s and no migration marker: "+
				"migrate only into a new database", ErrNotEmpty, db.Name(), name)
		}
	}
	return nil
}

// save writes the marker back.
func (r *run) save(ctx context.Context) error {
	if _, err := r.meta.ReplaceOne(ctx, bson.D{{Key: "_id", Value: markerID}}, r.m); err != nil {
		return fmt.Errorf("save migration position: %w", err)
	}
	return nil
}

func (r *run) isDone(kind string) bool {
	for _, k := range r.m.DoneKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// kindCopy is one kind's copy into collection coll: run copies it, count
// counts the source's rows.
type kindCopy struct {
	name, coll string
	run        func(ctx context.Context, r *run) error
	count      func(ctx context.Context, s *pebble.Store) (int64, error)
}

// kind builds the kindCopy of k, written by write into coll.
func kind[T any](k pebble.Kind[T], coll string, write func(dst *mongo.Store, ctx context.Context, rows []T) error) kindCopy {
	return kindCopy{
		name: k.Name, coll: coll,
		run: func(ctx context.Context, r *run) error {
			return copyKind(ctx, r, k, func(ctx context.Context, rows []T) error { return write(r.dst, ctx, rows) })
		},
		count: func(ctx context.Context, s *pebble.Store) (int64, error) { return pebble.Count(ctx, s, k) },
	}
}

// kinds in the order they are copied (see the package comment).
var kinds = []kindCopy{
	kind(pebble.Users, "users", (*mongo.Store).ImportUsers),
	kind(pebble.Tokens, "tokens", (*mongo.Store).ImportTokens),
	kind(pebble.Messages, "messages", (*mongo.Store).ImportMessages),
	kind(pebble.GroupLog, "group_msgs", func(dst *mongo.Store, ctx context.Context, rows []pebble.GroupLogEntry) error {
		gs := make([]mongo.GroupMsg, len(rows))
		for i, g := range rows {
			gs[i] = mongo.GroupMsg(g)
		}
		return dst.ImportGroupMsgs(ctx, gs)
	}),
	kind(pebble.Inbox, "entries", (*mongo.Store).ImportEntries),
	kind(pebble.Conversations, "convs", (*mongo.Store).ImportConversations),
	kind(pebble.Grants, "grants", (*mongo.Store).ImportGrants),
	kind(pebble.Members, "members", (*mongo.Store).ImportMembers),
	kind(pebble.Groups, "groups", (*mongo.Store).ImportGroups),
	kind(pebble.Heads, "group_heads", (*mongo.Store).ImportHeads),
	kind(pebble.Acks, "acks", (*mongo.Store).ImportAcks),
	// Pebble keeps the next version free, MongoDB the last one reserved.
	kind(pebble.Reservations, "counters", func(dst *mongo.Store, ctx context.Context, rows []pebble.Reservation) error {
		cs := make([]mongo.Counter, 0, len(rows))
		for _, res := range rows {
			if res.Next > 1 {
				cs = append(cs, mongo.Counter{Key: res.Key, Last: res.Next - 1})
			}
		}
		return dst.ImportCounters(ctx, cs)
	}),
	// Persistent sessions keep their positions: the source's epoch becomes
	// the target's, so a device that comes back to a node on the target
	// gets its replay from where it was, rather than silently nothing.
	kind(pebble.Sessions, "sessions", (*mongo.Store).ImportSessions),
	// Mutes and pins, which nothing else points at.
	kind(pebble.ConvSettings, "conv_settings", (*mongo.Store).ImportConvSettings),
	// The push outbox: registrations, items (done ones too, so that a job
	// expanded again pushes nothing twice), then the jobs not yet
	// expanded. Claims are not carried: the target's workers claim anew.
	kind(pebble.PushDevices, "push_devices", (*mongo.Store).ImportPushDevices),
	kind(pebble.PushItems, "push_items", func(dst *mongo.Store, ctx context.Context, rows []pebble.PushItemRow) error {
		rs := make([]mongo.PushItemRow, len(rows))
		for i, r := range rows {
			rs[i] = mongo.PushItemRow(r)
		}
		return dst.ImportPushItems(ctx, rs)
	}),
	kind(pebble.PushJobs, "push_jobs", (*mongo.Store).ImportPushJobs),
	// The webhook outbox's events; their lanes' retry state and claims
	// are not carried (each lane's head is attempted anew).
	kind(pebble.WebhookEvents, "webhook_events", (*mongo.Store).ImportWebhookEvents),
	// The lifecycle's rows: each user's reactions (the target rebuilds
	// every (message, emoji)'s count and users from them), the group
	// messages users hid, users' own settings. Change records are
	// messages, copied with them.
	kind(pebble.Reactions, "reactions", (*mongo.Store).ImportReactions),
	kind(pebble.Hides, "hidden", (*mongo.Store).ImportHidden),
	kind(pebble.UserSettings, "user_settings", (*mongo.Store).ImportUserSettings),
	// The social graph: both sides of each contact (a side is a row of
	// its own on both stores), blocks, last seen.
	kind(pebble.Contacts, "contacts", (*mongo.Store).ImportContacts),
	kind(pebble.Blocks, "blocks", (*mongo.Store).ImportBlocks),
	kind(pebble.LastSeens, "last_seen", func(dst *mongo.Store, ctx context.Context, rows []pebble.LastSeenRow) error {
		ls := make([]mongo.LastSeenRow, len(rows))
		for i, r := range rows {
			ls[i] = mongo.LastSeenRow(r)
		}
		return dst.ImportLastSeen(ctx, ls)
	}),
}

func (r *run) copyAll(ctx context.Context) error {
	for _, k := range kinds {
		if r.isDone(k.name) {
			continue
		}
		if err := k.run(ctx, r); err != nil {
			return fmt.Errorf("migrate %s: %w", k.name, err)
		}
		r.m.DoneKinds = append(r.m.DoneKinds, k.name)
		delete(r.m.Positions, k.name)
		if err := r.save(ctx); err != nil {
			return err
		}
	}
	return nil
}

// copyKind copies the rows of k behind the marker's position, a batch at
// a time, saving the position after each.
func copyKind[T any](ctx context.Context, r *run, k pebble.Kind[T], write func(context.Context, []T) error) error {
	total, err := pebble.Count(ctx, r.src, k)
	if err != nil {
		return err
	}
	batch := make([]T, 0, r.opts.Batch)
	var last []byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.lim.WaitN(ctx, len(batch)); err != nil {
			return err
		}
		if err := write(ctx, batch); err != nil {
			return err
		}
		n := int64(len(batch))
		r.sum.Copied += n
		if k.Name == pebble.Messages.Name {
			r.sum.Messages += n
		}
		r.m.Positions[k.Name] = last
		r.m.Counts[k.Name] += n
		batch = batch[:0]
		if err := r.save(ctx); err != nil {
			return err
		}
		if r.opts.Progress != nil {
			r.opts.Progress(Progress{Kind: k.Name, Done: min(r.m.Counts[k.Name], total), Total: total,
				Rate: float64(r.sum.Copied) / max(time.Since(r.copyStart).Seconds(), 1e-3)})
		}
		return nil
	}
	err = pebble.Export(ctx, r.src, k, r.m.Positions[k.Name], func(key []byte, row T) error {
		batch, last = append(batch, row), key
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// copyMedia uploads each media object of DataDir/media that the target's
// GridFS does not have yet.
func (r *run) copyMedia(ctx context.Context) error {
	if r.opts.DataDir == "" {
		return nil
	}
	fs := media.OpenFSReadOnly(filepath.Join(r.opts.DataDir, "media"))
	ids, err := fs.Objects()
	if err != nil || len(ids) == 0 {
		return err
	}
	cache, err := os.MkdirTemp("", "imqtt-migrate-media-")
	if err != nil {
		return fmt.Errorf("migrate media: %w", err)
	}
	defer os.RemoveAll(cache)
	dst, err := gridfs.New(r.dst.Database(), gridfs.Options{CacheDir: cache, Logger: r.opts.Logger})
	if err != nil {
		return fmt.Errorf("migrate media: %w", err)
	}
	for _, id := range ids {
		switch _, err := dst.Stat(ctx, id); {
		case err == nil:
			r.sum.MediaSkip++
			continue
		case !errors.Is(err, media.ErrNotFound):
			return fmt.Errorf("migrate media %s: %w", id, err)
		}
		if err := copyObject(ctx, fs, dst, id); err != nil {
			return fmt.Errorf("migrate media %s: %w", id, err)
		}
		r.sum.Media++
	}
	return nil
}

func copyObject(ctx context.Context, from *media.FS, to media.Blobs, id string) error {
	info, err := from.Stat(ctx, id)
	if err != nil {
		return err
	}
	parts, err := from.Parts(id)
	if err != nil {
		return err
	}
	st, err := to.Create(ctx, id)
	if err != nil {
		return err
	}
	defer st.Abort()
	for _, part := range parts {
		if err := copyPart(from, st, id, part); err != nil {
			return err
		}
	}
	return st.Commit(ctx, info)
}

func copyPart(from *media.FS, st media.Staging, id, part string) error {
	in, err := from.Open(context.Background(), id, part)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := st.Create(part)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy %s: %w", part, err)
	}
	return out.Close()
}

// copyBans puts the bans in force of DataDir/admin/bans.json into the
// target's bans rows (a ban already there is left as it is).
func (r *run) copyBans(ctx context.Context) error {
	if r.opts.DataDir == "" {
		return nil
	}
	path := filepath.Join(r.opts.DataDir, "admin", "bans.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	list, err := bans.Open(path, nil)
	if err != nil {
		return fmt.Errorf("migrate bans: %w", err)
	}
	all, err := list.All(ctx)
	if err != nil {
		return fmt.Errorf("migrate bans: %w", err)
	}
	rows := mongorows.New(r.dst.Database())
	for _, b := range all {
		if err := rows.PutBan(ctx, b); err != nil {
			return fmt.Errorf("migrate bans: %w", err)
		}
		r.sum.Bans++
	}
	return nil
}
