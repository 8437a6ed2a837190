package chat_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// hook is a chat.BeforeSend whose verdict a test chooses per send; it
// records how many sends were in it at once, and can hold the sends of
// one body until released.
type hook struct {
	verdict func(req *wire.Send) (chat.Verdict, error)
	hold    chan struct{} // nil: none held; else sends whose body is "hold" wait for it

	mu       sync.Mutex
	in, most int
	order    []string // bodies, in the order the hook saw them
}

func (h *hook) BeforeSend(ctx context.Context, _ chat.Sender, req *wire.Send) (chat.Verdict, error) {
	h.mu.Lock()
	h.in++
	h.most = max(h.most, h.in)
	h.order = append(h.order, req.Body)
	h.mu.Unlock()
	defer func() { h.mu.Lock(); h.in--; h.mu.Unlock() }()
	if h.hold != nil && req.Body == "hold" {
		select {
		case <-h.hold:
		case <-ctx.Done():
			return chat.Verdict{}, ctx.Err()
		}
	}
	if h.verdict == nil {
		return chat.Verdict{Action: chat.ActionAllow}, nil
	}
	return h.verdict(req)
}

func (h *hook) maxIn() int { h.mu.Lock(); defer h.mu.Unlock(); return h.most }

func moderated(t *testing.T, h chat.BeforeSend, o chat.Options) (*chat.Service, store.Store) {
	t.Helper()
	st := openStore(t)
	o.Logger, o.Metrics, o.BeforeSend = slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New(), h
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc, st
}

// bodies are the bodies of bob's inbox, in version order.
func bodies(t *testing.T, st store.Store, user string) []string {
	t.Helper()
	evs, err := st.Range(context.Background(), user, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Msg.Body)
	}
	return out
}

var alice = chat.Sender{User: "alice", Device: "phone"}

// TestBeforeSendVerdicts: allow stores the send; reject refuses it with
// rejected and the backend's message, storing nothing; modify stores the
// modified body and meta; a modify the send could not take (over the body
// limit) is no verdict, and the fail policy decides.
func TestBeforeSendVerdicts(t *testing.T) {
	long := string(make([]byte, 200))
	h := &hook{verdict: func(req *wire.Send) (chat.Verdict, error) {
		switch req.Body {
		case "spam":
			return chat.Verdict{Action: chat.ActionReject, Message: "no spam here"}, nil
		case "rude":
			b := "r**e"
			return chat.Verdict{Action: chat.ActionModify, Body: &b, Meta: []byte(`{"masked":true}`)}, nil
		case "grow":
			return chat.Verdict{Action: chat.ActionModify, Body: &long}, nil
		case "odd":
			return chat.Verdict{Action: "shrug"}, nil
		}
		return chat.Verdict{Action: chat.ActionAllow}, nil
	}}
	for _, fail := range []string{chat.FailOpen, chat.FailClosed} {
		t.Run(fail, func(t *testing.T) {
			svc, st := moderated(t, h, chat.Options{MaxBody: 100, HookFail: fail})
			ctx := context.Background()
			send := func(cmid, body string) error {
				_, err := svc.Send(ctx, alice, wire.Send{CMID: cmid, To: "bob", Type: "text", Body: body})
				return err
			}
			if err := send("c1", "hello"); err != nil {
				t.Fatalf("allowed: %v", err)
			}
			err := send("c2", "spam")
			var ce *chat.Error
			if !errors.Is(err, chat.ErrRejected) || !errors.As(err, &ce) || ce.Msg != "no spam here" {
				t.Fatalf("rejected: %v", err)
			}
			if err := send("c3", "rude"); err != nil {
				t.Fatalf("modified: %v", err)
			}
			for _, body := range []string{"grow", "odd"} {
				err := send("c-"+body, body)
				if fail == chat.FailOpen && err != nil {
					t.Errorf("%s, fail open: %v", body, err)
				}
				if fail == chat.FailClosed && !errors.Is(err, chat.ErrUnavailable) {
					t.Errorf("%s, fail closed: %v, want unavailable", body, err)
				}
			}
			want := []string{"hello", "r**e"}
			if fail == chat.FailOpen {
				want = append(want, "grow", "odd") // stored as sent
			}
			if got := bodies(t, st, "bob"); !slices.Equal(got, want) {
				t.Errorf("bob's inbox %q, want %q", got, want)
			}
			evs, _ := st.Range(ctx, "bob", 0, 10)
			if len(evs) > 1 && string(evs[1].Msg.Meta) != `{"masked":true}` {
				t.Errorf("modified meta %s", evs[1].Msg.Meta)
			}
		})
	}
}

// TestBeforeSendTimeout: a backend that does not answer in HookTimeout is
// no verdict: fail open stores the send, fail closed refuses it.
func TestBeforeSendTimeout(t *testing.T) {
	for _, fail := range []string{chat.FailOpen, chat.FailClosed} {
		t.Run(fail, func(t *testing.T) {
			h := &hook{hold: make(chan struct{})} // never released
			svc, st := moderated(t, h, chat.Options{HookTimeout: 50 * time.Millisecond, HookFail: fail})
			_, err := svc.Send(context.Background(), alice, wire.Send{CMID: "c1", To: "bob", Type: "text", Body: "hold"})
			n := len(bodies(t, st, "bob"))
			if fail == chat.FailOpen && (err != nil || n != 1) {
				t.Errorf("fail open: %v, %d stored", err, n)
			}
			if fail == chat.FailClosed && (!errors.Is(err, chat.ErrUnavailable) || n != 0) {
				t.Errorf("fail closed: %v, %d stored", err, n)
			}
		})
	}
}

// TestBeforeSendOrderAndConcurrency: a sender's sends in one conversation
// reach the store in the order sent even while the first waits in the
// hook; meanwhile other senders' and other conversations' sends go through
// (many in the hook at once, at most HookConcurrency).
func TestBeforeSendOrderAndConcurrency(t *testing.T) {
	h := &hook{hold: make(chan struct{})}
	svc, st := moderated(t, h, chat.Options{HookConcurrency: 16, HookTimeout: time.Minute}) // 2 slots a sender
	ctx := context.Background()
	for _, u := range []string{"carol", "dave"} {
		if err := st.CreateUser(ctx, store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	var acked sync.WaitGroup
	var failed atomic.Int32
	submit := func(from chat.Sender, to, cmid, body string) {
		acked.Add(1)
		svc.Submit(ctx, from, wire.Send{CMID: cmid, To: to, Type: "text", Body: body}, func(r chat.Result) {
			if r.Err != nil {
				failed.Add(1)
			}
			acked.Done()
		})
	}
	submit(alice, "bob", "a0", "hold") // held in the hook: alice→bob waits behind it
	for i := 1; i <= 20; i++ {
		submit(alice, "bob", "a"+strconv.Itoa(i), strconv.Itoa(i))
	}
	// Other lanes pass while alice→bob is held.
	carol := chat.Sender{User: "carol", Device: "d"}
	for i := range 30 {
		submit(carol, "dave", "c"+strconv.Itoa(i), "c")
		submit(alice, "carol", "x"+strconv.Itoa(i), "x")
	}
	wait.For(t, "other lanes stored while alice→bob is held", 5*time.Second, func() bool {
		return len(bodies(t, st, "dave")) == 30 && len(bodies(t, st, "carol")) == 60 // carol's inbox: what she sent too
	})
	if n := len(bodies(t, st, "bob")); n != 0 {
		t.Fatalf("%d of alice's sends to bob stored ahead of the held one", n)
	}
	close(h.hold)
	acked.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d sends failed", failed.Load())
	}
	want := []string{"hold"}
	for i := 1; i <= 20; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if got := bodies(t, st, "bob"); !slices.Equal(got, want) {
		t.Fatalf("alice→bob stored as %q, want %q", got, want)
	}
	if m := h.maxIn(); m < 2 || m > 4 {
		t.Errorf("%d sends in the hook at once, want 2..4 (the held one beside others; 2 senders, 2 slots each)", m)
	}
}

// TestBeforeSendBusyAndClose: a sender's lane holds at most 256 sends (the
// rest are busy, and no one else waits for them); Close refuses the sends
// still waiting for a verdict, unavailable, and passes on those whose
// verdict is in.
func TestBeforeSendBusyAndClose(t *testing.T) {
	h := &hook{hold: make(chan struct{})}
	svc, _ := moderated(t, h, chat.Options{HookTimeout: time.Minute})
	ctx := context.Background()
	var mu sync.Mutex
	codes := map[string]int{}
	var all sync.WaitGroup
	for i := range 300 {
		body := "n"
		if i == 0 {
			body = "hold"
		}
		all.Add(1)
		svc.Submit(ctx, alice, wire.Send{CMID: "b" + strconv.Itoa(i), To: "bob", Type: "text", Body: body}, func(r chat.Result) {
			code, _, _ := chat.Describe(r.Err)
			if r.Err == nil {
				code = "ok"
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
			all.Done()
		})
	}
	mu.Lock()
	busy := codes[wire.CodeBusy]
	mu.Unlock()
	if busy != 300-256 {
		t.Fatalf("%d busy, want %d", busy, 300-256)
	}
	wait.For(t, "the hook's verdicts on alice's 255 sends behind the held one", 10*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for _, b := range h.order {
			if b == "n" {
				n++
			}
		}
		return n == 255
	})
	// Over all her conversations, alice has at most 1024 waiting.
	for i := range 1100 {
		all.Add(1)
		svc.Submit(ctx, alice, wire.Send{CMID: "p" + strconv.Itoa(i), To: "carol" + strconv.Itoa(i%8), Type: "text", Body: "hold"}, func(r chat.Result) {
			code, _, _ := chat.Describe(r.Err)
			mu.Lock()
			codes["user:"+code]++
			mu.Unlock()
			all.Done()
		})
	}
	mu.Lock()
	busy = codes["user:"+wire.CodeBusy]
	mu.Unlock()
	if busy != 1100-(1024-256) {
		t.Fatalf("%d busy over alice's conversations, want %d", busy, 1100-(1024-256))
	}
	// Another sender is not held behind alice's full lanes, nor behind her
	// sends hanging in the hook (they hold her share of its slots only).
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := svc.Send(bctx, chat.Sender{User: "bob", Device: "d"}, wire.Send{CMID: "o", To: "alice", Type: "text", Body: "hi"}); err != nil {
		t.Fatalf("bob's send: %v", err)
	}
	if err := svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	all.Wait()
	// alice→bob: the held head is refused, the 255 allowed behind it are
	// stored; every send to carol0..7 was held: refused.
	if codes[wire.CodeUnavailable] != 1 || codes["ok"] != 255 || codes["user:"+wire.CodeUnavailable] != 1024-256 {
		t.Fatalf("after close: %v, want 1 unavailable and 255 ok to bob, 768 unavailable to carol*", codes)
	}
}

// refuseAll is a content filter that refuses every text.
type refuseAll struct{}

func (refuseAll) Check(string) (string, error) {
	return "", &chat.Error{Err: chat.ErrRejected, Msg: "no"}
}

// TestServerSendsNotModerated: the operator's backend (the server API) is
// neither filtered nor asked about its own sends, as a user or as system;
// a user's send is both.
func TestServerSendsNotModerated(t *testing.T) {
	h := &hook{verdict: func(*wire.Send) (chat.Verdict, error) { return chat.Verdict{Action: chat.ActionReject}, nil }}
	svc, st := moderated(t, h, chat.Options{Filter: refuseAll{}})
	ctx := context.Background()
	if _, err := svc.SendAs(ctx, chat.SystemUser, wire.Send{CMID: "s1", To: "bob", Type: "text", Body: "welcome"}); err != nil {
		t.Fatalf("system: %v", err)
	}
	if _, err := svc.SendAs(ctx, "alice", wire.Send{CMID: "s2", To: "bob", Type: "text", Body: "on alice's behalf"}); err != nil {
		t.Fatalf("as alice: %v", err)
	}
	if _, err := svc.Send(ctx, alice, wire.Send{CMID: "u1", To: "bob", Type: "text", Body: "hi"}); !errors.Is(err, chat.ErrRejected) {
		t.Fatalf("alice herself: %v, want rejected", err)
	}
	if got := bodies(t, st, "bob"); !slices.Equal(got, []string{"welcome", "on alice's behalf"}) {
		t.Fatalf("bob's inbox %q", got)
	}
}
