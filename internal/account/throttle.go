package account

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/imqtt/imqtt/internal/jwtauth"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Throttling. Passwords are guessed online through three doors: HTTP
// login, MQTT CONNECT with the account password, and (for enumeration)
// registration. Each attempt that reaches a password check costs an
// argon2id run, so the limits also bound the CPU an attacker can take.
//
//   - login_ip: every password attempt from one client IP (an IPv6 /64
//     counts as one: anyone holds a whole /64), right or wrong. It bounds
//     spraying one password over many accounts, and the CPU.
//   - login_user_ip and login_user: failed attempts at one account, from
//     one IP and from all IPs. Only failures count, so a user (or a bot
//     logging in often) who knows the password never spends the budget.
//     An attacker who knows no password can spend it, and then the
//     account's password logins wait: that is the price of bounding
//     guesses. Three things keep it small. The tight per-(user, IP) budget
//     stops a single attacker without touching the user's own IP; only a
//     distributed attacker reaches the looser all-IPs budget (which bounds
//     the guesses on one account whatever the number of IPs; NIST SP
//     800-63B §5.2.2 asks for at most 100 consecutive failures). And
//     tokens are never throttled: the user's logged-in devices keep
//     connecting throughout.
//   - register_ip: every registration from one client IP (account spam,
//     and "exists" answers enumerate accounts).
//
// The failure limits are asked (Peek) before the password is checked and
// charged (Allow) after it failed, so concurrent attempts can overshoot
// them by the number in flight (bounded by login_ip and MaxHashing). A
// refused attempt does no argon2id work and answers at once, the same for
// accounts that exist and those that do not. If the Limiter fails (Redis
// away) attempts are let through: the argon2id semaphore still bounds the
// CPU, and logins keep working.

// Limits are the throttles; a zero field takes its default from
// DefaultLimits, a negative Rate turns that limit off.
type Limits struct {
	LoginIP     state.Limit
	LoginUserIP state.Limit
	LoginUser   state.Limit
	RegisterIP  state.Limit
}

// DefaultLimits are what an internet-facing server wants: far above what
// people behind one NAT, or a bot reconnecting with its password, do.
var DefaultLimits = Limits{
	LoginIP:     state.Limit{Rate: 30, Per: time.Minute, Burst: 60},
	LoginUserIP: state.Limit{Rate: 10, Per: time.Hour, Burst: 10},
	LoginUser:   state.Limit{Rate: 100, Per: time.Hour, Burst: 100},
	RegisterIP:  state.Limit{Rate: 60, Per: time.Hour, Burst: 30},
}

func (l *Limits) fill() {
	for _, p := range []struct{ v, def *state.Limit }{
		{&l.LoginIP, &DefaultLimits.LoginIP}, {&l.LoginUserIP, &DefaultLimits.LoginUserIP},
		{&l.LoginUser, &DefaultLimits.LoginUser}, {&l.RegisterIP, &DefaultLimits.RegisterIP},
	} {
		if *p.v == (state.Limit{}) {
			*p.v = *p.def
		}
	}
}

// ErrThrottled is what a throttled attempt's *Throttled error matches.
var ErrThrottled = errors.New("too many attempts")

// ErrWrongDevice: a token was presented for a device it was not issued to.
// It matches ErrBadCredentials too.
var ErrWrongDevice = fmt.Errorf("%w: token issued to another device", ErrBadCredentials)

// Throttled is the error of an attempt a limit refused.
type Throttled struct {
	Limit      string        // which: login_ip, login_user_ip, login_user, register_ip
	RetryAfter time.Duration // when the next attempt may pass
}

func (e *Throttled) Error() string {
	return fmt.Sprintf("too many attempts (%s); retry in %v", e.Limit, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) hold.
func (e *Throttled) Is(target error) bool { return target == ErrThrottled }

// RegisterFrom is Register for a client at from (its address, "ip:port"
// or "ip"), throttled by register_ip.
func (s *Service) RegisterFrom(ctx context.Context, from, user, password string) (id string, err error) {
	if err := s.allow(ctx, "register_ip", "reg_ip:"+clientIP(from), s.opts.Limits.RegisterIP); err != nil {
		return "", err
	}
	return s.Register(ctx, user, password)
}

// LoginFrom is Login for a client at from, throttled (see above).
func (s *Service) LoginFrom(ctx context.Context, from, user, password, device string) (wire.Session, error) {
	if !wire.ValidUser(user) || !wire.ValidDevice(device) {
		return wire.Session{}, ErrInvalid
	}
	if err := s.admit(ctx, from, user); err != nil {
		return wire.Session{}, err
	}
	sess, err := s.Login(ctx, user, password, device)
	if errors.Is(err, ErrBadCredentials) {
		s.failed(ctx, from, user)
	}
	return sess, err
}

// Authenticate checks an MQTT CONNECT from a client at from as user's
// device: the secret is a token issued to exactly that user and device,
// or user's account password (docs/protocol.md#identity: a password opens any device of its
// user). Tokens are checked first and never throttled; a secret that is
// no live token is a password attempt, throttled as LoginFrom's. A token
// of another device is ErrWrongDevice. With Options.JWT, a secret of a
// JWT's shape is checked as a JWT for user's device only (jwt.go).
func (s *Service) Authenticate(ctx context.Context, from, user, device, secret string) error {
	user = store.FoldID(user) // the MQTT hook lets only canonical IDs through; others fold too
	if s.opts.JWT != nil && jwtauth.Looks(secret) {
		_, err := s.verifyJWT(ctx, secret, user, device)
		return err
	}
	row, err := s.Verify(ctx, secret)
	switch {
	case err == nil && row.User == user && row.Device == device:
		return nil
	case err == nil && row.User == user:
		return ErrWrongDevice
	case err == nil:
		return ErrBadCredentials
	case !errors.Is(err, ErrBadCredentials):
		return err
	}
	if !wire.ValidUser(user) {
		return ErrBadCredentials
	}
	if err := s.admit(ctx, from, user); err != nil {
		return err
	}
	err = s.CheckPassword(ctx, user, secret)
	if errors.Is(err, ErrBadCredentials) {
		s.failed(ctx, from, user)
	}
	return err
}

// admit charges login_ip and asks the failure limits.
func (s *Service) admit(ctx context.Context, from, user string) error {
	ip, u := clientIP(from), userKey(user)
	if err := s.allow(ctx, "login_ip", "login_ip:"+ip, s.opts.Limits.LoginIP); err != nil {
		return err
	}
	if err := s.peek(ctx, "login_user_ip", "login_fail:"+u+":"+ip, s.opts.Limits.LoginUserIP); err != nil {
		return err
	}
	return s.peek(ctx, "login_user", "login_fail:"+u, s.opts.Limits.LoginUser)
}

// failed charges a failed password attempt to the failure limits.
func (s *Service) failed(ctx context.Context, from, user string) {
	ip, u := clientIP(from), userKey(user)
	_ = s.allow(ctx, "login_user_ip", "login_fail:"+u+":"+ip, s.opts.Limits.LoginUserIP)
	_ = s.allow(ctx, "login_user", "login_fail:"+u, s.opts.Limits.LoginUser)
}

// allow and peek consult the Limiter; with none (a nil Limiter throttles
// nothing) they let everything through before taking a method of it.
func (s *Service) allow(ctx context.Context, name, key string, l state.Limit) error {
	if s.opts.Limiter == nil {
		return nil
	}
	return s.limit(ctx, name, key, l, s.opts.Limiter.Allow)
}

func (s *Service) peek(ctx context.Context, name, key string, l state.Limit) error {
	if s.opts.Limiter == nil {
		return nil
	}
	return s.limit(ctx, name, key, l, s.opts.Limiter.Peek)
}

func (s *Service) limit(ctx context.Context, name, key string, l state.Limit, f func(context.Context, string, state.Limit) (state.Decision, error)) error {
	if l.Rate < 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d, err := f(ctx, key, l)
	if err != nil {
		s.opts.Logger.Warn("throttle: limiter failed; letting the attempt through", "limit", name, "err", err)
		return nil
	}
	if !d.OK {
		return &Throttled{Limit: name, RetryAfter: d.RetryAfter}
	}
	return nil
}

// userKey folds a user ID for the failure limits, so "Alice" and "alice"
// spend one budget whatever the store makes of case.
func userKey(user string) string { return strings.ToLower(user) }

// clientIP is the throttling key of a client address: its IP, an IPv6
// address's /64 (one subscriber's allocation), or the address as given
// when it does not parse.
func clientIP(from string) string {
	host := from
	if h, _, err := net.SplitHostPort(from); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
