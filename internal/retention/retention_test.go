package retention_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/retention"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// clock is a test's time: Now is at, Sleep moves it on and records how
// long was asked.
type clock struct {
	mu     sync.Mutex
	at     time.Time
	slept  []time.Duration
	failAt int // Sleep fails (as a canceled context) on this call, 1-based; 0: never
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *clock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	if c.failAt == len(c.slept) {
		return context.Canceled
	}
	c.at = c.at.Add(d)
	return nil
}

func openStore(t *testing.T) *pebble.Store {
	t.Helper()
	s, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// sendAt commits n 1:1 messages alice -> bob with IDs of time at.
func sendAt(t *testing.T, s *pebble.Store, at time.Time, n int) []int64 {
	t.Helper()
	ctx := t.Context()
	var b store.Batch
	base := retention.Bound(at, 0)
	var ids []int64
	for i := range n {
		id := base + int64(i)
		fv, _ := s.ReserveVersions(ctx, "alice", 1)
		tv, _ := s.ReserveVersions(ctx, "bob", 1)
		cmid := "c" + strconv.FormatInt(id, 10)
		b.Messages = append(b.Messages, store.Message{ID: id, From: "alice", To: "bob", Type: "text", Body: "x", CMID: cmid, TS: at.UnixMilli()})
		b.Entries = append(b.Entries, store.Entry{User: "alice", Ver: fv, Peer: "bob", Out: true, MsgID: id},
			store.Entry{User: "bob", Ver: tv, Peer: "alice", MsgID: id})
		b.Convs = append(b.Convs, store.ConvUpdate{User: "alice", Peer: "bob", MsgID: id, TS: at.UnixMilli(), Ver: fv},
			store.ConvUpdate{User: "bob", Peer: "alice", MsgID: id, TS: at.UnixMilli(), Ver: tv, Incoming: true})
		b.Acks = append(b.Acks, store.Ack{From: "alice", CMID: cmid, ID: id, Ver: fv, TS: at.UnixMilli()})
		ids = append(ids, id)
	}
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return ids
}

func present(t *testing.T, s *pebble.Store, ids []int64) int {
	t.Helper()
	ms, err := s.GetMessages(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// TestSweep: messages older than the period go, in chunks at the rate;
// younger ones stay; a sweep with nothing to do waits for nothing.
func TestSweep(t *testing.T) {
	s := openStore(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	old := sendAt(t, s, now.Add(-3*time.Hour), 35)
	young := sendAt(t, s, now.Add(-30*time.Minute), 5)
	c := &clock{at: now}
	j := retention.New(s, nil, retention.Options{Period: time.Hour, Rate: 100, Chunk: 10, Now: c.now, Sleep: c.sleep})
	n, err := j.Sweep(t.Context())
	if err != nil || n != 35 {
		t.Fatalf("sweep: %d, %v; want 35", n, err)
	}
	if got := present(t, s, old); got != 0 {
		t.Errorf("%d old messages left", got)
	}
	if got := present(t, s, young); got != 5 {
		t.Errorf("%d of 5 young messages left", got)
	}
	// 10 a chunk at 100/s: 100ms after each full chunk; the last (5) ends it.
	if want := []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}; !slices.Equal(c.slept, want) {
		t.Errorf("slept %v, want %v", c.slept, want)
	}
	c.slept = nil
	if n, err := j.Sweep(t.Context()); err != nil || n != 0 || len(c.slept) != 0 {
		t.Errorf("second sweep: %d, %v, slept %v", n, err, c.slept)
	}
	// An hour on, the young ones are old.
	c.at = now.Add(time.Hour)
	if n, err := j.Sweep(t.Context()); err != nil || n != 5 {
		t.Errorf("sweep an hour on: %d, %v", n, err)
	}
}

// TestSweepResumes: a sweep cut short (Close, a crash) leaves the store's
// cursor where its last chunk ended; the next sweep, of a new Jobs,
// finishes it.
func TestSweepResumes(t *testing.T) {
	s := openStore(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	old := sendAt(t, s, now.Add(-3*time.Hour), 30)
	c := &clock{at: now, failAt: 2}
	j := retention.New(s, nil, retention.Options{Period: time.Hour, Rate: 100, Chunk: 10, Now: c.now, Sleep: c.sleep})
	n, err := j.Sweep(t.Context())
	if !errors.Is(err, context.Canceled) || n != 20 {
		t.Fatalf("cut sweep: %d, %v; want 20 and canceled", n, err)
	}
	if got := present(t, s, old); got != 10 {
		t.Errorf("%d left after the cut, want 10", got)
	}
	c.failAt = 0
	j = retention.New(s, nil, retention.Options{Period: time.Hour, Rate: 100, Chunk: 10, Now: c.now, Sleep: c.sleep})
	if n, err := j.Sweep(t.Context()); err != nil || n != 10 {
		t.Errorf("resumed sweep: %d, %v; want 10", n, err)
	}
}

// TestBound: the bound of a time is the lowest ID of that millisecond.
func TestBound(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	b := retention.Bound(at, time.Hour)
	if b <= 0 || retention.Bound(at, 2*time.Hour) >= b || retention.Bound(at.Add(-time.Hour), 0) != b {
		t.Errorf("bounds do not follow time: %d", b)
	}
	if retention.Bound(time.UnixMilli(0), time.Hour) != 0 {
		t.Error("a time before the snowflake epoch")
	}
}

// expirer records the recalls asked of it; fail makes them fail.
type expirer struct {
	mu   sync.Mutex
	ids  []int64
	fail bool
}

func (e *expirer) Expire(_ context.Context, id int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail {
		return errors.New("unavailable")
	}
	e.ids = append(e.ids, id)
	return nil
}

// TestBurn: a burn is recalled once it is due and then deleted; one whose
// recall fails stays for the next look.
func TestBurn(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ids := sendAt(t, s, now, 2)
	if err := s.Commit(ctx, &store.Batch{Burns: []store.Burn{{MsgID: ids[0], User: "bob", Peer: "alice", TTL: 10},
		{MsgID: ids[1], User: "bob", Peer: "alice", TTL: 60}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBurns(ctx, "bob", "alice", ids[1], now.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	c := &clock{at: now.Add(5 * time.Second)}
	e := &expirer{}
	j := retention.New(s, e, retention.Options{Now: c.now, Sleep: c.sleep})
	if n, err := j.Burn(ctx); err != nil || n != 0 {
		t.Errorf("before due: %d, %v", n, err)
	}
	c.at = now.Add(10 * time.Second)
	e.fail = true
	if n, err := j.Burn(ctx); err == nil || n != 0 {
		t.Errorf("a failing recall: %d, %v", n, err)
	}
	e.fail = false
	if n, err := j.Burn(ctx); err != nil || n != 1 || !slices.Equal(e.ids, ids[:1]) {
		t.Errorf("due: %d, %v, recalled %v", n, err, e.ids)
	}
	if n, _ := j.Burn(ctx); n != 0 {
		t.Errorf("recalled again: %d", n)
	}
	c.at = now.Add(time.Minute)
	if n, err := j.Burn(ctx); err != nil || n != 1 || !slices.Equal(e.ids, ids) {
		t.Errorf("the second: %d, %v, recalled %v", n, err, e.ids)
	}
}
