package loglimit

import (
	"testing"

	"golang.org/x/time/rate"
)

// TestAllow: the burst passes, the rest is held back and counted, and the
// next line allowed carries the count once.
func TestAllow(t *testing.T) {
	l := New(1e-9, 2) // no refill within the test
	for i := range 2 {
		if ok, n := l.Allow(); !ok || n != 0 {
			t.Fatalf("line %d of the burst: %v, %d", i, ok, n)
		}
	}
	for i := range 3 {
		if ok, _ := l.Allow(); ok {
			t.Fatalf("line %d past the burst allowed", i)
		}
	}
	l.lim.SetLimit(rate.Inf) // the rate's time has come: lines pass again
	if ok, n := l.Allow(); !ok || n != 3 {
		t.Fatalf("after the wait: %v, %d suppressed; want true, 3", ok, n)
	}
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("the next: %v, %d suppressed; want true, 0 (counted once)", ok, n)
	}
}
