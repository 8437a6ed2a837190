package account_test

import (
	"context"
	"errors"
	"testing"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/store/pebble"
)

func newService(t *testing.T) *account.Service {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return account.New(st, account.Options{Params: account.Params{Memory: 64, Time: 1, Threads: 1}})
}

// TestRegisterNames: attack finding 10. Dot IDs are no IDs, reserved names
// are kept, and case variants of a taken ID are taken.
func TestRegisterNames(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	for _, bad := range []string{".", "..", ".alice", "a/b", "", "é"} {
		if _, err := s.Register(ctx, bad, "password"); !errors.Is(err, account.ErrInvalid) {
			t.Errorf("register %q: %v, want ErrInvalid", bad, err)
		}
	}
	for _, name := range []string{"system", "Admin", "ROOT"} {
		if _, err := s.Register(ctx, name, "password"); !errors.Is(err, account.ErrReserved) {
			t.Errorf("register %q: %v, want ErrReserved", name, err)
		}
	}
	id, err := s.Register(ctx, "Alice", "password")
	if err != nil || id != "alice" {
		t.Fatalf("register Alice: %q, %v; want alice", id, err)
	}
	for _, dup := range []string{"alice", "ALICE", "aLiCe"} {
		if _, err := s.Register(ctx, dup, "other-password"); !errors.Is(err, account.ErrExists) {
			t.Errorf("register %q after Alice: %v, want ErrExists", dup, err)
		}
	}
	if ok, err := s.Exists(ctx, "ALICE"); !ok || err != nil {
		t.Errorf("Exists(ALICE) = %v, %v", ok, err)
	}
}

// TestLoginFolds: any case logs in to the one account; the session names
// the canonical ID, which tokens carry, and the display name as registered.
func TestLoginFolds(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	if _, err := s.Register(ctx, "Alice", "password"); err != nil {
		t.Fatal(err)
	}
	for _, as := range []string{"alice", "ALICE", "Alice"} {
		sess, err := s.Login(ctx, as, "password", "phone")
		if err != nil {
			t.Fatalf("login as %s: %v", as, err)
		}
		if sess.User != "alice" || sess.Display != "Alice" {
			t.Errorf("login as %s: user %q display %q; want alice, Alice", as, sess.User, sess.Display)
		}
		row, err := s.Verify(ctx, sess.Token)
		if err != nil || row.User != "alice" {
			t.Errorf("token of %s: %+v, %v", as, row, err)
		}
		if err := s.Authenticate(ctx, "127.0.0.1:1", "alice", "phone", sess.Token); err != nil {
			t.Errorf("authenticate alice/phone with %s's token: %v", as, err)
		}
	}
	if _, err := s.Login(ctx, "ALICE", "wrong-password", "phone"); !errors.Is(err, account.ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := s.Login(ctx, "..", "password", "phone"); !errors.Is(err, account.ErrInvalid) {
		t.Errorf("login as ..: %v", err)
	}
	if err := s.CheckPassword(ctx, "ALICE", "password"); err != nil {
		t.Errorf("CheckPassword(ALICE): %v", err)
	}
}
