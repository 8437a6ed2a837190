package pebble_test

import (
	"context"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// BenchmarkEraseUser: the store's part of deleting a user who sent 10,000
// 1:1 messages (and got as many): the sent messages anonymised and the
// inbox deleted, in the server API's batches of 1,000. Reports the
// messages erased per second.
func BenchmarkEraseUser(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st, err := pebble.Open(b.TempDir(), pebble.Options{MinFreeDisk: -1})
		if err != nil {
			b.Fatal(err)
		}
		s := newSender(2)
		for done := 0; done < 2*n; done += 1000 {
			var batch store.Batch
			for i := range 500 {
				s.add(&batch, s.users[i%2], s.users[1-i%2])
				s.add(&batch, s.users[1-i%2], s.users[i%2])
			}
			if err := st.Commit(ctx, &batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for {
			k, _, err := st.EraseSentMessages(ctx, "user0", 1000)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
		for {
			k, err := st.DeleteUserInbox(ctx, "user0", 1000)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
		b.StopTimer()
		_ = st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
