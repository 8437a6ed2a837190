package e2e

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	dto "github.com/prometheus/client_model/go"

	imaccount "github.com/imqtt/imqtt/account"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// rawSubscriber is a minimal MQTT client: connect, subscribe to its inbox,
// count the PUBLISH packets that arrive. Thousands fit in one test process.
func rawSubscriber(b *testing.B, addr, user, password string, got *atomic.Int64) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, 120
	cp.ClientIdentifier, cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = user+"/d", true, user, true, []byte(password)
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{wire.InboxTopic(user)}, []byte{1}
	if err := cp.Write(conn); err != nil {
		b.Fatal(err)
	}
	if err := sp.Write(conn); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			pk, err := packets.ReadPacket(conn)
			if err != nil {
				return
			}
			if _, ok := pk.(*packets.PublishPacket); ok {
				got.Add(1)
			}
		}
	}()
	return conn
}

func histogramCount(h interface{ Write(*dto.Metric) error }) uint64 {
	var m dto.Metric
	_ = h.Write(&m)
	return m.GetHistogram().GetSampleCount()
}

// BenchmarkGroupFanout: one message to a 10,000-member group with 2,000
// members online, timed from the HTTP send until the last online member has
// it. commits/msg is the store commits per message (one, whatever the size:
// a group message writes its row, its seq index, the head, the sender's
// read position and its dedupe row).
//
//	go -C e2e test -run '^$' -bench GroupFanout -benchtime 50x .
func BenchmarkGroupFanout(b *testing.B) {
	const members, online = 10_000, 2_000
	s := testserver.Start(b)
	ctx := context.Background()
	hash, err := imaccount.HashPassword("pw", testserver.CheapPasswords)
	if err != nil {
		b.Fatal(err)
	}
	users := make([]string, members)
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
		if err := s.Store().CreateUser(ctx, store.User{ID: users[i], PasswordHash: hash}); err != nil {
			b.Fatal(err)
		}
	}
	ownerTok := account(b, s, "owner", "d")
	var g wire.Group
	if code := httpJSON(b, "POST", s.HTTP+"/v1/groups", ownerTok, wire.GroupCreate{ID: "big", Members: users[:members-1]}, &g); code != 201 || g.Count != members {
		b.Fatalf("create group: %d %+v", code, g)
	}
	var got atomic.Int64
	for i := range online {
		conn := rawSubscriber(b, s.MQTT, users[i*(members/online)], "pw", &got)
		defer conn.Close()
	}
	waitFor(b, "online members subscribed", func() bool {
		return subscribed(s, users[(online-1)*(members/online)]+"/d", wire.InboxTopic(users[(online-1)*(members/online)]))
	})
	commits0 := histogramCount(s.Metrics().BatchSize)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		want := int64(online) * int64(i+1)
		var ack wire.Ack
		if code := httpJSON(b, "POST", s.HTTP+"/v1/messages", ownerTok, wire.Send{CMID: fmt.Sprint(i), Group: "big", Type: "text", Body: "to all"}, &ack); code != 200 {
			b.Fatalf("send: %d", code)
		}
		deadline := time.Now().Add(time.Minute)
		for got.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("message %d reached %d of %d online members", i, got.Load()-want+online, online)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/msg-to-last-member")
	b.ReportMetric(float64(histogramCount(s.Metrics().BatchSize)-commits0)/float64(b.N), "commits/msg")
	b.ReportMetric(float64(online*b.N)/elapsed.Seconds(), "deliveries/s")
}
