package redis_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	staterds "github.com/imqtt/imqtt/state/redis"
	"github.com/imqtt/imqtt/state/statetest"
)

// BenchmarkNext: Next from parallel goroutines, in process (state/memory)
// and in Redis, on one hot key and spread over many. reserves/op is how
// often the store is asked for a block.
//
//	go test -run '^$' -bench Next -cpu 1,8 ./state/redis/
func BenchmarkNext(b *testing.B) {
	impls := []struct {
		name string
		open func(b *testing.B, reserve state.ReserveFunc) state.State
	}{
		{"memory", func(b *testing.B, reserve state.ReserveFunc) state.State {
			return memory.New(reserve, memory.Options{})
		}},
		{"redis", func(b *testing.B, reserve state.ReserveFunc) state.State {
			return open(b, sharedURL, reserve, staterds.Options{Prefix: prefix(b)})
		}},
	}
	for _, impl := range impls {
		for _, keys := range []int{1, 1000} {
			b.Run("impl="+impl.name+"/keys="+strconv.Itoa(keys), func(b *testing.B) {
				store := statetest.NewReserveFunc()
				var reserves atomic.Int64
				s := impl.open(b, func(ctx context.Context, key string, n uint64) (uint64, error) {
					reserves.Add(1)
					return store(ctx, key, n)
				})
				names := make([]string, keys)
				for i := range names {
					names[i] = "user" + strconv.Itoa(i)
				}
				var worker atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := int(worker.Add(1)) * 7919
					for pb.Next() {
						if _, err := s.Next(context.Background(), names[i%keys], 1); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
				b.ReportMetric(float64(reserves.Load())/float64(b.N), "reserves/op")
			})
		}
	}
}
