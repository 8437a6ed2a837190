package sync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// benchBatch is a sync batch of n 64-byte text messages like those of
// `imqtt bench sync` (run:stream:seq:unix ns: padded with x).
func benchBatch(n int) wire.Sync {
	b := wire.Sync{Kind: wire.KindSync, Since: 0, Upto: uint64(n), More: true, Epoch: "0123456789abcdef"}
	for i := range n {
		b.Items = append(b.Items, wire.Msg{Kind: wire.KindMsg, ID: fmt.Sprint(7340000000000000000 + i), Ver: uint64(i + 1),
			From: "bench-0123abcd-sync-s", To: "bench-0123abcd-sync-r", Type: "text", Body: benchBody(i),
			TS: 1_700_000_000_000 + int64(i), CMID: fmt.Sprintf("0123abcd-%d", i)})
	}
	return b
}

func benchBody(i int) string {
	s := fmt.Sprintf("0123abcd:0:%d:%d:", i, 1_700_000_000_000_000_000+int64(i)*20_000)
	return s + strings.Repeat("x", max(0, 64-len(s)))
}

func BenchmarkEncode(b *testing.B) {
	for _, n := range []int{500, 5000} {
		for _, compress := range []string{"gzip", ""} {
			b.Run(fmt.Sprintf("items=%d/compress=%s", n, compress), func(b *testing.B) {
				batch := benchBatch(n)
				b.ReportAllocs()
				var size int
				for range b.N {
					p, err := imsync.Encode(batch, imsync.Encoding{Compress: compress})
					if err != nil {
						b.Fatal(err)
					}
					size = len(p)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*n), "µs/item")
				b.ReportMetric(float64(size)/float64(n), "B/item")
			})
		}
	}
}

// BenchmarkServe is the server's side of a catch-up: a 5000-item request
// read from Pebble in 500-item batches, each encoded with gzip.
func BenchmarkServe(b *testing.B) {
	st, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const total = 5000
	ctx := context.Background()
	for from := 0; from < total; from += 500 {
		var batch store.Batch
		for i := from; i < from+500; i++ {
			id := int64(7340000000000000000 + i)
			batch.Messages = append(batch.Messages, store.Message{ID: id, From: "alice", To: "bob", Type: "text",
				Body: benchBody(i), TS: 1_700_000_000_000 + int64(i), CMID: fmt.Sprintf("c-%d", i)})
			batch.Entries = append(batch.Entries, store.Entry{User: "bob", Ver: uint64(i + 1), Peer: "alice", MsgID: id})
		}
		if err := st.Commit(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	s := imsync.New(st, imsync.Options{})
	req := wire.SyncRequest{Since: 0, Limit: total, Compress: "gzip"}
	b.ReportAllocs()
	for range b.N {
		n := 0
		err := s.Serve(ctx, "bob", req, func(bt wire.Sync) error {
			if _, err := imsync.Encode(bt, imsync.Encoding{Compress: req.Compress}); err != nil {
				return err
			}
			n += len(bt.Items)
			return nil
		})
		if err != nil || n != total {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*total), "µs/item")
}
