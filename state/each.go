package state

import (
	"context"
	"fmt"
)

// EachVersions is a Versions that can serve many keys in one round trip
// (state/redis pipelines them).
type EachVersions interface {
	// TakeEach tries to take counts[i] versions of keys[i] (distinct keys)
	// and returns the first of each, 0 where it could not (the key's cached
	// block is missing or short, or counts[i] is more than a block): the
	// caller falls back to Next for those.
	TakeEach(ctx context.Context, keys []string, counts []uint64) ([]uint64, error)
}

// NextEach returns one version for each of keys, in order: a key listed k
// times gets k increasing versions, the first listing the lowest. The
// batcher allocates a whole batch with it, in one round trip when v is an
// EachVersions and the cached blocks suffice.
func NextEach(ctx context.Context, v Versions, keys []string) ([]uint64, error) {
	var distinct []string
	count := map[string]uint64{}
	for _, k := range keys {
		if count[k] == 0 {
			distinct = append(distinct, k)
		}
		count[k]++
	}
	firsts := make([]uint64, len(distinct))
	if ev, ok := v.(EachVersions); ok {
		counts := make([]uint64, len(distinct))
		for i, k := range distinct {
			counts[i] = count[k]
		}
		got, err := ev.TakeEach(ctx, distinct, counts)
		if err != nil {
			return nil, err
		}
		copy(firsts, got)
	}
	// The fallback takes one version per Next: a Next for more than what is
	// left of a block would leave the rest as a hole, and holes make sync
	// wait in scale-out (sync.Options.Settle).
	type span struct{ first, n uint64 }
	spans := map[string][]span{}
	for i, k := range distinct {
		if firsts[i] != 0 {
			spans[k] = []span{{firsts[i], count[k]}}
			continue
		}
		for range count[k] {
			first, err := v.Next(ctx, k, 1)
			if err != nil {
				return nil, err
			}
			spans[k] = append(spans[k], span{first, 1})
		}
	}
	out := make([]uint64, len(keys))
	for i, k := range keys {
		s := spans[k]
		if len(s) == 0 {
			return nil, fmt.Errorf("versions of %s: ran out", k) // cannot happen: counted above
		}
		out[i] = s[0].first
		s[0].first++
		if s[0].n--; s[0].n == 0 {
			s = s[1:]
		}
		spans[k] = s
	}
	return out, nil
}
