package sync_test

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// fakeSource is an inbox of versions 1..n that counts and can fail reads,
// and notes a read made after the test said the reply was over.
type fakeSource struct {
	n      uint64
	mu     gosync.Mutex
	reads  int
	failAt int // the read (from 1) that fails; 0: none
	over   bool
	late   bool // a read began after over
}

func (f *fakeSource) Range(ctx context.Context, user string, since uint64, limit int) ([]store.Event, error) {
	f.mu.Lock()
	f.reads++
	n, fail := f.reads, f.failAt == f.reads
	f.late = f.late || f.over
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fail {
		return nil, fmt.Errorf("read %d failed", n)
	}
	var out []store.Event
	for v := since + 1; v <= f.n && len(out) < limit; v++ {
		out = append(out, store.Event{Entry: store.Entry{User: user, Ver: v}, Msg: store.Message{ID: int64(v), From: "a", To: user, TS: 1}})
	}
	return out, nil
}

func (f *fakeSource) Head(context.Context, string) (uint64, error) { return f.n, nil }
func (f *fakeSource) GroupRange(context.Context, string, uint64, int) ([]store.Message, error) {
	return nil, errors.New("no groups")
}
func (f *fakeSource) GroupHead(context.Context, string) (store.GroupHead, error) {
	return store.GroupHead{}, errors.New("no groups")
}
func (f *fakeSource) Epoch() string { return "ep" }
func (f *fakeSource) GetMessages(context.Context, []int64) ([]store.Message, error) {
	return nil, errors.New("no references")
}
func (f *fakeSource) ReactionsOf(context.Context, []int64) (map[int64][]store.ReactionSum, error) {
	return nil, errors.New("no reactions")
}
func (f *fakeSource) Hidden(context.Context, string, []int64) (map[int64]bool, error) {
	return nil, errors.New("no hidden rows")
}

func (f *fakeSource) finish() (reads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.over = true
	return f.reads
}

func (f *fakeSource) lateRead() bool {
	// Not a wait: a late read is an absence with nothing to wait on; give one time to begin.
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.late
}

// A reply of many batches comes out in order and contiguous, only the
// first with Reset.
func TestPagesInOrder(t *testing.T) {
	src := &fakeSource{n: 100}
	s := imsync.New(src, imsync.Options{BatchItems: 7})
	var got []wire.Sync
	err := s.Serve(context.Background(), "bob", wire.SyncRequest{Since: 3, Epoch: "old", Limit: 90}, func(b wire.Sync) error {
		got = append(got, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if src.finish(); src.lateRead() {
		t.Fatal("the store was read after Serve returned")
	}
	next, total := uint64(0), 0
	for i, b := range got {
		if b.Since != next || b.Reset != (i == 0) || b.Epoch != "ep" || b.Kind != wire.KindSync {
			t.Fatalf("batch %d: %+v, want since %d", i, b, next)
		}
		for _, m := range b.Items {
			if next++; m.Ver != next {
				t.Fatalf("batch %d: ver %d, want %d", i, m.Ver, next)
			}
		}
		if b.Upto != next || !b.More { // the limit ends the reply before the end
			t.Fatalf("batch %d: %+v", i, b)
		}
		total += len(b.Items)
	}
	// a reset starts from 0; the limit stops it at 90 items, more to come
	if last := got[len(got)-1]; total != 90 || len(got) != 13 || !last.More || last.Upto != 90 {
		t.Fatalf("%d items in %d batches, last %+v", total, len(got), last)
	}
}

// A failed send stops the reply: Serve returns the error, having read at
// most one batch past it (were the next read ahead), and nothing after it
// returns.
func TestPagesEmitError(t *testing.T) {
	src := &fakeSource{n: 100}
	s := imsync.New(src, imsync.Options{BatchItems: 10})
	sent := 0
	gone := errors.New("client gone")
	err := s.Serve(context.Background(), "bob", wire.SyncRequest{Limit: 100}, func(b wire.Sync) error {
		if sent++; sent == 2 {
			return gone
		}
		return nil
	})
	if !errors.Is(err, gone) || sent != 2 {
		t.Fatalf("err %v after %d batches", err, sent)
	}
	// Serve reads batches 1 and 2 (and at most 3, were it read ahead).
	if reads := src.finish(); reads > 3 || src.lateRead() {
		t.Fatalf("%d reads, one after Serve returned: %v", reads, src.late)
	}
}

// A failed read ends the reply after the batches before it, with its error.
func TestPagesReadError(t *testing.T) {
	src := &fakeSource{n: 100, failAt: 3}
	s := imsync.New(src, imsync.Options{BatchItems: 10})
	var got []uint64
	err := s.Serve(context.Background(), "bob", wire.SyncRequest{Limit: 100}, func(b wire.Sync) error {
		got = append(got, b.Upto)
		return nil
	})
	if err == nil || len(got) != 2 || got[1] != 20 {
		t.Fatalf("err %v, batches up to %v", err, got)
	}
	if src.finish(); src.lateRead() {
		t.Fatal("the store was read after Serve returned")
	}
}

// A request whose context ends mid-reply stops.
func TestPagesContext(t *testing.T) {
	src := &fakeSource{n: 1000}
	s := imsync.New(src, imsync.Options{BatchItems: 10})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := 0
	err := s.Serve(ctx, "bob", wire.SyncRequest{Limit: 1000}, func(b wire.Sync) error {
		if sent++; sent == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || sent > 4 {
		t.Fatalf("err %v after %d batches", err, sent)
	}
	if src.finish(); src.lateRead() {
		t.Fatal("the store was read after Serve returned")
	}
}
