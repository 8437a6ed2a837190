package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// BenchmarkP2P is the first end-to-end figure: pairs of real paho clients
// over loopback TCP, each sender streaming QoS 1 sends to its receiver (an
// SDK client); the clock stops when every receiver has every message exactly
// once (each one stored durably before it was delivered). dropped/msg is what
// the broker dropped on full client queues and synced/msg what receivers got
// back by sync. The imqtt bench tool of a later issue measures
// this against Mosquitto and bare mochi in the same run.
//
//	go -C e2e test -run '^$' -bench P2P -benchtime 20000x .
func BenchmarkP2P(b *testing.B) {
	for _, pairs := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			s := testserver.Start(b)
			per := max(b.N/pairs, 1)
			want := int64(per * pairs)
			var received atomic.Int64
			all := make(chan struct{}) // closed when received comes to want
			senders := make([]paho.Client, pairs)
			for p := range pairs {
				snd, rcv := fmt.Sprintf("s%d", p), fmt.Sprintf("r%d", p)
				account(b, s, snd, "d")
				rtok := account(b, s, rcv, "d")
				// The receiver is the SDK: what the broker drops for a full
				// client queue it gets back by sync, as any imqtt client does.
				rc, err := client.Dial(context.Background(), client.Config{Server: s.HTTP, MQTT: s.MQTT, User: rcv, Device: "d", Token: rtok,
					OnEvent: func(ev client.Event) {
						if ev.Kind == wire.KindMsg {
							if received.Add(1) == want {
								close(all)
							}
						}
					}})
				if err != nil {
					b.Fatal(err)
				}
				defer rc.Close()
				sc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + s.MQTT).SetClientID(snd + "/d").
					SetUsername(snd).SetPassword("secret-" + snd).SetAutoReconnect(false).SetMaxResumePubInFlight(100))
				if tk := sc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
					b.Fatal(tk.Error())
				}
				defer sc.Disconnect(0)
				senders[p] = sc
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for p, sc := range senders {
				go func() {
					var last paho.Token
					for i := range per {
						payload, _ := json.Marshal(wire.Send{CMID: fmt.Sprint(i), To: fmt.Sprintf("r%d", p), Type: "text", Body: "benchmark message body"})
						last = sc.Publish(wire.TopicSend, 1, false, payload)
						if i%100 == 99 {
							last.Wait() // keep at most ~100 in flight per sender
						}
					}
					last.Wait()
				}()
			}
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("received %d of %d", received.Load(), want)
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(want)/elapsed.Seconds(), "msgs/s")
			m := s.Metrics()
			b.ReportMetric(testutil.ToFloat64(m.Dropped)/float64(want), "dropped/msg")
			b.ReportMetric(testutil.ToFloat64(m.SyncItems)/float64(want), "synced/msg")
		})
	}
}
