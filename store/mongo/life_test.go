package mongo_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
)

// groupMsg commits message id at seq of group, with its head.
func groupMsg(t *testing.T, s *mongo.Store, group string, id int64, seq uint64) {
	t.Helper()
	m := store.Message{ID: id, From: "alice", Group: group, Seq: seq, Type: "text", Body: "g", CMID: "g" + strconv.FormatInt(id, 10), TS: id}
	commit(t, s, &store.Batch{Messages: []store.Message{m},
		Acks:  []store.Ack{{From: m.From, CMID: m.CMID, ID: id, TS: id, Group: group, Seq: seq}},
		Heads: []store.GroupHead{{Group: group, Seq: seq, MsgID: id, TS: id}}})
}

// groupReaction is a group change record (a reaction of user on target)
// at seq, the group's count-th change, with its head and its Reaction.
func groupReaction(group, user string, id, target int64, seq, count uint64, emoji string, add bool) *store.Batch {
	c := store.Change{Kind: store.ChangeReaction, Target: target, Emoji: emoji, Add: add, Count: count}
	m := store.Message{ID: id, From: user, Group: group, Seq: seq, Type: c.Kind, CMID: "r" + strconv.FormatInt(id, 10), TS: id, Change: &c}
	return &store.Batch{Messages: []store.Message{m},
		Acks:      []store.Ack{{From: user, CMID: m.CMID, ID: id, TS: id, Group: group, Seq: seq}},
		Heads:     []store.GroupHead{{Group: group, Seq: seq, Changes: count}},
		Reactions: []store.Reaction{{MsgID: target, User: user, Emoji: emoji, Add: add, TS: id}}}
}

func sums(t *testing.T, s *mongo.Store, id int64) []store.ReactionSum {
	t.Helper()
	got, err := s.ReactionsOf(t.Context(), []int64{id})
	if err != nil {
		t.Fatal(err)
	}
	return got[id]
}

// TestLegacyHead: a head written before the lifecycle has no msg_seq. A
// change record's head moving its seq must not make it forget which seq
// its message is at: a message at a seq between the two (another node's,
// committed late) still becomes the head's message.
func TestLegacyHead(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	_, err := s.Database().Collection("group_heads").InsertOne(t.Context(),
		bson.D{{Key: "_id", Value: "g1"}, {Key: "seq", Value: int64(5)}, {Key: "msg", Value: int64(50)}, {Key: "ts", Value: int64(50)}})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, s, groupReaction("g1", "bob", 70, 50, 7, 1, "👍", true))
	want := store.GroupHead{Group: "g1", Seq: 7, MsgID: 50, TS: 50, Changes: 1}
	if h, err := s.GroupHead(t.Context(), "g1"); err != nil || h != want {
		t.Fatalf("head after a change: %+v, %v; want %+v", h, err, want)
	}
	groupMsg(t, s, "g1", 60, 6)
	want = store.GroupHead{Group: "g1", Seq: 7, MsgID: 60, TS: 60, Changes: 1}
	if h, err := s.GroupHead(t.Context(), "g1"); err != nil || h != want {
		t.Fatalf("head after a message at 6: %+v, %v; want %+v", h, err, want)
	}
	groupMsg(t, s, "g1", 40, 4) // older: nothing moves
	if h, err := s.GroupHead(t.Context(), "g1"); err != nil || h != want {
		t.Fatalf("head after a message at 4: %+v, %v; want %+v", h, err, want)
	}
}

// TestReactionEmojiBytes: an emoji is stored as a value, so one holding
// '.' or '$' (which a field name may not) is like any other.
func TestReactionEmojiBytes(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	commit(t, s, send(t, s, "alice", "bob", 101, 1))
	odd := []string{"$", ".", "a.b", "$x.y", "👍"}
	b := &store.Batch{}
	for _, e := range odd {
		b.Reactions = append(b.Reactions, store.Reaction{MsgID: 101, User: "bob", Emoji: e, Add: true, TS: 2})
	}
	commit(t, s, b)
	got := sums(t, s, 101)
	if len(got) != len(odd) {
		t.Fatalf("reactions: %+v", got)
	}
	for i, e := range slices.Sorted(slices.Values(odd)) {
		if got[i].Emoji != e || got[i].Count != 1 || !slices.Equal(got[i].Users, []string{"bob"}) {
			t.Errorf("reaction %d: %+v, want %q by bob", i, got[i], e)
		}
	}
	if mine, err := s.UserReactions(t.Context(), 101, "bob"); err != nil || len(mine) != len(odd) {
		t.Errorf("bob's reactions: %q, %v", mine, err)
	}
}

// TestReactionCutShort: a Commit cut short leaves a reaction row marked
// (counted or uncounted not yet); the same reaction committed again
// finishes the move, once.
func TestReactionCutShort(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	commit(t, s, send(t, s, "alice", "bob", 101, 1))
	rows := s.Database().Collection("reactions")
	// An add whose row was inserted, and nothing more.
	_, err := rows.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "101 3:bob 👍"}, {Key: "msg", Value: int64(101)},
		{Key: "user", Value: "bob"}, {Key: "emoji", Value: "👍"}, {Key: "ts", Value: int64(2)}, {Key: "st", Value: "add"}})
	if err != nil {
		t.Fatal(err)
	}
	add := &store.Batch{Reactions: []store.Reaction{{MsgID: 101, User: "bob", Emoji: "👍", Add: true, TS: 2}}}
	commit(t, s, add)
	commit(t, s, add)
	if got := sums(t, s, 101); len(got) != 1 || got[0].Count != 1 || !slices.Equal(got[0].Users, []string{"bob"}) {
		t.Fatalf("after finishing the add: %+v", got)
	}
	if ms, err := s.GetMessages(t.Context(), []int64{101}); err != nil || !ms[0].Reacted {
		t.Fatalf("not reacted: %+v, %v", ms, err)
	}
	// A remove whose row was marked, and nothing more.
	if _, err := rows.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "101 3:bob 👍"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "st", Value: "rm"}}}}); err != nil {
		t.Fatal(err)
	}
	if mine, err := s.UserReactions(t.Context(), 101, "bob"); err != nil || len(mine) != 0 {
		t.Errorf("a row being removed is listed: %q, %v", mine, err)
	}
	rm := &store.Batch{Reactions: []store.Reaction{{MsgID: 101, User: "bob", Emoji: "👍", TS: 3}}}
	commit(t, s, rm)
	commit(t, s, rm)
	if got := sums(t, s, 101); len(got) != 0 {
		t.Fatalf("after finishing the remove: %+v", got)
	}
	if n, err := rows.CountDocuments(t.Context(), bson.D{}); err != nil || n != 0 {
		t.Fatalf("reaction rows left: %d, %v", n, err)
	}
}

// TestReactionsOnTwoNodes: two nodes add and then remove reactions of one
// message and emoji at once: the count is every reactor once, the list
// holds ReactionUsers distinct reactors, and all removed leaves none.
func TestReactionsOnTwoNodes(t *testing.T) {
	db := newDB(t)
	a, b := open(t, db), open(t, db)
	defer a.Close()
	defer b.Close()
	commit(t, a, send(t, a, "alice", "bob", 101, 1))
	const n = 30
	run := func(add bool) {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				s := []*mongo.Store{a, b}[i%2]
				r := store.Reaction{MsgID: 101, User: fmt.Sprintf("u%02d", i), Emoji: "🎉", Add: add, TS: int64(i)}
				errs <- s.Commit(t.Context(), &store.Batch{Reactions: []store.Reaction{r}})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	run(true)
	got := sums(t, a, 101)
	if len(got) != 1 || got[0].Count != n || len(got[0].Users) != store.ReactionUsers {
		t.Fatalf("after %d adds: %+v", n, got)
	}
	if c := slices.Compact(slices.Sorted(slices.Values(got[0].Users))); len(c) != store.ReactionUsers {
		t.Errorf("a user listed twice: %v", got[0].Users)
	}
	run(false)
	if got := sums(t, b, 101); len(got) != 0 {
		t.Fatalf("after the removes: %+v", got)
	}
}

// TestClaimKeepsChanges: a batch holding a resent change (its cmid claimed
// by a message committed before) and another change writes the other's
// effect and none of the resend's; and a claim holds its send's effects,
// for a node that completes it.
func TestClaimKeepsChanges(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	for id := int64(101); id <= 103; id++ {
		commit(t, s, send(t, s, "alice", "bob", id, id))
	}
	recall := func(id, target int64, cmid string) store.Message {
		return store.Message{ID: id, From: "alice", To: "bob", Type: "recall", CMID: cmid, TS: id,
			Change: &store.Change{Kind: store.ChangeRecall, Target: target}}
	}
	first := recall(201, 101, "c1")
	commit(t, s, &store.Batch{Messages: []store.Message{first}, Acks: []store.Ack{{From: "alice", CMID: "c1", ID: 201, TS: 201}},
		Recalls: []store.Recall{{MsgID: 101, By: "alice", TS: 201}}})

	// The resend, with another ID (and, to tell them apart, another target).
	again := recall(202, 103, "c1")
	edit := store.Message{ID: 203, From: "alice", To: "bob", Type: "edit", CMID: "c2", TS: 203,
		Change: &store.Change{Kind: store.ChangeEdit, Target: 102}}
	b := &store.Batch{Messages: []store.Message{again, edit},
		Acks:    []store.Ack{{From: "alice", CMID: "c1", ID: 202, TS: 202}, {From: "alice", CMID: "c2", ID: 203, TS: 203}},
		Recalls: []store.Recall{{MsgID: 103, By: "alice", TS: 202}},
		Edits:   []store.Edit{{MsgID: 102, Body: "fixed", TS: 203}}}
	commit(t, s, b)
	if a, ok := b.Existing[0]; !ok || a.ID != 201 {
		t.Fatalf("existing: %+v", b.Existing)
	}
	ms, err := s.GetMessages(t.Context(), []int64{101, 102, 103, 202})
	if err != nil || len(ms) != 3 {
		t.Fatalf("messages: %+v, %v", ms, err)
	}
	if ms[0].Recalled == 0 || ms[1].Body != "fixed" || ms[2].Recalled != 0 {
		t.Errorf("101 recalled, 102 edited, 103 untouched; got %+v", ms)
	}

	p := mongo.Part(b, edit)
	if len(p.Edits) != 1 || len(p.Recalls) != 0 {
		t.Errorf("the edit's claim: %+v", p)
	}
	b.Grants = []store.Grant{{Media: "m1", Principal: store.RevokedGrant}}
	if p := mongo.Part(b, again); len(p.Recalls) != 1 || len(p.Grants) != 1 {
		t.Errorf("the recall's claim lacks its recall or its media's revocation: %+v", p)
	}
	gb := groupReaction("g1", "bob", 301, 300, 4, 2, "👍", true)
	gb.Reactions = append(gb.Reactions, store.Reaction{MsgID: 300, User: "carol", Emoji: "👍", Add: true})
	p = mongo.Part(gb, gb.Messages[0])
	if len(p.Reactions) != 1 || p.Reactions[0].User != "bob" || len(p.Heads) != 1 || p.Heads[0].Changes != 2 {
		t.Errorf("the group reaction's claim: %+v", p)
	}
}

// TestImportLifecycle: imported reactions rebuild their summaries (rows
// of one summary in two calls, and a call repeated); hidden rows, user
// settings, and the group change index of imported change records.
func TestImportLifecycle(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	var rows []store.Reaction
	for i := range store.ReactionUsers + 3 {
		rows = append(rows, store.Reaction{MsgID: 101, User: fmt.Sprintf("u%02d", i), Emoji: "👍", TS: int64(i)})
	}
	rows = append(rows, store.Reaction{MsgID: 102, User: "bob", Emoji: "❤️", TS: 1})
	for _, part := range [][]store.Reaction{rows[:10], rows[10:], rows[5:15]} {
		if err := s.ImportReactions(t.Context(), part); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ReactionsOf(t.Context(), []int64{101, 102})
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for _, r := range rows[:store.ReactionUsers] {
		first = append(first, r.User)
	}
	if s := got[101]; len(s) != 1 || s[0].Count != store.ReactionUsers+3 || !slices.Equal(s[0].Users, first) {
		t.Errorf("101's reactions: %+v", s)
	}
	if s := got[102]; len(s) != 1 || s[0].Count != 1 || s[0].Emoji != "❤️" {
		t.Errorf("102's reactions: %+v", s)
	}
	// A reaction after the import moves the rebuilt summary.
	commit(t, s, &store.Batch{Reactions: []store.Reaction{{MsgID: 102, User: "carol", Emoji: "❤️", Add: true, TS: 5}}})
	if got := sums(t, s, 102); len(got) != 1 || got[0].Count != 2 {
		t.Errorf("102 after a reaction: %+v", got)
	}

	if err := s.ImportHidden(t.Context(), []store.Hide{{User: "bob", MsgID: 301, Group: "g1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportHidden(t.Context(), []store.Hide{{User: "bob", MsgID: 302, Peer: "alice"}}); err == nil {
		t.Error("imported a 1:1 hide as a row")
	}
	if h, err := s.Hidden(t.Context(), "bob", []int64{301, 302}); err != nil || !h[301] || len(h) != 1 {
		t.Errorf("hidden: %v, %v", h, err)
	}
	us := store.UserSettings{User: "bob", NoReadReceipts: true, Updated: 9}
	for range 2 {
		if err := s.ImportUserSettings(t.Context(), []store.UserSettings{us}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.GetUserSettings(t.Context(), "bob"); err != nil || got != us {
		t.Errorf("settings: %+v, %v", got, err)
	}

	// A group change record imported: a read counts it.
	c := store.Change{Kind: store.ChangeRecall, Target: 300, Count: 1}
	msgs := []store.Message{
		{ID: 300, From: "alice", Group: "g2", Seq: 1, Type: "text", TS: 1},
		{ID: 301, From: "alice", Group: "g2", Seq: 2, Type: "recall", TS: 2, Change: &c},
	}
	if err := s.ImportMessages(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportMembers(t.Context(), []store.Member{{Group: "g2", User: "bob", Role: store.RoleMember}}); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportHeads(t.Context(), []store.GroupHead{{Group: "g2", Seq: 2, MsgID: 300, TS: 1, Changes: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGroupReads(t.Context(), []store.GroupRead{{Group: "g2", User: "bob", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetMember(t.Context(), "g2", "bob"); err != nil || m.ReadChanges != 1 {
		t.Errorf("bob's read after the import: %+v, %v", m, err)
	}
}

// writeCounter counts the documents the write commands of a store insert,
// update and delete, by collection (the FerretDB update lock's meta
// document aside).
type writeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *writeCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		arrays := map[string]string{"insert": "documents", "update": "updates", "delete": "deletes", "findAndModify": ""}
		field, ok := arrays[e.CommandName]
		if !ok {
			return
		}
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		if coll == "meta" {
			return
		}
		n := 1
		if field != "" {
			docs, _ := e.Command.Lookup(field).Array().Values()
			n = len(docs)
		}
		w.mu.Lock()
		w.n[coll] += n
		w.mu.Unlock()
	}}
}

func (w *writeCounter) take() (int, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for _, n := range w.n {
		total += n
	}
	m := w.n
	w.n = map[string]int{}
	return total, m
}

// TestGroupChangeWrites: a reaction and a recall in a group write the same
// documents at 10,000 members as at 2 (read diffusion: none per member).
func TestGroupChangeWrites(t *testing.T) {
	w := &writeCounter{n: map[string]int{}}
	mongo.SetMonitor(t, w.monitor())
	counts := map[int][2]int{}
	for _, members := range []int{2, 10000} {
		s := open(t, newDB(t))
		ms := make([]store.Member, members)
		for i := range ms {
			ms[i] = store.Member{User: fmt.Sprintf("u%05d", i), Role: store.RoleMember}
		}
		if err := s.CreateGroup(t.Context(), store.Group{ID: "g1", Owner: "u00000", Created: 1}, ms); err != nil {
			t.Fatal(err)
		}
		groupMsg(t, s, "g1", 101, 1)
		w.take()
		commit(t, s, groupReaction("g1", "u00001", 201, 101, 2, 1, "👍", true))
		react, rc := w.take()
		c := store.Change{Kind: store.ChangeRecall, Target: 101, Count: 2}
		m := store.Message{ID: 202, From: "u00000", Group: "g1", Seq: 3, Type: c.Kind, CMID: "r202", TS: 202, Change: &c}
		commit(t, s, &store.Batch{Messages: []store.Message{m},
			Acks:    []store.Ack{{From: m.From, CMID: m.CMID, ID: m.ID, TS: m.TS, Group: "g1", Seq: 3}},
			Heads:   []store.GroupHead{{Group: "g1", Seq: 3, Changes: 2}},
			Recalls: []store.Recall{{MsgID: 101, By: "u00000", TS: 202}}})
		recall, rcc := w.take()
		t.Logf("members=%d: a reaction writes %d documents %v; a recall %d %v", members, react, rc, recall, rcc)
		counts[members] = [2]int{react, recall}
		s.Close()
	}
	if counts[2] != counts[10000] {
		t.Errorf("writes of a reaction and a recall at 2 members %v, at 10,000 %v", counts[2], counts[10000])
	}
}
