package pebble_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestSweepCrash: a crash in the middle of a sweep (after some chunks,
// written without sync, and with a random part of what was not synced
// kept) leaves every message whole or wholly gone — its message row, both
// history entries, both inbox entries and the unread it counted go
// together — everything below the stored cursor gone, and a sweep after
// the restart finishes the job from there.
func TestSweepCrash(t *testing.T) {
	ctx := t.Context()
	fs := vfs.NewCrashableMem()
	s, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	const n, young = 200, 1000
	var b store.Batch
	for i := int64(1); i <= n; i++ {
		from, to := "alice", "bob"
		if i%3 == 0 {
			from, to = "bob", "alice"
		}
		addSend(t, s, &b, from, to, i)
	}
	addSend(t, s, &b, "alice", "bob", young)
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	// Three chunks made durable by the next commit's sync (as sends do),
	// then four that are not.
	for i := range 7 {
		if _, err := s.SweepMessages(ctx, young, 20); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			var other store.Batch
			addSend(t, s, &other, "carol", "dave", young+1)
			if err := s.Commit(ctx, &other); err != nil {
				t.Fatal(err)
			}
		}
	}
	for seed := range uint64(8) {
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, seed))}
		c, err := pebble.Open("db", pebble.WithFS(pebble.Options{}, fs.CrashClone(cfg)))
		if err != nil {
			t.Fatalf("seed %d: open after the crash: %v", seed, err)
		}
		cur, err := c.SweepCursor(ctx)
		if err != nil {
			t.Fatal(err)
		}
		left := checkWhole(t, c, "seed "+strconv.FormatUint(seed, 10), n)
		for _, id := range left {
			if id < cur {
				t.Errorf("seed %d: message %d below the cursor %d is left", seed, id, cur)
			}
		}
		for {
			sw, err := c.SweepMessages(ctx, young, 20)
			if err != nil {
				t.Fatal(err)
			}
			if sw.Done {
				break
			}
		}
		if cur < 61 {
			t.Errorf("seed %d: cursor %d after a crash that kept three chunks", seed, cur)
		}
		if left := checkWhole(t, c, "resumed", n); !slices.Equal(left, []int64{young}) {
			t.Errorf("seed %d: after the resumed sweep %v left, want only %d", seed, left, young)
		}
		_ = c.Close()
	}
}

func addSend(t *testing.T, s *pebble.Store, b *store.Batch, from, to string, id int64) {
	t.Helper()
	ctx := context.Background()
	fv, _ := s.ReserveVersions(ctx, from, 1)
	tv, _ := s.ReserveVersions(ctx, to, 1)
	b.Messages = append(b.Messages, store.Message{ID: id, From: from, To: to, Type: "text", Body: "x", CMID: "c" + strconv.FormatInt(id, 10), TS: id})
	b.Entries = append(b.Entries, store.Entry{User: from, Ver: fv, Peer: to, Out: true, MsgID: id}, store.Entry{User: to, Ver: tv, Peer: from, MsgID: id})
	b.Convs = append(b.Convs, store.ConvUpdate{User: from, Peer: to, MsgID: id, TS: id, Ver: fv},
		store.ConvUpdate{User: to, Peer: from, MsgID: id, TS: id, Ver: tv, Incoming: true})
}

// checkWhole checks that alice's and bob's views agree message by message
// and with their conversation rows, and returns the messages left.
func checkWhole(t *testing.T, s *pebble.Store, what string, n int64) []int64 {
	t.Helper()
	ctx := context.Background()
	ids := make([]int64, 0, n+1)
	for i := int64(1); i <= n; i++ {
		ids = append(ids, i)
	}
	ids = append(ids, 1000)
	msgs, err := s.GetMessages(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	var left []int64
	for _, m := range msgs {
		left = append(left, m.ID)
	}
	for _, u := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		hist, err := s.History(ctx, u[0], u[1], 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var h []int64
		var incoming int64
		for _, e := range hist {
			h = append(h, e.MsgID)
			if !e.Out {
				incoming++
			}
		}
		slices.Sort(h)
		if !slices.Equal(h, left) {
			t.Errorf("%s: %s's history %v, messages left %v", what, u[0], h, left)
		}
		evs, err := s.Range(ctx, u[0], 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var r []int64
		for _, e := range evs {
			r = append(r, e.MsgID)
		}
		if !slices.Equal(r, left) {
			t.Errorf("%s: %s's inbox %v, messages left %v", what, u[0], r, left)
		}
		cs, err := s.Conversations(ctx, u[0])
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: %s's rows %+v, %v", what, u[0], cs, err)
		}
		if cs[0].Unread != incoming || cs[0].Last != 1000 {
			t.Errorf("%s: %s's row %+v, want unread %d, last 1000", what, u[0], cs[0], incoming)
		}
	}
	return left
}
