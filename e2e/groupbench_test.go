package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	dto "github.com/prometheus/client_model/go"

	imaccount "github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// liveRecord is what one member's raw subscriber got live of one group:
// every seq, how many times. Safe for concurrent use.
type liveRecord struct {
	group string
	// first, if set, is called once per seq, when it first arrives live.
	first func(seq uint64)

	mu   sync.Mutex
	seen map[uint64]int // seq -> live sightings
	qos1 int            // publishes that came at QoS 1 (each answered with a PUBACK)
}

func newLiveRecord(group string, first func(uint64)) *liveRecord {
	return &liveRecord{group: group, first: first, seen: map[uint64]int{}}
}

// got records one PUBLISH payload; anything but a msg of the group is ignored.
func (r *liveRecord) got(payload []byte, qos byte) {
	var m wire.Msg
	if json.Unmarshal(payload, &m) != nil || m.Kind != wire.KindMsg || m.Group != r.group || m.Seq == 0 {
		return
	}
	r.mu.Lock()
	r.seen[m.Seq]++
	n := r.seen[m.Seq]
	if qos == 1 {
		r.qos1++
	}
	r.mu.Unlock()
	if n == 1 && r.first != nil {
		r.first(m.Seq)
	}
}

// cursor is the highest seq above from that the member has without a gap,
// as a client's group cursor would be.
func (r *liveRecord) cursor(from uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.seen[from+1] > 0 {
		from++
	}
	return from
}

// publishes takes each PUBLISH payload a raw subscriber gets.
type publishes interface {
	got(payload []byte, qos byte)
}

// rawSubscriber is a minimal MQTT client: connect, subscribe to its inbox,
// hand every PUBLISH that arrives to rec (a *liveRecord keeps the group
// messages). QoS 1 publishes are acknowledged, so an unanswered one never
// holds the broker's inflight window. Thousands fit in one test process.
func rawSubscriber(b *testing.B, addr, user, password string, rec publishes) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, 900
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
		r := bufio.NewReaderSize(conn, 4<<10)
		for {
			pk, err := packets.ReadPacket(r)
			if err != nil {
				return
			}
			p, ok := pk.(*packets.PublishPacket)
			if !ok {
				continue
			}
			rec.got(p.Payload, p.Qos)
			if p.Qos == 1 {
				ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				ack.MessageID = p.MessageID
				if ack.Write(conn) != nil {
					return
				}
			}
		}
	}()
	return conn
}

// syncGroupSince is a member's own recovery of what it missed live: a
// group sync over HTTP from its cursor, paging on while more is set; fn
// gets every item above the cursor.
func syncGroupSince(t testing.TB, base, token, group string, cursor uint64, fn func(wire.Msg)) {
	t.Helper()
	for {
		var b wire.Sync
		q := url.Values{"group": {group}, "since": {strconv.FormatUint(cursor, 10)}}
		if code := httpJSON(t, "GET", base+"/v1/sync?"+q.Encode(), token, nil, &b); code != 200 {
			t.Fatalf("sync %s since %d: %d", group, cursor, code)
		}
		if b.Reset {
			cursor = b.Since
		}
		for _, m := range b.Items {
			if m.Seq > cursor {
				fn(m)
			}
		}
		if !b.More || b.Upto <= cursor {
			return
		}
		cursor = b.Upto
	}
}

func histogramCount(h interface{ Write(*dto.Metric) error }) uint64 {
	var m dto.Metric
	_ = h.Write(&m)
	return m.GetHistogram().GetSampleCount()
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// BenchmarkGroupFanout: one message to a 10,000-member group with 2,000
// members online, timed from the HTTP send until the last online member has
// it live (or 30s pass). Each online member records every seq it gets live;
// at the end a member missing one recovers it with its own group sync from
// its cursor, as a client does, and the benchmark fails unless every online
// member then has every message exactly once.
//
// commits/msg is the store commits per message (one, whatever the size: a
// group message writes its row, its seq index, the head, the sender's read
// position and its dedupe row); live-fraction the share of deliveries
// (message × online member) that arrived live; recovered those the
// members' syncs brought; dups live deliveries of a seq a member already
// had; dropped the server's deliveries lost to full client queues.
//
//	go -C e2e test -run '^$' -bench GroupFanout -benchtime 50x .
func BenchmarkGroupFanout(b *testing.B) {
	const members, online = 10_000, 2_000
	// The subscribers connect without waiting for their CONNACK: let
	// them all be logging in at once (the gate's default is 128 per address).
	s := testserver.Start(b, func(c *daemon.Config) { c.Broker.MaxPreauthPerIP = 2 * online })
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
	base := g.Seq // message k gets seq base+k+1
	reached := make([]atomic.Int64, b.N)
	all := make([]chan struct{}, b.N) // closed when reached[k] comes to online
	for k := range all {
		all[k] = make(chan struct{})
	}
	onlineUsers := make([]string, online)
	recs := make([]*liveRecord, online)
	for i := range online {
		onlineUsers[i] = users[i*(members/online)]
		recs[i] = newLiveRecord(g.ID, func(seq uint64) {
			if k := int(seq - base - 1); seq > base && k < len(reached) {
				if reached[k].Add(1) == online {
					close(all[k])
				}
			}
		})
		conn := rawSubscriber(b, s.MQTT, onlineUsers[i], "pw", recs[i])
		defer conn.Close()
	}
	// Every one, not only the last: a subscriber the server cut before its
	// login (the gate's cap) would otherwise count as a member fan-out lost.
	wait.For(b, "every online member subscribed", time.Minute, func() bool {
		for _, u := range onlineUsers {
			if !subscribed(s, u+"/d", wire.InboxTopic(u)) {
				return false
			}
		}
		return true
	})
	commits0 := histogramCount(s.Metrics().BatchSize)
	dropped0 := counterValue(s.Metrics().Dropped)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		var ack wire.Ack
		if code := httpJSON(b, "POST", s.HTTP+"/v1/messages", ownerTok, wire.Send{CMID: fmt.Sprint(i), Group: g.ID, Type: "text", Body: "to all"}, &ack); code != 200 {
			b.Fatalf("send: %d", code)
		}
		if ack.Seq != base+uint64(i)+1 {
			b.Fatalf("message %d got seq %d, want %d", i, ack.Seq, base+uint64(i)+1)
		}
		select {
		case <-all[i]:
		case <-time.After(30 * time.Second):
			b.Logf("message %d (seq %d) reached %d of %d online members live within 30s", i, ack.Seq, reached[i].Load(), online)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	dropped := counterValue(s.Metrics().Dropped) - dropped0
	commits := histogramCount(s.Metrics().BatchSize) - commits0

	// Every online member recovers what it missed live by its own group
	// sync from its cursor; a seq it already holds (above a gap) is not
	// delivered twice, as a client's sequencer would not.
	head := base + uint64(b.N)
	var live, recovered, dups, qos1 int
	var short []string
	for i, rec := range recs {
		rec.mu.Lock()
		have := map[uint64]int{}
		for seq, n := range rec.seen {
			if seq > base && seq <= head {
				have[seq] = n
				live++
				dups += n - 1
			}
		}
		qos1 += rec.qos1
		rec.mu.Unlock()
		if len(have) < b.N {
			var sess wire.Session
			if code := httpJSON(b, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: onlineUsers[i], Password: "pw", Device: "sync"}, &sess); code != 200 {
				b.Fatalf("login %s: %d", onlineUsers[i], code)
			}
			syncGroupSince(b, s.HTTP, sess.Token, g.ID, rec.cursor(base), func(m wire.Msg) {
				if m.Seq <= head && have[m.Seq] == 0 {
					have[m.Seq] = 1
					recovered++
				}
			})
		}
		for seq := base + 1; seq <= head; seq++ {
			if have[seq] != 1 {
				short = append(short, fmt.Sprintf("%s seq %d ×%d", onlineUsers[i], seq, have[seq]))
			}
		}
	}
	if len(short) > 0 {
		b.Errorf("%d (member, message) pairs not exactly once after recovery; first: %v", len(short), short[:min(len(short), 10)])
	}
	if qos1 > 0 {
		b.Logf("%d deliveries came at QoS 1 (answered with PUBACK)", qos1)
	}
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/msg-to-last-member")
	b.ReportMetric(float64(commits)/float64(b.N), "commits/msg")
	b.ReportMetric(float64(online*b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(live)/float64(online*b.N), "live-fraction")
	b.ReportMetric(float64(recovered), "recovered")
	b.ReportMetric(float64(dups), "dups")
	b.ReportMetric(dropped, "dropped")
}
