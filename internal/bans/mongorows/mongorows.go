// Package mongorows keeps the operators' bans of scale-out mode in a
// MongoDB collection, for bans.Shared on every node.
//
// The collection ("bans" in the store's database): _id is the ban's ID,
// the rest the ban's fields. It stays small (bans.MaxBans) and is read
// whole, so it needs no index and no shard key; expired bans stay (a few
// bytes each) until removed, and bans.Shared ignores them.
package mongorows

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/imqtt/imqtt/internal/bans"
)

// Rows is bans.Rows in a MongoDB collection.
type Rows struct{ c *mongo.Collection }

var _ bans.Rows = (*Rows)(nil)

// New returns the ban rows of db.
func New(db *mongo.Database) *Rows { return &Rows{c: db.Collection("bans")} }

type banDoc struct {
	ID      string `bson:"_id"`
	User    string `bson:"user,omitempty"`
	IP      string `bson:"ip,omitempty"`
	Reason  string `bson:"reason,omitempty"`
	Created int64  `bson:"created"`
	Expires int64  `bson:"expires,omitempty"`
}

// PutBan stores a ban (bans.Rows).
func (r *Rows) PutBan(ctx context.Context, b bans.Ban) error {
	d := banDoc{ID: b.ID, User: b.User, IP: b.IP, Reason: b.Reason, Created: b.Created, Expires: b.Expires}
	if _, err := r.c.InsertOne(ctx, d); err != nil && !isDup(err) { // a retried put
		return fmt.Errorf("put ban %s: %w", b.ID, err)
	}
	return nil
}

// DeleteBan removes a ban; bans.ErrNotFound if there is none (bans.Rows).
func (r *Rows) DeleteBan(ctx context.Context, id string) error {
	res, err := r.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete ban %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return bans.ErrNotFound
	}
	return nil
}

// LoadBans returns every stored ban (bans.Rows).
func (r *Rows) LoadBans(ctx context.Context) ([]bans.Ban, error) {
	cur, err := r.c.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("load bans: %w", err)
	}
	var docs []banDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("load bans: %w", err)
	}
	out := make([]bans.Ban, len(docs))
	for i, d := range docs {
		out[i] = bans.Ban{ID: d.ID, User: d.User, IP: d.IP, Reason: d.Reason, Created: d.Created, Expires: d.Expires}
	}
	return out, nil
}

// isDup reports a duplicate key (FerretDB may say so only in its message).
func isDup(err error) bool {
	return mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "E11000") ||
		strings.Contains(err.Error(), "UNIQUE constraint failed")
}
