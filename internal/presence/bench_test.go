package presence

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/wire"
)

// countingNode stands for the broker and the cluster bus: it counts local
// deliveries (a map lookup each in the broker, most contacts offline) and
// the records handed to the bus.
type countingNode struct {
	local, records, users atomic.Int64
}

func (n *countingNode) PublishUser(user, topic string, payload []byte) error {
	n.local.Add(1)
	return nil
}
func (n *countingNode) User(user string, payload []byte) { n.records.Add(1); n.users.Add(1) }
func (n *countingNode) Everyone(payload []byte)          { n.records.Add(1) }
func (n *countingNode) Users(users []string, payload []byte) {
	n.records.Add(1)
	n.users.Add(int64(len(users)))
}

// BenchmarkFanOut: one user with 5,000 accepted contacts (50 of whom
// blocked it) comes online: the worker's whole announcement, on the real
// Pebble store, to the delivery path. Reported: CPU time and allocations
// per fan-out, the records handed to the cluster bus (each becomes one
// message per node that holds any of its users) and the deliveries here.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{5000} {
		b.Run("contacts="+strconv.Itoa(n), func(b *testing.B) {
			st, err := pebble.Open(b.TempDir(), pebble.Options{SyncInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			for i := range n {
				c := "contact" + strconv.Itoa(100000+i)
				if _, err := st.RequestContact(ctx, "alice", c, 1); err != nil {
					b.Fatal(err)
				}
				if _, err := st.AcceptContact(ctx, c, "alice", 1); err != nil {
					b.Fatal(err)
				}
				if i%100 == 0 {
					if err := st.PutBlock(ctx, store.Block{User: c, Peer: "alice", Since: 1}); err != nil {
						b.Fatal(err)
					}
				}
			}
			node := &countingNode{}
			path := deliver.New(deliver.Options{Local: node, Remote: node, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			s, err := New(Options{Social: st, Devices: newState(), Sender: path,
				Hidden: func(context.Context, []string) (map[string]bool, error) { return nil, nil }})
			if err != nil {
				b.Fatal(err)
			}
			ev := wire.PresenceEvent{Kind: wire.KindPresence, User: "alice", Online: true}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.announce(ctx, ev, false)
			}
			ops := float64(b.N)
			if want := int64(b.N) * int64(n-n/100); node.local.Load() != want || node.users.Load() != want {
				b.Fatalf("delivered to %d here and %d elsewhere, want %d each", node.local.Load(), node.users.Load(), want)
			}
			b.ReportMetric(float64(node.records.Load())/ops, "bus_records/op")
			b.ReportMetric(float64(node.local.Load())/ops, "deliveries/op")
		})
	}
}
