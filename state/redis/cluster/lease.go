package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Snowflake node numbers: 10 bits.
const nodeNumbers = 1024

// leaseScript takes or keeps a number: it succeeds if the key is free or
// already this holder's, and sets its expiry either way.
// KEYS[1]: the number's key; ARGV[1]: holder; ARGV[2]: TTL ms.
var leaseScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)

// releaseScript frees a number if this holder has it.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// ErrNoNumber is returned when all 1024 numbers are leased.
var ErrNoNumber = errors.New("no free snowflake node number")

// LeaseOptions configure a Lease.
type LeaseOptions struct {
	Prefix string
	Node   string
	TTL    time.Duration // default 30s; renewed every TTL/3
	// Changed is called with a new number when the lease was lost to another
	// process (possible only after Redis lost the key) and another was taken.
	Changed func(n int64)
	Logger  *slog.Logger
}

// Lease holds one snowflake node number for this process, so message IDs
// made on different nodes never collide. Each process is its own holder
// (node ID plus a random suffix): two processes started with the same node
// ID by mistake still get different numbers.
type Lease struct {
	rdb    goredis.UniversalClient
	opts   LeaseOptions
	holder string
	log    *slog.Logger

	mu     sync.Mutex
	n      int64
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// TakeLease takes a free number, preferring one derived from the node ID,
// and keeps renewing it until Release.
func TakeLease(ctx context.Context, rdb goredis.UniversalClient, opts LeaseOptions) (*Lease, error) {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	l := &Lease{rdb: rdb, opts: opts, holder: opts.Node + "/" + hex.EncodeToString(suffix), log: opts.Logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	n, err := l.take(ctx)
	if err != nil {
		return nil, err
	}
	l.n = n
	go l.renew()
	return l, nil
}

// Number is the leased node number.
func (l *Lease) Number() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *Lease) key(n int64) string { return l.opts.Prefix + "{sf}:" + strconv.FormatInt(n, 10) }

func (l *Lease) take(ctx context.Context) (int64, error) {
	h := fnv.New32a()
	h.Write([]byte(l.opts.Node))
	first := int64(h.Sum32() % nodeNumbers)
	for i := range int64(nodeNumbers) {
		n := (first + i) % nodeNumbers
		ok, err := leaseScript.Run(ctx, l.rdb, []string{l.key(n)}, l.holder, l.opts.TTL.Milliseconds()).Int()
		if err != nil {
			return 0, fmt.Errorf("lease snowflake node number: %w", err)
		}
		if ok == 1 {
			return n, nil
		}
	}
	return 0, ErrNoNumber
}

func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.opts.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.opts.TTL/3)
		n := l.Number()
		ok, err := leaseScript.Run(ctx, l.rdb, []string{l.key(n)}, l.holder, l.opts.TTL.Milliseconds()).Int()
		switch {
		case err != nil: // Redis away: nobody else can take it meanwhile
			l.log.Warn("renew snowflake lease", "number", n, "err", err)
		case ok == 0: // lost with Redis's data and taken by a newcomer
			if m, err := l.take(ctx); err != nil {
				l.log.Error("snowflake number lost and no other free", "number", n, "err", err)
			} else {
				l.mu.Lock()
				l.n = m
				l.mu.Unlock()
				l.log.Warn("snowflake number taken by another node; moved", "from", n, "to", m)
				if l.opts.Changed != nil {
					l.opts.Changed(m)
				}
			}
		}
		cancel()
	}
}

// Release stops renewing and frees the number. Idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	l.mu.Unlock()
	<-l.done
	return releaseScript.Run(ctx, l.rdb, []string{l.key(l.Number())}, l.holder).Err()
}
