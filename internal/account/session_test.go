package account

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store/pebble"
)

// clock is a settable time for s.now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newServiceOpts is newService with options of the test's own, on a fresh
// Pebble store, and a clock the test moves; with no Limiter, a memory one.
func newServiceOpts(t *testing.T, opts Options) (*Service, *clock) {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	opts.Params = cheap
	if opts.Limiter == nil {
		opts.Limiter = memory.New(st.ReserveVersions, memory.Options{})
	}
	s := New(st, opts)
	c := &clock{t: time.Now()}
	s.now = c.now
	return s, c
}

// TestRegisterLoginVerify: the round trip a client makes, and the
// password's bounds.
func TestRegisterLoginVerify(t *testing.T) {
	ctx := t.Context()
	s, _ := newServiceOpts(t, Options{TokenTTL: time.Hour})
	for _, pw := range []string{"", "12345", strings.Repeat("p", 1025)} {
		if _, err := s.Register(ctx, "alice", pw); !errors.Is(err, ErrInvalid) {
			t.Errorf("password of %d bytes: %v, want ErrInvalid", len(pw), err)
		}
	}
	if _, err := s.Register(ctx, "alice", strings.Repeat("p", 1024)); err != nil {
		t.Fatalf("a 1024-byte password: %v", err)
	}
	if _, err := s.Register(ctx, "bob", "123456"); err != nil {
		t.Fatalf("a 6-byte password: %v", err)
	}
	sess, err := s.Login(ctx, "bob", "123456", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if sess.User != "bob" || sess.Device != "phone" || len(sess.Token) != 43 || sess.ExpiresAt <= time.Now().UnixMilli() {
		t.Fatalf("session %+v", sess)
	}
	row, err := s.Verify(ctx, sess.Token)
	if err != nil || row.User != "bob" || row.Device != "phone" || row.Expires != sess.ExpiresAt || row.Hash == sess.Token {
		t.Fatalf("Verify: %+v, %v (the store keeps the token's hash, not the token)", row, err)
	}
	for _, bad := range []string{"", "x", sess.Token + "x", strings.Repeat("a", 129)} {
		if _, err := s.Verify(ctx, bad); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%.10q…): %v, want ErrBadCredentials", bad, err)
		}
	}
	if _, err := s.Login(ctx, "bob", "1234567", "phone"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := s.Login(ctx, "nobody", "123456", "phone"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("no such user: %v", err)
	}
	if _, err := s.Login(ctx, "bob", "123456", "a/b"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad device ID: %v", err)
	}
}

// TestTokenExpiry: a token works until its expiry, not from then on, over
// HTTP (Verify) and MQTT (Authenticate), cached or not.
func TestTokenExpiry(t *testing.T) {
	ctx := t.Context()
	s, c := newServiceOpts(t, Options{TokenTTL: time.Hour})
	if _, err := s.Register(ctx, "carol", "secret-carol"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.Login(ctx, "carol", "secret-carol", "tab")
	if err != nil {
		t.Fatal(err)
	}
	if want := c.t.Add(time.Hour).UnixMilli(); sess.ExpiresAt != want {
		t.Fatalf("expires %d, want %d (TokenTTL from now)", sess.ExpiresAt, want)
	}
	c.t = c.t.Add(time.Hour - time.Millisecond)
	if _, err := s.Verify(ctx, sess.Token); err != nil {
		t.Fatalf("a millisecond before expiry: %v", err)
	}
	c.t = c.t.Add(time.Millisecond)
	if _, err := s.Verify(ctx, sess.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("at expiry (cached): %v", err)
	}
	s.Forget(hashToken(sess.Token))
	if _, err := s.Verify(ctx, sess.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("at expiry (from the store): %v", err)
	}
	// Over MQTT an expired token is no token: it is tried as a password.
	runs, _ := argon2Runs(t, func() {
		if err := s.Authenticate(ctx, "10.0.0.1:1", "carol", "tab", sess.Token); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("MQTT with an expired token: %v", err)
		}
	})
	if runs != 1 {
		t.Fatalf("an expired token ran argon2id %d times, want 1 (a password attempt)", runs)
	}
}

// TestRevoke: a revoked token fails at once on this node, other nodes are
// told its hash, and revoking again is no error. A node that missed the
// message stops trusting its cache after CacheTTL.
func TestRevoke(t *testing.T) {
	ctx := t.Context()
	var told []string
	s, c := newServiceOpts(t, Options{CacheTTL: time.Minute, Revoked: func(h string) { told = append(told, h) }})
	if _, err := s.Register(ctx, "dave", "secret-dave"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.Login(ctx, "dave", "secret-dave", "pc")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Login(ctx, "dave", "secret-dave", "phone")
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{sess.Token, other.Token} {
		if _, err := s.Verify(ctx, tok); err != nil { // both cached now
			t.Fatal(err)
		}
	}
	if err := s.Revoke(ctx, sess.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, sess.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a revoked token: %v", err)
	}
	if err := s.Authenticate(ctx, "", "dave", "pc", sess.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a revoked token over MQTT: %v", err)
	}
	if err := s.Revoke(ctx, sess.Token); err != nil {
		t.Fatalf("revoke twice: %v", err)
	}
	if len(told) != 2 || told[0] != hashToken(sess.Token) {
		t.Fatalf("told the other nodes %v", told)
	}
	if _, err := s.Verify(ctx, other.Token); err != nil {
		t.Fatalf("the other device's token: %v", err)
	}

	// Another node revoked other.Token and this one missed the message:
	// the store no longer has it, the cache still does, until CacheTTL.
	if err := s.st.DeleteToken(ctx, hashToken(other.Token)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, other.Token); err != nil {
		t.Fatalf("within CacheTTL: %v", err)
	}
	c.t = c.t.Add(time.Minute)
	if _, err := s.Verify(ctx, other.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("past CacheTTL: %v", err)
	}
}

// failingLimiter is a Limiter whose backend is away.
type failingLimiter struct{ calls int }

func (f *failingLimiter) Allow(context.Context, string, state.Limit) (state.Decision, error) {
	f.calls++
	return state.Decision{}, errors.New("redis away")
}

func (f *failingLimiter) Peek(context.Context, string, state.Limit) (state.Decision, error) {
	f.calls++
	return state.Decision{}, errors.New("redis away")
}

// TestLimiterDown: when the Limiter fails, attempts are let through (the
// argon2id bound still holds), and logins keep working.
func TestLimiterDown(t *testing.T) {
	ctx := t.Context()
	lim := new(failingLimiter)
	s, _ := newServiceOpts(t, Options{Limiter: lim, Limits: Limits{LoginIP: state.Limit{Rate: 1, Per: time.Hour, Burst: 1}}})
	if _, err := s.RegisterFrom(ctx, "10.0.0.1:1", "erin", "secret-erin"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.LoginFrom(ctx, "10.0.0.1:1", "erin", "secret-erin", "d"); err != nil {
			t.Fatalf("login %d with the limiter down: %v", i+1, err)
		}
	}
	if lim.calls == 0 {
		t.Fatal("the limiter was never asked")
	}
}

// TestHashingBound: password checks wait for a hashing slot, and give up
// when the caller's context ends.
func TestHashingBound(t *testing.T) {
	s, _ := newServiceOpts(t, Options{MaxHashing: 1, Limits: noLimits})
	if _, err := s.Register(t.Context(), "fay", "secret-fay"); err != nil {
		t.Fatal(err)
	}
	s.sem <- struct{}{} // the one slot is taken
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Login(ctx, "fay", "secret-fay", "d"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("login with no hashing slot: %v", err)
	}
	if _, err := s.Register(ctx, "gus", "secret-gus"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("register with no hashing slot: %v", err)
	}
	<-s.sem
	if _, err := s.Login(t.Context(), "fay", "secret-fay", "d"); err != nil {
		t.Fatalf("login once the slot is free: %v", err)
	}
}

// TestNilLimiterThrottlesNothing: Options says a nil Limiter throttles
// nothing; it once panicked taking a method of the nil interface.
func TestNilLimiterThrottlesNothing(t *testing.T) {
	st, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := New(st, Options{Params: cheap, TokenTTL: time.Hour})
	if _, err := s.RegisterFrom(t.Context(), "192.0.2.1:5000", "alice", "secret-alice"); err != nil {
		t.Fatal(err)
	}
	for range 20 { // past any login limit there would be
		if _, err := s.LoginFrom(t.Context(), "192.0.2.1:5000", "alice", "wrong-password", "phone"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("a wrong password: %v, want ErrBadCredentials", err)
		}
	}
	if _, err := s.LoginFrom(t.Context(), "192.0.2.1:5000", "alice", "secret-alice", "phone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(t.Context(), "192.0.2.1:5000", "alice", "phone", "secret-alice"); err != nil {
		t.Fatal(err)
	}
}
