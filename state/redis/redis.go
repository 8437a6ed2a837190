// Package redis is the state.State of scale-out mode: version blocks and
// presence shared by every node through Redis or Redis Cluster (go-redis
// v9). Losing Redis (FLUSHALL, a restart without persistence) loses nothing:
// versions come from blocks the store reserved, so a lost block is only a
// hole, and each node re-records the devices it holds within TTL/3.
//
// Every atomic step is a Lua script (lua/*.lua, embedded), run with EVALSHA
// and EVAL as fallback. Each key's data carries a hash tag, so what one
// script touches lives in one Redis Cluster slot:
//
//	{prefix}{v:KEY}        hash next, limit: KEY's cached version block
//	{prefix}{p:USER}:d     hash device -> "since node": USER's devices
//	{prefix}{p:USER}:e     sorted set device -> expiry (unix ms)
//	{prefix}{nodes}:count  hash node -> connected devices
//	{prefix}{nodes}:live   sorted set node -> until when the node is live
//	{prefix}{nodes}:marker:ID  one per State: its loss means Redis lost its data
//	{prefix}{r:KEY}:WINDOW    a rate limit's count in one window (limit.go)
//
// Clocks are Redis's (TIME in the scripts), so the nodes' TTLs agree.
package redis

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/state"
)

var (
	// ErrInvalid is returned for a bad argument or option.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable wraps what Redis or the network answered when a
	// command failed: Redis is down, unreachable, or refused the command.
	ErrUnavailable = errors.New("redis unavailable")
)

// Defaults of Options.
const (
	DefaultPrefix      = "imqtt:"
	DefaultBlock       = 1000
	DefaultPresenceTTL = 15 * time.Second
	DefaultVersionTTL  = 7 * 24 * time.Hour
)

// maxVersion bounds versions: the scripts do arithmetic in Lua numbers
// (doubles), exact below 2^53. At a million versions a second one key would
// take 285 years to reach it.
const maxVersion = 1 << 53

// Options tunes the state. The zero value is usable.
type Options struct {
	// Prefix starts every key (default DefaultPrefix), so deployments and
	// tests can share a Redis. It must not contain '{' or '}': Redis
	// Cluster hashes the first {...} of a key, which must be ours.
	Prefix string
	// Block is how many versions of a key are reserved from the store at a
	// time (default DefaultBlock). All nodes share a key's block; a lost
	// block (FLUSHALL, restart, expiry) leaves a hole that sync's upto covers.
	Block uint64
	// PresenceTTL is how long a device stays recorded after its node last
	// refreshed it (default DefaultPresenceTTL). Each State refreshes the
	// devices it marked online every PresenceTTL/3, and a node that dies
	// leaves Devices and Count within PresenceTTL.
	PresenceTTL time.Duration
	// VersionTTL is how long a key's cached block outlives its last refill
	// (default DefaultVersionTTL), so idle users do not fill Redis.
	VersionTTL time.Duration
	// LossCheck is how often a State checks that Redis still has its data,
	// to re-record its devices at once when not (default 1s).
	LossCheck time.Duration
	// Logger receives the background refresher's failures (default: none).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Block == 0 {
		o.Block = DefaultBlock
	}
	if o.PresenceTTL == 0 {
		o.PresenceTTL = DefaultPresenceTTL
	}
	if o.VersionTTL == 0 {
		o.VersionTTL = DefaultVersionTTL
	}
	if o.LossCheck <= 0 {
		o.LossCheck = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch {
	case strings.ContainsAny(o.Prefix, "{}"):
		return fmt.Errorf("prefix %q has a brace: %w", o.Prefix, ErrInvalid)
	case o.Block > maxVersion/2:
		return fmt.Errorf("block %d above %d: %w", o.Block, uint64(maxVersion/2), ErrInvalid)
	case o.PresenceTTL < 30*time.Millisecond:
		return fmt.Errorf("presence TTL %v below 30ms: %w", o.PresenceTTL, ErrInvalid)
	case o.VersionTTL < time.Second:
		return fmt.Errorf("version TTL %v below 1s: %w", o.VersionTTL, ErrInvalid)
	}
	return nil
}

//go:embed lua/lib.lua
var libLua string

var (
	//go:embed lua/next.lua
	nextLua string
	//go:embed lua/install.lua
	installLua string
	//go:embed lua/online.lua
	onlineLua string
	//go:embed lua/offline.lua
	offlineLua string
	//go:embed lua/refresh.lua
	refreshLua string
	//go:embed lua/devices.lua
	devicesLua string
	//go:embed lua/count.lua
	countLua string
	//go:embed lua/total.lua
	totalLua string
)

// The scripts. Those that use lib.lua's helpers have it prepended.
var (
	nextScript    = goredis.NewScript(nextLua)
	installScript = goredis.NewScript(installLua)
	onlineScript  = goredis.NewScript(libLua + onlineLua)
	offlineScript = goredis.NewScript(libLua + offlineLua)
	refreshScript = goredis.NewScript(libLua + refreshLua)
	devicesScript = goredis.NewScript(libLua + devicesLua)
	countScript   = goredis.NewScript(libLua + countLua)
	totalScript   = goredis.NewScript(libLua + totalLua)

	allScripts = []*goredis.Script{nextScript, installScript, onlineScript, offlineScript,
		refreshScript, devicesScript, countScript, totalScript}
)

// State is a state.State in Redis. Safe for concurrent use.
type State struct {
	rdb     goredis.UniversalClient
	limiter *redis_rate.Limiter // GCRA over rdb (limit.go)
	own     bool                // Close closes rdb (Open made it)
	reserve state.ReserveFunc
	opts    Options
	log     *slog.Logger
	closed  atomic.Bool

	flightMu sync.Mutex
	flights  map[string]chan struct{} // key -> closed when this process's refill of key ends
	fences   fences

	// countMu orders this process's count updates: presence changes hold it
	// shared from their script to their count delta, the refresher holds it
	// alone while it sets its nodes' counts, so the two never interleave.
	countMu sync.RWMutex
	ownMu   sync.Mutex
	owned   map[devKey]state.Device // devices this process marked online
	nodes   map[string]struct{}     // nodes whose counts this process sets

	marker      string // a key of this State's whose loss means Redis lost its data
	stopRefresh context.CancelFunc
	refreshDone chan struct{}
	closeOnce   sync.Once
}

type devKey struct{ user, device string }

var _ state.State = (*State)(nil)

// New returns a State on client, which it pings and loads its scripts into.
// The State does not own client: Close leaves it open. reserve is the
// store's ReserveVersions, shared by every node.
func New(ctx context.Context, client goredis.UniversalClient, reserve state.ReserveFunc, opts Options) (*State, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("redis state: %w", err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis state: ping: %w", translate(err))
	}
	for _, sc := range allScripts {
		if err := sc.Load(ctx, client).Err(); err != nil {
			return nil, fmt.Errorf("redis state: load scripts: %w", translate(err))
		}
	}
	bg, stop := context.WithCancel(context.Background())
	s := &State{
		rdb: client, limiter: redis_rate.NewLimiter(client), reserve: reserve, opts: opts, log: opts.Logger,
		flights: map[string]chan struct{}{},
		owned:   map[devKey]state.Device{}, nodes: map[string]struct{}{},
		stopRefresh: stop, refreshDone: make(chan struct{}),
		marker: opts.Prefix + "{nodes}:marker:" + randomID(),
	}
	go s.refresher(bg)
	return s, nil
}

// Open connects to the Redis at url and returns a State that owns the
// connection. url is what go-redis parses: redis://[user:pass@]host:port/db
// (rediss:// for TLS, unix:///path for a socket) for one server, or
// redis://host:port?addr=host2:port2&addr=host3:port3 for Redis Cluster.
func Open(ctx context.Context, url string, reserve state.ReserveFunc, opts Options) (*State, error) {
	client, err := Dial(url)
	if err != nil {
		return nil, err
	}
	s, err := New(ctx, client, reserve, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// Dial makes a client for url (see Open) without connecting; the caller
// closes it. Scale-out nodes share one client between the state and the
// cluster bus.
func Dial(url string) (goredis.UniversalClient, error) {
	if strings.Contains(url, "addr=") {
		o, err := goredis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis state: parse cluster URL: %w: %w", ErrInvalid, err)
		}
		return goredis.NewClusterClient(o), nil
	}
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis state: parse URL: %w: %w", ErrInvalid, err)
	}
	return goredis.NewClient(o), nil
}

// Ping reports whether Redis answers; state.ErrClosed after Close.
func (s *State) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return state.ErrClosed
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", translate(err))
	}
	return nil
}

// Close stops refreshing this process's devices (they expire within
// PresenceTTL unless their clients reconnect elsewhere) and closes the
// client if Open made it. Later calls return state.ErrClosed. Idempotent.
func (s *State) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stopRefresh()
		<-s.refreshDone
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.rdb.Del(ctx, s.marker).Err() // best effort: a dead process's marker is a few bytes
		cancel()
		if s.own {
			err = s.rdb.Close()
		}
	})
	return err
}

// translate maps a driver error to this package's: the context's own
// errors stay as they are, a closed client is state.ErrClosed, and anything
// else (network, server) is ErrUnavailable.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("%w: %w", state.ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (s *State) versionKey(key string) string { return s.opts.Prefix + "{v:" + key + "}" }

func (s *State) presenceKeys(user string) []string {
	tag := s.opts.Prefix + "{p:" + user + "}"
	return []string{tag + ":d", tag + ":e"}
}

func (s *State) nodeKeys() []string {
	return []string{s.opts.Prefix + "{nodes}:count", s.opts.Prefix + "{nodes}:live"}
}

// call is one script run in a pipeline.
type call struct {
	keys []string
	args []any
}

// runPipelined runs sc once per call in one round trip per shard, and
// again with EVAL for those that found the script cache empty (a restarted
// Redis). It returns the commands in the order of calls; each carries its
// own result or error.
func (s *State) runPipelined(ctx context.Context, sc *goredis.Script, calls []call) []*goredis.Cmd {
	cmds := make([]*goredis.Cmd, len(calls))
	pipe := s.rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = sc.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors stay on each command
	var again []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		pipe = s.rdb.Pipeline()
		for _, i := range again {
			cmds[i] = sc.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	return cmds
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, goredis.ErrNoScript) || goredis.HasErrorPrefix(err, "NOSCRIPT"))
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
