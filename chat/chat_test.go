package chat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/wire"
)

// faultyStore is the real Pebble store with a switch that makes Commit fail,
// as a disk or network fault would.
type faultyStore struct {
	store.Store
	fail atomic.Bool
}

var errInjected = errors.New("injected commit failure")

func (f *faultyStore) Commit(ctx context.Context, b *store.Batch) error {
	if f.fail.Load() {
		return errInjected
	}
	return f.Store.Commit(ctx, b)
}

// recorder is a subscriber of the delivery path that keeps the topics of
// what was sent, in order.
type recorder struct {
	mu     sync.Mutex
	topics []string
}

func (r *recorder) Sent(to deliver.To, _ wire.Event) {
	r.mu.Lock()
	r.topics = append(r.topics, to.Topic())
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.topics)
}

// nowhere is a node with no clients connected.
type nowhere struct{}

func (nowhere) PublishUser(string, string, []byte) error { return nil }

// pathTo is the real delivery path, with no clients and sub watching
// what the service sends.
func pathTo(sub deliver.Subscriber) *deliver.Path {
	return deliver.New(deliver.Options{Local: nowhere{}, Subscribers: []deliver.Subscriber{sub}})
}

func newService(t testing.TB, st store.Store, sub deliver.Subscriber) *chat.Service {
	t.Helper()
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(sub), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(context.Background(), store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestCommitFailure: a failed store write means no ack, an unavailable error,
// no event; the same cmid resent after the fault is stored once and acked.
func TestCommitFailure(t *testing.T) {
	st := &faultyStore{Store: openStore(t)}
	pub := &recorder{}
	svc := newService(t, st, pub)
	ctx := context.Background()
	alice := chat.Sender{User: "alice", Device: "phone"}
	req := wire.Send{CMID: "c-1", To: "bob", Type: "text", Body: "hi"}

	st.fail.Store(true)
	_, err := svc.Send(ctx, alice, req)
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("send during fault: %v, want %v", err, chat.ErrUnavailable)
	}
	if n := pub.count(); n != 0 {
		t.Fatalf("%d events published for an unstored message", n)
	}

	st.fail.Store(false)
	ack, err := svc.Send(ctx, alice, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Send(ctx, alice, req)
	if err != nil || again != ack {
		t.Fatalf("resend: %+v %v, want %+v", again, err, ack)
	}
	evs, err := st.Range(ctx, "bob", 0, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("bob's inbox: %d events, %v", len(evs), err)
	}
	// Versions burned by the failed batch leave a hole, never a reuse.
	if ack.Ver < 1 {
		t.Fatalf("ack ver %d", ack.Ver)
	}
}

// TestCloseDrains: sends accepted before Close are all committed and acked;
// sends after Close are refused with unavailable.
func TestCloseDrains(t *testing.T) {
	st := openStore(t)
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	const n = 500
	var acked atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		svc.Submit(context.Background(), chat.Sender{User: "alice"}, wire.Send{CMID: fmt.Sprint(i), To: "bob", Type: "text"}, func(r chat.Result) {
			if r.Err == nil {
				acked.Add(1)
			}
			wg.Done()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if acked.Load() != n {
		t.Fatalf("%d of %d acked", acked.Load(), n)
	}
	head, _ := st.Head(ctx, "bob")
	evs, _ := st.Range(ctx, "bob", 0, 1000)
	if len(evs) != n || head != evs[n-1].Ver {
		t.Fatalf("bob has %d events (head %d)", len(evs), head)
	}
	_, err = svc.Send(ctx, chat.Sender{User: "alice"}, wire.Send{CMID: "late", To: "bob", Type: "text"})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("send after close: %v", err)
	}
}

// BenchmarkSend measures the whole send pipeline on the embedded store:
// validate, dedupe, ids, versions, group commit (fsync), ack, two events.
func BenchmarkSend(b *testing.B) {
	for _, senders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			st := openStore(b)
			m := metrics.New()
			svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
			})
			if err != nil {
				b.Fatal(err)
			}
			svc.Start()
			defer svc.Close(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + senders - 1) / senders
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						done := make(chan struct{})
						svc.Submit(context.Background(), chat.Sender{User: "alice"}, wire.Send{CMID: fmt.Sprintf("%d-%d", s, i), To: "bob", Type: "text", Body: "hello"},
							func(chat.Result) { close(done) })
						<-done
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*senders)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// mediaPolicy lets alice attach m-ok (with a thumbnail inline) and nothing else.
type mediaPolicy struct{}

func (mediaPolicy) Attach(_ context.Context, user, media string) (*store.Inline, error) {
	if user == "alice" && media == "m-ok" {
		return &store.Inline{Type: "image/jpeg", Data: []byte("thumb")}, nil
	}
	return nil, wire.NewError(wire.CodeForbidden, "not your media")
}

// TestMediaAttach: a send's media is vouched for before it is queued; the
// message carries the inline bytes and grants the media to the recipient.
func TestMediaAttach(t *testing.T) {
	st := openStore(t)
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(), Media: mediaPolicy{},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	defer svc.Close(context.Background())
	ctx := context.Background()
	_, err = svc.Send(ctx, chat.Sender{User: "alice"}, wire.Send{CMID: "x", To: "bob", Type: "image", Media: "m-other"})
	if code, msg, _ := chat.Describe(err); !errors.Is(err, chat.ErrForbidden) || code != wire.CodeForbidden || msg != "not your media" {
		t.Fatalf("someone else's media: %v", err)
	}
	if _, err := svc.Send(ctx, chat.Sender{User: "alice"}, wire.Send{CMID: "y", To: "bob", Type: "image", Media: "m-ok"}); err != nil {
		t.Fatal(err)
	}
	evs, _ := st.Range(ctx, "bob", 0, 10)
	if len(evs) != 1 || evs[0].Msg.Inline == nil || string(evs[0].Msg.Inline.Data) != "thumb" {
		t.Fatalf("bob's events: %+v", evs)
	}
	if grants, _ := st.MediaGrants(ctx, "m-ok"); len(grants) != 1 || grants[0] != "u:bob" {
		t.Fatalf("grants: %q", grants)
	}
}

// TestEventsThroughPath: the core hands the delivery path typed events,
// each to the users it concerns: a message to both inboxes, an unread count
// to the reader's, a membership change to the member's.
func TestEventsThroughPath(t *testing.T) {
	st := openStore(t)
	seen := &msgs{}
	svc := newService(t, st, seen)
	ctx := context.Background()
	if _, err := svc.Send(ctx, chat.Sender{User: "alice", Device: "d"}, wire.Send{CMID: "c", To: "bob", Type: "text", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the message event", 10*time.Second, func() bool { return seen.gotMsg("bob") }) // sent after the ack
	if _, err := svc.Read(ctx, "bob", wire.Read{Peer: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g1", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		wire.InboxTopic("alice"): {wire.KindMsg, wire.KindReceipt}, // bob read it
		wire.InboxTopic("bob"):   {wire.KindMsg, wire.KindUnread, wire.KindGroup},
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for topic, kinds := range want {
		if !slices.Equal(seen.kinds[topic], kinds) {
			t.Errorf("%s: %q, want %q", topic, seen.kinds[topic], kinds)
		}
	}
	if len(seen.kinds) != len(want) {
		t.Errorf("events on %d topics: %v", len(seen.kinds), seen.kinds)
	}
}

// blockingStore holds every Commit until release is closed.
type blockingStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingStore) Commit(ctx context.Context, batch *store.Batch) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.Store.Commit(ctx, batch)
}

// waitingInSubmit reports whether a goroutine is blocked in Submit's select
// (waiting for queue room).
func waitingInSubmit() bool {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "chat.(*Service).Submit(") {
			return true
		}
	}
	return false
}

// TestCloseWakesWaitingSubmits: a Submit waiting for room in a full queue
// is answered unavailable as soon as Close begins, and sends after it are
// refused at once, instead of all waiting QueueWait behind Close's lock.
func TestCloseWakesWaitingSubmits(t *testing.T) {
	st := &blockingStore{Store: openStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(),
		MaxBatch: 1, QueueLen: 1, QueueWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	alice := chat.Sender{User: "alice", Device: "phone"}
	results := make(chan error, 4)
	send := func(cmid string) {
		svc.Submit(context.Background(), alice, wire.Send{CMID: cmid, To: "bob", Type: "text"}, func(r chat.Result) { results <- r.Err })
	}
	send("1") // the batcher takes it and blocks in Commit
	<-st.entered
	send("2") // fills the queue
	go send("3")
	wait.For(t, "a send waiting for queue room", 5*time.Second, waitingInSubmit)

	closed := make(chan error, 1)
	go func() { closed <- svc.Close(context.Background()) }()
	select {
	case err := <-results:
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Fatalf("waiting send: %v, want %v", err, chat.ErrUnavailable)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting send was not woken by Close")
	}
	late := make(chan error, 1)
	go func() {
		svc.Submit(context.Background(), alice, wire.Send{CMID: "4", To: "bob", Type: "text"}, func(r chat.Result) { late <- r.Err })
	}()
	select {
	case err := <-late:
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Fatalf("send after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a send after Close was held")
	}
	close(st.release) // the two accepted sends are still committed and acked
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("accepted send: %v", err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
