package mongo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/imqtt/imqtt/store"
)

// ErrInvalid is returned for input the collections cannot hold: a negative
// message ID, an entry with version 0, n of 0, a version past MaxInt64.
var ErrInvalid = errors.New("invalid argument")

// MaxLimit caps the limit of Range, History, Members and GroupRange.
const MaxLimit = 1000

// DefaultDatabase is the database used when neither Options.Database nor
// the URI names one.
const DefaultDatabase = "imqtt"

// Options configure Open. The zero value is usable.
type Options struct {
	// Database is the database of the collections. Default: the URI's
	// path (mongodb://host/{db}), else DefaultDatabase.
	Database string
	// Logger notes what Open finds out about the server (that it is
	// FerretDB). Nil discards it.
	Logger *slog.Logger
	// ConnectTimeout bounds Open's first contact with the server when ctx
	// has no deadline (default 10s).
	ConnectTimeout time.Duration
	// SerializeUpdates makes this process run its read-modify-write
	// updates (version counters, conversation rows, SetRead, group rows)
	// one at a time. It is needed for a server whose updates are not
	// atomic per document, which FerretDB v1's are not; Open turns it on by
	// itself when the server says it is FerretDB. With several processes
	// on such a server, updates can still be lost: FerretDB is for one
	// node in development only.
	SerializeUpdates bool
	// Upgrade lets Open migrate a database of an older format in place
	// (imqttd --upgrade-mongo). Open takes no backup of a MongoDB database
	// itself: setting it says the operator took one (mongodump, or a
	// snapshot of a replica set member). Without it, Open refuses an older
	// format with store.ErrFormat. The upgrade runs under the caller's
	// ctx, not ConnectTimeout.
	Upgrade bool
}

func (o Options) withDefaults(uri string) Options {
	if o.Database == "" {
		if cs, err := connstring.Parse(uri); err == nil && cs.Database != "" {
			o.Database = cs.Database
		} else {
			o.Database = DefaultDatabase
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	return o
}

// clientHook, if set, changes the client options of every Open (tests
// count the commands a call sends).
var clientHook func(*options.ClientOptions)

// Store is a store.Store in a MongoDB database.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	c      colls
	epoch  string
	log    *slog.Logger

	// life is held for reading by every call and for writing by Close, so
	// the client is never used after it is disconnected.
	life store.Life

	// rmw, when serial, serializes read-modify-write updates in this
	// process (Options.SerializeUpdates).
	serial bool
	rmw    sync.Mutex
	// maxWrites, if above 0, caps the writes of one bulk write command:
	// FerretDB v1 keeps a SQLite connection per update of a command until
	// the command ends, and one of more than about 100 updates deadlocks.
	maxWrites int
}

// colls are the collections; doc.go describes each.
type colls struct {
	users, tokens, messages, entries, convs, acks, counters, grants, claims *mongo.Collection
	groups, members, heads, groupMsgs, meta, sessions                       *mongo.Collection
	convSettings                                                            *mongo.Collection
	pushDevices, pushJobs, pushItems, pushClaims                            *mongo.Collection
	webhookEvents, webhookLanes                                             *mongo.Collection
	// The lifecycle's (life.go).
	groupChanges, reactions, reactionSums, hidden, userSettings *mongo.Collection
	// The social graph's (social.go).
	contacts, blocks, lastSeen *mongo.Collection
}

// Store implements every role: store.Store embeds them all.
var _ store.Store = (*Store)(nil)

// Open connects to uri, creates the collections' indexes (if they exist
// already, that is a no-op) and reads or creates the epoch. The caller
// closes the Store.
func Open(ctx context.Context, uri string, opts Options) (*Store, error) {
	opts = opts.withDefaults(uri)
	parent := ctx // for an upgrade, which may take longer than the first contact
	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.ConnectTimeout)
		defer cancel()
	}
	co := options.Client().ApplyURI(uri)
	if clientHook != nil {
		clientHook(co)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("open mongo: %w", err)
	}
	s := &Store{client: client, db: client.Database(opts.Database), log: opts.Logger, serial: opts.SerializeUpdates}
	if err := s.init(ctx, parent, opts.Upgrade); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("open mongo database %s: %w", opts.Database, err)
	}
	return s, nil
}

func (s *Store) init(ctx, upgradeCtx context.Context, upgrade bool) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	var info bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return fmt.Errorf("build info: %w", err)
	}
	if v, ok := info["ferretdbVersion"]; ok {
		s.serial, s.maxWrites = true, 50
		s.log.Info("the MongoDB server is FerretDB: updates are serialized in this process; not for several nodes",
			"ferretdb", v)
	}
	db := s.db
	s.c = colls{
		users: db.Collection("users"), tokens: db.Collection("tokens"),
		messages: db.Collection("messages"), entries: db.Collection("entries"),
		convs: db.Collection("convs"), acks: db.Collection("acks"), claims: db.Collection("claims"),
		counters: db.Collection("counters"), grants: db.Collection("grants"),
		groups: db.Collection("groups"), members: db.Collection("members"),
		heads: db.Collection("group_heads"), groupMsgs: db.Collection("group_msgs"),
		meta: db.Collection("meta"), sessions: db.Collection("sessions"),
		convSettings: db.Collection("conv_settings"),
		pushDevices:  db.Collection("push_devices"), pushJobs: db.Collection("push_jobs"),
		pushItems: db.Collection("push_items"), pushClaims: db.Collection("push_claims"),
		webhookEvents: db.Collection("webhook_events"), webhookLanes: db.Collection("webhook_lanes"),
		groupChanges: db.Collection("group_changes"), reactions: db.Collection("reactions"),
		reactionSums: db.Collection("reaction_sums"), hidden: db.Collection("hidden"),
		userSettings: db.Collection("user_settings"),
		contacts:     db.Collection("contacts"), blocks: db.Collection("blocks"), lastSeen: db.Collection("last_seen"),
	}
	if err := s.checkFormat(ctx, upgradeCtx, upgrade); err != nil { // before the indexes: a format may want others
		return err
	}
	if err := s.createIndexes(ctx); err != nil {
		return err
	}
	epoch, err := s.loadEpoch(ctx)
	if err != nil {
		return err
	}
	s.epoch = epoch
	return nil
}

// index is one index of a collection.
type index struct {
	coll   *mongo.Collection
	keys   bson.D
	unique bool
}

// createIndexes creates every index doc.go lists; creating an index that
// exists with the same keys and options does nothing.
func (s *Store) createIndexes(ctx context.Context) error {
	c := &s.c
	idx := []index{
		{c.entries, bson.D{{Key: "user", Value: 1}, {Key: "ver", Value: 1}}, true},
		{c.entries, bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}, {Key: "msg", Value: -1}}, false},
		{c.convs, bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}}, true},
		{c.acks, bson.D{{Key: "from", Value: 1}, {Key: "cmid", Value: 1}}, true},
		{c.grants, bson.D{{Key: "media", Value: 1}, {Key: "principal", Value: 1}}, true},
		{c.members, bson.D{{Key: "group", Value: 1}, {Key: "user", Value: 1}}, true},
		{c.members, bson.D{{Key: "user", Value: 1}, {Key: "group", Value: 1}}, false},
		{c.groupMsgs, bson.D{{Key: "group", Value: 1}, {Key: "seq", Value: 1}}, true},
		{c.sessions, bson.D{{Key: "user", Value: 1}}, false},
		{c.tokens, bson.D{{Key: "user", Value: 1}}, false}, // DeleteUserTokens
		{c.convSettings, bson.D{{Key: "user", Value: 1}, {Key: "conv", Value: 1}}, false},
		{c.convSettings, bson.D{{Key: "conv", Value: 1}, {Key: "user", Value: 1}}, false},
		{c.pushDevices, bson.D{{Key: "provider", Value: 1}, {Key: "token", Value: 1}}, true},
		{c.pushDevices, bson.D{{Key: "user", Value: 1}, {Key: "device", Value: 1}}, false},
		{c.pushItems, bson.D{{Key: "done", Value: 1}, {Key: "due", Value: 1}}, false},
		{c.pushItems, bson.D{{Key: "done", Value: 1}, {Key: "done_at", Value: 1}}, false},
		{c.pushItems, bson.D{{Key: "user", Value: 1}, {Key: "device", Value: 1}, {Key: "msg", Value: 1}}, false},
		{c.pushClaims, bson.D{{Key: "key", Value: 1}, {Key: "gen", Value: 1}}, false},
		{c.pushClaims, bson.D{{Key: "until", Value: 1}}, false},
		{c.webhookEvents, bson.D{{Key: "lane", Value: 1}, {Key: "_id", Value: 1}}, false},
		{c.webhookEvents, bson.D{{Key: "ts", Value: 1}}, false},
		{c.webhookLanes, bson.D{{Key: "due", Value: 1}}, false},
		{c.groupChanges, bson.D{{Key: "group", Value: 1}, {Key: "seq", Value: 1}}, true},
		{c.reactions, bson.D{{Key: "msg", Value: 1}, {Key: "user", Value: 1}}, false},
		{c.reactions, bson.D{{Key: "msg", Value: 1}, {Key: "emoji", Value: 1}, {Key: "ts", Value: 1}}, false},
		{c.reactionSums, bson.D{{Key: "msg", Value: 1}, {Key: "emoji", Value: 1}}, false},
		{c.hidden, bson.D{{Key: "user", Value: 1}, {Key: "msg", Value: 1}}, false},
		{s.burns(), bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}, {Key: "due", Value: 1}, {Key: "_id", Value: 1}}, false},
		{s.burns(), bson.D{{Key: "due", Value: 1}}, false},
		{c.contacts, bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}}, false},
		{c.contacts, bson.D{{Key: "user", Value: 1}, {Key: "state", Value: 1}, {Key: "peer", Value: 1}}, false},
		{c.blocks, bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}}, false},
		{c.blocks, bson.D{{Key: "peer", Value: 1}, {Key: "user", Value: 1}}, false},
	}
	for _, ix := range idx {
		m := mongo.IndexModel{Keys: ix.keys}
		if ix.unique {
			m.Options = options.Index().SetUnique(true)
		}
		if _, err := ix.coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create index %v of %s: %w", ix.keys, ix.coll.Name(), err)
		}
	}
	return nil
}

// Format is the layout of collections and documents this code writes and
// reads, stamped in meta ({_id: "format"}) on the first open; a database
// from before the stamp is format 1. An older format is migrated in place
// by Open when the operator allows it (Options.Upgrade; steps, in
// upgrade.go); a newer one (a later release's) is refused before anything
// is written, so that data is never read by code that would misread it.
// Change it, with a step, whenever a collection or document changes its
// meaning.
const Format = 1

// checkFormat stamps a database that has no format (a new one with
// today's, one written before stamps with 1), refuses one newer than
// format and upgrades an older one (under upgradeCtx, if upgrade). Nodes
// opening a new database at once insert the same stamp.
func (s *Store) checkFormat(ctx, upgradeCtx context.Context, upgrade bool) error {
	n := format
	// The epoch is written after the stamp: a database with an epoch and
	// no stamp was written before stamps existed.
	switch err := s.c.meta.FindOne(ctx, bson.D{{Key: "_id", Value: "epoch"}}).Err(); {
	case err == nil:
		n = 1
	case !errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("read epoch: %w", err)
	}
	if _, err := s.c.meta.InsertOne(ctx, formatDoc{ID: "format", Value: n}); err != nil && !isDup(err) {
		return fmt.Errorf("stamp store format: %w", err)
	}
	n, err := s.readFormat(ctx)
	if err != nil {
		return err
	}
	switch {
	case n < 1:
		return fmt.Errorf("%w: database %s holds store format %d, which no imqttd writes", store.ErrFormat, s.db.Name(), n)
	case n > format:
		return fmt.Errorf("%w: database %s holds store format %d, newer than this imqttd's %d: run the release that wrote it "+
			"(or a later one)", store.ErrFormat, s.db.Name(), n, format)
	case n < format:
		return s.upgrade(upgradeCtx, n, upgrade)
	}
	return nil
}

// loadEpoch reads the epoch, creating it on the first open. Two nodes
// opening a new database at once both try to insert theirs; the loser
// reads the winner's.
func (s *Store) loadEpoch(ctx context.Context) (string, error) {
	type epochDoc struct {
		ID    string `bson:"_id"`
		Value string `bson:"value"`
	}
	_, err := s.c.meta.InsertOne(ctx, epochDoc{ID: "epoch", Value: rand.Text()})
	if err != nil && !isDup(err) {
		return "", fmt.Errorf("write epoch: %w", err)
	}
	var d epochDoc
	if err := s.c.meta.FindOne(ctx, bson.D{{Key: "_id", Value: "epoch"}}).Decode(&d); err != nil {
		return "", fmt.Errorf("read epoch: %w", err)
	}
	if d.Value == "" {
		return "", errors.New("read epoch: empty")
	}
	return d.Value, nil
}

// Database is the store's database, for other components of a node that
// keep their own collections in it (media on GridFS, shared bans).
func (s *Store) Database() *mongo.Database { return s.db }

// begin and end bracket every call (store.Life).
func (s *Store) begin(ctx context.Context, op string) error { return s.life.Begin(ctx, op) }
func (s *Store) end()                                       { s.life.End() }

// lockRMW serializes a read-modify-write if the server needs it; the
// returned func unlocks. On FerretDB it serializes them across processes
// too, so several nodes on one devmongo are correct (slowly): a lock
// document, taken by inserting it (FerretDB's unique _id is atomic, its
// updates are not) and stolen from a holder that kept it past rmwLockTTL.
func (s *Store) lockRMW(ctx context.Context) func() {
	if !s.serial {
		return func() {}
	}
	s.rmw.Lock()
	token := s.lockShared(ctx)
	return func() {
		if token != "" {
			ctx, cancel := context.WithTimeout(context.Background(), rmwLockTTL)
			_, _ = s.c.meta.DeleteOne(ctx, bson.D{{Key: "_id", Value: rmwLock}, {Key: "owner", Value: token}})
			cancel()
		}
		s.rmw.Unlock()
	}
}

const (
	rmwLock    = "rmw-lock"
	rmwLockTTL = 10 * time.Second
)

// lockShared takes the cross-process lock and returns its token, or ""
// if it could not within rmwLockTTL or ctx (the update then runs
// unlocked, or fails on ctx; this is a development server).
func (s *Store) lockShared(ctx context.Context) string {
	token := bson.NewObjectID().Hex()
	ctx, cancel := context.WithTimeout(ctx, rmwLockTTL)
	defer cancel()
	for {
		now := time.Now().UnixMilli()
		_, err := s.c.meta.InsertOne(ctx, bson.D{{Key: "_id", Value: rmwLock}, {Key: "owner", Value: token},
			{Key: "until", Value: now + rmwLockTTL.Milliseconds()}})
		if err == nil {
			return token
		}
		if !isDup(err) {
			if ctx.Err() == nil {
				s.log.Warn("take the update lock; updating unlocked", "err", err)
			}
			return ""
		}
		var held struct {
			Owner string `bson:"owner"`
			Until int64  `bson:"until"`
		}
		if s.c.meta.FindOne(ctx, bson.D{{Key: "_id", Value: rmwLock}}).Decode(&held) == nil && held.Until < now {
			_, _ = s.c.meta.DeleteOne(ctx, bson.D{{Key: "_id", Value: rmwLock}, {Key: "owner", Value: held.Owner}})
			continue
		}
		select {
		case <-ctx.Done():
			s.log.Warn("update lock busy; updating unlocked")
			return ""
		case <-time.After(time.Millisecond):
		}
	}
}

// Epoch identifies this store's history; it is created on the first Open
// of the database.
func (s *Store) Epoch() string { return s.epoch }

// Ping asks the primary to answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.begin(ctx, "ping"); err != nil {
		return err
	}
	defer s.end()
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Close waits for calls in progress and disconnects; later calls return
// ErrClosed (Close itself returns nil).
func (s *Store) Close() error {
	return s.life.Close(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.client.Disconnect(ctx); err != nil {
			return fmt.Errorf("close mongo: %w", err)
		}
		return nil
	})
}

// isDup reports a duplicate key. FerretDB v1 may report one met by an
// update as an InternalError that only says so in its message (SQLite's
// "UNIQUE constraint failed").
func isDup(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "E11000") || strings.Contains(msg, "duplicate key") ||
		strings.Contains(msg, "UNIQUE constraint failed")
}

// notFound translates the driver's no-document error.
func notFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ErrNotFound
	}
	return err
}

// insertMany inserts docs unordered and returns which of them were
// already there (a duplicate key); any other failure is an error.
func insertMany(ctx context.Context, c *mongo.Collection, docs []any) (dups map[int]bool, err error) {
	if len(docs) == 0 {
		return nil, nil
	}
	_, err = c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, err
	}
	dups = make(map[int]bool, len(bwe.WriteErrors))
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 && !isDup(we) {
			return nil, err
		}
		dups[we.Index] = true
	}
	return dups, nil
}

// bulkWrite runs models unordered, in commands of at most s.maxWrites.
func (s *Store) bulkWrite(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel) error {
	for len(models) > 0 {
		n := len(models)
		if s.maxWrites > 0 {
			n = min(n, s.maxWrites)
		}
		if _, err := c.BulkWrite(ctx, models[:n], options.BulkWrite().SetOrdered(false)); err != nil {
			return err
		}
		models = models[n:]
	}
	return nil
}

// clampLimit applies store.DefaultLimit and MaxLimit.
func clampLimit(limit int) int { return store.ClampLimit(limit, MaxLimit) }
