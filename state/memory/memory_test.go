package memory_test

import (
	"context"
	"testing"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/state/statetest"
)

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T, reserve state.ReserveFunc) state.State {
		return memory.New(reserve, memory.Options{})
	})
}

// TestConformanceSmallBlock refills often, so the refill paths race.
func TestConformanceSmallBlock(t *testing.T) {
	statetest.Run(t, func(t *testing.T, reserve state.ReserveFunc) state.State {
		return memory.New(reserve, memory.Options{Block: 50})
	})
}

// TestConformanceEvicting holds one key's block a shard, so keys are
// evicted while others refill them.
func TestConformanceEvicting(t *testing.T) {
	statetest.Run(t, func(t *testing.T, reserve state.ReserveFunc) state.State {
		return memory.New(reserve, memory.Options{Block: 50, VersionKeys: 1})
	})
}

// TestReserveBackwards: a store that hands out a block below the cached one
// would break "increasing"; Next refuses it instead.
func TestReserveBackwards(t *testing.T) {
	reserve := func(ctx context.Context, key string, n uint64) (uint64, error) { return 1, nil }
	s := memory.New(reserve, memory.Options{Block: 2})
	for want := uint64(1); want <= 2; want++ {
		if got, err := s.Next(t.Context(), "alice", 1); err != nil || got != want {
			t.Fatalf("next: %d, %v; want %d", got, err, want)
		}
	}
	if got, err := s.Next(t.Context(), "alice", 1); err == nil {
		t.Fatalf("next after a block that went backwards: %d, no error", got)
	}
}
