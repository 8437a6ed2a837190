package pebble_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// sender builds 1:1 sends among a pool of users, with versions counted
// locally (the store does not check them against reservations).
type sender struct {
	users []string
	vers  map[string]uint64
	id    int64
	body  string
}

func newSender(users int) *sender {
	s := &sender{vers: map[string]uint64{}, body: strings.Repeat("x", 100)}
	for i := range users {
		s.users = append(s.users, "user"+strconv.Itoa(i))
	}
	return s
}

// add appends one send as the chat pipeline builds it: 1 Message,
// 2 Entries, 1 Ack, 2 ConvUpdates.
func (s *sender) add(b *store.Batch, from, to string) {
	s.id++
	s.vers[from]++
	s.vers[to]++
	fv, tv := s.vers[from], s.vers[to]
	m := store.Message{ID: s.id, From: from, To: to, Type: "text", Body: s.body,
		CMID: "c" + strconv.FormatInt(s.id, 10), TS: 1_700_000_000_000 + s.id}
	b.Messages = append(b.Messages, m)
	b.Acks = append(b.Acks, store.Ack{From: from, CMID: m.CMID, ID: m.ID, Ver: fv, TS: m.TS})
	b.Entries = append(b.Entries,
		store.Entry{User: from, Ver: fv, Peer: to, Out: true, MsgID: m.ID},
		store.Entry{User: to, Ver: tv, Peer: from, MsgID: m.ID})
	b.Convs = append(b.Convs,
		store.ConvUpdate{User: from, Peer: to, MsgID: m.ID, TS: m.TS, Ver: fv},
		store.ConvUpdate{User: to, Peer: from, MsgID: m.ID, TS: m.TS, Ver: tv, Incoming: true})
}

func (s *sender) pair() (string, string) {
	n := int64(len(s.users))
	return s.users[s.id%n], s.users[(s.id*7+1)%n]
}

func openBench(b *testing.B) *pebble.Store {
	b.Helper()
	st, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkCommit measures group commits of 1:1 sends; every commit is
// fsynced, so msgs/s is what one batcher goroutine can store. push=on
// adds each message's push job (Batch.PushJobs), as with push enabled;
// webhook=on each message's message.after_send event (Batch.Webhooks), as
// with --webhook-url.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []string{"push=off", "push=on", "webhook=on"} {
		for _, n := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/msgs=%d", mode, n), func(b *testing.B) {
				benchCommit(b, openBench(b), mode, n)
			})
		}
	}
}

// BenchmarkCommitNoSync is BenchmarkCommit without its fsyncs (the log
// synced every second, --sync-interval): what a commit costs besides the
// disk's sync, which on a shared or slow disk drowns the difference of
// one more row per message.
func BenchmarkCommitNoSync(b *testing.B) {
	for _, mode := range []string{"push=off", "push=on", "webhook=on"} {
		for _, n := range []int{64, 512} {
			b.Run(fmt.Sprintf("%s/msgs=%d", mode, n), func(b *testing.B) {
				st, err := pebble.Open(b.TempDir(), pebble.Options{SyncInterval: time.Second})
				if err != nil {
					b.Fatalf("open: %v", err)
				}
				b.Cleanup(func() { st.Close() })
				benchCommit(b, st, mode, n)
			})
		}
	}
}

// afterSendData is an after_send event's data: a message as a client
// sees it.
var afterSendData = []byte(`{"kind":"msg","id":"1234567890123456789","from":"user-12","to":"user-345","type":"text","body":"a message of about sixty bytes, as most of them are, give or take","ts":1765000000000,"cmid":"c-1234567"}`)

// benchCommit commits batches of n sends, each with its push job
// (push=on) or its message.after_send event (webhook=on).
func benchCommit(b *testing.B, st *pebble.Store, mode string, n int) {
	push, webhook := mode == "push=on", mode == "webhook=on"
	snd := newSender(1000)
	var batch store.Batch
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		batch = store.Batch{Messages: batch.Messages[:0], Entries: batch.Entries[:0],
			Acks: batch.Acks[:0], Convs: batch.Convs[:0], PushJobs: batch.PushJobs[:0], Webhooks: batch.Webhooks[:0]}
		for range n {
			from, to := snd.pair()
			snd.add(&batch, from, to)
			if push {
				batch.PushJobs = append(batch.PushJobs, store.PushJob{MsgID: snd.id, Created: snd.id})
			}
			if webhook {
				batch.Webhooks = append(batch.Webhooks, store.WebhookEvent{ID: snd.id, Lane: "c:" + from + ":" + to,
					Type: "message.after_send", TS: snd.id, Data: afterSendData, MsgID: snd.id})
			}
		}
		if err := st.Commit(b.Context(), &batch); err != nil {
			b.Fatalf("commit: %v", err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRange measures one sync page of 500 events.
func BenchmarkRange(b *testing.B) {
	const events = 500
	st := openBench(b)
	snd := newSender(50)
	var batch store.Batch
	for i := range events {
		snd.add(&batch, "alice", snd.users[i%len(snd.users)])
		from, to := snd.pair()
		snd.add(&batch, from, to) // traffic of others in between
	}
	if err := st.Commit(b.Context(), &batch); err != nil {
		b.Fatalf("commit: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		evs, err := st.Range(b.Context(), "alice", 0, events)
		if err != nil || len(evs) != events {
			b.Fatalf("range: %d events, %v", len(evs), err)
		}
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLookupAck measures the dedupe lookup of a batch of sends, which
// almost always misses, against the acks of 100,000 earlier sends: still in
// the memtable, flushed to L0, or compacted into L6; with and without
// Pebble's bloom filters, without the in-memory ack filter (ackfilter.go),
// and with both; batches of 1 and 128 keys (one LookupAcks call each).
// ns/op is per key.
func BenchmarkLookupAck(b *testing.B) {
	const sends = 100_000
	for _, where := range []string{"memtable", "L0", "L6"} {
		for _, c := range []struct{ filters, ackFilter bool }{{true, false}, {false, false}, {true, true}} {
			var st *pebble.Store // filled once, not for every b.N
			dir := b.TempDir()
			for _, batch := range []int{1, 128} {
				b.Run(fmt.Sprintf("acks=%s/filters=%t/ackfilter=%t/batch=%d", where, c.filters, c.ackFilter, batch), func(b *testing.B) {
					if st == nil {
						st = fillAcks(b, dir, sends, c.filters, c.ackFilter, where)
					}
					b.ReportAllocs()
					b.ResetTimer()
					keys := make([]store.AckKey, 0, batch)
					for i := range b.N {
						keys = append(keys, store.AckKey{From: "user" + strconv.Itoa(i%1000), CMID: "new-" + strconv.Itoa(i)})
						if len(keys) < batch && i < b.N-1 {
							continue
						}
						found, err := st.LookupAcks(b.Context(), keys)
						if err != nil || len(found) != 0 {
							b.Fatalf("lookup: %v, %d found", err, len(found))
						}
						keys = keys[:0]
					}
				})
			}
			if st != nil {
				st.Close()
			}
		}
	}
}

// fillAcks returns a store with n sends among 1,000 users, where: in the
// memtable, flushed to L0 or compacted into L6; with its ack filter built
// (ackFilter) or off.
func fillAcks(b *testing.B, dir string, n int, filters, ackFilter bool, where string) *pebble.Store {
	o := pebble.Options{MemTableSize: 256 << 20, AckFilterMax: -1}
	if ackFilter {
		o.AckFilterMax = 0
	}
	if !filters {
		o = pebble.WithoutFilters(o)
	}
	st, err := pebble.Open(dir, o)
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	snd := newSender(1000)
	for done := 0; done < n; {
		var batch store.Batch
		for range 1000 {
			from, to := snd.pair()
			snd.add(&batch, from, to)
			done++
		}
		if err := st.Commit(b.Context(), &batch); err != nil {
			b.Fatalf("commit: %v", err)
		}
	}
	var err2 error
	switch where {
	case "L0":
		err2 = st.Flush()
	case "L6":
		err2 = st.CompactAll()
	}
	if err2 != nil {
		b.Fatalf("flush or compact: %v", err2)
	}
	if ackFilter {
		wait.For(b, "ack filter built", 10*time.Second, st.AckFilterReady)
	}
	return st
}

// BenchmarkGroupChange commits one reaction change record (the record,
// its head, the reaction rows) a time in a group of members=N: its cost
// must not grow with N.
func BenchmarkGroupChange(b *testing.B) {
	for _, n := range []int{2, 10_000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			st := openBench(b)
			groupOf(b, st, n)
			b.ReportAllocs()
			wal := st.WALBytesIn()
			b.ResetTimer()
			for i := range b.N {
				seq, id := uint64(i+2), int64(i+2)
				c := store.Change{Kind: store.ChangeReaction, Target: 1, Emoji: "👍", Add: true, Count: uint64(i + 1)}
				mustCommit(b, st, &store.Batch{
					Messages:  []store.Message{{ID: id, From: "m1", Group: "g", Seq: seq, Type: "reaction", TS: id, Change: &c}},
					Heads:     []store.GroupHead{{Group: "g", Seq: seq, Changes: c.Count}},
					Reactions: []store.Reaction{{MsgID: 1, User: fmt.Sprintf("m%d", i%n), Emoji: "👍", Add: i/n%2 == 0, TS: id}},
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(st.WALBytesIn()-wal)/float64(b.N), "wal-B/op")
		})
	}
}
