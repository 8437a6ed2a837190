package memory

import (
	"strconv"
	"testing"
)

// BenchmarkNext: one version at a time, from many goroutines, over
// keys=N keys that each have a block (the LRU's cost on the send path).
func BenchmarkNext(b *testing.B) {
	for _, keys := range []int{1000, 100_000} {
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			st := &blocks{}
			s := New(st.reserve, Options{})
			names := make([]string, keys)
			for i := range names {
				names[i] = "user" + strconv.Itoa(i)
				if _, err := s.Next(b.Context(), names[i], 1); err != nil { // each key's first block
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := s.Next(b.Context(), names[i%keys], 1); err != nil {
						b.Fatal(err)
					}
					i += 7
				}
			})
		})
	}
}
