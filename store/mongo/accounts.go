package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

type userDoc struct {
	ID           string `bson:"_id"` // folded (store.FoldID)
	Display      string `bson:"display,omitempty"`
	PasswordHash string `bson:"pw"`
	Created      int64  `bson:"created"`
	Deleted      int64  `bson:"deleted,omitempty"` // a tombstone (deleteuser.go)
}

type tokenDoc struct {
	Hash    string `bson:"_id"`
	User    string `bson:"user"`
	Device  string `bson:"device"`
	Expires int64  `bson:"expires"`
	Created int64  `bson:"created"`
}

func byID(id any) bson.D { return bson.D{{Key: "_id", Value: id}} }

// CreateUser inserts the account under its folded ID; the _id index makes
// a taken ID a duplicate key, store.ErrExists.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := s.begin(ctx, "create user"); err != nil {
		return err
	}
	defer s.end()
	u.ID = store.FoldID(u.ID)
	_, err := s.c.users.InsertOne(ctx, userDoc{ID: u.ID, Display: u.Display, PasswordHash: u.PasswordHash, Created: u.Created})
	if isDup(err) {
		return fmt.Errorf("create user %s: %w", u.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	return nil
}

// GetUser returns the account of id's fold; store.ErrNotFound for an
// unknown ID or a tombstone.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	if err := s.begin(ctx, "get user"); err != nil {
		return store.User{}, err
	}
	defer s.end()
	id = store.FoldID(id)
	var d userDoc
	if err := s.c.users.FindOne(ctx, byID(id)).Decode(&d); err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, notFound(err))
	}
	if d.Deleted != 0 {
		return store.User{}, fmt.Errorf("get user %s: %w", id, store.ErrNotFound)
	}
	return store.User{ID: d.ID, Display: d.Display, PasswordHash: d.PasswordHash, Created: d.Created}, nil
}

// PutToken stores (or replaces) a session.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if err := s.begin(ctx, "put token"); err != nil {
		return err
	}
	defer s.end()
	d := tokenDoc(t)
	_, err := s.c.tokens.ReplaceOne(ctx, byID(t.Hash), d, options.Replace().SetUpsert(true))
	if isDup(err) { // a concurrent first put of the same hash: ours replaces it
		_, err = s.c.tokens.ReplaceOne(ctx, byID(t.Hash), d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	return nil
}

// GetToken returns store.ErrNotFound for an unknown or deleted hash.
// Errors never carry the hash.
func (s *Store) GetToken(ctx context.Context, hash string) (store.Token, error) {
	if err := s.begin(ctx, "get token"); err != nil {
		return store.Token{}, err
	}
	defer s.end()
	var d tokenDoc
	if err := s.c.tokens.FindOne(ctx, byID(hash)).Decode(&d); err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", notFound(err))
	}
	return store.Token(d), nil
}

// DeleteToken removes a session; deleting an unknown hash is not an error.
func (s *Store) DeleteToken(ctx context.Context, hash string) error {
	if err := s.begin(ctx, "delete token"); err != nil {
		return err
	}
	defer s.end()
	if _, err := s.c.tokens.DeleteOne(ctx, byID(hash)); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}
