package wait

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of ending the
// test, so that the failures of For and ForErr can be checked.
type recorder struct {
	testing.TB // nil: a method not overridden here panics
	helper     int
	failed     []string
}

func (r *recorder) Helper() { r.helper++ }

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

func TestForReturnsWhenCondHolds(t *testing.T) {
	var r recorder
	calls := 0
	start := time.Now()
	For(&r, "the third call", time.Minute, func() bool { calls++; return calls == 3 })
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v for a condition that holds on the third poll", took)
	}
	if calls != 3 {
		t.Errorf("cond called %d times, want 3: For went on polling after it held", calls)
	}
	if len(r.failed) != 0 {
		t.Errorf("failed: %q", r.failed)
	}

	calls = 0
	For(&r, "nothing", time.Minute, func() bool { calls++; return true })
	if calls != 1 || len(r.failed) != 0 {
		t.Errorf("a condition already true: %d calls, failures %q", calls, r.failed)
	}
}

func TestForFailsAfterWithin(t *testing.T) {
	var r recorder
	calls := 0
	start := time.Now()
	For(&r, "the moon", 300*time.Millisecond, func() bool { calls++; return false })
	took := time.Since(start)
	if took < 300*time.Millisecond {
		t.Errorf("gave up after %v, before the 300ms it was given", took)
	}
	if want := "timed out after 300ms waiting for the moon"; len(r.failed) != 1 || r.failed[0] != want {
		t.Errorf("failures %q, want [%q]", r.failed, want)
	}
	if r.helper == 0 {
		t.Error("For does not call t.Helper: a failure would name wait.go, not the caller's line")
	}
	// Backoff from 1ms to 50ms: 1+2+4+8+16+32 = 63ms for the first seven
	// polls, then one each 50ms: about 12 in 300ms. Neither a busy loop nor
	// a single look.
	if calls < 3 || calls > 60 {
		t.Errorf("cond called %d times in 300ms, want about 12", calls)
	}
}

func TestForErrReportsTheLastError(t *testing.T) {
	var r recorder
	calls := 0
	ForErr(&r, "a row", 100*time.Millisecond, func() error { calls++; return fmt.Errorf("attempt %d: no row", calls) })
	want := fmt.Sprintf("timed out after 100ms waiting for a row: attempt %d: no row", calls)
	if len(r.failed) != 1 || r.failed[0] != want {
		t.Errorf("failures %q, want [%q]", r.failed, want)
	}

	r = recorder{}
	calls = 0
	ForErr(&r, "a row", time.Minute, func() error {
		if calls++; calls < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 4 || len(r.failed) != 0 {
		t.Errorf("nil on the fourth poll: %d calls, failures %q", calls, r.failed)
	}
}

// cond runs at least once however short within is, and its last look is
// at the deadline: what holds by then counts.
func TestForLooksAtTheDeadline(t *testing.T) {
	var r recorder
	calls := 0
	For(&r, "a first look", time.Nanosecond, func() bool { calls++; return true })
	if calls != 1 || len(r.failed) != 0 {
		t.Errorf("a first look that holds: %d calls, failures %q", calls, r.failed)
	}
	start := time.Now()
	For(&r, "the deadline", 20*time.Millisecond, func() bool { return time.Since(start) >= 20*time.Millisecond })
	if len(r.failed) != 0 {
		t.Errorf("a condition that holds at the deadline: failures %q", r.failed)
	}
}
