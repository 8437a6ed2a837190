package account_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestServerUsers: a user the server API creates has no password (no
// password logs it in), gets tokens minted within the TTL bounds, and
// RevokeUser ends every one of them, cached or not.
func TestServerUsers(t *testing.T) {
	ctx := context.Background()
	st, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := account.New(st, account.Options{Params: account.Params{Memory: 64, Time: 1, Threads: 1}})

	id, err := s.CreateUser(ctx, "Bot1")
	if err != nil || id != "bot1" {
		t.Fatalf("create: %q, %v", id, err)
	}
	for _, c := range []struct {
		user string
		want error
	}{{"bot1", account.ErrExists}, {"BOT1", account.ErrExists}, {"system", account.ErrReserved},
		{"deleted", account.ErrReserved}, {".x", account.ErrInvalid}, {"", account.ErrInvalid}} {
		if _, err := s.CreateUser(ctx, c.user); !errors.Is(err, c.want) {
			t.Errorf("create %q: %v, want %v", c.user, err, c.want)
		}
	}
	for _, pw := range []string{"", "anything"} {
		if _, err := s.Login(ctx, "bot1", pw, "phone"); !errors.Is(err, account.ErrBadCredentials) {
			t.Errorf("password %q logged a passwordless user in: %v", pw, err)
		}
	}

	sess, err := s.MintToken(ctx, "bot1", "phone", 0)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if d := time.Until(time.UnixMilli(sess.ExpiresAt)); d < account.DefaultMintTTL-time.Minute || d > account.DefaultMintTTL {
		t.Errorf("a ttl of 0 lasts %v, want %v", d, account.DefaultMintTTL)
	}
	if row, err := s.Verify(ctx, sess.Token); err != nil || row.User != "bot1" || row.Device != "phone" {
		t.Fatalf("verify a minted token: %+v, %v", row, err)
	}
	other, err := s.MintToken(ctx, "bot1", "laptop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, device string
		ttl          time.Duration
		want         error
	}{
		{"nobody", "phone", 0, account.ErrNoSuchUser},
		{"bot1", "a/b", 0, account.ErrInvalid},
		{"bot1", "phone", -time.Second, account.ErrInvalid},
		{"bot1", "phone", account.MaxMintTTL + time.Second, account.ErrInvalid},
	} {
		if _, err := s.MintToken(ctx, c.user, c.device, c.ttl); !errors.Is(err, c.want) {
			t.Errorf("mint %s/%s ttl %v: %v, want %v", c.user, c.device, c.ttl, err, c.want)
		}
	}

	var revoked []string
	s2 := account.New(st, account.Options{Params: account.Params{Memory: 64, Time: 1, Threads: 1},
		Revoked: func(h string) { revoked = append(revoked, h) }})
	if _, err := s2.Verify(ctx, sess.Token); err != nil { // cached in s2
		t.Fatal(err)
	}
	total := 0
	for {
		n, err := s2.RevokeUser(ctx, st, "bot1", 1)
		if err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 2 || len(revoked) != 2 {
		t.Errorf("revoked %d tokens, told %d; want 2", total, len(revoked))
	}
	for _, tok := range []string{sess.Token, other.Token} {
		if _, err := s2.Verify(ctx, tok); !errors.Is(err, account.ErrBadCredentials) {
			t.Errorf("a revoked token still verifies: %v", err)
		}
	}
}
