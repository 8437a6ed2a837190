package pebble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// CreateUser adds an account under its folded ID; store.ErrExists if that
// is taken.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := s.beginWrite(ctx, "create user"); err != nil {
		return err
	}
	defer s.end()
	u.ID = store.FoldID(u.ID)
	if err := checkID("user", u.ID); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	val, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	key := userKey(u.ID)
	s.users.Lock()
	defer s.users.Unlock()
	if err := s.getJSON(key, nil); err == nil {
		return fmt.Errorf("create user %s: %w", u.ID, store.ErrExists)
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	if err := s.set(key, val, pebble.Sync); err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	return nil
}

// GetUser returns the account of id's fold; store.ErrNotFound for an
// unknown ID or a tombstone.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	var u store.User
	if err := s.begin(ctx, "get user"); err != nil {
		return u, err
	}
	defer s.end()
	id = store.FoldID(id)
	if err := s.getJSON(userKey(id), &u); err != nil {
		return store.User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	if u.Deleted != 0 { // a tombstone (deleteuser.go)
		return store.User{}, fmt.Errorf("get user %s: %w", id, store.ErrNotFound)
	}
	return u, nil
}

// PutToken stores (or replaces) a session.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if err := s.beginWrite(ctx, "put token"); err != nil {
		return err
	}
	defer s.end()
	val, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	if err := s.set(tokenKey(t.Hash), val, pebble.Sync); err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	return nil
}

// GetToken returns store.ErrNotFound for an unknown or deleted hash.
// Errors never carry the hash.
func (s *Store) GetToken(ctx context.Context, hash string) (store.Token, error) {
	var t store.Token
	if err := s.begin(ctx, "get token"); err != nil {
		return t, err
	}
	defer s.end()
	if err := s.getJSON(tokenKey(hash), &t); err != nil {
		return store.Token{}, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

// DeleteToken removes a session; deleting an unknown hash is not an error.
// A revocation is let through while space is low (it is a few bytes, and
// a logout that fails would leave a token usable).
func (s *Store) DeleteToken(ctx context.Context, hash string) error {
	if err := s.begin(ctx, "delete token"); err != nil {
		return err
	}
	defer s.end()
	if err := s.health.failure(); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if err := s.del(tokenKey(hash), pebble.Sync); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}

// getJSON reads key into v (v nil: existence only), translating Pebble's
// not-found into store.ErrNotFound.
func (s *Store) getJSON(key []byte, v any) error {
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("decode %s value: %w", key[:2], err)
	}
	return nil
}
