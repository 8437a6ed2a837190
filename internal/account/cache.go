package account

import (
	"context"
	"errors"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/imqtt/imqtt/store"
)

// cacheMax bounds each of the Service's caches (verified tokens, JWT users
// known to exist). A var for tests.
var cacheMax = 100_000

// The caches are LRUs (hashicorp/golang-lru), under Service.mu: when one
// is full the token used longest ago leaves, not every token at once —
// which would send every connected client's next request to the store
// together. A miss is looked up once however many requests wait for it
// (x/sync/singleflight): a client's burst after a restart, or the same JWT
// on many requests, makes one store read or signature check.

func newCaches() (*simplelru.LRU[string, cached], *simplelru.LRU[string, int64]) {
	tokens, err := simplelru.NewLRU[string, cached](cacheMax, nil)
	if err != nil {
		panic(err) // only for a size < 1
	}
	known, err := simplelru.NewLRU[string, int64](cacheMax, nil)
	if err != nil {
		panic(err)
	}
	return tokens, known
}

// lookup returns the cached row of h, with ok false when it is missing
// or was cached longer ago than CacheTTL.
func (s *Service) lookup(h string) (cached, bool) {
	s.mu.Lock()
	c, ok := s.cache.Get(h)
	s.mu.Unlock()
	if ok && s.opts.CacheTTL > 0 && s.now().Sub(c.at) >= s.opts.CacheTTL {
		return c, false
	}
	return c, ok
}

// A lookup that read a token before its revocation must not cache it
// after the revocation dropped it: a revoked token would pass until
// CacheTTL. Service.drops counts the drops (Revoke, Forget, RevokeUser); a
// lookup caches its answer only if none happened since it began (drops are
// rare, so a lost caching costs one more read). So a drop protects only
// once the row is gone from the store: a lookup begun before the delete
// ends can still find it, and cache it after a drop made earlier.

// dropsNow returns how many drops were made so far.
func (s *Service) dropsNow() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drops
}

// remember caches c as h's, unless an entry was dropped since drops.
func (s *Service) remember(drops uint64, h string, c cached) {
	s.mu.Lock()
	if s.drops == drops {
		s.cache.Add(h, c)
	}
	s.mu.Unlock()
}

// once runs load for key unless a run for key is under way, in which case
// it waits for that run's answer. Each caller waits only as long as its
// own ctx allows; a run ended by its first caller's ctx is tried again for
// a caller whose ctx is still live.
func (s *Service) once(ctx context.Context, key string, load func(context.Context) (store.Token, error)) (store.Token, error) {
	ch := s.flight.DoChan(key, func() (any, error) { return load(ctx) })
	select {
	case <-ctx.Done():
		return store.Token{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			if (errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)) && ctx.Err() == nil {
				return load(ctx)
			}
			return store.Token{}, r.Err
		}
		return r.Val.(store.Token), nil
	}
}
