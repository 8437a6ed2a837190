package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/state"
)

// refillLock bounds how long one node holds a key's refill lock (and how
// long another waits on it): a store reservation and an install.
const refillLock = 2 * time.Second

// unlockScript deletes a lock if it still holds this caller's token.
var unlockScript = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// maxStale bounds how many freshly reserved blocks one Next may find
// already overtaken (each time another node installed a newer block and
// used it up before ours arrived) before it gives up.
const maxStale = 8

// Next hands out [first, first+n) from key's block cached in Redis, shared
// by every node. When fewer than n are left, the caller reserves a new
// block from the store and installs it; only one caller per key in this
// process does so at a time, the others wait for it and take again.
//
// No version repeats: every block comes from the store, whose blocks never
// overlap, and the scripts hand out each version of a cached block once. A
// lost block (FLUSHALL, a restart, VersionTTL) is refilled from the store,
// leaving a hole.
//
// Versions increase: the install script never moves a key's block
// backwards, so a stale refill racing a fresh one is dropped. One race is
// beyond what Redis can see: a refill reserved before another node's but
// installed only after Redis lost the newer block (FLUSHALL or a restart
// in between) finds nothing to compare with and installs the older block.
// Each process remembers the newest block it took from per key (see
// fences) and, finding an older one cached, reserves a fresh block that
// moves the key forward again; so successive calls on one process still
// increase, and all nodes are forward again after that refill.
func (s *State) Next(ctx context.Context, key string, n uint64) (uint64, error) {
	if s.closed.Load() {
		return 0, state.ErrClosed
	}
	if n < 1 || n > s.opts.Block {
		return 0, fmt.Errorf("next %d versions of %s (block %d): %w", n, key, s.opts.Block, ErrInvalid)
	}
	k := s.versionKey(key)
	// floor is the newest block of key that a call on this process returned
	// from before this one started; calls running alongside may raise it.
	floor := s.fences.get(key)
	for stale := 0; ; {
		first, limit, err := s.take(ctx, k, n)
		if err != nil {
			return 0, fmt.Errorf("next %d versions of %s: %w", n, key, err)
		}
		if first != 0 && limit >= floor {
			s.fences.raise(key, limit)
			return first, nil
		}
		done, leader := s.join(key)
		if !leader {
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("next %d versions of %s: wait for refill: %w", n, key, ctx.Err())
			}
		}
		// A refill that ended between our take and join has left a block:
		// take again rather than reserve one more and abandon that one.
		first, limit, err = s.take(ctx, k, n)
		if err != nil {
			err = fmt.Errorf("next %d versions of %s: %w", n, key, err)
		} else if first == 0 || limit < floor {
			first, limit, err = s.refill(ctx, key, k, n)
		}
		s.leave(key, done)
		if err != nil {
			return 0, err
		}
		if first != 0 && limit >= floor {
			s.fences.raise(key, limit)
			return first, nil
		}
		if stale++; stale == maxStale {
			return 0, fmt.Errorf("reserve versions of %s: %d blocks in a row below the cached limit %d", key, stale, limit)
		}
	}
}

// take runs next.lua: first = 0 when key's block must be refilled.
func (s *State) take(ctx context.Context, k string, n uint64) (first, limit uint64, err error) {
	res, err := nextScript.Run(ctx, s.rdb, []string{k}, n).Int64Slice()
	if err == nil && len(res) != 2 {
		err = errors.New("next script: unexpected reply")
	}
	if err != nil {
		return 0, 0, translate(err)
	}
	return uint64(res[0]), uint64(res[1]), nil
}

// refill reserves a block of key, installs it at k and takes n from it (or
// from a fresher block another caller installed meanwhile). first = 0 when
// both were too short: the caller reserves again.
func (s *State) refill(ctx context.Context, key, k string, n uint64) (first, limit uint64, err error) {
	// One node refills a key at a time: two reserving at once would both
	// take a block from the store and one block would be wasted, a hole in
	// the key's versions that makes sync wait in scale-out. A node that
	// finds the lock held waits for the holder's install; if the holder
	// dies, the lock expires and this node reserves after all.
	lock, token := k+":refill", randomID()
	held, err := s.rdb.SetNX(ctx, lock, token, refillLock).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("lock refill of %s: %w", key, translate(err))
	}
	if !held {
		for deadline := time.Now().Add(refillLock); time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return 0, 0, fmt.Errorf("wait for the refill of %s: %w", key, ctx.Err())
			case <-time.After(2 * time.Millisecond):
			}
			if first, limit, err = s.take(ctx, k, n); err != nil || first != 0 {
				return first, limit, err // the caller checks limit against its fence
			}
		}
	} else {
		defer unlockScript.Run(context.WithoutCancel(ctx), s.rdb, []string{lock}, token)
		// The previous holder may have installed a block just before
		// releasing the lock: use it rather than reserve another.
		if first, limit, err = s.take(ctx, k, n); err != nil || first != 0 {
			return first, limit, err
		}
	}
	block := s.opts.Block
	start, err := s.reserve(ctx, key, block)
	if err != nil {
		return 0, 0, fmt.Errorf("reserve versions of %s: %w", key, err)
	}
	if start == 0 || start > maxVersion-block {
		return 0, 0, fmt.Errorf("reserve versions of %s: block at %d outside [1, 2^53-%d]", key, start, block)
	}
	res, err := installScript.Run(ctx, s.rdb, []string{k},
		start, start+block, n, start+n, s.opts.VersionTTL.Milliseconds()).Int64Slice()
	if err == nil && len(res) != 3 {
		err = errors.New("install script: unexpected reply")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("install versions of %s at %d: %w", key, start, translate(err))
	}
	return uint64(res[1]), uint64(res[2]), nil
}

// join makes the caller the refiller of key, or returns the channel that
// the current refiller closes when it is done.
func (s *State) join(key string) (done chan struct{}, leader bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if done, ok := s.flights[key]; ok {
		return done, false
	}
	done = make(chan struct{})
	s.flights[key] = done
	return done, true
}

func (s *State) leave(key string, done chan struct{}) {
	s.flightMu.Lock()
	delete(s.flights, key)
	s.flightMu.Unlock()
	close(done)
}

// maxFences bounds the keys whose newest block a process remembers. A key
// pushed out loses only the guard against the FLUSHALL race of Next. A var
// for tests.
var maxFences = 1 << 16

// fences remembers, per key, the limit of the newest block this process
// took versions from. Blocks never overlap and grow, so a block ending
// below it is older: Redis lost the newer one and a stale refill put the
// older one back. Past maxFences keys the least recently used leaves
// (hashicorp/golang-lru): the keys in use keep their guard.
type fences struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, uint64] // made at the first raise
}

// get returns key's fence, 0 if unknown.
func (f *fences) get(key string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lru == nil {
		return 0
	}
	fence, _ := f.lru.Get(key)
	return fence
}

// raise moves key's fence up to limit.
func (f *fences) raise(key string, limit uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lru == nil {
		var err error
		if f.lru, err = simplelru.NewLRU[string, uint64](maxFences, nil); err != nil {
			panic(err) // only for a size < 1
		}
	}
	if fence, ok := f.lru.Peek(key); ok && limit <= fence {
		return
	}
	f.lru.Add(key, limit)
}

// TakeEach implements state.EachVersions: one pipelined round trip takes
// counts[i] versions of each keys[i] from the cached blocks; 0 marks a key
// whose block is missing, short, or older than this process's fence, which
// the caller then gets from Next (which refills).
func (s *State) TakeEach(ctx context.Context, keys []string, counts []uint64) ([]uint64, error) {
	if s.closed.Load() {
		return nil, state.ErrClosed
	}
	var calls []call
	var idx []int
	for i, k := range keys {
		if counts[i] < 1 {
			return nil, fmt.Errorf("take %d versions of %s: %w", counts[i], k, ErrInvalid)
		}
		if counts[i] <= s.opts.Block { // more than a block: the caller's Next chunks it
			calls = append(calls, call{keys: []string{s.versionKey(k)}, args: []any{counts[i]}})
			idx = append(idx, i)
		}
	}
	out := make([]uint64, len(keys))
	for j, cmd := range s.runPipelined(ctx, nextScript, calls) {
		i := idx[j]
		res, err := cmd.Int64Slice()
		if err == nil && len(res) != 2 {
			err = errors.New("next script: unexpected reply")
		}
		if err != nil {
			return nil, fmt.Errorf("take versions of %s: %w", keys[i], translate(err))
		}
		first, limit := uint64(res[0]), uint64(res[1])
		if first != 0 && limit >= s.fences.get(keys[i]) {
			s.fences.raise(keys[i], limit)
			out[i] = first
		}
		// else: a stale or short block; versions taken from a stale block
		// are a hole, never handed out twice.
	}
	return out, nil
}
