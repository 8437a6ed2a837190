package client

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

func ev(ver uint64) Event {
	return Event{Kind: wire.KindMsg, Ver: ver, Msg: &wire.Msg{Kind: wire.KindMsg, ID: fmt.Sprint(1000 + ver), Ver: ver}}
}

// inboxSequencer is a client's inbox sequencer, with a room of its own.
func inboxSequencer(cursor uint64, epoch string) *sequencer {
	return newSequencer(cursor, epoch, ver, &room{})
}

func evs(vers ...uint64) []Event {
	out := make([]Event, len(vers))
	for i, v := range vers {
		out[i] = ev(v)
	}
	return out
}

func vers(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Ver
	}
	return out
}

func batch(since, upto uint64, more bool, items ...uint64) (wire.Sync, []Event, int) {
	return wire.Sync{Kind: wire.KindSync, Since: since, Upto: upto, More: more, Epoch: "e1"}, evs(items...), len(items)
}

func wantVers(t *testing.T, what string, got []Event, want ...uint64) {
	t.Helper()
	if g := vers(got); !slices.Equal(g, want) && !(len(g) == 0 && len(want) == 0) {
		t.Fatalf("%s: delivered %v, want %v", what, g, want)
	}
}

func TestSequencerLiveInOrder(t *testing.T) {
	s := inboxSequencer(0, "")
	for v := uint64(1); v <= 3; v++ {
		out, again := s.live(ev(v))
		wantVers(t, fmt.Sprint("live ", v), out, v)
		if again {
			t.Fatalf("live %d asked for a sync", v)
		}
	}
	out, again := s.live(ev(2))
	wantVers(t, "duplicate", out)
	if again || s.cursor != 3 {
		t.Fatalf("duplicate: again=%v cursor=%d", again, s.cursor)
	}
}

func TestSequencerGapAsksForSync(t *testing.T) {
	s := inboxSequencer(5, "e1")
	out, again := s.live(ev(8))
	wantVers(t, "live 8 after 5", out)
	if !again {
		t.Fatal("a gap did not ask for a sync")
	}
	s.begin(500)
	// 9 arrives while the sync is out: it waits.
	out, _ = s.live(ev(9))
	wantVers(t, "live during sync", out)
	// The server has 6 and 8 (7 is a hole) and, since then, 9.
	out, again = s.batch(batch(5, 9, false, 6, 8, 9))
	wantVers(t, "sync", out, 6, 8, 9)
	if again || s.syncing || s.cursor != 9 || len(s.pending) != 0 {
		t.Fatalf("after sync: again=%v syncing=%v cursor=%d pending=%v", again, s.syncing, s.cursor, s.pending)
	}
	out, _ = s.live(ev(10))
	wantVers(t, "live after", out, 10)
}

func TestSequencerHeldLiveFollowSynced(t *testing.T) {
	s := inboxSequencer(0, "")
	s.begin(500)
	for _, v := range []uint64{4, 3, 4} {
		if out, _ := s.live(ev(v)); len(out) != 0 {
			t.Fatalf("live %d delivered during a sync", v)
		}
	}
	out, again := s.batch(batch(0, 2, false, 1, 2))
	wantVers(t, "sync then held", out, 1, 2, 3, 4)
	if again {
		t.Fatal("asked again with nothing missing")
	}
}

func TestSequencerHoleCoveredByUpto(t *testing.T) {
	s := inboxSequencer(10, "e1")
	s.begin(500)
	out, _ := s.batch(batch(10, 20, false)) // nothing, but complete through 20
	wantVers(t, "empty batch", out)
	if s.cursor != 20 {
		t.Fatalf("cursor %d, want 20", s.cursor)
	}
	out, again := s.live(ev(21))
	wantVers(t, "live after hole", out, 21)
	if again {
		t.Fatal("asked again")
	}
}

func TestSequencerLimitAndBatches(t *testing.T) {
	s := inboxSequencer(0, "")
	s.begin(4)
	out, again := s.batch(batch(0, 2, true, 1, 2))
	wantVers(t, "batch 1", out, 1, 2)
	if again || !s.syncing {
		t.Fatalf("batch 1 of a 4-item request: again=%v syncing=%v", again, s.syncing)
	}
	out, again = s.batch(batch(2, 4, true, 3, 4))
	wantVers(t, "batch 2", out, 3, 4)
	if !again {
		t.Fatal("the request's limit ran out with more to come, but no new request")
	}
	s.begin(4)
	out, again = s.batch(batch(4, 5, false, 5))
	wantVers(t, "batch 3", out, 5)
	if again || s.syncing {
		t.Fatalf("last batch: again=%v syncing=%v", again, s.syncing)
	}
}

func TestSequencerIgnoresBatchPastCursor(t *testing.T) {
	s := inboxSequencer(3, "e1")
	s.begin(500)
	out, _ := s.batch(batch(7, 9, false, 8, 9))
	wantVers(t, "batch from 7 with cursor 3", out)
	if s.cursor != 3 {
		t.Fatalf("cursor moved to %d", s.cursor)
	}
	// A late batch of an older request, overlapping what was delivered.
	s = inboxSequencer(6, "e1")
	out, _ = s.batch(batch(4, 8, false, 5, 6, 7, 8))
	wantVers(t, "late overlapping batch", out, 7, 8)
}

func TestSequencerLateBatchFillsGap(t *testing.T) {
	s := inboxSequencer(5, "e1")
	if _, again := s.live(ev(8)); !again {
		t.Fatal("no sync asked for a gap")
	}
	// Before the sync is sent, a late batch of an earlier request fills it.
	out, again := s.batch(batch(5, 7, false, 6, 7))
	wantVers(t, "late batch", out, 6, 7, 8)
	if again || s.cursor != 8 {
		t.Fatalf("again=%v cursor=%d", again, s.cursor)
	}
}

func TestSequencerOverlappingRequests(t *testing.T) {
	s := inboxSequencer(10, "e1")
	s.begin(500)
	s.begin(500) // the first timed out; both are answered
	s.live(ev(12))
	out, again := s.batch(batch(10, 11, false, 11))
	wantVers(t, "first answer", out, 11, 12)
	if again || s.syncing {
		t.Fatalf("first answer: again=%v syncing=%v", again, s.syncing)
	}
	out, _ = s.batch(batch(10, 12, false, 11, 12))
	wantVers(t, "second answer", out)
	// A new sync is under way when an old answer ends: it must not end it.
	s.live(ev(14))
	s.begin(500)
	out, _ = s.batch(batch(10, 12, false, 11, 12))
	wantVers(t, "late answer during a new sync", out)
	if !s.syncing {
		t.Fatal("a late answer to an older request ended the current sync")
	}
	out, _ = s.batch(batch(12, 14, false, 13, 14))
	wantVers(t, "answer", out, 13, 14)
}

func TestSequencerReset(t *testing.T) {
	s := inboxSequencer(100, "old")
	s.begin(500)
	s.live(ev(2)) // the new history's version 2, live during the sync
	b, items, n := batch(0, 3, false, 1, 2, 3)
	b.Reset, b.Epoch = true, "new"
	out, again := s.batch(b, items, n)
	wantVers(t, "reset", out, 1, 2, 3)
	if again || s.cursor != 3 || s.epoch != "new" {
		t.Fatalf("after reset: again=%v cursor=%d epoch=%q", again, s.cursor, s.epoch)
	}
	// A second request sent with the old epoch is answered by a reset too:
	// it must not deliver 1..3 again.
	out, _ = s.batch(b, items, n)
	wantVers(t, "second reset", out)
	if s.cursor != 3 {
		t.Fatalf("cursor %d after a duplicate reset", s.cursor)
	}
}

// A live event above a gap that syncs say is not there is dropped after
// maxStalls syncs, and the cursor stays where the server put it. This test
// used to say the opposite (the sequencer skipped the cursor up to the
// event, trusting the live event over the server): that rule let one forged
// event with ver 1,000,000 move the cursor there and silently drop every
// real message below it.
func TestSequencerDropsEventTheServerDoesNotConfirm(t *testing.T) {
	s := inboxSequencer(5, "e1")
	_, again := s.live(ev(9))
	syncs := 0
	for ; again; syncs++ {
		if syncs > maxStalls {
			t.Fatal("the sequencer keeps asking for a gap the server says is empty")
		}
		s.begin(500)
		var out []Event
		out, again = s.batch(batch(5, 5, false))
		wantVers(t, "sync", out)
	}
	if syncs != maxStalls || s.cursor != 5 || len(s.pending) != 0 || s.takeDropped() != 1 {
		t.Fatalf("after %d syncs: cursor %d, pending %v", syncs, s.cursor, s.pending)
	}
	// The real 6 still comes, live.
	out, again := s.live(ev(6))
	wantVers(t, "real event after the forged one", out, 6)
	if again {
		t.Fatal("asked again")
	}
}

// Attack finding 1: a forged live msg with ver 1,000,000 is not believed,
// even while real traffic keeps the syncs busy; real messages keep coming,
// the cursor never passes what the server vouched for, and the forgery is
// never delivered.
func TestSequencerForgedHighVer(t *testing.T) {
	s := inboxSequencer(10, "e1")
	forged := ev(1_000_000)
	forged.Msg.From = "bob"
	var got []Event
	syncs := 0
	out, again := s.live(forged)
	got = append(got, out...)
	for v := uint64(11); v <= 30; v++ {
		if again {
			syncs++
			s.begin(500)
			out, again = s.batch(batch(s.cursor, s.cursor, false)) // nothing new yet
			got = append(got, out...)
		}
		var o []Event
		o, again = s.live(ev(v))
		got = append(got, o...)
		if s.cursor != v {
			t.Fatalf("cursor %d after live %d", s.cursor, v)
		}
	}
	wantVers(t, "real events", got, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)
	if syncs > maxStalls+1 {
		t.Fatalf("%d syncs for one forged event", syncs)
	}
	if _, ok := s.pending[1_000_000]; ok {
		t.Fatal("the forged event still waits")
	}
}

// Scale-out: a real event above a hole the server still waits for
// (sync.Options.Settle) is delivered once a sync reaches it, and never
// before the hole's own event.
func TestSequencerEventAboveYoungHole(t *testing.T) {
	s := inboxSequencer(5, "e1")
	_, again := s.live(ev(7)) // 6 is committed late, on another node
	if !again {
		t.Fatal("no sync for the gap")
	}
	s.begin(500)
	out, again := s.batch(batch(5, 5, false)) // the server cut at the young hole
	wantVers(t, "cut sync", out)
	if !again || s.cursor != 5 {
		t.Fatalf("again=%v cursor=%d", again, s.cursor)
	}
	s.begin(500)
	out, again = s.batch(batch(5, 7, false, 6, 7)) // settled
	wantVers(t, "settled sync", out, 6, 7)
	if again || len(s.pending) != 0 || s.takeDropped() != 0 {
		t.Fatalf("again=%v pending=%v", again, s.pending)
	}
}

// A sync item confirms a version a live event claimed: the server's item
// is what comes out, not the live claim.
func TestSequencerSyncItemWinsOverHeldEvent(t *testing.T) {
	s := inboxSequencer(5, "e1")
	forged := ev(7)
	forged.Msg.From = "mallory-as-bob"
	s.live(forged)
	s.begin(500)
	b, items, n := batch(5, 7, false, 6, 7)
	items[1].Msg.From = "alice"
	out, _ := s.batch(b, items, n)
	wantVers(t, "sync", out, 6, 7)
	if out[1].Msg.From != "alice" {
		t.Fatalf("delivered the live claim from %q", out[1].Msg.From)
	}
}

// Items that did not decode use up the request's limit like the others.
func TestSequencerBudgetCountsSkippedItems(t *testing.T) {
	s := inboxSequencer(0, "e1")
	s.begin(4)
	b, items, _ := batch(0, 4, true, 1, 3)
	if !s.ahead(b, 4) {
		t.Fatal("ahead: a batch of 4 of a 4-item request with more to come")
	}
	out, again := s.batch(b, items, 4) // 2 and 4 did not decode
	wantVers(t, "batch", out, 1, 3)
	if !again || s.cursor != 4 {
		t.Fatalf("again=%v cursor=%d", again, s.cursor)
	}
}

// The live events that wait are bounded; one dropped for want of room is
// fetched by a sync.
func TestSequencerHeldBound(t *testing.T) {
	s := inboxSequencer(0, "e1")
	s.begin(500)
	for v := uint64(2); v <= maxHeld+10; v++ {
		s.live(ev(v))
	}
	if len(s.pending) != maxHeld {
		t.Fatalf("%d events wait", len(s.pending))
	}
	out, again := s.batch(batch(0, 1, false, 1))
	if len(out) != maxHeld+1 || !again {
		t.Fatalf("delivered %d, again=%v", len(out), again)
	}
}

func TestSequencerUnversionedPassThrough(t *testing.T) {
	s := inboxSequencer(0, "")
	s.begin(500)
	u := Event{Kind: wire.KindUnread, Unread: &wire.Unread{Kind: wire.KindUnread, Total: 1}}
	out, again := s.live(u)
	if len(out) != 1 || out[0].Kind != wire.KindUnread || again {
		t.Fatalf("unread during sync: out=%v again=%v", out, again)
	}
}

// fakeHistory answers sync requests the way docs/protocol.md#versions-and-offline-sync and the server's sync
// package do: batches of batchItems, at most limit items per request, each
// covering (since, upto], More on a batch that has something after it.
type fakeHistory struct {
	vers       []uint64 // committed versions, ascending, with holes
	epoch      string
	batchItems int
	maxLimit   int
	// hidden versions are allocated but still being committed on another
	// node (scale-out): a reply ends before the first of them, More unset,
	// as sync.Options.Settle makes the server do.
	hidden map[uint64]bool
}

func (h *fakeHistory) serve(since uint64, epoch string, limit int) []wire.Sync {
	reset := epoch != "" && epoch != h.epoch
	if !reset && since > 0 && (len(h.vers) == 0 || since > h.vers[len(h.vers)-1]) {
		reset = true
	}
	if reset {
		since = 0
	}
	limit = min(limit, h.maxLimit)
	var out []wire.Sync
	for {
		n := min(limit, h.batchItems)
		var items []wire.Msg
		i, _ := slices.BinarySearch(h.vers, since+1)
		cut := false
		for ; i < len(h.vers) && len(items) < n+1; i++ {
			if h.hidden[h.vers[i]] {
				cut = true
				break
			}
			items = append(items, wire.Msg{Kind: wire.KindMsg, Ver: h.vers[i]})
		}
		more := len(items) > n
		if cut && !more {
			b := wire.Sync{Kind: wire.KindSync, Since: since, Upto: since, Epoch: h.epoch, Reset: reset, Items: items}
			if len(items) > 0 {
				b.Upto = items[len(items)-1].Ver
			}
			return append(out, b)
		}
		if more {
			items = items[:n]
		}
		b := wire.Sync{Kind: wire.KindSync, Since: since, Upto: since, More: more, Epoch: h.epoch, Reset: reset, Items: items}
		if len(items) > 0 {
			b.Upto = items[len(items)-1].Ver
		}
		out = append(out, b)
		limit -= len(items)
		if !more || limit <= 0 {
			return out
		}
		since, reset = b.Upto, false
	}
}

func toEvents(b wire.Sync) []Event {
	out := make([]Event, len(b.Items))
	for i, m := range b.Items {
		out[i] = ev(m.Ver)
		out[i].Synced = true
	}
	return out
}

// TestSequencerSimulation runs many random histories through a simulated
// connection that duplicates, delays, reorders and loses live events, drops
// and restores the connection, answers sync requests late and in batches,
// has requests time out and be sent again while the first is still being
// answered, commits some versions late (scale-out: the server's replies end
// at such a hole until it fills), receives forged live events with high
// versions, and now and then loses its whole history (a new epoch).
// Whatever happens, no event may come out twice, versions of one epoch must
// come out in order, no forged event may come out, and every version of the
// final epoch must come out.
func TestSequencerSimulation(t *testing.T) {
	for seed := range uint64(500) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { simulate(t, seed, false) })
	}
}

// TestSequencerSimulationEarly is the simulation with the loop's early
// requests: when ahead says a batch uses up its request, the next request
// goes out before the batch is handled, and must be the one batch would
// have asked for.
func TestSequencerSimulationEarly(t *testing.T) {
	for seed := range uint64(500) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { simulate(t, seed, true) })
	}
}

type simEvent struct {
	epoch int
	ver   uint64
}

func simulate(t *testing.T, seed uint64, early bool) {
	r := rand.New(rand.NewPCG(seed, 42))
	epoch := 1
	h := &fakeHistory{epoch: "e1", batchItems: 1 + r.IntN(5), maxLimit: 2 + r.IntN(10), hidden: map[uint64]bool{}}
	type wireItem struct {
		live  *Event
		batch *wire.Sync
	}
	var (
		inflight  []wireItem // what the network will deliver, in order
		delivered []simEvent
		s         = inboxSequencer(0, "")
		limit     = 1 + r.IntN(8)
		next      uint64
	)
	mk := func(v uint64) Event {
		e := ev(v)
		e.Msg.ID = fmt.Sprintf("e%d-%d", epoch, v)
		return e
	}
	request := func() {
		s.begin(limit)
		for _, b := range h.serve(s.cursor, s.epoch, limit) {
			inflight = append(inflight, wireItem{batch: &b})
		}
	}
	take := func(out []Event, again bool) {
		for _, e := range out {
			var ep int
			var v uint64
			if _, err := fmt.Sscanf(e.Msg.ID, "e%d-%d", &ep, &v); err != nil || v != e.Ver {
				t.Fatalf("delivered a bad event %+v", e.Msg)
			}
			delivered = append(delivered, simEvent{ep, v})
		}
		if again {
			request()
		}
	}
	step := func() {
		it := inflight[0]
		inflight = inflight[1:]
		if it.live != nil {
			take(s.live(*it.live))
			return
		}
		b := *it.batch
		var ahead []wire.Sync // the answer to an early request
		sentEarly := early && s.ahead(b, len(b.Items))
		if sentEarly {
			epoch := b.Epoch
			if epoch == "" {
				epoch = s.epoch
			}
			ahead = h.serve(b.Upto, epoch, limit)
		}
		items := make([]Event, len(b.Items))
		for i, m := range b.Items {
			items[i] = mk(m.Ver)
			items[i].Msg.ID = fmt.Sprintf("e%s-%d", b.Epoch[1:], m.Ver)
		}
		out, again := s.batch(b, items, len(items))
		if !sentEarly {
			take(out, again)
			return
		}
		if !again || s.cursor != b.Upto {
			t.Fatalf("ahead(%+v) but batch gave again=%v, cursor %d", b, again, s.cursor)
		}
		take(out, false)
		s.begin(limit)
		for _, b := range ahead {
			inflight = append(inflight, wireItem{batch: &b})
		}
	}
	publish := func(e Event) {
		pos := len(inflight)
		if r.IntN(4) == 0 && pos > 0 { // overtakes something
			pos = r.IntN(pos + 1)
		}
		inflight = slices.Insert(inflight, pos, wireItem{live: &e})
		if r.IntN(5) == 0 { // and comes twice
			inflight = append(inflight, wireItem{live: &e})
		}
	}
	reveal := func(v uint64) {
		delete(h.hidden, v)
		if r.IntN(10) != 0 { // else lost
			publish(mk(v))
		}
	}
	request() // the first connect
	for range 300 {
		switch k := r.IntN(22); {
		case k < 8: // commit a message, perhaps after a hole, and publish it live
			next += 1 + uint64(r.IntN(3)/2)
			h.vers = append(h.vers, next)
			if r.IntN(8) == 0 { // committed late, on another node
				h.hidden[next] = true
				break
			}
			if r.IntN(10) == 0 {
				break // lost
			}
			publish(mk(next))
		case k == 20: // a late commit lands
			for v := range h.hidden {
				reveal(v)
				break
			}
		case k == 21: // a peer forges an event far ahead
			e := ev(1_000_000 + uint64(r.IntN(1000)))
			e.Msg.ID = "forged"
			publish(e)
		case k < 17: // the network delivers the next thing
			if len(inflight) > 0 {
				step()
			}
		case k < 18: // a sync request times out and is sent again
			if s.syncing {
				request()
			}
		case k < 19: // the connection drops and comes back: in flight is lost
			inflight = nil
			s.connected()
			request()
		default: // the server loses its history and restarts
			if r.IntN(3) == 0 {
				epoch++
				h.epoch, h.vers, next = fmt.Sprint("e", epoch), nil, 0
				clear(h.hidden)
				inflight = nil
				s.connected()
				request()
			}
		}
	}
	// Quiesce: the late commits land, deliver what is in flight, then
	// reconnect until at rest.
	for v := range h.hidden {
		reveal(v)
	}
	for range 100 {
		for len(inflight) > 0 {
			step()
		}
		if !s.syncing && (len(h.vers) == 0 || s.cursor == h.vers[len(h.vers)-1]) {
			break
		}
		s.connected()
		request()
	}
	seen := map[simEvent]bool{}
	for i, d := range delivered {
		if seen[d] {
			t.Fatalf("e%d-%d delivered twice: %v", d.epoch, d.ver, delivered)
		}
		seen[d] = true
		if i > 0 && delivered[i-1].epoch == d.epoch && delivered[i-1].ver > d.ver {
			t.Fatalf("e%d-%d delivered after e%d-%d", d.epoch, d.ver, d.epoch, delivered[i-1].ver)
		}
	}
	for _, v := range h.vers {
		if !seen[simEvent{epoch, v}] {
			t.Fatalf("e%d-%d never delivered; delivered %v", epoch, v, delivered)
		}
	}
}
