package account

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imqtt/imqtt/internal/jwtauth"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

var jwtSecret = []byte("account-test-secret-0123456789abcdef")

func jwtService(t *testing.T) (*Service, store.Store) {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := jwtauth.New(jwtSecret, jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return New(st, Options{Params: cheap, Limits: noLimits, JWT: v}), st
}

func mint(t *testing.T, kv ...any) string {
	t.Helper()
	c := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTFirstUse: the first accepted JWT of an unknown user creates its
// account, without a password: no password opens it, and its name is taken.
func TestJWTFirstUse(t *testing.T) {
	s, st := jwtService(t)
	ctx := t.Context()
	if err := s.Authenticate(ctx, "10.0.0.1:5", "carol", "phone", mint(t, "sub", "Carol")); err != nil {
		t.Fatal(err)
	}
	u, err := st.GetUser(ctx, "carol")
	if err != nil || u.PasswordHash != "" || u.Display != "Carol" {
		t.Fatalf("user %+v, %v", u, err)
	}
	for _, pw := range []string{"", "anything", "$argon2id$"} {
		if err := s.CheckPassword(ctx, "carol", pw); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("password %q on a passwordless account: %v", pw, err)
		}
		if err := s.Authenticate(ctx, "10.0.0.1:5", "carol", "phone", pw); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("MQTT password %q on a passwordless account: %v", pw, err)
		}
	}
	if _, err := s.Login(ctx, "carol", "anything", "phone"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("login: %v", err)
	}
	if _, err := s.Register(ctx, "CAROL", "password1"); !errors.Is(err, ErrExists) {
		t.Errorf("register over a JWT user: %v", err)
	}
	// Later uses find it (and a deleted-and-back store row is not needed).
	if err := s.Authenticate(ctx, "10.0.0.1:5", "carol", "laptop", mint(t, "sub", "carol")); err != nil {
		t.Fatal(err)
	}
}

// TestJWTFirstUseRace: many devices of a new user connecting at once all
// get in, and the user is created once.
func TestJWTFirstUseRace(t *testing.T) {
	s, st := jwtService(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			errs <- s.Authenticate(ctx, "10.0.0.1:5", "dave", fmt.Sprintf("d%d", i), mint(t, "sub", "dave"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if _, err := st.GetUser(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
}

// TestJWTRefused: a JWT of another user or device, or a bad one, is
// ErrBadCredentials, costs no argon2id run (it is never tried as a
// password) and creates nobody.
func TestJWTRefused(t *testing.T) {
	s, st := jwtService(t)
	ctx := t.Context()
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "erin", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte("another-secret-0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ user, device, tok string }{
		"another user":   {"erin", "phone", mint(t, "sub", "frank")},
		"another device": {"erin", "phone", mint(t, "sub", "erin", "device", "laptop")},
		"forged":         {"erin", "phone", forged},
		"expired":        {"erin", "phone", mint(t, "sub", "erin", "exp", time.Now().Add(-time.Hour).Unix())},
		"garbage":        {"erin", "phone", "eyJhbGciOiJIUzI1NiJ9.e30.xx"},
	} {
		var err error
		n, _ := argon2Runs(t, func() { err = s.Authenticate(ctx, "10.0.0.1:5", c.user, c.device, c.tok) })
		if !errors.Is(err, ErrBadCredentials) || n != 0 {
			t.Errorf("%s: %v after %d argon2id runs", name, err, n)
		}
		if name == "another user" || name == "another device" {
			continue // valid JWTs, on HTTP
		}
		if _, err := s.Verify(ctx, c.tok); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s on HTTP: %v", name, err)
		}
	}
	for _, u := range []string{"erin", "frank"} {
		if _, err := st.GetUser(ctx, u); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s created by a refused JWT: %v", u, err)
		}
	}
}

// TestJWTBearer: Verify (the HTTP API's check) takes a JWT like a login
// token: its user, its device claim or JWTDevice, its expiry.
func TestJWTBearer(t *testing.T) {
	s, _ := jwtService(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Unix()
	row, err := s.Verify(ctx, mint(t, "sub", "Gina", "exp", exp))
	if err != nil || row.User != "gina" || row.Device != JWTDevice || row.Expires != exp*1000 || row.Hash != "" {
		t.Fatalf("row %+v, %v", row, err)
	}
	row, err = s.Verify(ctx, mint(t, "sub", "gina", "device", "tablet"))
	if err != nil || row.Device != "tablet" {
		t.Fatalf("row %+v, %v", row, err)
	}
	// Revoking a JWT (DELETE /v1/sessions/current) is harmless, and does not
	// end it: it is stateless.
	tok := mint(t, "sub", "gina")
	if err := s.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, tok); err != nil {
		t.Fatalf("after Revoke: %v", err)
	}
}

// TestJWTBesideTheOldWays: with --jwt-key set, login tokens and passwords
// work as before; a password shaped like a JWT is tried as a password only
// without --jwt-key.
func TestJWTBesideTheOldWays(t *testing.T) {
	s, st := jwtService(t)
	ctx := t.Context()
	jwtish := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJoIn0.c2lnbmF0dXJl"
	if _, err := s.Register(ctx, "hal", jwtish); err != nil {
		t.Fatal(err)
	}
	sess, err := s.Login(ctx, "hal", jwtish, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(ctx, "10.0.0.1:5", "hal", "phone", sess.Token); err != nil {
		t.Fatalf("login token: %v", err)
	}
	if _, err := s.Verify(ctx, sess.Token); err != nil {
		t.Fatalf("login token on HTTP: %v", err)
	}
	if err := s.Authenticate(ctx, "10.0.0.1:5", "hal", "phone", jwtish); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("JWT-shaped password with --jwt-key: %v", err)
	}
	plain := New(st, Options{Params: cheap, Limits: noLimits})
	if err := plain.Authenticate(ctx, "10.0.0.1:5", "hal", "phone", jwtish); err != nil {
		t.Fatalf("JWT-shaped password without --jwt-key: %v", err)
	}
	if err := plain.Authenticate(ctx, "10.0.0.1:5", "hal", "phone", mint(t, "sub", "hal")); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("JWT without --jwt-key: %v", err)
	}
}

// TestJWTLogsNoToken: what the service logs about JWTs, accepted or
// refused, at every level, holds no token and no claim but the user ID.
func TestJWTLogsNoToken(t *testing.T) {
	var buf bytes.Buffer
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := jwtauth.New(jwtSecret, jwtauth.Options{Audience: "imqtt"})
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, Options{Params: cheap, Limits: noLimits, JWT: v,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := t.Context()
	toks := []string{
		mint(t, "sub", "ivan", "aud", "imqtt", "device", "secretdevice", "email", "ivan@example.com"),
		mint(t, "sub", "ivan", "aud", "elsewhere", "email", "ivan@example.com"),
		mint(t, "sub", "bad user", "aud", "imqtt"),
		mint(t, "sub", "ivan", "aud", "imqtt", "device", "otherdevice"),
	}
	for _, tok := range toks {
		_ = s.Authenticate(ctx, "10.0.0.1:5", "ivan", "secretdevice", tok)
		_, _ = s.Verify(ctx, tok)
	}
	if !strings.Contains(buf.String(), "user=ivan") || !strings.Contains(buf.String(), "jwt refused") {
		t.Fatalf("expected lines missing: %s", buf.String())
	}
	for _, tok := range toks {
		for _, part := range append(strings.Split(tok, "."), "ivan@example.com", "secretdevice", "otherdevice", "bad user", "elsewhere") {
			if strings.Contains(buf.String(), part) {
				t.Errorf("log holds %q:\n%s", part, buf.String())
			}
		}
	}
}

// TestJWTOfDeletedUser: a deleted user (a tombstone, DELETE
// /v1/server/users/{user}) is not created again by its JWT: the JWT is
// refused like bad credentials, on a node that had seen the user too.
func TestJWTOfDeletedUser(t *testing.T) {
	s, st := jwtService(t)
	ctx := t.Context()
	tok := mint(t, "sub", "dave")
	if err := s.Authenticate(ctx, "10.0.0.1:5", "dave", "phone", tok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, tok); err != nil { // now remembered as verified
		t.Fatal(err)
	}
	if err := st.TombstoneUser(ctx, "dave", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeUser(ctx, st, "dave", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(ctx, "10.0.0.1:5", "dave", "phone", tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a deleted user's JWT: %v, want ErrBadCredentials", err)
	}
	if _, err := s.Verify(ctx, tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a deleted user's JWT as a Bearer token: %v, want ErrBadCredentials", err)
	}
	if _, err := st.UserTombstone(ctx, "dave"); err != nil {
		t.Errorf("the tombstone: %v", err)
	}
}

// BenchmarkVerifyJWT: a Bearer JWT on every HTTP request is checked once,
// then remembered (ES256's signature check is the costliest).
func BenchmarkVerifyJWT(b *testing.B) {
	st, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	v, err := jwtauth.New(jwtSecret, jwtauth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := New(st, Options{Params: cheap, Limits: noLimits, JWT: v})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "erin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwtSecret)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
