package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/wire"
)

// RegistryOptions configure a Registry.
type RegistryOptions struct {
	Prefix string
	Node   string
	// Self describes this node now (its addresses and load); it is called
	// on every heartbeat.
	Self func() wire.Endpoint
	// Interval between heartbeats (default 1s); a node that misses TTL
	// (default 5s) of them has left.
	Interval, TTL time.Duration
	Logger        *slog.Logger
}

// Registry keeps this node in the cluster's list of live nodes, and reads
// that list. The list is one Redis hash, node -> endpoint and until when it
// is live; a heartbeat rewrites the node's field, so a FLUSHALL or a Redis
// restart empties the list for at most one Interval.
type Registry struct {
	rdb  goredis.UniversalClient
	opts RegistryOptions
	log  *slog.Logger

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	done    chan struct{}
}

type registered struct {
	wire.Endpoint
	Until int64 `json:"until"` // unix ms
}

// NewRegistry returns a Registry; Join starts the heartbeats.
func NewRegistry(rdb goredis.UniversalClient, opts RegistryOptions) *Registry {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Registry{rdb: rdb, opts: opts, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{})}
}

func (r *Registry) key() string { return r.opts.Prefix + "{nodes}:endpoints" }

// Join registers this node and keeps it registered until Leave.
func (r *Registry) Join(ctx context.Context) error {
	if err := r.beat(ctx); err != nil {
		return fmt.Errorf("cluster registry: join: %w", err)
	}
	go beatEvery(r.opts.Interval, r.stop, r.done, r.log, "cluster registry: heartbeat", r.beat)
	return nil
}

// beatEvery calls beat every interval, each call given the interval to
// finish, a failure logged as what, until stop closes; then it closes done.
func beatEvery(interval time.Duration, stop <-chan struct{}, done chan<- struct{}, log *slog.Logger, what string,
	beat func(context.Context) error) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		if err := beat(ctx); err != nil {
			log.Warn(what, "err", err)
		}
		cancel()
	}
}

func (r *Registry) beat(ctx context.Context) error {
	v, err := json.Marshal(registered{Endpoint: r.opts.Self(), Until: time.Now().Add(r.opts.TTL).UnixMilli()})
	if err != nil {
		return err
	}
	return r.rdb.HSet(ctx, r.key(), r.opts.Node, v).Err()
}

// Leave stops the heartbeats and removes this node from the list, so
// clients asking /v1/endpoints stop being sent here (a drain). Idempotent.
func (r *Registry) Leave(ctx context.Context) error {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := r.rdb.HDel(ctx, r.key(), r.opts.Node).Err(); err != nil {
		return fmt.Errorf("cluster registry: leave: %w", err)
	}
	return nil
}

// Endpoints lists the live nodes, least loaded first, and forgets nodes
// that stopped beating.
func (r *Registry) Endpoints(ctx context.Context) ([]wire.Endpoint, error) {
	all, err := r.rdb.HGetAll(ctx, r.key()).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster registry: list: %w", err)
	}
	now := time.Now().UnixMilli()
	var out []wire.Endpoint
	var dead []string
	for node, v := range all {
		var e registered
		if err := json.Unmarshal([]byte(v), &e); err != nil || e.Until < now {
			dead = append(dead, node)
			continue
		}
		out = append(out, e.Endpoint)
	}
	if len(dead) > 0 {
		// A node that beats again re-adds itself; a late delete of a fresh
		// beat costs that node one Interval in the list.
		if err := r.rdb.HDel(ctx, r.key(), dead...).Err(); err != nil {
			r.log.Warn("cluster registry: forget dead nodes", "nodes", dead, "err", err)
		}
	}
	slices.SortFunc(out, func(a, b wire.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Load, b.Load), cmp.Compare(a.Node, b.Node))
	})
	return out, nil
}
