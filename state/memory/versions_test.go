package memory

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// blocks is a store's ReserveVersions: blocks in the order asked for.
type blocks struct {
	mu   sync.Mutex
	next uint64
	n    map[string]int // reservations per key
	// hold, if set, is called before a reservation is handed out.
	hold func(key string, nth int)
}

func (b *blocks) reserve(ctx context.Context, key string, n uint64) (uint64, error) {
	b.mu.Lock()
	if b.n == nil {
		b.n, b.next = map[string]int{}, 1
	}
	b.n[key]++
	nth := b.n[key]
	b.mu.Unlock()
	if b.hold != nil {
		b.hold(key, nth)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	first := b.next
	b.next += n
	return first, nil
}

// TestVersionKeysBounded: sends to many keys keep at most VersionKeys
// blocks, and a key in use keeps its block through a flood of new ones.
func TestVersionKeysBounded(t *testing.T) {
	st := &blocks{}
	s := New(st.reserve, Options{Block: 5000, VersionKeys: shards * 16})
	last := uint64(0)
	for i := range 10_000 {
		if _, err := s.Next(t.Context(), "k"+strconv.Itoa(i), 1); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			v, err := s.Next(t.Context(), "busy", 1)
			if err != nil || v <= last {
				t.Fatalf("busy: %d, %v after %d", v, err, last)
			}
			last = v
		}
	}
	if n := s.versionKeysHeld(); n > shards*16 {
		t.Errorf("%d keys' blocks held after 10,001 keys, bound %d", n, shards*16)
	}
	if n := st.n["busy"]; n != 1 {
		t.Errorf("the key in use reserved %d blocks, want 1 (it kept its block)", n)
	}
}

// TestVersionEvictedDuringRefill: a key evicted while a Next refills it,
// and given a new block meanwhile, does not hand out the refill's higher
// block and then the new one's lower versions: a call that begins after
// another returned gets a higher version.
func TestVersionEvictedDuringRefill(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	st := &blocks{hold: func(key string, nth int) {
		if key == "a" && nth == 2 { // the first refill of a waits
			close(entered)
			<-release
		}
	}}
	s := New(st.reserve, Options{Block: 2, VersionKeys: shards}) // one key a shard
	ctx := t.Context()
	for range 2 { // a's first block, used up
		if _, err := s.Next(ctx, "a", 1); err != nil {
			t.Fatal(err)
		}
	}
	held := make(chan uint64, 1)
	go func() {
		v, err := s.Next(ctx, "a", 1) // refills: waits in reserve
		if err != nil {
			t.Error(err)
		}
		held <- v
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the refill never reached the store")
	}
	for i := range 2000 { // a is evicted from its shard
		if _, err := s.Next(ctx, "k"+strconv.Itoa(i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Next(ctx, "a", 1); err != nil { // a's new counter and block
		t.Fatal(err)
	}
	close(release) // the held refill gets a block above the new one
	prev := <-held
	next, err := s.Next(ctx, "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	if next <= prev {
		t.Errorf("a call after one that returned %d got %d", prev, next)
	}
}
