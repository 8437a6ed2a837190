// Package statetest is the conformance suite of state.State: every
// implementation runs Run from its own tests, against the contract in
// state.go.
package statetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/state"
)

// Run runs the suite. open must return a new State that reserves versions
// with reserve; the suite gives each subtest its own reserve (a new store)
// and closes what it opens when the subtest ends. Within a subtest open may
// be called again with the same reserve, which models a restart or a lost
// Redis: the new State must not repeat a version of the old one. The
// suite asks for at most 8 versions at a time, so the block size must be at
// least 8.
func Run(t *testing.T, open func(t *testing.T, reserve state.ReserveFunc) state.State) {
	cases := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"VersionsIncreasing", testVersionsIncreasing},
		{"VersionsBlocks", testVersionsBlocks},
		{"VersionsConcurrent", testVersionsConcurrent},
		{"VersionsRestart", testVersionsRestart},
		{"VersionsEach", testVersionsEach},
		{"VersionsInvalid", testVersionsInvalid},
		{"VersionsReserveError", testVersionsReserveError},
		{"Limit", testLimit},
		{"LimitLong", testLimitLong},
		{"Presence", testPresence},
		{"PresenceTakeover", testPresenceTakeover},
		{"PresenceConcurrent", testPresenceConcurrent},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fixture{t: t, ctx: t.Context(), reserve: NewReserveFunc(), openFn: open}
			c.fn(t, f)
		})
	}
}

// NewReserveFunc returns a state.ReserveFunc backed by a mutex and a map:
// an in-memory stand-in for store.Store.ReserveVersions whose versions
// start at 1 and whose blocks never overlap.
func NewReserveFunc() state.ReserveFunc {
	var (
		mu   sync.Mutex
		next = map[string]uint64{}
	)
	return func(ctx context.Context, key string, n uint64) (uint64, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errors.New("reserve 0 versions")
		}
		mu.Lock()
		defer mu.Unlock()
		first := max(next[key], 1)
		next[key] = first + n
		return first, nil
	}
}

// fixture is one subtest's reserve function and helpers.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	reserve state.ReserveFunc
	openFn  func(t *testing.T, reserve state.ReserveFunc) state.State
}

// open opens a State on the subtest's reserve and closes it at the end.
func (f *fixture) open() state.State {
	return f.openWith(f.reserve)
}

func (f *fixture) openWith(reserve state.ReserveFunc) state.State {
	f.t.Helper()
	s := f.openFn(f.t, reserve)
	f.t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, state.ErrClosed) {
			f.t.Errorf("close: %v", err)
		}
	})
	return s
}

func (f *fixture) next(s state.Versions, key string, n uint64) uint64 {
	f.t.Helper()
	first, err := s.Next(f.ctx, key, n)
	if err != nil {
		f.t.Fatalf("next %d of %s: %v", n, key, err)
	}
	if first == 0 {
		f.t.Fatalf("next %d of %s: version 0", n, key)
	}
	return first
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}
