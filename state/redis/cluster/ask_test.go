package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// One node asks the others: a live one answers, a slow one is ErrNoAnswer
// at the deadline (not later), one that answers an error shows it, one
// that died (not listening) and one that left show why at once.
func TestAskAll(t *testing.T) {
	ctx := t.Context()
	rdb := client(t)
	ask := func(node string, answer func(ctx context.Context, q []byte) ([]byte, error)) *Asker {
		a := NewAsker(rdb, AskOptions{Prefix: t.Name() + ":", Node: node, Answer: answer, Beat: 50 * time.Millisecond})
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(context.Background()) })
		return a
	}
	release := make(chan struct{})
	defer close(release)
	a := ask("a", nil)
	ask("b", func(_ context.Context, q []byte) ([]byte, error) { return append([]byte("b:"), q...), nil })
	ask("c", func(ctx context.Context, q []byte) ([]byte, error) {
		select { // slow: past the asker's deadline
		case <-release:
		case <-ctx.Done():
		}
		return []byte("late"), nil
	})
	ask("d", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("d is broken") })
	e := ask("e", nil)
	if err := e.ps.Close(); err != nil { // e dies: its subscription goes, its row stays
		t.Fatal(err)
	}
	f := ask("f", nil)
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}

	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := a.AskAll(qctx, []byte("stats"))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("AskAll took %v past its 300ms deadline", took)
	}
	want := map[string]string{"b": "body b:stats", "c": "err " + ErrNoAnswer.Error(), "d": "err d is broken",
		"e": "err not listening", "f": "err left the cluster"}
	if len(got) != len(want) {
		t.Fatalf("answers %+v, want nodes b..f", got)
	}
	for i, ans := range got {
		if node := string(rune('b' + i)); ans.Node != node {
			t.Errorf("answer %d is %s's, want %s's (by node ID)", i, ans.Node, node)
		}
		s := "body " + string(ans.Body)
		if ans.Err != nil {
			s = "err " + ans.Err.Error()
		}
		if !strings.HasPrefix(s, want[ans.Node]) {
			t.Errorf("%s: %q, want %q", ans.Node, s, want[ans.Node])
		}
	}
}

// A node answered twice (two processes under one node ID) while the asker
// had stopped reading: the extra answer is dropped, and the node's
// receive loop goes on (it used to block for good, holding the lock every
// question of this node's needs).
func TestAskExtraAnswers(t *testing.T) {
	a := NewAsker(client(t), AskOptions{Node: "a"})
	a.pending["q1"] = make(chan askMsg, 1) // one node asked
	ch := make(chan *goredis.Message, 3)
	for range 3 {
		ch <- &goredis.Message{Payload: `{"id":"q1","from":"b","body":"eA=="}`}
	}
	close(ch)
	done := make(chan struct{})
	go func() {
		a.receive(ch)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("receive blocked on the extra answers")
	}
	if got := len(a.pending["q1"]); got != 1 {
		t.Errorf("%d answers kept, want the first", got)
	}
}

// A question says how long the asker waits (a duration: the two nodes'
// clocks may differ), and the answer's context ends then, or at the
// answering node's own Deadline when that is shorter.
func TestAskWait(t *testing.T) {
	got := make(chan time.Duration, 2)
	a := NewAsker(client(t), AskOptions{Prefix: t.Name() + ":", Node: "b", Deadline: time.Second,
		Answer: func(ctx context.Context, _ []byte) ([]byte, error) {
			d, _ := ctx.Deadline()
			got <- time.Until(d)
			return nil, nil
		}})
	for _, wait := range []int64{300, 60_000} {
		a.answer(askMsg{Q: true, ID: "q", From: "a", Wait: wait})
	}
	if d := <-got; d <= 0 || d > 300*time.Millisecond {
		t.Errorf("a 300 ms wait: the answer had %v", d)
	}
	if d := <-got; d <= 300*time.Millisecond || d > time.Second {
		t.Errorf("a 60 s wait: the answer had %v, want the node's 1 s Deadline at most", d)
	}
}
