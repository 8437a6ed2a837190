package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/imqtt/imqtt/store"
)

// A step migrates a database of format N to N+1. Open stamps N+1 after
// it returns. A step must be idempotent: a node that stopped after it and
// before its stamp runs it again, and a node that took over the upgrade
// lock of one that seemed dead may run it while that one still does.
// Open creates today's indexes after the steps: a step that needs an index
// of its format creates it.
type step func(ctx context.Context, db *mongo.Database) error

// steps[N-1] migrates format N to N+1, so len(steps) is Format-1. Format 1
// is the first: there is none yet. Tests replace steps, and format, the
// Format this build writes (export_test.go), to run a migration production
// does not have yet.
var (
	steps  []step
	format = Format
)

// upgradeLock is the meta document held by the node that upgrades.
const upgradeLock = "upgrade-lock"

var (
	// upgradeLockTTL is how long the lock holds without being renewed;
	// its holder renews it every third of it, so another node takes it
	// over only from a node that is gone (tests shorten it).
	upgradeLockTTL = 30 * time.Second
	// upgradePoll is how often a node waiting for the lock looks again.
	upgradePoll = 200 * time.Millisecond
)

// formatDoc is the stamp, {_id: "format", value: N}.
type formatDoc struct {
	ID    string `bson:"_id"`
	Value int    `bson:"value"`
}

// readFormat reads the stamp.
func (s *Store) readFormat(ctx context.Context) (int, error) {
	raw, err := s.c.meta.FindOne(ctx, bson.D{{Key: "_id", Value: "format"}}).Raw()
	if err != nil {
		return 0, fmt.Errorf("read store format: %w", err) // the database, not the format
	}
	var d formatDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		return 0, fmt.Errorf("%w: database %s holds a store format that is not a number: %v", store.ErrFormat, s.db.Name(), err)
	}
	return d.Value, nil
}

// upgrade migrates the database from format from to today's, if the
// operator said a backup was taken (Options.Upgrade), under the upgrade
// lock: nodes starting at once wait for the one that holds it, and then
// find the database upgraded.
func (s *Store) upgrade(ctx context.Context, from int, confirmed bool) error {
	if !confirmed {
		return fmt.Errorf("%w: database %s holds store format %d, older than this imqttd's %d: back it up "+
			"(mongodump), stop every node of the older release, then start one node of this one with --upgrade-mongo "+
			"to upgrade it in place", store.ErrFormat, s.db.Name(), from, format)
	}
	if len(steps) < format-1 {
		return fmt.Errorf("%w: no way from store format %d to %d (a step is missing from this build)", store.ErrFormat, from, format)
	}
	unlock, err := s.lockUpgrade(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := s.readFormat(ctx) // another node may have upgraded it while this one waited
	if err != nil {
		return err
	}
	if n < from || n > format {
		return fmt.Errorf("%w: database %s changed to store format %d while waiting to upgrade it", store.ErrFormat, s.db.Name(), n)
	}
	if n < format {
		s.log.Warn("upgrading the store format; the backup is the operator's (mongodump)", "db", s.db.Name(), "from", n, "to", format)
	}
	for ; n < format; n++ {
		start := time.Now()
		if err := steps[n-1](ctx, s.db); err != nil {
			return fmt.Errorf("upgrade store format %d to %d (the database stays at %d): %w", n, n+1, n, err)
		}
		_, err := s.c.meta.UpdateOne(ctx, bson.D{{Key: "_id", Value: "format"}, {Key: "value", Value: n}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: n + 1}}}})
		if err != nil {
			return fmt.Errorf("stamp store format %d: %w", n+1, err)
		}
		s.log.Info("store format upgraded", "db", s.db.Name(), "format", n+1, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// lockUpgrade takes the upgrade lock, waiting while a live node holds it
// (until ctx ends), and renews it until the returned func releases it.
func (s *Store) lockUpgrade(ctx context.Context) (func(), error) {
	token := bson.NewObjectID().Hex()
	logged := false
	for {
		now := time.Now().UnixMilli()
		_, err := s.c.meta.InsertOne(ctx, bson.D{{Key: "_id", Value: upgradeLock}, {Key: "owner", Value: token},
			{Key: "until", Value: now + upgradeLockTTL.Milliseconds()}})
		if err == nil {
			break
		}
		if !isDup(err) {
			return nil, fmt.Errorf("take the upgrade lock: %w", err)
		}
		var held struct {
			Owner string `bson:"owner"`
			Until int64  `bson:"until"`
		}
		err = s.c.meta.FindOne(ctx, bson.D{{Key: "_id", Value: upgradeLock}}).Decode(&held)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments): // released meanwhile
			continue
		case err != nil:
			return nil, fmt.Errorf("read the upgrade lock: %w", err)
		case held.Until < now: // its holder is gone
			s.log.Warn("taking over the upgrade lock of a node that stopped renewing it", "db", s.db.Name())
			_, _ = s.c.meta.DeleteOne(ctx, bson.D{{Key: "_id", Value: upgradeLock}, {Key: "owner", Value: held.Owner}})
			continue
		}
		if !logged {
			s.log.Info("another node is upgrading the store format; waiting for it", "db", s.db.Name())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the upgrade lock (another node is upgrading the store format): %w", ctx.Err())
		case <-time.After(upgradePoll):
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // renew
		defer close(done)
		t := time.NewTicker(upgradeLockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				until := time.Now().Add(upgradeLockTTL).UnixMilli()
				res, err := s.c.meta.UpdateOne(ctx, bson.D{{Key: "_id", Value: upgradeLock}, {Key: "owner", Value: token}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "until", Value: until}}}})
				switch {
				case err != nil:
					s.log.Warn("renew the upgrade lock", "err", err)
				case res.MatchedCount == 0: // steps are idempotent: going on is safe
					s.log.Warn("the upgrade lock was taken over by another node (this one did not renew it in time)")
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := s.c.meta.DeleteOne(ctx, bson.D{{Key: "_id", Value: upgradeLock}, {Key: "owner", Value: token}}); err != nil {
			s.log.Warn("release the upgrade lock (it expires by itself)", "err", err)
		}
	}, nil
}
