// Package memory is the in-process state.State of the embedded server:
// version blocks cached per user and presence in maps. Losing it (a
// restart) loses nothing, because versions come from blocks reserved in the
// store and presence is rebuilt as devices reconnect.
package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"sync/atomic"

	"github.com/imqtt/imqtt/state"
)

// ErrInvalid is returned for an n outside [1, block size].
var ErrInvalid = errors.New("invalid argument")

// DefaultBlock is how many versions one reservation takes by default.
const DefaultBlock = 1000

// shards spreads keys over independent locks so that users do not contend.
const shards = 64

// Options tunes the state. The zero value is usable.
type Options struct {
	// Block is how many versions of a key are reserved from the store at a
	// time (default DefaultBlock). A restart abandons the rest of each block,
	// leaving a hole that sync's upto covers.
	Block uint64
	// LimitKeys bounds the Limiter's keys (default DefaultLimitKeys); past
	// it the least recently used key is forgotten.
	LimitKeys int
	// VersionKeys bounds the keys whose block is cached (default
	// DefaultVersionKeys, spread over the shards); past it the least
	// recently used key's block is abandoned.
	VersionKeys int
}

func (o Options) withDefaults() Options {
	if o.Block == 0 {
		o.Block = DefaultBlock
	}
	if o.LimitKeys <= 0 {
		o.LimitKeys = DefaultLimitKeys
	}
	if o.VersionKeys <= 0 {
		o.VersionKeys = DefaultVersionKeys
	}
	return o
}

// State is a state.State in process memory. Safe for concurrent use.
type State struct {
	reserve state.ReserveFunc
	block   uint64
	seed    maphash.Seed

	versionKeys int // Options.VersionKeys
	closed      atomic.Bool

	versions [shards]versionShard
	presence [shards]presenceShard
	devices  atomic.Int64
	limits   limits
}

var _ state.State = (*State)(nil)

// New returns a State that reserves version blocks with reserve (the
// store's ReserveVersions).
func New(reserve state.ReserveFunc, opts Options) *State {
	opts = opts.withDefaults()
	return &State{reserve: reserve, block: opts.Block, seed: maphash.MakeSeed(), limits: limits{max: opts.LimitKeys}, versionKeys: opts.VersionKeys}
}

func (s *State) shard(key string) int {
	return int(maphash.String(s.seed, key) % shards)
}

// Ping reports state.ErrClosed after Close, nil before.
func (s *State) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return state.ErrClosed
	}
	return ctx.Err()
}

// Close drops nothing (there is nothing to flush); later calls return
// state.ErrClosed. Close is idempotent.
func (s *State) Close() error {
	s.closed.Store(true)
	return nil
}
