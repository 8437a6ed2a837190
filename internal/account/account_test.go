package account

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store/pebble"
)

var cheap = Params{Memory: 64, Time: 1, Threads: 1}

func newService(t *testing.T, limits Limits) *Service {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, Options{Params: cheap, Limiter: memory.New(st.ReserveVersions, memory.Options{}), Limits: limits})
}

// argon2Runs counts argon2id runs and the costs they used while f runs.
func argon2Runs(t *testing.T, f func()) (n int, costs []Params) {
	var mu sync.Mutex
	orig := idKey
	idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		mu.Lock()
		n++
		costs = append(costs, Params{Memory: memory, Time: time, Threads: threads})
		mu.Unlock()
		return orig(password, salt, time, memory, threads, keyLen)
	}
	defer func() { idKey = orig }()
	f()
	return n, costs
}

var noLimits = Limits{LoginIP: state.Limit{Rate: -1}, LoginUserIP: state.Limit{Rate: -1},
	LoginUser: state.Limit{Rate: -1}, RegisterIP: state.Limit{Rate: -1}}

// Why 6 (timing): a login for a user that does not exist does the same
// argon2id work, at the configured cost, as a wrong password, so its
// answer time does not enumerate accounts. Counted, not timed.
func TestUnknownUserSameWork(t *testing.T) {
	s := newService(t, noLimits)
	ctx := t.Context()
	if _, err := s.Register(ctx, "alice", "secret-alice"); err != nil {
		t.Fatal(err)
	}
	s.dummyHash() // made once, at the first miss: not part of a login's work
	wrong, wrongCosts := argon2Runs(t, func() {
		if _, err := s.Login(ctx, "alice", "wrong-password", "d"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	})
	missing, missingCosts := argon2Runs(t, func() {
		if _, err := s.Login(ctx, "nobody", "wrong-password", "d"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("missing user: %v", err)
		}
	})
	if wrong != 1 || missing != wrong {
		t.Fatalf("argon2id runs: %d for a wrong password, %d for a missing user; want 1 each", wrong, missing)
	}
	if missingCosts[0] != cheap || wrongCosts[0] != cheap {
		t.Fatalf("costs: wrong password %+v, missing user %+v; want %+v", wrongCosts[0], missingCosts[0], cheap)
	}
	// Over MQTT (a password that is no token) likewise.
	missing, _ = argon2Runs(t, func() { _ = s.Authenticate(ctx, "10.0.0.1:5", "nobody", "d", "not-a-token") })
	wrong, _ = argon2Runs(t, func() { _ = s.Authenticate(ctx, "10.0.0.1:5", "alice", "d", "not-a-token") })
	if wrong != 1 || missing != 1 {
		t.Fatalf("MQTT argon2id runs: %d for a wrong password, %d for a missing user", wrong, missing)
	}
}

// Why 6 (throttling): per IP every attempt counts; per account only
// failures, per IP and over all IPs. A throttled attempt does no argon2id
// work.
func TestThrottle(t *testing.T) {
	ctx := t.Context()
	t.Run("ip", func(t *testing.T) {
		s := newService(t, Limits{LoginIP: state.Limit{Rate: 1, Per: time.Hour, Burst: 3}})
		if _, err := s.Register(ctx, "alice", "secret-alice"); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := s.LoginFrom(ctx, "10.0.0.1:1000", "alice", "secret-alice", "d"); err != nil {
				t.Fatalf("login %d: %v", i+1, err)
			}
		}
		var th *Throttled
		runs, _ := argon2Runs(t, func() {
			_, err := s.LoginFrom(ctx, "10.0.0.1:2000", "alice", "secret-alice", "d")
			if !errors.As(err, &th) || th.Limit != "login_ip" || th.RetryAfter <= 0 || !errors.Is(err, ErrThrottled) {
				t.Fatalf("login 4 from one IP: %v", err)
			}
		})
		if runs != 0 {
			t.Fatalf("a throttled attempt ran argon2id %d times", runs)
		}
		if err := s.Authenticate(ctx, "10.0.0.1:3000", "alice", "d", "secret-alice"); !errors.As(err, &th) || th.Limit != "login_ip" {
			t.Fatalf("MQTT password from the same IP: %v", err)
		}
		if _, err := s.LoginFrom(ctx, "10.0.0.2:1000", "alice", "secret-alice", "d"); err != nil {
			t.Fatalf("another IP: %v", err)
		}
		// IPv6: one /64 is one client.
		for i := range 3 {
			_, _ = s.LoginFrom(ctx, "[2001:db8::"+string(rune('1'+i))+"]:1", "alice", "secret-alice", "d")
		}
		if _, err := s.LoginFrom(ctx, "[2001:db8::ff]:1", "alice", "secret-alice", "d"); !errors.Is(err, ErrThrottled) {
			t.Fatalf("the fourth address of one /64: %v", err)
		}
	})
	t.Run("failures", func(t *testing.T) {
		s := newService(t, Limits{LoginUserIP: state.Limit{Rate: 1, Per: time.Hour, Burst: 2},
			LoginUser: state.Limit{Rate: 1, Per: time.Hour, Burst: 4}})
		if _, err := s.Register(ctx, "carol", "secret-carol"); err != nil {
			t.Fatal(err)
		}
		// Successes spend nothing.
		for i := range 10 {
			if _, err := s.LoginFrom(ctx, "10.0.0.9:1", "carol", "secret-carol", "d"); err != nil {
				t.Fatalf("login %d: %v", i+1, err)
			}
		}
		for range 2 {
			if _, err := s.LoginFrom(ctx, "10.0.0.1:1", "carol", "guess", "d"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("guess: %v", err)
			}
		}
		var th *Throttled
		if _, err := s.LoginFrom(ctx, "10.0.0.1:1", "CAROL", "secret-carol", "d"); !errors.As(err, &th) || th.Limit != "login_user_ip" {
			t.Fatalf("the attacker's IP, past its failures (even right, even in other case): %v", err)
		}
		if _, err := s.LoginFrom(ctx, "10.0.0.9:1", "carol", "secret-carol", "d"); err != nil {
			t.Fatalf("the user's own IP during the attack: %v", err)
		}
		for range 2 {
			_, _ = s.LoginFrom(ctx, "10.0.0.2:1", "carol", "guess", "d")
		}
		if _, err := s.LoginFrom(ctx, "10.0.0.3:1", "carol", "guess", "d"); !errors.As(err, &th) || th.Limit != "login_user" {
			t.Fatalf("a third IP past the account's failures: %v", err)
		}
		// A missing account is throttled alike: nothing tells it apart.
		for range 2 {
			_, _ = s.LoginFrom(ctx, "10.0.0.1:1", "nobody", "guess", "d")
		}
		if _, err := s.LoginFrom(ctx, "10.0.0.1:1", "nobody", "guess", "d"); !errors.As(err, &th) || th.Limit != "login_user_ip" {
			t.Fatalf("a missing account: %v", err)
		}
	})
	t.Run("register", func(t *testing.T) {
		s := newService(t, Limits{RegisterIP: state.Limit{Rate: 1, Per: time.Hour, Burst: 2}})
		for _, u := range []string{"u1", "u2"} {
			if _, err := s.RegisterFrom(ctx, "10.0.0.1:1", u, "password"); err != nil {
				t.Fatal(err)
			}
		}
		var th *Throttled
		if _, err := s.RegisterFrom(ctx, "10.0.0.1:2", "u3", "password"); !errors.As(err, &th) || th.Limit != "register_ip" {
			t.Fatalf("third registration: %v", err)
		}
		if _, err := s.RegisterFrom(ctx, "10.0.0.2:2", "u3", "password"); err != nil {
			t.Fatalf("another IP: %v", err)
		}
	})
}

// Why 9: a token opens only the device it was issued to; the password
// opens any.
func TestTokenBoundToDevice(t *testing.T) {
	s := newService(t, noLimits)
	ctx := t.Context()
	if _, err := s.Register(ctx, "carol", "secret-carol"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.Login(ctx, "carol", "secret-carol", "tab")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(ctx, "", "carol", "tab", sess.Token); err != nil {
		t.Fatalf("the token's own device: %v", err)
	}
	if err := s.Authenticate(ctx, "", "carol", "other", sess.Token); !errors.Is(err, ErrWrongDevice) || !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("another device: %v", err)
	}
	if err := s.Authenticate(ctx, "", "dave", "tab", sess.Token); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("another user: %v", err)
	}
	if err := s.Authenticate(ctx, "", "carol", "other", "secret-carol"); err != nil {
		t.Fatalf("the password on another device: %v", err)
	}
	// Another node revoked it: Forget names the device whose session to end.
	if id := s.Forget(hashToken(sess.Token)); id != "carol/tab" {
		t.Fatalf("forget a cached token: %q, want carol/tab", id)
	}
	if id := s.Forget(hashToken(sess.Token)); id != "" {
		t.Fatalf("forget it again: %q", id)
	}
}
