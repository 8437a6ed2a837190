package chat

import (
	"context"
	"sync"
	"time"

	"github.com/imqtt/imqtt/store"
)

// readMerger merges group read positions arriving within one short tick
// into one store write: in a large group many members read at once, and each
// only moves its own position forward, so the latest per (group, user) is
// all that needs writing.
type readMerger struct {
	st   store.Groups
	tick time.Duration

	mu      sync.Mutex
	pending map[[2]string]uint64
	waiters []chan error
	kick    chan struct{}
	stop    chan struct{}
}

func newReadMerger(st store.Groups, tick time.Duration) *readMerger {
	return &readMerger{st: st, tick: tick, pending: map[[2]string]uint64{}, kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// add queues a read position and waits until it is written (or ctx ends).
func (r *readMerger) add(ctx context.Context, rd store.GroupRead) error {
	done := make(chan error, 1)
	r.mu.Lock()
	k := [2]string{rd.Group, rd.User}
	r.pending[k] = max(r.pending[k], rd.Seq)
	r.waiters = append(r.waiters, done)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *readMerger) run() {
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
		}
		time.Sleep(r.tick) // let the tick's other reads arrive
		r.mu.Lock()
		pending, waiters := r.pending, r.waiters
		r.pending, r.waiters = map[[2]string]uint64{}, nil
		r.mu.Unlock()
		reads := make([]store.GroupRead, 0, len(pending))
		for k, seq := range pending {
			reads = append(reads, store.GroupRead{Group: k[0], User: k[1], Seq: seq})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.st.SetGroupReads(ctx, reads)
		cancel()
		for _, w := range waiters {
			w <- err
		}
	}
}
