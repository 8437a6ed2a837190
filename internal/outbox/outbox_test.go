package outbox_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/outbox"
	"github.com/imqtt/imqtt/internal/wait"
)

// TestLoop: a Notify runs a pass; many Notifies within PassEvery run one
// more pass, not one each; a step that reports a backlog runs again
// without waiting for a pass; Close waits for the work in flight.
func TestLoop(t *testing.T) {
	l := outbox.New()
	var passes, steps, backlog atomic.Int32
	backlog.Store(3)
	go l.Run(time.Hour, func() bool {
		steps.Add(1)
		return backlog.Add(-1) > 0
	}, func() { passes.Add(1) }, func() {})
	l.Notify()
	wait.For(t, "a pass", 5*time.Second, func() bool { return passes.Load() >= 1 })
	wait.For(t, "the backlog's steps", 5*time.Second, func() bool { return steps.Load() >= 3 })
	before := passes.Load()
	for range 100 {
		l.Notify()
	}
	wait.For(t, "the coalesced pass", 5*time.Second, func() bool { return passes.Load() > before })
	time.Sleep(2 * outbox.PassEvery) // room for passes that should not come: slowness only lowers the count
	if n := passes.Load() - before; n > 3 {
		t.Errorf("100 notifies ran %d passes, want them coalesced (at most 3)", n)
	}

	l.Work.Add(1)
	closed := make(chan bool)
	go func() { closed <- l.Close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("Close returned with work in flight")
	case <-time.After(50 * time.Millisecond):
	}
	l.Work.Done()
	if !<-closed {
		t.Fatal("Close reported work left")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if outbox.New().Close(ctx) {
		t.Error("Close of a loop never run reported done before its ctx ended")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{0: time.Second, 3: 8 * time.Second, 30: 5 * time.Minute} {
		for range 50 {
			if d := outbox.Backoff(n, 5*time.Minute); d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(time.Minute).Format(http.TimeFormat):  time.Minute,
		now.Add(-time.Minute).Format(http.TimeFormat): 0,
	} {
		if got := outbox.RetryAfter(h, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}
