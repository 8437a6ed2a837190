// Package state holds imqtt's hot state: things that are fast to reach and
// can always be rebuilt from the store. In the embedded default it lives in
// process (state/memory); in scale-out mode in Redis (state/redis).
// Every implementation passes state/statetest.
package state

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("state closed")

// ReserveFunc reserves n versions of key in the durable store and returns the
// first; it is store.Store.ReserveVersions.
type ReserveFunc func(ctx context.Context, key string, n uint64) (first uint64, err error)

// Versions hands out per-key (per-user) versions from blocks reserved in the
// store, so the store stays the authority and losing the cache loses nothing.
type Versions interface {
	// Next returns first such that [first, first+n) are versions of key that
	// no call, on any node, before or after a restart or a loss of this state,
	// has returned or will return. Successive calls for one key on one process
	// return increasing versions. n must be at least 1 and at most the block size.
	Next(ctx context.Context, key string, n uint64) (first uint64, err error)
}

// Device is one connected device.
type Device struct {
	User   string `json:"user"`
	Device string `json:"device"`
	Node   string `json:"node"`
	Since  int64  `json:"since"` // unix ms
}

// Presence tracks which devices are connected, and to which node.
type Presence interface {
	// Online records that user's device is connected to node. Idempotent;
	// a later Online of the same device replaces the node (takeover). It
	// returns the node the device was recorded on before ("" if none), so a
	// node can end the device's connection elsewhere.
	Online(ctx context.Context, d Device) (prevNode string, err error)
	// Offline removes the device if it is still recorded on node (a takeover
	// by another node is not undone by the old node's disconnect).
	Offline(ctx context.Context, user, device, node string) error
	// Devices lists user's connected devices, ordered by device ID.
	Devices(ctx context.Context, user string) ([]Device, error)
	// Count is the number of connected devices.
	Count(ctx context.Context) (int64, error)
}

// Limit is a token bucket: Burst events at once from a full bucket, which
// refills at Rate events per Per. All three must be positive: a Limiter
// refuses another Limit with its ErrInvalid.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// Valid reports whether l is a usable limit.
func (l Limit) Valid() bool { return l.Rate > 0 && l.Per > 0 && l.Burst > 0 }

// Interval is the time one event's token takes to come back.
func (l Limit) Interval() time.Duration { return l.Per / time.Duration(l.Rate) }

// Decision is a Limiter's answer: OK, or not before RetryAfter.
type Decision struct {
	OK         bool
	RetryAfter time.Duration // > 0 when !OK
}

// Limiter is a set of token buckets, one per key, shared by every node in
// scale-out: rate limits (a user's sends, the login attempts of an IP).
// A key's bucket starts full; an idle key's state may be forgotten (it then
// starts full again), so a key's limit must be the same on every call.
type Limiter interface {
	// Allow takes one event from key's bucket, or takes nothing and says
	// when one will be there.
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
	// Peek says whether Allow would take an event now, taking nothing.
	Peek(ctx context.Context, key string, l Limit) (Decision, error)
}

// State bundles what the server needs.
type State interface {
	Versions
	Presence
	Limiter
	Ping(ctx context.Context) error
	Close() error
}
