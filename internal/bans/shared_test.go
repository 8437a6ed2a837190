package bans

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
)

// memRows is shared storage in memory; fail makes it unreachable.
type memRows struct {
	mu   sync.Mutex
	bans []Ban
	fail bool
}

var errDown = errors.New("store down")

func (m *memRows) PutBan(_ context.Context, b Ban) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errDown
	}
	m.bans = append(m.bans, b)
	return nil
}

func (m *memRows) DeleteBan(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errDown
	}
	n := len(m.bans)
	m.bans = slices.DeleteFunc(m.bans, func(b Ban) bool { return b.ID == id })
	if len(m.bans) == n {
		return ErrNotFound
	}
	return nil
}

func (m *memRows) LoadBans(context.Context) ([]Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errDown
	}
	return slices.Clone(m.bans), nil
}

// loadCount is a node's view of shared rows that counts its failed loads.
type loadCount struct {
	*memRows
	failed atomic.Int64
}

func (l *loadCount) LoadBans(ctx context.Context) ([]Ban, error) {
	bans, err := l.memRows.LoadBans(ctx)
	if err != nil {
		l.failed.Add(1)
	}
	return bans, err
}

// Two nodes over one store: a ban added on one is in force on the other
// after a refresh (and reported as added there), removal too; a store
// outage keeps the last list in force and fails changes.
func TestSharedAcrossNodes(t *testing.T) {
	ctx := context.Background()
	rows := &memRows{}
	aRows := &loadCount{memRows: rows}
	added := make(chan []Ban, 4)
	a, err := OpenShared(ctx, aRows, SharedOptions{Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenShared(ctx, rows, SharedOptions{Refresh: 20 * time.Millisecond, Added: func(bs []Ban) { added <- bs }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ban, err := a.Add(ctx, Ban{User: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Banned("mallory", netip.Addr{}); !ok {
		t.Fatal("not in force on the node that added it")
	}
	select {
	case got := <-added:
		if len(got) != 1 || got[0].ID != ban.ID {
			t.Fatalf("added on b: %+v", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("b never saw the ban")
	}
	if _, ok := b.Banned("mallory", netip.Addr{}); !ok {
		t.Fatal("not in force on the other node")
	}
	if _, err := b.Add(ctx, Ban{IP: "10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	// Removed on b right after a added it: b reloads to find it.
	if err := b.Remove(ctx, ban.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, ban.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	wait.ForErr(t, "a to reload b's changes", 2*time.Second, func() error {
		_, user := a.Banned("mallory", netip.Addr{})
		_, addr := a.Banned("", netip.MustParseAddr("10.1.2.3"))
		if user || !addr {
			return fmt.Errorf("user banned %v, range banned %v", user, addr)
		}
		return nil
	})

	rows.mu.Lock()
	rows.fail = true
	rows.mu.Unlock()
	// The second failed load: the first one's outcome is in force.
	wait.For(t, "a's reloads to meet the outage", 2*time.Second, func() bool { return aRows.failed.Load() >= 2 })
	if _, ok := a.Banned("", netip.MustParseAddr("10.1.2.3")); !ok {
		t.Fatal("a store outage lifted a ban")
	}
	if _, err := a.Add(ctx, Ban{User: "eve"}); !errors.Is(err, errDown) {
		t.Fatalf("add with the store down: %v", err)
	}
	if _, ok := a.Banned("eve", netip.Addr{}); ok {
		t.Fatal("a ban that was not stored is in force")
	}
	if _, err := a.Add(ctx, Ban{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty ban: %v", err)
	}
}
