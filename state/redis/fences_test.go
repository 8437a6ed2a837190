package redis

import (
	"strconv"
	"testing"
)

// TestFencesKeepKeysInUse: past maxFences keys, the key used longest ago
// loses its fence, not a key in use (before, a random one did: a busy
// user could lose the guard against the FLUSHALL race to a flood of new
// keys).
func TestFencesKeepKeysInUse(t *testing.T) {
	defer func(n int) { maxFences = n }(maxFences)
	maxFences = 4
	var f fences
	f.raise("busy", 1000)
	for i := range 3 {
		f.raise("k"+strconv.Itoa(i), 1000)
	}
	for i := range 40 { // the busy key is used between new keys
		if got := f.get("busy"); got != 1000 {
			t.Fatalf("after %d new keys the busy key's fence is %d, want 1000", i, got)
		}
		f.raise("new"+strconv.Itoa(i), 1000)
	}
	f.raise("busy", 500) // fences only rise
	if got := f.get("busy"); got != 1000 {
		t.Errorf("a lower limit moved the fence to %d", got)
	}
	f.raise("busy", 2000)
	if got := f.get("busy"); got != 2000 {
		t.Errorf("fence %d, want 2000", got)
	}
	if n := f.lru.Len(); n != 4 {
		t.Errorf("%d fences kept, bound 4", n)
	}
	if got := f.get("k0"); got != 0 {
		t.Errorf("the least recently used key kept its fence (%d)", got)
	}
}
