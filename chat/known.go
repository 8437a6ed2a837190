package chat

import (
	"context"
	"errors"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/imqtt/imqtt/store"
)

// knownTTL is how long userExists trusts a positive answer. Accounts are
// deleted only by the server API, which forgets the user on its own node
// (ForgetUser); the other nodes of a cluster stop taking sends to them
// within knownTTL.
var knownTTL = time.Minute // a var for tests (export_test.go)

// knownMax bounds the cache of users known to exist: an LRU
// (hashicorp/golang-lru), so that a node that has seen sends to millions
// of users over its life keeps only the recent ones, not an entry for
// every user it ever looked up. A var for tests.
var knownMax = 100_000

func newKnown() *lru.Cache[string, int64] {
	c, err := lru.New[string, int64](knownMax)
	if err != nil {
		panic(err) // only for a size < 1
	}
	return c
}

// userExists caches positive answers for knownTTL.
func (s *Service) userExists(ctx context.Context, id string) (bool, error) {
	// Peek, not Get: a read lock, where Get locks the cache to move the entry
	// up. Each entry is added again after knownTTL, which keeps the order
	// close to the recent use an LRU wants.
	if at, ok := s.known.Peek(id); ok && time.Now().UnixNano()-at < int64(knownTTL) {
		return true, nil
	}
	_, err := s.st.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.known.Add(id, time.Now().UnixNano())
	return true, nil
}
