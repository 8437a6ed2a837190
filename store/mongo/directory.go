package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// idRange is the _id filter of a Directory search: IDs that begin with
// prefix and sort after after, a range of the _id index (no regex, which
// FerretDB would not run on the index); ok false when after is past them all.
func idRange(prefix, after string) (bson.D, bool) {
	r := bson.D{{Key: "$gte", Value: prefix}}
	if prefix != "" {
		end := []byte(prefix)
		end[len(end)-1]++
		if after >= string(end) {
			return nil, false
		}
		r = append(r, bson.E{Key: "$lt", Value: string(end)})
	}
	if after != "" && after >= prefix {
		r[0] = bson.E{Key: "$gt", Value: after}
	}
	return r, true
}

// SearchUsers lists accounts whose ID begins with prefix, after after.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]store.User, error) {
	alive := bson.E{Key: "deleted", Value: bson.D{{Key: "$exists", Value: false}}} // not a tombstone
	return search(ctx, s, "search users", s.c.users, prefix, after, limit, []bson.E{alive}, func(d *userDoc) store.User {
		return store.User{ID: d.ID, Display: d.Display, PasswordHash: d.PasswordHash, Created: d.Created}
	})
}

// SearchGroups lists groups whose ID begins with prefix, after after.
func (s *Store) SearchGroups(ctx context.Context, prefix, after string, limit int) ([]store.Group, error) {
	return search(ctx, s, "search groups", s.c.groups, prefix, after, limit, nil, (*groupDoc).group)
}

// search finds the documents of coll in idRange(prefix, after) that also
// match extra, in _id order, at most limit (clamped), each made a T.
func search[D, T any](ctx context.Context, s *Store, what string, coll *mongo.Collection, prefix, after string, limit int,
	extra []bson.E, conv func(*D) T) ([]T, error) {
	if err := s.begin(ctx, what); err != nil {
		return nil, err
	}
	defer s.end()
	ids, ok := idRange(prefix, after)
	if !ok {
		return nil, nil
	}
	filter := append(bson.D{{Key: "_id", Value: ids}}, extra...)
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(clampLimit(limit)))
	cur, err := coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var docs []D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]T, 0, len(docs))
	for i := range docs {
		out = append(out, conv(&docs[i]))
	}
	return out, nil
}
