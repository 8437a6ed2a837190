package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/bans"
)

// The bans collection holds the operators' bans of scale-out mode
// (bans.Shared reads it on every node): _id is the ban's ID, the rest the
// ban's fields. It stays small (bans.MaxBans) and is read whole, so it
// needs no index and no shard key; expired bans stay (a few bytes each)
// until removed, and bans.Shared ignores them.

var _ bans.Rows = (*Store)(nil)

type banDoc struct {
	ID      string `bson:"_id"`
	User    string `bson:"user,omitempty"`
	IP      string `bson:"ip,omitempty"`
	Reason  string `bson:"reason,omitempty"`
	Created int64  `bson:"created"`
	Expires int64  `bson:"expires,omitempty"`
}

func (s *Store) bans() string { return "bans" }

// PutBan stores a ban (bans.Rows).
func (s *Store) PutBan(ctx context.Context, b bans.Ban) error {
	if err := s.begin(ctx, "put ban"); err != nil {
		return err
	}
	defer s.end()
	d := banDoc{ID: b.ID, User: b.User, IP: b.IP, Reason: b.Reason, Created: b.Created, Expires: b.Expires}
	if _, err := s.db.Collection(s.bans()).InsertOne(ctx, d); err != nil && !isDup(err) {
		return fmt.Errorf("put ban %s: %w", b.ID, err)
	}
	return nil
}

// DeleteBan removes a ban; bans.ErrNotFound if there is none (bans.Rows).
func (s *Store) DeleteBan(ctx context.Context, id string) error {
	if err := s.begin(ctx, "delete ban"); err != nil {
		return err
	}
	defer s.end()
	res, err := s.db.Collection(s.bans()).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete ban %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return bans.ErrNotFound
	}
	return nil
}

// LoadBans returns every stored ban (bans.Rows).
func (s *Store) LoadBans(ctx context.Context) ([]bans.Ban, error) {
	if err := s.begin(ctx, "load bans"); err != nil {
		return nil, err
	}
	defer s.end()
	cur, err := s.db.Collection(s.bans()).Find(ctx, bson.D{})
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
