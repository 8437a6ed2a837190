package account

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// countingTokens counts the store's token reads and, while gate is open
// (not nil), holds each read until it is closed.
// While hold is open, it holds each read's answer until hold is closed.
// While holdDelete is open, DeleteToken tells deleting it began and waits
// for holdDelete to close before it deletes.
type countingTokens struct {
	store.Accounts
	reads      atomic.Int64
	read       atomic.Int64 // reads answered by the store (before hold)
	gate       chan struct{}
	hold       chan struct{}
	holdDelete chan struct{}
	deleting   chan struct{}
}

func (c *countingTokens) DeleteToken(ctx context.Context, hash string) error {
	if c.holdDelete != nil {
		c.deleting <- struct{}{}
		<-c.holdDelete
	}
	return c.Accounts.DeleteToken(ctx, hash)
}

func (c *countingTokens) GetToken(ctx context.Context, hash string) (store.Token, error) {
	c.reads.Add(1)
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return store.Token{}, ctx.Err()
		}
	}
	row, err := c.Accounts.GetToken(ctx, hash)
	c.read.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	return row, err
}

// tokensOn logs in n devices of one user through a first Service on a new
// store, and returns their tokens and the store wrapped to count reads,
// for a second Service whose cache is empty.
func tokensOn(t *testing.T, n int) ([]string, *countingTokens) {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	first := New(st, Options{Params: cheap, Limiter: memory.New(st.ReserveVersions, memory.Options{}), Limits: noLimits})
	if _, err := first.Register(t.Context(), "alice", "secret-alice"); err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, n)
	for i := range tokens {
		sess, err := first.Login(t.Context(), "alice", "secret-alice", fmt.Sprintf("d%d", i))
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = sess.Token
	}
	return tokens, &countingTokens{Accounts: st}
}

// Concurrent requests with a token not in the cache (a client's burst
// after a restart) make one store read, not one each.
func TestVerifyMissReadOnce(t *testing.T) {
	tokens, st := tokensOn(t, 1)
	st.gate = make(chan struct{})
	s := New(st, Options{Params: cheap, Limits: noLimits})
	const n = 32
	var started, wg sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			started.Done()
			_, err := s.Verify(t.Context(), tokens[0])
			errs <- err
		})
	}
	started.Wait()
	// Every caller has started; give them until a deadline to pile up on
	// the store (without the collapsing, all n reach it at once).
	for deadline := time.Now().Add(200 * time.Millisecond); st.reads.Load() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(st.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := st.reads.Load(); r != 1 {
		t.Errorf("%d concurrent verifications of one uncached token made %d store reads, want 1", n, r)
	}
}

// A caller whose context ends stops waiting for a read another caller
// started, while the read goes on for the others.
func TestVerifyMissOwnContext(t *testing.T) {
	tokens, st := tokensOn(t, 1)
	st.gate = make(chan struct{})
	s := New(st, Options{Params: cheap, Limits: noLimits})
	first := make(chan error, 1)
	go func() {
		_, err := s.Verify(t.Context(), tokens[0])
		first <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); st.reads.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first verification never read the store")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(t.Context())
	second := make(chan error, 1)
	go func() {
		_, err := s.Verify(ctx, tokens[0])
		second <- err
	}()
	cancel()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the cancelled caller: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled caller still waits for the read it shares")
	}
	close(st.gate)
	if err := <-first; err != nil {
		t.Errorf("the first caller: %v", err)
	}
}

// A full cache forgets the token used longest ago, not every token: a
// token in use stays cached while new ones come.
func TestTokenCacheKeepsRecent(t *testing.T) {
	defer func(n int) { cacheMax = n }(cacheMax)
	cacheMax = 4
	tokens, st := tokensOn(t, 6)
	s := New(st, Options{Params: cheap, Limits: noLimits})
	verify := func(i int) {
		t.Helper()
		if _, err := s.Verify(t.Context(), tokens[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		verify(i) // fills the cache: 4 reads
	}
	verify(0) // hot: a hit
	verify(4) // a fifth token: token 1, the least recently used, leaves
	verify(5) // and token 2
	before := st.reads.Load()
	verify(0)
	if r := st.reads.Load() - before; r != 0 {
		t.Errorf("the token in use was read from the store again (%d reads) after the cache filled", r)
	}
	if before != 6 {
		t.Errorf("%d store reads for 6 tokens, the first verified twice; want 6", before)
	}
	verify(1)
	if r := st.reads.Load() - before; r != 1 {
		t.Errorf("the least recently used token: %d store reads, want 1 (it left the cache)", r)
	}
	if n := s.cache.Len(); n > 4 {
		t.Errorf("%d tokens cached, bound 4", n)
	}
}

// A token revoked while a lookup that read it is under way is not cached
// by that lookup: the next check refuses it.
func TestRevokeDuringLookup(t *testing.T) {
	tokens, st := tokensOn(t, 1)
	st.hold = make(chan struct{})
	s := New(st, Options{Params: cheap, Limits: noLimits})
	done := make(chan error, 1)
	go func() {
		_, err := s.Verify(t.Context(), tokens[0])
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); st.read.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the lookup never read the store")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Revoke(t.Context(), tokens[0]); err != nil {
		t.Fatal(err)
	}
	close(st.hold)
	if err := <-done; err != nil { // it read the token before the revocation
		t.Fatalf("the lookup under way: %v", err)
	}
	if _, err := s.Verify(t.Context(), tokens[0]); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a token revoked during a lookup: %v, want ErrBadCredentials", err)
	}
}

// A lookup that misses the cache while Revoke deletes the row finds it
// still there and caches it; Revoke drops it again once deleted, so the
// token fails every check after Revoke returns.
func TestLookupDuringRevoke(t *testing.T) {
	tokens, st := tokensOn(t, 1)
	st.holdDelete, st.deleting = make(chan struct{}), make(chan struct{})
	s := New(st, Options{Params: cheap, Limits: noLimits})
	revoked := make(chan error, 1)
	go func() { revoked <- s.Revoke(t.Context(), tokens[0]) }()
	<-st.deleting
	if _, err := s.Verify(t.Context(), tokens[0]); err != nil { // the row is not deleted yet
		t.Fatalf("a lookup while the delete runs: %v", err)
	}
	close(st.holdDelete)
	if err := <-revoked; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(t.Context(), tokens[0]); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a token looked up while it was revoked, after Revoke returned: %v, want ErrBadCredentials", err)
	}
}

// batchTokens is a user's tokens deleted in batches: batches full ones,
// then none.
type batchTokens struct{ left int }

func (b *batchTokens) DeleteUserTokens(_ context.Context, user string, limit int) ([]string, error) {
	if b.left == 0 {
		return nil, nil
	}
	b.left--
	hashes := make([]string, limit)
	for i := range hashes {
		hashes[i] = fmt.Sprintf("%s-%d-%d", user, b.left, i)
	}
	return hashes, nil
}

// BenchmarkRevokeUser: revoking a user's 3,000 tokens, in batches of
// 1,000, on a node whose cache is full, holds the lock every Verify takes
// for one scan of the cache, not one a batch.
func BenchmarkRevokeUser(b *testing.B) {
	s := New(nil, Options{Params: cheap, Limits: noLimits})
	for i := range cacheMax {
		s.cache.Add(fmt.Sprint(i), cached{row: store.Token{User: "other"}})
	}
	st := &batchTokens{}
	for b.Loop() {
		st.left = 3
		for {
			n, err := s.RevokeUser(b.Context(), st, "alice", 1000)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
}
