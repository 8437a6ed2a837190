package statetest

import (
	"testing"
	"time"
)

// testLimit: a key's events are counted per window, up to the limit and
// no further; keys are apart; a new window starts again.
func testLimit(t *testing.T, f *fixture) {
	s := f.open()
	const per = 500 * time.Millisecond
	// Start early in a window, so a burst does not straddle two.
	now := time.Now()
	if off := now.UnixNano() % int64(per); off > int64(per/4) {
		time.Sleep(per - time.Duration(off))
	}
	for i := range 7 {
		ok, err := s.Allow(f.ctx, "send:alice", 5, per)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 5; ok != want {
			t.Fatalf("event %d: allowed %v, want %v", i+1, ok, want)
		}
	}
	if ok, err := s.Allow(f.ctx, "send:bob", 5, per); err != nil || !ok {
		t.Fatalf("another key: %v %v", ok, err)
	}
	time.Sleep(per)
	if ok, err := s.Allow(f.ctx, "send:alice", 5, per); err != nil || !ok {
		t.Fatalf("the next window: %v %v", ok, err)
	}
	if _, err := s.Allow(f.ctx, "k", 1, 0); err == nil {
		t.Fatal("a zero window: no error")
	}
}
