package mongo_test

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/store/storetest"
)

// send builds the batch of one message from -> to, with versions reserved
// on s, the way the chat pipeline builds it.
func send(t *testing.T, s *mongo.Store, from, to string, id, ts int64) *store.Batch {
	t.Helper()
	fv, err := s.ReserveVersions(t.Context(), from, 1)
	if err != nil {
		t.Fatal(err)
	}
	tv, err := s.ReserveVersions(t.Context(), to, 1)
	if err != nil {
		t.Fatal(err)
	}
	cmid := "c" + bson.NewObjectID().Hex()
	return &store.Batch{
		Messages: []store.Message{{ID: id, From: from, To: to, Type: "text", Body: "hi", CMID: cmid, TS: ts}},
		Entries: []store.Entry{{User: from, Ver: fv, Peer: to, Out: true, MsgID: id},
			{User: to, Ver: tv, Peer: from, MsgID: id}},
		Convs: []store.ConvUpdate{{User: from, Peer: to, MsgID: id, TS: ts, Ver: fv},
			{User: to, Peer: from, MsgID: id, TS: ts, Ver: tv, Incoming: true}},
		Acks: []store.Ack{{From: from, CMID: cmid, ID: id, Ver: fv, TS: ts}},
	}
}

func commit(t *testing.T, s *mongo.Store, b *store.Batch) {
	t.Helper()
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func conv(t *testing.T, s *mongo.Store, user, peer string) store.Conversation {
	t.Helper()
	cs, err := s.Conversations(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Peer == peer {
			return c
		}
	}
	t.Fatalf("no conversation %s/%s", user, peer)
	return store.Conversation{}
}

// TestNodesInterleave: two nodes commit batches for one conversation, and
// the batch with the lower version lands last. Each message is unread
// once, however often the batches are replayed; Last is the newest
// message by ID and Ver the highest version.
func TestNodesInterleave(t *testing.T) {
	db := newDB(t)
	a, b := open(t, db), open(t, db)
	defer a.Close()
	defer b.Close()

	b1 := send(t, a, "alice", "bob", 300, 3000) // lower versions, newer message ID
	b2 := send(t, b, "carol", "bob", 200, 2000)
	b3 := send(t, b, "alice", "bob", 100, 1000) // higher versions, older message
	commit(t, b, b3)
	commit(t, a, b1)
	commit(t, b, b2)
	want := store.Conversation{User: "bob", Peer: "alice", Last: 300, LastTS: 3000,
		Ver: b3.Entries[1].Ver, Unread: 2}
	for round := range 2 {
		if got := conv(t, a, "bob", "alice"); got != want {
			t.Fatalf("round %d: bob/alice %+v, want %+v", round, got, want)
		}
		if got := conv(t, b, "alice", "bob"); got.Last != 300 || got.Unread != 0 || got.Ver != b3.Entries[0].Ver {
			t.Fatalf("round %d: alice/bob %+v", round, got)
		}
		commit(t, a, b3) // replays, on the other node
		commit(t, b, b1)
	}
	if c := conv(t, b, "bob", "carol"); c.Unread != 1 {
		t.Errorf("bob/carol %+v", c)
	}
	row, err := b.SetRead(t.Context(), "bob", "alice", 100)
	if err != nil || row.Unread != 1 || row.ReadUpto != 100 {
		t.Errorf("set read: %+v %v", row, err)
	}
	// Versions come from one counter, whichever node asks.
	va, _ := a.ReserveVersions(t.Context(), "dave", 10)
	vb, _ := b.ReserveVersions(t.Context(), "dave", 10)
	if vb < va+10 {
		t.Errorf("node b reserved %d inside node a's block [%d,+10)", vb, va)
	}
}

// TestReplayPending: a Commit that stopped after inserting the entries
// and before counting them (the entry still pending) counts them on
// replay, once.
func TestReplayPending(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	ctx := t.Context()
	b := send(t, s, "alice", "bob", 100, 1000)
	commit(t, s, b)
	// Put the store back into the state of the failed commit.
	entries, convs := s.Database().Collection("entries"), s.Database().Collection("convs")
	bob := bson.D{{Key: "user", Value: "bob"}, {Key: "peer", Value: "alice"}}
	if _, err := entries.UpdateOne(ctx, bob, bson.D{{Key: "$set", Value: bson.D{{Key: "pending", Value: true}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := convs.UpdateOne(ctx, bob, bson.D{{Key: "$set", Value: bson.D{{Key: "unread", Value: 0}}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		commit(t, s, b)
		if c := conv(t, s, "bob", "alice"); c.Unread != 1 {
			t.Fatalf("unread after replay: %+v", c)
		}
	}
	if n, err := entries.CountDocuments(ctx, bson.D{{Key: "pending", Value: true}}); err != nil || n != 0 {
		t.Errorf("%d entries still pending (%v)", n, err)
	}
}

// TestSetReadDuringCommits: SetRead racing Commits of the same
// conversation never leaves unread below the true count (incoming
// messages above the read position), and a SetRead after them is exact.
func TestSetReadDuringCommits(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	const n = 30
	batches := make([]*store.Batch, n)
	for i := range batches {
		batches[i] = send(t, s, "alice", "bob", 100+int64(i), 1000+int64(i))
	}
	commit(t, s, batches[0])
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range batches[1:] {
			if err := s.Commit(t.Context(), b); err != nil {
				t.Errorf("commit: %v", err)
				return
			}
		}
	}()
	reads := 0
	for waiting := true; waiting; reads++ {
		select {
		case <-done:
			waiting = false
		default:
		}
		if _, err := s.SetRead(t.Context(), "bob", "alice", 0); err != nil {
			t.Errorf("set read: %v", err)
			<-done
			return
		}
	}
	c := conv(t, s, "bob", "alice")
	evs, err := s.History(t.Context(), "bob", "alice", 0, 0)
	if err != nil || len(evs) != n {
		t.Fatalf("history: %d events, %v", len(evs), err)
	}
	var want int64
	for _, e := range evs {
		if e.MsgID > c.ReadUpto {
			want++
		}
	}
	if c.Unread < want {
		t.Errorf("after %d racing reads: unread %d, below the %d messages after %d", reads, c.Unread, want, c.ReadUpto)
	}
	row, err := s.SetRead(t.Context(), "bob", "alice", 0)
	if err != nil || row.Unread != 0 || row.ReadUpto != 100+n-1 {
		t.Errorf("final set read: %+v %v", row, err)
	}
}

// TestSendOnTwoNodes: one send (the same from and cmid) committed by two
// nodes, as when a device resends to another node while the first is
// still committing it, or after the first died mid-commit. The second
// writes nothing and answers with the first's ack; a first that was cut
// short is completed from its claim.
func TestSendOnTwoNodes(t *testing.T) {
	db := newDB(t)
	a, b := open(t, db), open(t, db)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	resend := func(first *store.Batch, id int64) *store.Batch {
		second := send(t, b, "alice", "bob", id, first.Messages[0].TS+1)
		cmid := first.Messages[0].CMID
		second.Messages[0].CMID, second.Acks[0].CMID = cmid, cmid
		return second
	}
	inbox := func(user string) []int64 {
		evs, err := a.Range(ctx, user, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, e := range evs {
			ids = append(ids, e.MsgID)
		}
		return ids
	}

	// 1. The first finished: the second gets its ack and stores nothing.
	first := send(t, a, "alice", "bob", 100, 1000)
	commit(t, a, first)
	second := resend(first, 101)
	commit(t, b, second)
	if got, ok := second.Existing[0]; !ok || got.ID != 100 || got.Ver != first.Acks[0].Ver {
		t.Fatalf("second commit's Existing: %+v, want the first's ack", second.Existing)
	}
	if ids := inbox("bob"); len(ids) != 1 || ids[0] != 100 {
		t.Fatalf("bob's inbox %v, want only message 100", ids)
	}
	if msgs, _ := a.GetMessages(ctx, []int64{101}); len(msgs) != 0 {
		t.Fatalf("the second message was stored: %+v", msgs)
	}

	// 2. The first node died after its claim and its message row: the
	// resend completes the first send rather than storing another.
	first = send(t, a, "alice", "bob", 200, 2000)
	commit(t, a, first)
	mdb := a.Database()
	for _, c := range []string{"entries", "acks", "convs"} { // undo all but the message row
		if _, err := mdb.Collection(c).DeleteMany(ctx, bson.D{{Key: "msg", Value: 200}}); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(first)
	if _, err := mdb.Collection("claims").UpdateOne(ctx, bson.D{{Key: "_id", Value: "alice " + first.Messages[0].CMID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "batch", Value: raw}}}}); err != nil { // the claim as it was before the acks
		t.Fatal(err)
	}
	if _, err := storetest.LookupAck(ctx, a, "alice", first.Messages[0].CMID); err == nil {
		t.Fatal("the cut-short send has an ack")
	}
	second = resend(first, 201)
	commit(t, b, second)
	if got := second.Existing[0]; got.ID != 200 {
		t.Fatalf("resend after a crash: Existing %+v, want message 200's ack", second.Existing)
	}
	if ids := inbox("bob"); len(ids) != 2 || ids[1] != 200 {
		t.Fatalf("bob's inbox %v, want 100 and 200", ids)
	}
	if ack, err := storetest.LookupAck(ctx, a, "alice", first.Messages[0].CMID); err != nil || ack.ID != 200 {
		t.Fatalf("ack after completion: %+v %v", ack, err)
	}
}

// TestReserveAcrossStores: two Stores (two nodes) reserving one key's
// versions at once get blocks that never overlap, on FerretDB too, whose
// updates are not atomic (the cross-process update lock).
func TestReserveAcrossStores(t *testing.T) {
	db := newDB(t)
	stores := []*mongo.Store{open(t, db), open(t, db)}
	defer stores[0].Close()
	defer stores[1].Close()
	var (
		mu     sync.Mutex
		firsts []uint64
		wg     sync.WaitGroup
	)
	for i := range 6 {
		wg.Go(func() {
			for range 10 {
				first, err := stores[i%2].ReserveVersions(t.Context(), "alice", 5)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				firsts = append(firsts, first)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(firsts)
	for i, f := range firsts {
		if f != uint64(1+5*i) {
			t.Fatalf("blocks %v: overlap or gap at %d", firsts, i)
		}
	}
}
