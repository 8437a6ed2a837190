package sdk

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// BenchmarkGroupCatchUp: a device of a user in 500 groups comes back after
// 20 messages were sent to each while it was away. Timed from client.Dial to
// WaitSynced, by when all 10,000 have been delivered, each once; requests
// counts the sync requests the server got per catch-up (the inbox's, the
// heads and one per moved group), heads-bytes the heads answer's size.
//
//	go -C e2e test -run '^$' -bench GroupCatchUp -benchtime 5x ./sdk
func BenchmarkGroupCatchUp(b *testing.B) {
	const groups, missed = 500, 20
	s := testserver.Start(b, func(c *daemon.Config) { c.SendRate = -1 })
	aliceSess, bobSess := login(b, s, "alice", "phone"), login(b, s, "bob", "phone")
	ctx := context.Background()
	ah := &client.HTTP{Server: s.HTTP, Token: aliceSess.Token}
	for i := range groups {
		if _, err := ah.CreateGroup(ctx, wire.GroupCreate{ID: fmt.Sprintf("g%03d", i), Name: "g", Members: []string{"bob"}}); err != nil {
			b.Fatal(err)
		}
	}
	// Bob's device knows its groups, then goes away.
	var rec recorder
	cur := &client.MemoryCursor{}
	bob := dial(b, s, bobSess, cur, &rec)
	if err := bob.WaitSynced(ctx); err != nil {
		b.Fatal(err)
	}
	bob.Close()
	away, _ := cur.Load()
	if len(away.Groups) != groups {
		b.Fatalf("the cursor knows %d groups", len(away.Groups))
	}

	var aliceRec recorder
	alice := dial(b, s, aliceSess, nil, &aliceRec)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for n := next.Add(1) - 1; n < groups*missed; n = next.Add(1) - 1 {
				if _, err := alice.Send(ctx, wire.Send{Group: fmt.Sprintf("g%03d", n%groups), Body: fmt.Sprint(n)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	alice.Close()

	req, _ := http.NewRequest(http.MethodGet, s.HTTP+"/v1/sync?heads=1", nil)
	req.Header.Set("Authorization", "Bearer "+bobSess.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	headsBytes, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	syncs := s.Metrics().Publishes.WithLabelValues("in", "sync")
	requests0 := testutil.ToFloat64(syncs)
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		cur := &client.MemoryCursor{}
		_ = cur.Save(away)
		var got atomic.Int64
		seen := make(map[string]bool, groups*missed)
		var mu sync.Mutex
		start := time.Now()
		c, err := client.Dial(ctx, client.Config{Server: s.HTTP, MQTT: s.MQTT, User: bobSess.User, Device: bobSess.Device, Token: bobSess.Token,
			Cursor: cur, OnEvent: func(ev client.Event) {
				if ev.Msg == nil || ev.Msg.Group == "" {
					return
				}
				k := fmt.Sprint(ev.Msg.Group, "/", ev.Msg.Seq)
				mu.Lock()
				dup := seen[k]
				seen[k] = true
				mu.Unlock()
				if dup {
					b.Errorf("%s delivered twice", k)
				}
				got.Add(1)
			}})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.WaitSynced(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		c.Close()
		if got.Load() != groups*missed {
			b.Fatalf("caught up %d messages, want %d", got.Load(), groups*missed)
		}
	}
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/catch-up")
	b.ReportMetric((testutil.ToFloat64(syncs)-requests0)/float64(b.N), "requests")
	b.ReportMetric(float64(headsBytes), "heads-bytes")
	b.ReportMetric(0, "ns/op")
}
