package gridfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/internal/wait"
)

func newTestCache(t *testing.T) *cache {
	t.Helper()
	dir := t.TempDir()
	c, err := openCache(filepath.Join(dir, "parts"), filepath.Join(dir, "tmp"), 1<<20, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFillOnce: concurrent fills of one part run one download, which all
// of them wait for.
func TestFillOnce(t *testing.T) {
	c := newTestCache(t)
	key := media.NewID() + "/data"
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(ctx context.Context, w io.Writer) error {
		calls.Add(1)
		<-release
		_, err := io.WriteString(w, "bytes")
		return err
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.fill(context.Background(), key, fetch)
		}()
	}
	wait.For(t, "all the fills to wait on one load", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.loads[key] != nil && c.loads[key].waiters == n
	})
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fill %d: %v", i, err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("%d downloads, want 1", got)
	}
	f, ok, err := c.open(key)
	if !ok || err != nil {
		t.Fatalf("open after fill: %v, %v", ok, err)
	}
	defer f.Close()
	if b, _ := io.ReadAll(f); string(b) != "bytes" {
		t.Fatalf("cached %q", b)
	}
}

// TestFillAbandoned: the download stops when every waiter has left, not
// when the first one does; a later fill starts afresh.
func TestFillAbandoned(t *testing.T) {
	c := newTestCache(t)
	key := media.NewID() + "/data"
	started := make(chan struct{}, 1)
	stopped := make(chan error, 1)
	blocked := func(ctx context.Context, w io.Writer) error {
		started <- struct{}{}
		<-ctx.Done()
		stopped <- ctx.Err()
		return ctx.Err()
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	done1, done2 := make(chan error), make(chan error)
	go func() { done1 <- c.fill(ctx1, key, blocked) }()
	<-started
	go func() { done2 <- c.fill(ctx2, key, blocked) }()
	wait.For(t, "both fills to wait on the load", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.loads[key].waiters == 2
	})
	cancel1()
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Fatalf("first fill: %v", err)
	}
	c.mu.Lock()
	l := c.loads[key]
	c.mu.Unlock()
	if l == nil || l.waiters != 1 {
		t.Fatal("the download was dropped while a waiter remained")
	}
	select {
	case err := <-stopped:
		t.Fatalf("the download stopped (%v) while a waiter remained", err)
	default:
	}
	cancel2()
	if err := <-done2; !errors.Is(err, context.Canceled) {
		t.Fatalf("second fill: %v", err)
	}
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("download ended with %v", err)
	}
	if err := c.fill(context.Background(), key, func(ctx context.Context, w io.Writer) error {
		_, err := fmt.Fprint(w, "again")
		return err
	}); err != nil {
		t.Fatalf("fill after an abandoned one: %v", err)
	}
}
