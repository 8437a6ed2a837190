package sdk

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// The message lifecycle through the SDK (issue 18, docs/protocol.md#message-lifecycle):
// typed events live and after a reconnect, changes in the stream exactly
// once, the refusals' codes.

// item is one message or change a recorder got, as "kind:id" (with the
// emoji of a reaction, the body of an edit).
func itemString(ev client.Event) string {
	m := ev.Item()
	switch ev.Kind {
	case wire.KindReaction:
		return fmt.Sprintf("reaction:%s:%s:%s", m.ID, m.Op, m.Emoji)
	case wire.KindEdit:
		return fmt.Sprintf("edit:%s:%s", m.ID, m.Body)
	case wire.KindDelete:
		return fmt.Sprintf("delete:%v%s", m.IDs, m.Peer)
	case wire.KindMsg:
		if m.Recalled {
			return "tombstone:" + m.ID
		}
		return "msg:" + m.ID + ":" + m.Body
	}
	return ev.Kind + ":" + m.ID
}

// items returns the messages and changes rec got, in order (group ones of
// group, or the inbox's when group is "").
func (r *recorder) items(group string) (out []client.Event) {
	for _, ev := range r.events() {
		if m := ev.Item(); m != nil && (m.Group == group || ev.Kind == wire.KindDelete && group == "") {
			out = append(out, ev)
		}
	}
	return out
}

func itemStrings(evs []client.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = itemString(ev)
	}
	return out
}

// expectItems waits until rec has len(want) items (of group, or the
// inbox's) and checks they are want, once each, in version (seq) order.
func expectItems(t testing.TB, who string, rec *recorder, group string, want ...string) []client.Event {
	t.Helper()
	wait.For(t, fmt.Sprintf("%s's %d items", who, len(want)), 15*time.Second, func() bool { return len(rec.items(group)) >= len(want) })
	got := rec.items(group)
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if pa, pb := a.Ver+a.Item().Seq, b.Ver+b.Item().Seq; pb <= pa {
			t.Fatalf("%s: %s at %d after %s at %d (a repeat or out of order)", who, itemString(b), pb, itemString(a), pa)
		}
	}
	if g := itemStrings(got); !slices.Equal(g, want) {
		t.Fatalf("%s got\n%q\nwant\n%q", who, g, want)
	}
	return got
}

// TestE2ELifecycleLive: a reaction, an edit, a recall and a delete made
// through the SDK reach every device concerned live, as typed events in
// version order once each (a delete only the deleter's); the acks carry the
// message's ID and the change's version; the same cmid made twice is one
// change acked twice; the refusals come back with their codes.
func TestE2ELifecycleLive(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, laptopSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "alice", "laptop"), login(t, s, "bob", "phone")
	var aliceRec, laptopRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	dial(t, s, laptopSess, nil, &laptopRec)
	bob := dial(t, s, bobSess, nil, &bobRec)
	ctx := testCtx(t)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m1, err := alice.Send(ctx, wire.Send{To: "bob", Body: "helo"})
	if err != nil {
		t.Fatal(err)
	}
	react, err := bob.React(ctx, m1.ID, "👍🏽")
	if err != nil || react.ID == "" || react.ID == m1.ID || react.Ver == 0 {
		t.Fatalf("react: %+v %v; want the change's own ID and version", react, err)
	}
	// The same reaction again changes nothing: acked with ver 0.
	if again, err := bob.React(ctx, m1.ID, "👍🏽"); err != nil || again.Ver != 0 {
		t.Fatalf("the same reaction again: %+v %v", again, err)
	}
	if _, err := alice.Edit(ctx, m1.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, wire.Send{To: "bob", Body: "oops", ReplyTo: m1.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The same recall twice (a resend) is one change, acked alike.
	recall := wire.Recall{CMID: client.NewCMID(), ID: m2.ID}
	r1, err := alice.Apply(ctx, recall)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := alice.Apply(ctx, &recall)
	if err != nil || r2.ID != r1.ID || r2.Ver != r1.Ver {
		t.Fatalf("the same recall again: %+v %v, first %+v", r2, err, r1)
	}
	if _, err := bob.Unreact(ctx, m1.ID, "👍🏽"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Delete(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	m3, err := alice.Send(ctx, wire.Send{To: "bob", Body: "marker"})
	if err != nil {
		t.Fatal(err)
	}
	shared := []string{"msg:" + m1.ID + ":helo", "reaction:" + m1.ID + ":add:👍🏽", "edit:" + m1.ID + ":hello",
		"msg:" + m2.ID + ":oops", "recall:" + m2.ID, "reaction:" + m1.ID + ":remove:👍🏽"}
	bobs := expectItems(t, "bob", &bobRec, "", append(slices.Clone(shared), "delete:["+m1.ID+"]", "msg:"+m3.ID+":marker")...)
	for _, who := range []struct {
		name string
		rec  *recorder
	}{{"alice's phone", &aliceRec}, {"alice's laptop", &laptopRec}} {
		expectItems(t, who.name, who.rec, "", append(slices.Clone(shared), "msg:"+m3.ID+":marker")...)
	}
	// The typed fields.
	for _, ev := range bobs {
		switch {
		case ev.Reaction != nil && (ev.Reaction.From != "bob" || ev.Ver == 0):
			t.Fatalf("reaction %+v", ev.Reaction)
		case ev.Edit != nil && (ev.Edit.Edited == 0 || ev.Edit.Body != "hello"):
			t.Fatalf("edit %+v", ev.Edit)
		case ev.Recall != nil && (ev.Recall.By != "alice" || ev.Ver == 0 || ev.Recall.Body != ""):
			t.Fatalf("recall %+v", ev.Recall)
		case ev.Delete != nil && !slices.Equal(ev.Delete.IDs, []string{m1.ID}):
			t.Fatalf("delete %+v", ev.Delete)
		case ev.Msg != nil && ev.Msg.ID == m2.ID && (ev.Msg.ReplyTo != m1.ID || ev.Msg.Quote == nil || ev.Msg.Quote.From != "alice"):
			t.Fatalf("reply %+v", ev.Msg)
		}
	}
	if cur := bob.Cursor(); cur.Ver != bobs[len(bobs)-1].Ver {
		t.Fatalf("bob's cursor %d, last item %d", cur.Ver, bobs[len(bobs)-1].Ver)
	}

	// Refusals, each with its code, changing nothing.
	for _, c := range []struct {
		what string
		err  func() error
		code string
	}{
		{"bob recalls alice's message", func() error { _, err := bob.Recall(ctx, m1.ID); return err }, wire.CodeNotAllowed},
		{"bob edits alice's message", func() error { _, err := bob.Edit(ctx, m1.ID, "mine"); return err }, wire.CodeNotAllowed},
		{"alice edits her recalled message", func() error { _, err := alice.Edit(ctx, m2.ID, "back"); return err }, wire.CodeNotAllowed},
		{"a reaction to a message that is not there", func() error { _, err := bob.React(ctx, "1", "👍"); return err }, wire.CodeNotFound},
		{"a reaction that is no emoji", func() error { _, err := bob.React(ctx, m3.ID, "ab"); return err }, wire.CodeBadRequest},
		{"a reply to nothing", func() error {
			_, err := bob.Send(ctx, wire.Send{To: "alice", Body: "re", ReplyTo: "1"})
			return err
		}, wire.CodeBadRequest},
	} {
		if err := c.err(); !isCode(err, c.code) {
			t.Errorf("%s: %v, want %s", c.what, err, c.code)
		}
	}
	// A marker: nothing the refusals did reached bob.
	m4, err := alice.Send(ctx, wire.Send{To: "bob", Body: "marker 2"})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the second marker", 15*time.Second, func() bool { return slices.Contains(itemStrings(bobRec.items("")), "msg:"+m4.ID+":marker 2") })
	if n := len(bobRec.items("")); n != len(bobs)+1 {
		t.Fatalf("bob has %d items after the refusals, want %d: %q", n, len(bobs)+1, itemStrings(bobRec.items("")))
	}
}

// TestE2ELifecycleAfterReconnect: bob is away while alice edits a message
// he has, reacts to it, sends one and recalls it; on reconnect bob's
// device gets, by sync, each change once in version order and the recalled
// message only as a tombstone, never its body; history shows the current
// state.
func TestE2ELifecycleAfterReconnect(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, first recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	cur := &client.MemoryCursor{}
	bob := dial(t, s, bobSess, cur, &first)
	ctx := testCtx(t)
	m1, err := alice.Send(ctx, wire.Send{To: "bob", Body: "helo"})
	if err != nil {
		t.Fatal(err)
	}
	expectItems(t, "bob", &first, "", "msg:"+m1.ID+":helo")
	bob.Close()

	if _, err := alice.Edit(ctx, m1.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.React(ctx, m1.ID, "🎉"); err != nil {
		t.Fatal(err)
	}
	m2, err := alice.Send(ctx, wire.Send{To: "bob", Body: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Recall(ctx, m2.ID); err != nil {
		t.Fatal(err)
	}
	m3, err := alice.Send(ctx, wire.Send{To: "bob", Body: "after"})
	if err != nil {
		t.Fatal(err)
	}

	var second recorder
	bob = dial(t, s, bobSess, cur, &second)
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	got := expectItems(t, "bob after reconnecting", &second, "",
		"edit:"+m1.ID+":hello", "reaction:"+m1.ID+":add:🎉", "tombstone:"+m2.ID, "recall:"+m2.ID, "msg:"+m3.ID+":after")
	for _, ev := range got {
		if !ev.Synced {
			t.Fatalf("%s came live, not from the sync", itemString(ev))
		}
		if m := ev.Item(); m.ID == m2.ID && (m.Body != "" || m.Media != "" || m.Meta != nil) {
			t.Fatalf("the recalled message's content reached bob: %+v", m)
		}
	}
	if c := bob.Cursor(); c.Ver != got[len(got)-1].Ver {
		t.Fatalf("cursor %d, last item %d", c.Ver, got[len(got)-1].Ver)
	}
	// A second reconnect brings nothing again.
	bob.Close()
	var third recorder
	bob = dial(t, s, bobSess, cur, &third)
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, wire.Send{To: "bob", Body: "last"}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the last message", 15*time.Second, func() bool { return len(third.items("")) > 0 })
	if g := itemStrings(third.items("")); len(g) != 1 {
		t.Fatalf("after a second reconnect bob got %q", g)
	}

	h := &client.HTTP{Server: s.HTTP, Token: bobSess.Token}
	hist, err := h.History(ctx, "alice", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist.Messages {
		switch m.ID {
		case m1.ID:
			if m.Body != "hello" || m.Edited == 0 || m.Reactions["🎉"].Count != 1 {
				t.Fatalf("history of the edited message: %+v", m)
			}
		case m2.ID:
			if !m.Recalled || m.Body != "" {
				t.Fatalf("history of the recalled message: %+v", m)
			}
		}
		if m.Kind != wire.KindMsg {
			t.Fatalf("history holds a change: %+v", m)
		}
	}
}

// TestE2ELifecycleGroup: in a group, changes are items of the group's log:
// a member online gets them live, one away gets them by the group's sync,
// each once in seq order (a recall by the owner of a member's message);
// group reads count a member that read, not one that did not.
func TestE2ELifecycleGroup(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess, carolSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone"), login(t, s, "carol", "phone")
	login(t, s, "dave", "phone") // a member who never reads
	createGroup(t, s, aliceSess, "team", "bob", "carol", "dave")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec)
	ctx := testCtx(t)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	g1, err := alice.Send(ctx, wire.Send{Group: "team", Body: "plan"})
	if err != nil {
		t.Fatal(err)
	}
	react, err := bob.React(ctx, g1.ID, "👍")
	if err != nil || react.Group != "team" || react.Seq <= g1.Seq {
		t.Fatalf("react in a group: %+v %v; want team and a seq after %d", react, err, g1.Seq)
	}
	if _, err := alice.Edit(ctx, g1.ID, "the plan"); err != nil {
		t.Fatal(err)
	}
	g2, err := bob.Send(ctx, wire.Send{Group: "team", Body: "spam"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Recall(ctx, g2.ID); err != nil { // the owner recalls a member's message
		t.Fatalf("the owner's recall: %v", err)
	}
	want := []string{"msg:" + g1.ID + ":plan", "reaction:" + g1.ID + ":add:👍", "edit:" + g1.ID + ":the plan",
		"msg:" + g2.ID + ":spam", "recall:" + g2.ID}
	expectItems(t, "bob", &bobRec, "team", want...)
	if c := bob.Cursor(); c.Groups["team"].Seq != bobRec.items("team")[len(want)-1].Item().Seq {
		t.Fatalf("bob's group cursor %+v", c.Groups)
	}

	var carolRec recorder
	carol := dial(t, s, carolSess, nil, &carolRec)
	if err := carol.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	got := expectItems(t, "carol", &carolRec, "team", "msg:"+g1.ID+":the plan", "reaction:"+g1.ID+":add:👍",
		"edit:"+g1.ID+":the plan", "tombstone:"+g2.ID, "recall:"+g2.ID)
	for _, ev := range got {
		if m := ev.Item(); m.ID == g2.ID && m.Body != "" {
			t.Fatalf("the recalled group message's body reached carol: %+v", m)
		}
	}
	if _, err := bob.Recall(ctx, g1.ID); !isCode(err, wire.CodeNotAllowed) {
		t.Fatalf("a member recalls the owner's message: %v", err)
	}

	// Carol reads up to the first message; the group's reads count her.
	hc := &client.HTTP{Server: s.HTTP, Token: carolSess.Token}
	if _, err := hc.Read(ctx, wire.Read{Group: "team", Seq: g1.Seq}); err != nil {
		t.Fatal(err)
	}
	ha := &client.HTTP{Server: s.HTTP, Token: aliceSess.Token}
	reads, err := ha.GroupReads(ctx, "team", g1.Seq, "", 0)
	if err != nil || !slices.Contains(reads.Users, "carol") || slices.Contains(reads.Users, "dave") || reads.Unread < 1 {
		t.Fatalf("reads of %d: %+v %v; want carol, not dave", g1.Seq, reads, err)
	}
	if _, err := (&client.HTTP{Server: s.HTTP, Token: "x"}).GroupReads(ctx, "team", g1.Seq, "", 0); !isCode(err, wire.CodeUnauthorized) {
		t.Fatalf("reads without a token: %v", err)
	}
}

// TestE2ETypingAndReceipts: typing reaches the peer's device (not stored:
// no version, the cursor stays); reading sends a receipt to the peer's
// devices until the reader turns receipts off.
func TestE2ETypingAndReceipts(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec)
	ctx := testCtx(t)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := bob.Cursor()
	typing := func(rec *recorder) []wire.TypingEvent {
		var out []wire.TypingEvent
		for _, ev := range rec.events() {
			if ev.Typing != nil {
				out = append(out, *ev.Typing)
			}
		}
		return out
	}
	wait.For(t, "bob sees alice typing", 15*time.Second, func() bool {
		if err := alice.Typing(ctx, wire.Typing{Peer: "bob"}); err != nil { // QoS 0, one a second: again until one arrives
			t.Fatal(err)
		}
		return len(typing(&bobRec)) > 0
	})
	if ev := typing(&bobRec)[0]; ev.From != "alice" || ev.State != wire.TypingStart {
		t.Fatalf("typing %+v", ev)
	}
	if bob.Cursor().Ver != before.Ver {
		t.Fatalf("typing moved bob's cursor: %d -> %d", before.Ver, bob.Cursor().Ver)
	}
	// Over HTTP too.
	hb := &client.HTTP{Server: s.HTTP, Token: bobSess.Token}
	wait.For(t, "alice sees bob typing", 15*time.Second, func() bool {
		if err := hb.Typing(ctx, wire.Typing{Peer: "alice", State: wire.TypingStop}); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(typing(&aliceRec), func(e wire.TypingEvent) bool { return e.From == "bob" && e.State == wire.TypingStop })
	})

	receipts := func(rec *recorder) []wire.Receipt {
		var out []wire.Receipt
		for _, ev := range rec.events() {
			if ev.Receipt != nil {
				out = append(out, *ev.Receipt)
			}
		}
		return out
	}
	m1, err := alice.Send(ctx, wire.Send{To: "bob", Body: "read me"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hb.Read(ctx, wire.Read{Peer: "alice", Upto: m1.ID}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "alice's receipt", 15*time.Second, func() bool { return len(receipts(&aliceRec)) > 0 })
	if r := receipts(&aliceRec)[0]; r.Peer != "bob" || r.Upto != m1.ID {
		t.Fatalf("receipt %+v", r)
	}
	if len(receipts(&bobRec)) != 0 {
		t.Fatalf("the reader got a receipt: %+v", receipts(&bobRec))
	}

	// Bob turns receipts off: his next read tells alice nothing.
	off := false
	if got, err := hb.SetUserSettings(ctx, wire.UserSettings{ReadReceipts: &off}); err != nil || got.ReadReceipts == nil || *got.ReadReceipts {
		t.Fatalf("receipts off: %+v %v", got, err)
	}
	if got, err := hb.UserSettings(ctx); err != nil || got.ReadReceipts == nil || *got.ReadReceipts {
		t.Fatalf("settings read back: %+v %v", got, err)
	}
	m2, err := alice.Send(ctx, wire.Send{To: "bob", Body: "read me too"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hb.Read(ctx, wire.Read{Peer: "alice", Upto: m2.ID}); err != nil {
		t.Fatal(err)
	}
	marker, err := bob.Send(ctx, wire.Send{To: "alice", Body: "marker"})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the marker", 15*time.Second, func() bool {
		return slices.Contains(itemStrings(aliceRec.items("")), "msg:"+marker.ID+":marker")
	})
	if r := receipts(&aliceRec); len(r) != 1 {
		t.Fatalf("alice got receipts after bob turned them off: %+v", r)
	}
}

// TestE2ERecallRace tries to see a recalled body after the recall's ack:
// alice sends and at once recalls, again and again, while bob's devices
// reconnect and sync in a loop. Every sync started after a recall's ack,
// and every device's final state, shows only the tombstone.
func TestE2ERecallRace(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	ctx := testCtx(t)
	hb := &client.HTTP{Server: s.HTTP, Token: bobSess.Token}

	var (
		mu       sync.Mutex
		recalled = map[string]time.Time{} // id -> when its recall was acked
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(halt) // on a failure too: before ctx is cancelled
	var violation error
	wg.Go(func() { // bob's short syncs, from 0, over and over
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			err := hb.SyncCursor(ctx, &client.MemoryCursor{}, 0, func(m wire.Msg) error {
				mu.Lock()
				at, ok := recalled[m.ID]
				mu.Unlock()
				if ok && at.Before(start) && m.Kind == wire.KindMsg && (m.Body != "" || !m.Recalled) {
					return fmt.Errorf("a sync started %v after the recall of %s showed %+v", start.Sub(at), m.ID, m)
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				violation = err
				mu.Unlock()
				return
			}
		}
	})
	// And a device that reconnects while it all happens.
	cur := &client.MemoryCursor{}
	var bobRec recorder
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := client.Dial(dctx, client.Config{Server: s.HTTP, User: bobSess.User, Device: bobSess.Device,
				Token: bobSess.Token, Cursor: cur, OnEvent: bobRec.on, Logger: testLogger()})
			cancel()
			if err != nil {
				continue
			}
			_ = c.WaitSynced(ctx)
			c.Close()
		}
	})
	const rounds = 30
	for i := range rounds {
		m, err := alice.Send(ctx, wire.Send{To: "bob", Body: fmt.Sprint("secret ", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Recall(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		recalled[m.ID] = time.Now()
		mu.Unlock()
	}
	halt()
	if violation != nil {
		t.Fatal(violation)
	}
	// The device's view, once it has caught up: every message recalled.
	var last recorder
	bob := dial(t, s, bobSess, cur, &last)
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	state := map[string]string{} // id -> body as the device would show it
	for _, ev := range append(bobRec.events(), last.events()...) {
		switch {
		case ev.Msg != nil:
			if _, ok := state[ev.Msg.ID]; !ok || ev.Msg.Recalled {
				state[ev.Msg.ID] = ev.Msg.Body
			}
		case ev.Recall != nil:
			state[ev.Recall.ID] = ""
		}
	}
	if len(state) != rounds {
		t.Fatalf("bob's device saw %d messages, want %d", len(state), rounds)
	}
	for id, body := range state {
		if body != "" {
			t.Fatalf("bob's device still shows %s: %q", id, body)
		}
	}
}

// TestFaultLostChangeAckAndEvent: the network loses a recall's ack to
// alice and bob's live recall event. Alice's SDK resends the recall with
// its cmid until acked (one recall, acked with the first ack's ID); bob's
// next message shows a gap and his sync brings the recall before it, once.
func TestFaultLostChangeAckAndEvent(t *testing.T) {
	s := testserver.Start(t)
	aliceProxy, bobProxy := newFaultProxy(t, s.MQTT), newFaultProxy(t, s.MQTT)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec, via(aliceProxy))
	bob := dial(t, s, bobSess, nil, &bobRec, via(bobProxy), func(c *client.Config) { c.ResyncInterval = -1 })
	ctx := testCtx(t)
	for _, c := range []*client.Client{alice, bob} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m1, err := alice.Send(ctx, wire.Send{To: "bob", Body: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	expectItems(t, "bob", &bobRec, "", "msg:"+m1.ID+":secret")

	cmid := client.NewCMID()
	device := wire.DeviceTopic("alice", "phone")
	var once sync.Once
	aliceProxy.setFaults(func(topic string, p []byte) bool {
		lose := false
		if topic == device && bytes.Contains(p, []byte(`"cmid":"`+cmid+`"`)) {
			once.Do(func() { lose = true })
		}
		return lose
	}, nil)
	bobProxy.setFaults(func(topic string, p []byte) bool {
		return topic == wire.InboxTopic("bob") && bytes.Contains(p, []byte(`"kind":"recall"`))
	}, nil)
	ack, err := alice.Apply(ctx, wire.Recall{CMID: cmid, ID: m1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := aliceProxy.counts(); d != 1 {
		t.Fatalf("the proxy lost %d of alice's acks, want 1", d)
	}
	again, err := alice.Apply(ctx, wire.Recall{CMID: cmid, ID: m1.ID})
	if err != nil || again.ID != ack.ID || again.Ver != ack.Ver {
		t.Fatalf("the recall once more: %+v %v, want %+v", again, err, ack)
	}
	m2, err := alice.Send(ctx, wire.Send{To: "bob", Body: "next"})
	if err != nil {
		t.Fatal(err)
	}
	got := expectItems(t, "bob", &bobRec, "", "msg:"+m1.ID+":secret", "recall:"+m1.ID, "msg:"+m2.ID+":next")
	if !got[1].Synced {
		t.Fatal("the lost recall came live")
	}
	if d, _ := bobProxy.counts(); d != 1 {
		t.Fatalf("the proxy lost %d of bob's recall events, want 1", d)
	}
	expectItems(t, "alice", &aliceRec, "", "msg:"+m1.ID+":secret", "recall:"+m1.ID, "msg:"+m2.ID+":next")
}
