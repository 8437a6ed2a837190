package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
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
	if err := s.begin(ctx, "search users"); err != nil {
		return nil, err
	}
	defer s.end()
	ids, ok := idRange(prefix, after)
	if !ok {
		return nil, nil
	}
	filter := bson.D{{Key: "_id", Value: ids}, {Key: "deleted", Value: bson.D{{Key: "$exists", Value: false}}}}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(clampLimit(limit)))
	cur, err := s.c.users.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	out := make([]store.User, 0, len(docs))
	for _, d := range docs {
		out = append(out, store.User{ID: d.ID, Display: d.Display, PasswordHash: d.PasswordHash, Created: d.Created})
	}
	return out, nil
}

// SearchGroups lists groups whose ID begins with prefix, after after.
func (s *Store) SearchGroups(ctx context.Context, prefix, after string, limit int) ([]store.Group, error) {
	if err := s.begin(ctx, "search groups"); err != nil {
		return nil, err
	}
	defer s.end()
	ids, ok := idRange(prefix, after)
	if !ok {
		return nil, nil
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(clampLimit(limit)))
	cur, err := s.c.groups.Find(ctx, bson.D{{Key: "_id", Value: ids}}, opts)
	if err != nil {
		return nil, fmt.Errorf("search groups: %w", err)
	}
	var docs []groupDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("search groups: %w", err)
	}
	out := make([]store.Group, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].group())
	}
	return out, nil
}
