package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	imaccount "github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// The cost of a change of a group message (issue 18): a recall or a
// reaction in a group of 1,000 or 10,000 members, a fifth of them online
// as raw subscribers, timed from the HTTP request until the last online
// member has the change's event live, against the message itself in the
// same run.
//
//	go -C e2e test -run '^$' -bench 'GroupRecall|GroupReaction' -benchtime 20x .

// BenchmarkGroupRecall: each op sends a message to the group (not timed),
// waits until every online member has it live, then the sender recalls it
// over HTTP (timed, until every online member has the recall event).
func BenchmarkGroupRecall(b *testing.B) { benchGroupChange(b, wire.KindRecall) }

// BenchmarkGroupReaction: as BenchmarkGroupRecall, with a reaction (the
// sender's 👍) instead of the recall.
func BenchmarkGroupReaction(b *testing.B) { benchGroupChange(b, wire.KindReaction) }

func benchGroupChange(b *testing.B, kind string) {
	for _, members := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			groupChange(b, kind, members, members/5)
		})
	}
}

// slot is one item of the group's log (a message or a change) as the
// online members get it live: how many have it, when the last one got it.
type slot struct {
	n    atomic.Int64
	last atomic.Int64 // unix ns of the online-th first arrival
	done chan struct{}

	mu    sync.Mutex
	kind  string // the event wanted: wire.KindMsg or the change's kind
	id    string // a change: the message it changes
	wrong int    // arrivals of another kind or message
}

func (s *slot) want(kind, id string) {
	s.mu.Lock()
	s.kind, s.id = kind, id
	s.mu.Unlock()
}

// groupItems is one member's raw subscriber's record: every item of the
// group that arrives live (message or change), the first time per seq.
type groupItems struct {
	group string
	first func(m *wire.Msg)

	mu   sync.Mutex
	seen map[uint64]bool
	dups int
}

func (r *groupItems) got(payload []byte, _ byte) {
	var m wire.Msg
	if json.Unmarshal(payload, &m) != nil || m.Group != r.group || m.Seq == 0 || !wire.Versioned(m.Kind) {
		return
	}
	r.mu.Lock()
	dup := r.seen[m.Seq]
	if dup {
		r.dups++
	}
	r.seen[m.Seq] = true
	r.mu.Unlock()
	if !dup {
		r.first(&m)
	}
}

// groupChange runs b.N ops of message-then-change in a group of members,
// online of them connected.
func groupChange(b *testing.B, kind string, members, online int) {
	s := testserver.Start(b, func(c *daemon.Config) { c.Broker.MaxPreauthPerIP = 2 * online })
	ctx := context.Background()
	hash, err := imaccount.HashPassword("pw", testserver.CheapPasswords)
	if err != nil {
		b.Fatal(err)
	}
	users := make([]string, members-1) // and the owner
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
		if err := s.Store().CreateUser(ctx, store.User{ID: users[i], PasswordHash: hash}); err != nil {
			b.Fatal(err)
		}
	}
	ownerTok := account(b, s, "owner", "d")
	var g wire.Group
	if code := httpJSON(b, "POST", s.HTTP+"/v1/groups", ownerTok, wire.GroupCreate{ID: "big", Members: users}, &g); code != 201 || g.Count != members {
		b.Fatalf("create group: %d %+v", code, g)
	}
	// Op k's message takes seq base+2k+1, its change base+2k+2: slot
	// 2k and 2k+1.
	base := g.Seq
	slots := make([]*slot, 2*b.N)
	for i := range slots {
		slots[i] = &slot{done: make(chan struct{})}
	}
	onlineUsers := make([]string, online)
	recs := make([]*groupItems, online)
	for i := range online {
		onlineUsers[i] = users[i*(members/online)]
		recs[i] = &groupItems{group: g.ID, seen: map[uint64]bool{}, first: func(m *wire.Msg) {
			k := int(m.Seq - base - 1)
			if m.Seq <= base || k >= len(slots) {
				return
			}
			sl := slots[k]
			sl.mu.Lock()
			if m.Kind != sl.kind || (sl.id != "" && m.ID != sl.id) {
				sl.wrong++
			}
			sl.mu.Unlock()
			if sl.n.Add(1) == int64(online) {
				sl.last.Store(time.Now().UnixNano())
				close(sl.done)
			}
		}}
		conn := rawSubscriber(b, s.MQTT, onlineUsers[i], "pw", recs[i])
		defer conn.Close()
	}
	wait.For(b, "every online member subscribed", time.Minute, func() bool {
		for _, u := range onlineUsers {
			if !subscribed(s, u+"/d", wire.InboxTopic(u)) {
				return false
			}
		}
		return true
	})

	dropped0 := counterValue(s.Metrics().Dropped)
	// reach waits until every online member has slot k, and returns how
	// long since start, or (logged) 0 past 30 s.
	reach := func(k int, start time.Time) time.Duration {
		select {
		case <-slots[k].done:
			return time.Unix(0, slots[k].last.Load()).Sub(start)
		case <-time.After(30 * time.Second):
			seq := base + uint64(k) + 1
			var lacking []string
			for i, r := range recs {
				r.mu.Lock()
				if !r.seen[seq] && len(lacking) < 5 {
					u := onlineUsers[i]
					lacking = append(lacking, fmt.Sprintf("%s (subscribed %t)", u, subscribed(s, u+"/d", wire.InboxTopic(u))))
				}
				r.mu.Unlock()
			}
			b.Errorf("seq %d reached %d of %d online members live within 30 s; lacking: %v; dropped so far %.0f",
				seq, slots[k].n.Load(), online, lacking, counterValue(s.Metrics().Dropped)-dropped0)
			return 0
		}
	}
	var msgTimes, changeTimes []time.Duration
	var msgCommits, changeCommits uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// The message: sent and delivered outside the timer.
		mk := 2 * i
		slots[mk].want(wire.KindMsg, "")
		c0 := histogramCount(s.Metrics().BatchSize)
		start := time.Now()
		var ack wire.Ack
		if code := httpJSON(b, "POST", s.HTTP+"/v1/messages", ownerTok, wire.Send{CMID: fmt.Sprint("m", i), Group: g.ID, Type: "text", Body: "to all"}, &ack); code != 200 {
			b.Fatalf("send: %d", code)
		}
		if ack.Seq != base+uint64(mk)+1 {
			b.Fatalf("message %d got seq %d, want %d", i, ack.Seq, base+uint64(mk)+1)
		}
		msgTimes = append(msgTimes, reach(mk, start))
		msgCommits += histogramCount(s.Metrics().BatchSize) - c0

		// The change: timed from its request to the last online member.
		ck := mk + 1
		slots[ck].want(kind, ack.ID)
		method, path := "POST", "/v1/messages/"+ack.ID+"/recall?cmid=c"+fmt.Sprint(i)
		if kind == wire.KindReaction {
			method, path = "PUT", "/v1/messages/"+ack.ID+"/reactions/"+url.PathEscape("👍")+"?cmid=c"+fmt.Sprint(i)
		}
		c0 = histogramCount(s.Metrics().BatchSize)
		b.StartTimer()
		start = time.Now()
		var cack wire.Ack
		if code := httpJSON(b, method, s.HTTP+path, ownerTok, nil, &cack); code != 200 {
			b.Fatalf("%s %s: %d", method, path, code)
		}
		if cack.Seq != base+uint64(ck)+1 {
			b.Fatalf("%s of message %d got seq %d, want %d", kind, i, cack.Seq, base+uint64(ck)+1)
		}
		changeTimes = append(changeTimes, reach(ck, start))
		b.StopTimer()
		changeCommits += histogramCount(s.Metrics().BatchSize) - c0
	}
	dropped := counterValue(s.Metrics().Dropped) - dropped0

	var wrong, dups int
	for _, sl := range slots {
		wrong += sl.wrong
	}
	for _, r := range recs {
		r.mu.Lock()
		dups += r.dups
		r.mu.Unlock()
	}
	if wrong > 0 {
		b.Errorf("%d live arrivals were not the item their seq should be (kind or message)", wrong)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	slices.Sort(msgTimes)
	slices.Sort(changeTimes)
	p50 := func(ds []time.Duration) time.Duration { return ds[len(ds)/2] }
	b.ReportMetric(ms(p50(changeTimes)), "change-p50-ms")
	b.ReportMetric(ms(changeTimes[len(changeTimes)-1]), "change-max-ms")
	b.ReportMetric(ms(p50(msgTimes)), "msg-p50-ms")
	b.ReportMetric(ms(msgTimes[len(msgTimes)-1]), "msg-max-ms")
	if p50(msgTimes) > 0 {
		b.ReportMetric(float64(p50(changeTimes))/float64(p50(msgTimes)), "change/msg")
	}
	b.ReportMetric(float64(changeCommits)/float64(b.N), "commits/change")
	b.ReportMetric(float64(msgCommits)/float64(b.N), "commits/msg")
	b.ReportMetric(float64(dups), "dups")
	b.ReportMetric(dropped, "dropped")
}
