package bans

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct{ ms atomic.Int64 }

func (c *clock) now() time.Time      { return time.UnixMilli(c.ms.Load()) }
func (c *clock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func open(t *testing.T, path string, c *clock) *File {
	t.Helper()
	f, err := Open(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBanUserAndAddress(t *testing.T) {
	ctx := context.Background()
	c := &clock{}
	c.ms.Store(1_000_000)
	path := filepath.Join(t.TempDir(), "admin", "bans.json")
	f := open(t, path, c)
	ip := netip.MustParseAddr("10.0.0.7")

	if _, ok := f.Banned("mallory", ip); ok {
		t.Fatal("banned before any ban")
	}
	ub, err := f.Add(ctx, Ban{User: "mallory", Reason: "spam", Expires: c.now().Add(time.Minute).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	if ub.ID == "" || ub.Created != c.ms.Load() {
		t.Fatalf("ban %+v", ub)
	}
	if b, ok := f.Banned("mallory", netip.Addr{}); !ok || b.ID != ub.ID {
		t.Fatalf("user ban not found: %+v %v", b, ok)
	}
	if _, ok := f.Banned("mallory2", netip.Addr{}); ok {
		t.Fatal("ban leaked to another user")
	}
	ab, err := f.Add(ctx, Ban{IP: "::ffff:10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	if ab.IP != "10.0.0.7" {
		t.Fatalf("4in6 address not normalised: %q", ab.IP)
	}
	if _, ok := f.Banned("alice", ip); !ok {
		t.Fatal("address ban not found")
	}
	if _, ok := f.Banned("alice", netip.MustParseAddr("10.0.0.8")); ok {
		t.Fatal("address ban matched a neighbour")
	}
	rb, err := f.Add(ctx, Ban{IP: "192.168.1.77/24"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.IP != "192.168.1.0/24" {
		t.Fatalf("prefix not masked: %q", rb.IP)
	}
	if _, ok := f.Banned("", netip.MustParseAddr("::ffff:192.168.1.200")); !ok {
		t.Fatal("range ban did not match a mapped address inside it")
	}
	all, _ := f.All(ctx)
	if len(all) != 3 || all[0].ID != rb.ID || all[2].ID != ub.ID {
		t.Fatalf("all, newest first: %+v", all)
	}

	// Persisted: a second File on the same path sees the same list.
	g := open(t, path, c)
	if _, ok := g.Banned("mallory", netip.Addr{}); !ok {
		t.Fatal("user ban lost on reopen")
	}
	if _, ok := g.Banned("", netip.MustParseAddr("192.168.1.3")); !ok {
		t.Fatal("range ban lost on reopen")
	}

	// Expiry: the user ban ends after its minute, and disappears from All.
	c.add(time.Minute)
	if _, ok := f.Banned("mallory", netip.Addr{}); ok {
		t.Fatal("expired ban still in force")
	}
	if all, _ := f.All(ctx); len(all) != 2 {
		t.Fatalf("expired ban listed: %+v", all)
	}
	if err := f.Remove(ctx, ub.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove expired: %v", err)
	}

	if err := f.Remove(ctx, ab.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Banned("", ip); ok {
		t.Fatal("removed ban still in force")
	}
	if err := f.Remove(ctx, ab.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if g := open(t, path, c); len(g.idx.Load().all) != 1 {
		t.Fatalf("file after removal holds %+v", g.idx.Load().all)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestLongestBanWins(t *testing.T) {
	ctx := context.Background()
	c := &clock{}
	c.ms.Store(1_000_000)
	f := open(t, filepath.Join(t.TempDir(), "bans.json"), c)
	if _, err := f.Add(ctx, Ban{User: "eve"}); err != nil { // forever
		t.Fatal(err)
	}
	short, err := f.Add(ctx, Ban{User: "eve", Expires: c.now().Add(time.Second).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	c.add(2 * time.Second)
	if _, ok := f.Banned("eve", netip.Addr{}); !ok {
		t.Fatal("a short ban ended a permanent one")
	}
	_ = short
}

func TestInvalidBans(t *testing.T) {
	ctx := context.Background()
	c := &clock{}
	c.ms.Store(1_000_000)
	f := open(t, filepath.Join(t.TempDir(), "bans.json"), c)
	long := make([]byte, MaxReason+1)
	for i := range long {
		long[i] = 'x'
	}
	for name, b := range map[string]Ban{
		"neither":        {},
		"both":           {User: "a", IP: "1.2.3.4"},
		"bad user":       {User: "a b"},
		"bad ip":         {IP: "1.2.3"},
		"bad prefix":     {IP: "1.2.3.4/33"},
		"zone":           {IP: "fe80::1%eth0"},
		"past expiry":    {User: "a", Expires: c.ms.Load()},
		"negative":       {User: "a", Expires: -1},
		"reason too big": {User: "a", Reason: string(long)},
	} {
		if _, err := f.Add(ctx, b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	if all, _ := f.All(ctx); len(all) != 0 {
		t.Fatalf("invalid bans stored: %+v", all)
	}
}

func TestOpenRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); err == nil {
		t.Fatal("corrupt ban list opened silently")
	}
}

func TestParseRemote(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":         "127.0.0.1",
		"[::1]:80":               "::1",
		"[::ffff:10.1.2.3]:1883": "10.1.2.3",
		"10.0.0.1":               "10.0.0.1",
		"pipe":                   "invalid IP",
	} {
		if got := ParseRemote(in).String(); got != want {
			t.Errorf("ParseRemote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCovers(t *testing.T) {
	a := netip.MustParseAddr("10.1.2.3")
	for _, c := range []struct {
		b    Ban
		user string
		addr netip.Addr
		want bool
	}{
		{Ban{User: "eve"}, "eve", a, true},
		{Ban{User: "eve"}, "", a, false},
		{Ban{User: "eve"}, "eve2", a, false},
		{Ban{IP: "10.1.2.3"}, "x", a, true},
		{Ban{IP: "10.1.2.3"}, "x", netip.MustParseAddr("::ffff:10.1.2.3"), true},
		{Ban{IP: "10.1.2.3"}, "x", netip.Addr{}, false},
		{Ban{IP: "10.1.0.0/16"}, "", a, true},
		{Ban{IP: "10.2.0.0/16"}, "", a, false},
	} {
		if got := c.b.Covers(c.user, c.addr); got != c.want {
			t.Errorf("%+v covers %q %s = %v", c.b, c.user, c.addr, got)
		}
	}
}
