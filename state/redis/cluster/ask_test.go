package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
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
