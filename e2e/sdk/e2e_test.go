package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger() *slog.Logger {
	if os.Getenv("IMQTT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// login registers user (if new) and logs device in.
func login(t testing.TB, s *testserver.Server, user, device string) wire.Session {
	t.Helper()
	ctx := testCtx(t)
	if err := client.Register(ctx, s.HTTP, user, "pw-"+user); err != nil {
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeExists {
			t.Fatal(err)
		}
	}
	sess, err := client.Login(ctx, s.HTTP, user, "pw-"+user, device)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// recorder collects the events a client.Client delivers.
type recorder struct {
	mu  sync.Mutex
	evs []client.Event
}

func (r *recorder) on(ev client.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

// events returns a copy of the events so far.
func (r *recorder) events() []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// msgs returns the message events so far.
func (r *recorder) msgs() []wire.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.Msg
	for _, ev := range r.evs {
		if ev.Msg != nil {
			out = append(out, *ev.Msg)
		}
	}
	return out
}

// checkOnceInOrder fails unless msgs have strictly growing versions.
func checkOnceInOrder(t testing.TB, who string, msgs []wire.Msg) {
	t.Helper()
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Ver <= msgs[i-1].Ver {
			t.Fatalf("%s: version %d after %d (a repeat or out of order)", who, msgs[i].Ver, msgs[i-1].Ver)
		}
	}
}

func bodies(msgs []wire.Msg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	return out
}

// dial connects a device of an account on s.
func dial(t testing.TB, s *testserver.Server, sess wire.Session, cur client.CursorStore, rec *recorder, edit ...func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{Server: s.HTTP, User: sess.User, Device: sess.Device, Token: sess.Token,
		Cursor: cur, OnEvent: rec.on, Logger: testLogger()}
	for _, f := range edit {
		f(&cfg)
	}
	c, err := client.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestE2ESendReceiveExactlyOnce(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec) // endpoints from /v1/endpoints
	bob := dial(t, s, bobSess, nil, &bobRec, func(c *client.Config) { c.MQTT = s.MQTT })
	ctx := testCtx(t)
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	const n = 30
	var want []string
	acks := map[string]bool{}
	for i := range n {
		body := fmt.Sprint("hello ", i)
		want = append(want, body)
		ack, err := alice.Send(ctx, wire.Send{To: "bob", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if ack.ID == "" || ack.CMID == "" || acks[ack.ID] {
			t.Fatalf("ack %+v", ack)
		}
		acks[ack.ID] = true
	}
	wait.For(t, "bob's messages", 15*time.Second, func() bool { return len(bobRec.msgs()) >= n })
	got := bobRec.msgs()
	checkOnceInOrder(t, "bob", got)
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("bob got %q", bodies(got))
	}
	for _, m := range got {
		if m.From != "alice" || m.To != "bob" || !acks[m.ID] {
			t.Fatalf("bob got %+v", m)
		}
	}
	// Bob's cursor follows what he was shown.
	if cur := bob.Cursor(); cur.Ver != got[len(got)-1].Ver || cur.Epoch == "" {
		t.Fatalf("bob's cursor %d %q, last version %d", cur.Ver, cur.Epoch, got[len(got)-1].Ver)
	}
	// A send with a cmid already acked is acked again with the same ID and
	// delivered no second time.
	first := got[0]
	again, err := alice.Send(ctx, wire.Send{CMID: first.CMID, To: "bob", Body: first.Body})
	if err != nil || again.ID != first.ID {
		t.Fatalf("resend of %s: %+v, %v; want ID %s", first.CMID, again, err, first.ID)
	}
	// A marker message proves that anything the resend delivered has arrived.
	if _, err := alice.Send(ctx, wire.Send{To: "bob", Body: "marker"}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the marker", 15*time.Second, func() bool { m := bobRec.msgs(); return m[len(m)-1].Body == "marker" })
	if m := bobRec.msgs(); len(m) != n+1 {
		t.Fatalf("bob has %d messages after a duplicate send and a marker, want %d", len(m), n+1)
	}
	checkOnceInOrder(t, "alice", aliceRec.msgs())
}

func TestE2ESendErrors(t *testing.T) {
	s := testserver.Start(t)
	var rec recorder
	alice := dial(t, s, login(t, s, "alice", "phone"), nil, &rec)
	_, err := alice.Send(testCtx(t), wire.Send{To: "nobody", Body: "hi"})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeNoSuchUser {
		t.Fatalf("send to a user that does not exist: %v", err)
	}
	_, err = alice.Send(testCtx(t), wire.Send{To: "nobody", Type: "gif", Body: "hi"})
	if !errors.As(err, &we) || we.Code != wire.CodeBadType {
		t.Fatalf("send with a bad type: %v", err)
	}
}

func TestE2EDialRefused(t *testing.T) {
	s := testserver.Start(t)
	sess := login(t, s, "alice", "phone")
	sess.Token = "not-a-token"
	_, err := client.Dial(testCtx(t), client.Config{Server: s.HTTP, MQTT: s.MQTT, User: sess.User, Device: sess.Device, Token: sess.Token})
	if !errors.Is(err, client.ErrRefused) {
		t.Fatalf("Dial with a bad token: %v", err)
	}
}

// TestE2EOfflineThenSync: messages sent while bob is away come when he
// returns, after those he saw, and none of those again; the cursor survives
// in a file.
func TestE2EOfflineThenSync(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "laptop")
	var aliceRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	ctx := testCtx(t)
	cursorPath := filepath.Join(t.TempDir(), "cursor.json")

	var first recorder
	bob := dial(t, s, bobSess, client.NewFileCursor(cursorPath), &first, func(c *client.Config) { c.SyncLimit = 7 })
	for i := range 3 {
		if _, err := alice.Send(ctx, wire.Send{To: "bob", Body: fmt.Sprint("online ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, "bob's first messages", 15*time.Second, func() bool { return len(first.msgs()) == 3 })
	bob.Close()

	var want []string
	for i := range 40 { // several sync requests of 7
		want = append(want, fmt.Sprint("offline ", i))
		if _, err := alice.Send(ctx, wire.Send{To: "bob", Body: want[i]}); err != nil {
			t.Fatal(err)
		}
	}
	var second recorder
	bob = dial(t, s, bobSess, client.NewFileCursor(cursorPath), &second, func(c *client.Config) { c.SyncLimit = 7 })
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	got := second.msgs()
	checkOnceInOrder(t, "bob after return", got)
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("after return bob got %q\nwant %q", bodies(got), want)
	}
	for _, ev := range second.evs {
		if ev.Msg != nil && !ev.Synced {
			t.Fatalf("an offline message came live: %+v", ev.Msg)
		}
	}
	cur, err := client.NewFileCursor(cursorPath).Load()
	if err != nil || cur.Ver != got[len(got)-1].Ver || cur.Epoch == "" {
		t.Fatalf("saved cursor %+v %v; last version %d", cur, err, got[len(got)-1].Ver)
	}
}

// TestE2EReconnect: the server drops bob's connection while alice sends;
// bob reconnects by himself and sees every message once, in order.
func TestE2EReconnect(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec, bobRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	bob := dial(t, s, bobSess, nil, &bobRec, func(c *client.Config) { c.MinBackoff = 20 * time.Millisecond })
	ctx := testCtx(t)

	var want []string
	send := func(n int) {
		for range n {
			want = append(want, fmt.Sprint("m", len(want)))
			if _, err := alice.Send(ctx, wire.Send{To: "bob", Body: want[len(want)-1]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(5)
	for round := range 3 {
		wait.For(t, "bob connected", 15*time.Second, func() bool { return s.KickDevice("bob/phone") })
		send(10)
		wait.For(t, fmt.Sprint("bob reconnected ", round), 15*time.Second, func() bool { return bob.Connections() >= uint64(round+2) })
	}
	wait.For(t, "all messages", 15*time.Second, func() bool { return len(bobRec.msgs()) >= len(want) })
	got := bobRec.msgs()
	checkOnceInOrder(t, "bob", got)
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("bob got %q\nwant %q", bodies(got), want)
	}
	if bob.Err() != nil {
		t.Fatalf("bob stopped: %v", bob.Err())
	}
}

// TestE2EResetOnLostHistory: a cursor from a history the server no longer
// has (another epoch) is dropped, and the device gets what the server has.
func TestE2EResetOnLostHistory(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobSess := login(t, s, "alice", "phone"), login(t, s, "bob", "phone")
	var aliceRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	ctx := testCtx(t)
	for i := range 4 {
		if _, err := alice.Send(ctx, wire.Send{To: "bob", Body: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	cur := &client.MemoryCursor{}
	_ = cur.Save(client.Cursor{Ver: 1000, Epoch: "a-lost-epoch"})
	var bobRec recorder
	bob := dial(t, s, bobSess, cur, &bobRec)
	if err := bob.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	got := bobRec.msgs()
	if !slices.Equal(bodies(got), []string{"0", "1", "2", "3"}) {
		t.Fatalf("after a reset bob got %q", bodies(got))
	}
	if c, _ := cur.Load(); c.Ver != got[3].Ver || c.Epoch == "a-lost-epoch" {
		t.Fatalf("cursor after reset: %+v", c)
	}
}

// TestE2ERead: a read position set by one device reaches the others as an
// unread event, and the client.HTTP client sees the counts.
func TestE2ERead(t *testing.T) {
	s := testserver.Start(t)
	aliceSess, bobPhone, bobLaptop := login(t, s, "alice", "phone"), login(t, s, "bob", "phone"), login(t, s, "bob", "laptop")
	var aliceRec, phoneRec, laptopRec recorder
	alice := dial(t, s, aliceSess, nil, &aliceRec)
	phone := dial(t, s, bobPhone, nil, &phoneRec)
	dial(t, s, bobLaptop, nil, &laptopRec)
	ctx := testCtx(t)
	var last wire.Ack
	for i := range 3 {
		var err error
		if last, err = alice.Send(ctx, wire.Send{To: "bob", Body: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	h := &client.HTTP{Server: s.HTTP, Token: bobPhone.Token}
	convs, err := h.Conversations(ctx)
	if err != nil || convs.TotalUnread != 3 || len(convs.Conversations) != 1 || convs.Conversations[0].Peer != "alice" {
		t.Fatalf("conversations before read: %+v, %v", convs, err)
	}
	if err := phone.Read(ctx, "alice", last.ID); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the laptop's unread event", 15*time.Second, func() bool {
		laptopRec.mu.Lock()
		defer laptopRec.mu.Unlock()
		for _, ev := range laptopRec.evs {
			if ev.Unread != nil && ev.Unread.Peer == "alice" && ev.Unread.Count == 0 && ev.Unread.Total == 0 {
				return true
			}
		}
		return false
	})
	hist, err := h.History(ctx, "alice", "", 2)
	if err != nil || len(hist.Messages) != 2 || hist.Messages[0].ID != last.ID {
		t.Fatalf("history: %+v, %v", hist, err)
	}
}
