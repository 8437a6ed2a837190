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

// Limiter counts events per key in fixed time windows: rate limits (a
// user's sends per second), shared by every node in scale-out.
type Limiter interface {
	// Allow counts one event of key in the current window of length per
	// (windows start at multiples of per since the Unix epoch) and reports
	// whether the window's count is still within limit.
	Allow(ctx context.Context, key string, limit int64, per time.Duration) (bool, error)
}

// State bundles what the server needs.
type State interface {
	Versions
	Presence
	Limiter
	Ping(ctx context.Context) error
	Close() error
}
