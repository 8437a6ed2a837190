package statetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/imqtt/imqtt/state"
)

// testLimit: a key's bucket lets its burst through at once, then one event
// per interval; it says when to retry; Peek takes nothing; keys are apart;
// an invalid limit is an error.
func testLimit(t *testing.T, f *fixture) {
	s := f.open()
	l := state.Limit{Rate: 10, Per: time.Second, Burst: 5} // one event back every 100ms
	key := "send:alice:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for range 3 {
		if d, err := s.Peek(f.ctx, key, l); err != nil || !d.OK {
			t.Fatalf("peek at a full bucket: %+v %v", d, err)
		}
	}
	start := time.Now()
	for i := range 5 {
		if d, err := s.Allow(f.ctx, key, l); err != nil || !d.OK {
			t.Fatalf("event %d of a burst of 5 (after peeks, which take nothing): %+v %v", i+1, d, err)
		}
	}
	d, err := s.Allow(f.ctx, key, l)
	if err != nil || d.OK {
		t.Fatalf("event 6 of a burst of 5: %+v %v", d, err)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > l.Interval()+50*time.Millisecond {
		t.Fatalf("retry after %v, want within one interval (%v)", d.RetryAfter, l.Interval())
	}
	if p, err := s.Peek(f.ctx, key, l); err != nil || p.OK || p.RetryAfter <= 0 {
		t.Fatalf("peek at an empty bucket: %+v %v", p, err)
	}
	if d, err := s.Allow(f.ctx, "send:bob:"+key, l); err != nil || !d.OK {
		t.Fatalf("another key: %+v %v", d, err)
	}
	// The rate: the bucket refills one event per interval, not a window's
	// worth at once. Poll until the next event passes.
	for {
		d, err := s.Allow(f.ctx, key, l)
		if err != nil {
			t.Fatal(err)
		}
		if d.OK {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("no event allowed again within 5s at 10 a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if el := time.Since(start); el < l.Interval()/2 {
		t.Fatalf("the bucket refilled after %v, want about %v", el, l.Interval())
	}
	if d, err := s.Allow(f.ctx, key, l); err != nil || d.OK {
		t.Fatalf("a second event right after the refill: %+v %v", d, err)
	}

	for _, bad := range []state.Limit{{}, {Rate: 1, Burst: 1}, {Rate: 0, Per: time.Second, Burst: 1}, {Rate: 1, Per: time.Second}} {
		if _, err := s.Allow(f.ctx, "k", bad); err == nil {
			t.Fatalf("limit %+v: no error", bad)
		}
	}
}

// testLimitLong: a slow limit (per hour, as login failures use) keeps
// its state: the burst is spent and stays spent.
func testLimitLong(t *testing.T, f *fixture) {
	s := f.open()
	l := state.Limit{Rate: 3, Per: time.Hour, Burst: 3}
	key := "login_user:carol:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range 3 {
		if d, err := s.Allow(f.ctx, key, l); err != nil || !d.OK {
			t.Fatalf("event %d: %+v %v", i+1, d, err)
		}
	}
	d, err := s.Allow(f.ctx, key, l)
	if err != nil || d.OK {
		t.Fatalf("event 4 of 3 an hour: %+v %v", d, err)
	}
	if d.RetryAfter < 19*time.Minute || d.RetryAfter > 21*time.Minute {
		t.Fatalf("retry after %v, want about 20m", d.RetryAfter)
	}
}
