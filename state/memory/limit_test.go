package memory

import (
	"strconv"
	"testing"
	"time"

	"github.com/imqtt/imqtt/state"
)

// TestLimitKeyFlood: a flood of new keys (a spoofed user name or IP per
// attempt) keeps at most LimitKeys buckets, and the recently used ones
// survive it.
func TestLimitKeyFlood(t *testing.T) {
	s := New(nil, Options{LimitKeys: 100})
	l := state.Limit{Rate: 1, Per: time.Hour, Burst: 1}
	if d, err := s.Allow(t.Context(), "victim", l); err != nil || !d.OK {
		t.Fatalf("first: %+v %v", d, err)
	}
	for i := range 10_000 {
		if _, err := s.Allow(t.Context(), "flood:"+strconv.Itoa(i), l); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 { // the victim's key is in use: it stays
			if d, err := s.Peek(t.Context(), "victim", l); err != nil || d.OK {
				t.Fatalf("the spent bucket after %d flood keys: %+v %v", i, d, err)
			}
		}
	}
	if n := s.limitKeys(); n > 100 {
		t.Fatalf("%d keys held, want at most 100", n)
	}
}

// A Peek at a key with no bucket makes none: the login throttle peeks at
// one key per user name and IP tried, and those must not evict the spent
// buckets that hold an attacker back.
func TestLimitPeekMakesNoBucket(t *testing.T) {
	s := New(nil, Options{LimitKeys: 10})
	l := state.Limit{Rate: 1, Per: time.Hour, Burst: 1}
	if d, err := s.Allow(t.Context(), "spent", l); err != nil || !d.OK {
		t.Fatalf("first: %+v %v", d, err)
	}
	for i := range 1000 {
		if d, err := s.Peek(t.Context(), "new:"+strconv.Itoa(i), l); err != nil || !d.OK {
			t.Fatalf("peek at a new key: %+v %v", d, err)
		}
	}
	if d, err := s.Peek(t.Context(), "spent", l); err != nil || d.OK {
		t.Fatalf("the spent bucket after 1,000 peeks at new keys: %+v %v", d, err)
	}
	if n := s.limitKeys(); n != 1 {
		t.Fatalf("%d keys held, want 1", n)
	}
}
