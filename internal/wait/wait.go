// Package wait is how a test waits for something to happen: it polls a
// condition with a short backoff until the condition holds, and fails the
// test, naming what it waited for, if it does not hold in time.
//
// Tests wait on what they can observe, never for a fixed time: a sleep is
// either too short on a loaded machine (a flaky test) or too long everywhere
// else (a slow one). This is nats-server's checkFor, for every module of
// this repository that can import it (the e2e module too).
package wait

import (
	"errors"
	"testing"
	"time"
)

// The pause between two polls starts at firstPause and doubles up to
// maxPause: a condition that holds at once costs a millisecond, and one
// that takes seconds is checked twenty times a second.
const (
	firstPause = time.Millisecond
	maxPause   = 50 * time.Millisecond
)

// errFalse is what a false condition of For counts as.
var errFalse = errors.New("condition false")

// For polls cond until it returns true and returns then; if it has not
// within the given time, it fails the test with "timed out after D waiting
// for WHAT" at the caller's line. cond runs on the caller's goroutine, at
// least once, the last time at the deadline.
func For(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	if poll(within, func() error {
		if cond() {
			return nil
		}
		return errFalse
	}) != nil {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// ForErr is For for a condition that says why it does not hold yet: it
// polls cond until it returns nil, and a timeout reports the last error.
func ForErr(t testing.TB, what string, within time.Duration, cond func() error) {
	t.Helper()
	if err := poll(within, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s: %v", within, what, err)
	}
}

// poll returns nil as soon as cond does, or cond's last error once within
// has passed.
func poll(within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	pause := firstPause
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, maxPause)
	}
}
