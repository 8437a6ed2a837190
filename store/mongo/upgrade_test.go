package mongo_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
)

// metaOf connects to the test server and returns db's meta collection.
func metaOf(t *testing.T, db string) *driver.Collection {
	t.Helper()
	client, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client.Database(db).Collection("meta")
}

// stampOf reads db's format stamp.
func stampOf(t *testing.T, meta *driver.Collection) int {
	t.Helper()
	var d struct {
		Value int `bson:"value"`
	}
	if err := meta.FindOne(t.Context(), bson.D{{Key: "_id", Value: "format"}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Value
}

// lockHeld says whether the upgrade lock document exists.
func lockHeld(t *testing.T, meta *driver.Collection) bool {
	t.Helper()
	n, err := meta.CountDocuments(t.Context(), bson.D{{Key: "_id", Value: "upgrade-lock"}})
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// step counts its runs and upserts a marker (idempotent, as steps must
// be); it fails with fail, and waits for release (if set) first.
type testStep struct {
	runs    atomic.Int32
	name    string
	fail    error
	release chan struct{}
}

func (c *testStep) step(ctx context.Context, db *driver.Database) error {
	c.runs.Add(1)
	if c.release != nil {
		select {
		case <-c.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err := db.Collection("upgrade_marks").UpdateOne(ctx, bson.D{{Key: "_id", Value: c.name}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "done", Value: true}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return err
	}
	return c.fail
}

func openWith(ctx context.Context, db string, upgrade bool, log *slog.Logger) (*mongo.Store, error) {
	return mongo.Open(ctx, uri, mongo.Options{Database: db, Upgrade: upgrade, Logger: log})
}

// format1DB makes a database of format 1 with a message of alice's to bob.
func format1DB(t *testing.T) string {
	t.Helper()
	db := newDB(t)
	s := open(t, db)
	commit(t, s, send(t, s, "alice", "bob", 1, 1))
	s.Close()
	return db
}

// TestUpgrade: a build of format 2 refuses a format-1 database unless the
// operator confirms a backup (Upgrade), saying how; with it, the step
// runs once, the stamp is 2, the data is kept and the lock is released.
func TestUpgrade(t *testing.T) {
	db := format1DB(t)
	meta := metaOf(t, db)
	up := &testStep{name: "one"}
	mongo.SetFormat(t, 2, up.step)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	_, err := openWith(ctx, db, false, nil)
	if !errors.Is(err, store.ErrFormat) || !strings.Contains(err.Error(), "--upgrade-mongo") || !strings.Contains(err.Error(), "mongodump") {
		t.Fatalf("open of an older format without Upgrade: %v", err)
	}
	if n := stampOf(t, meta); n != 1 || up.runs.Load() != 0 {
		t.Fatalf("refused: stamp %d, %d runs; want 1, none", n, up.runs.Load())
	}

	s, err := openWith(ctx, db, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Range(ctx, "bob", 0, 0); err != nil || len(evs) != 1 {
		t.Errorf("bob's inbox after the upgrade: %+v, %v", evs, err)
	}
	s.Close()
	if n := stampOf(t, meta); n != 2 || up.runs.Load() != 1 || lockHeld(t, meta) {
		t.Fatalf("upgraded: stamp %d, %d runs, lock held %v; want 2, 1, false", n, up.runs.Load(), lockHeld(t, meta))
	}
	s, err = openWith(ctx, db, false, nil) // nothing to upgrade: no flag needed
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if up.runs.Load() != 1 {
		t.Fatalf("a second open ran the step again")
	}

	// A new database is stamped with today's format, and a database from
	// before stamps (an epoch, no stamp) is format 1.
	fresh := newDB(t)
	s = open(t, fresh)
	s.Close()
	if n := stampOf(t, metaOf(t, fresh)); n != 2 || up.runs.Load() != 1 {
		t.Fatalf("new database: stamp %d, %d runs; want 2, still 1", n, up.runs.Load())
	}
	if _, err := meta.DeleteOne(ctx, bson.D{{Key: "_id", Value: "format"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := openWith(ctx, db, false, nil); !errors.Is(err, store.ErrFormat) {
		t.Fatalf("open of a database from before stamps, at format 2: %v", err)
	}
}

// TestUpgradeFails: a step that fails refuses the database with its error,
// leaves the stamp and releases the lock; with two steps, the second
// failing, the first stays done and the next open resumes at the second.
func TestUpgradeFails(t *testing.T) {
	db := format1DB(t)
	meta := metaOf(t, db)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	one, two := &testStep{name: "one"}, &testStep{name: "two", fail: errors.New("crash")}
	mongo.SetFormat(t, 3, one.step, two.step)
	if _, err := openWith(ctx, db, true, nil); err == nil || !strings.Contains(err.Error(), "crash") ||
		!strings.Contains(err.Error(), "stays at 2") {
		t.Fatalf("open with a failing second step: %v", err)
	}
	if n := stampOf(t, meta); n != 2 || lockHeld(t, meta) {
		t.Fatalf("after the failed step: stamp %d, lock held %v; want 2, false", n, lockHeld(t, meta))
	}
	two.fail = nil
	s, err := openWith(ctx, db, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := stampOf(t, meta); n != 3 || one.runs.Load() != 1 || two.runs.Load() != 2 {
		t.Fatalf("resumed: stamp %d, runs %d and %d; want 3, 1 and 2", n, one.runs.Load(), two.runs.Load())
	}
}

// TestUpgradeNodes: three nodes starting at once with Upgrade: one runs
// the step while the others wait for its lock, then all open the
// upgraded database; the step ran once.
func TestUpgradeNodes(t *testing.T) {
	db := format1DB(t)
	meta := metaOf(t, db)
	up := &testStep{name: "one", release: make(chan struct{})}
	mongo.SetFormat(t, 2, up.step)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	logs := &waitLog{}
	log := slog.New(logs)
	const nodes = 3
	errs := make(chan error, nodes)
	var wg sync.WaitGroup
	for range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := openWith(ctx, db, true, log)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wait.For(t, "two nodes to wait for the upgrading one", 30*time.Second, func() bool {
		return logs.waiting.Load() == nodes-1 && up.runs.Load() == 1
	})
	close(up.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a node's open: %v", err)
		}
	}
	if n := stampOf(t, meta); n != 2 || up.runs.Load() != 1 || lockHeld(t, meta) {
		t.Fatalf("after three nodes: stamp %d, %d runs, lock held %v; want 2, 1, false", n, up.runs.Load(), lockHeld(t, meta))
	}
}

// TestUpgradeLockHeld: a node waits for a lock a live node holds (and
// gives up with ctx, saying so); it takes over one whose holder stopped
// renewing it.
func TestUpgradeLockHeld(t *testing.T) {
	db := format1DB(t)
	meta := metaOf(t, db)
	up := &testStep{name: "one"}
	mongo.SetFormat(t, 2, up.step)
	until := time.Now().Add(time.Hour).UnixMilli()
	if _, err := meta.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "upgrade-lock"}, {Key: "owner", Value: "other"}, {Key: "until", Value: until}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	_, err := openWith(ctx, db, true, nil)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "another node is upgrading") {
		t.Fatalf("open while another node holds the lock: %v", err)
	}
	if n := stampOf(t, meta); n != 1 || up.runs.Load() != 0 {
		t.Fatalf("stamp %d, %d runs while locked out; want 1, none", n, up.runs.Load())
	}
	if _, err := meta.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "upgrade-lock"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: time.Now().Add(-time.Second).UnixMilli()}}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := openWith(ctx, db, true, nil)
	if err != nil {
		t.Fatalf("open after the holder stopped renewing: %v", err)
	}
	s.Close()
	if n := stampOf(t, meta); n != 2 || up.runs.Load() != 1 {
		t.Fatalf("after taking over: stamp %d, %d runs; want 2, 1", n, up.runs.Load())
	}
}

// waitLog counts "waiting" lines of the store's log.
type waitLog struct{ waiting atomic.Int32 }

func (w *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *waitLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "waiting for it") {
		w.waiting.Add(1)
	}
	return nil
}
func (w *waitLog) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *waitLog) WithGroup(string) slog.Handler      { return w }

// TestUpgradeLockRenewed: a step that outlasts the lock's lifetime keeps
// it, renewed, so a node waiting for it does not take it over and run the
// step a second time.
func TestUpgradeLockRenewed(t *testing.T) {
	db := format1DB(t)
	meta := metaOf(t, db)
	mongo.SetUpgradeLockTTL(t, 600*time.Millisecond)
	up := &testStep{name: "one", release: make(chan struct{})}
	mongo.SetFormat(t, 2, up.step)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	logs := &waitLog{}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			s, err := openWith(ctx, db, true, slog.New(logs))
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	// Five renewals: the holder keeps the lock for over 3 lifetimes.
	untils := map[int64]bool{}
	wait.For(t, "the lock renewed five times while a node waits", 30*time.Second, func() bool {
		var held struct {
			Until int64 `bson:"until"`
		}
		if meta.FindOne(t.Context(), bson.D{{Key: "_id", Value: "upgrade-lock"}}).Decode(&held) == nil {
			untils[held.Until] = true
		}
		return len(untils) >= 6 && logs.waiting.Load() == 1
	})
	close(up.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("a node's open: %v", err)
		}
	}
	if n := stampOf(t, meta); n != 2 || up.runs.Load() != 1 {
		t.Fatalf("stamp %d, %d runs; want 2, 1 (the lock was taken over)", n, up.runs.Load())
	}
}
