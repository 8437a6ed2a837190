// Package account registers users, checks passwords and issues, verifies and
// revokes login tokens.
//
// A token is 32 random bytes (base64url). The store keeps only its SHA-256, with
// the user, the device and the expiry. Revoking a token deletes that row (and
// drops it from this process's cache), so a revoked token fails every later
// check: HTTP requests and new MQTT connections. Connections already open with
// it are closed by the caller. In scale-out every node caches tokens: the
// Revoked option tells the other nodes (over the cluster bus) to Forget a
// revoked token, and CacheTTL bounds how long a node that missed that
// message keeps accepting it.
package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"

	"github.com/imqtt/imqtt/internal/jwtauth"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Errors callers map to protocol codes.
var (
	ErrBadCredentials = errors.New("bad credentials")
	ErrExists         = errors.New("user exists")
	ErrInvalid        = errors.New("invalid user, device or password")
	ErrReserved       = errors.New("user ID reserved")
)

// The defaults of Options, taken by its zero values; DefaultParams and
// DefaultLimits are the others.
const (
	DefaultTokenTTL    = 30 * 24 * time.Hour
	DefaultMinPassword = 6
)

// Options configure the service; zero values take defaults.
type Options struct {
	TokenTTL    time.Duration // default 30 days
	Params      Params        // argon2id cost; default DefaultParams
	MaxHashing  int           // concurrent password hashes; default 2×CPU
	MinPassword int           // default 6
	// CacheTTL is how long a verified token is trusted without asking the
	// store again; 0: until revoked here (one node).
	CacheTTL time.Duration
	// Revoked, if set, is called with the hash of each revoked token, so
	// other nodes can Forget it.
	Revoked func(hash string)
	// Limiter and Limits throttle password attempts and registrations
	// (throttle.go); a nil Limiter throttles nothing.
	Limiter state.Limiter
	Limits  Limits
	Logger  *slog.Logger
	// JWT, if set, checks external JWTs (--jwt-key): Verify and
	// Authenticate accept them beside login tokens and passwords (jwt.go).
	JWT *jwtauth.Verifier
	// Events, if set, hears of every user created (the webhook's
	// user.registered: internal/webhook.Emitter).
	Events Events
}

// Events hears of what the account service does.
type Events interface {
	Registered(user string, at time.Time)
}

// Service is the account service.
type Service struct {
	st   store.Accounts
	opts Options
	sem  chan struct{} // bounds memory used by concurrent argon2id runs
	now  func() time.Time

	dummyOnce sync.Once
	dummy     string // dummyHash

	mu     sync.Mutex
	cache  *simplelru.LRU[string, cached] // token hash -> row; at most cacheMax (cache.go)
	known  *simplelru.LRU[string, int64]  // users of JWTs seen to exist, and when (unix ns); at most cacheMax (jwt.go)
	flight singleflight.Group             // the lookups of cache misses under way, by hash
	drops  uint64                         // entries dropped from cache and known so far (cache.go)
}

type cached struct {
	row store.Token
	at  time.Time
}

// New returns a Service on st.
func New(st store.Accounts, opts Options) *Service {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.Params == (Params{}) {
		opts.Params = DefaultParams
	}
	if opts.MaxHashing <= 0 {
		opts.MaxHashing = 2 * runtime.NumCPU()
	}
	if opts.MinPassword <= 0 {
		opts.MinPassword = DefaultMinPassword
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Limits.fill()
	cache, known := newCaches()
	return &Service{st: st, opts: opts, sem: make(chan struct{}, opts.MaxHashing), now: time.Now, cache: cache, known: known}
}

// Register creates an account and returns its canonical ID. user may be in
// any case: "Alice" creates "alice" with display name "Alice", and is
// ErrExists if any case of it exists (wire.NormUser). ErrReserved for
// wire.ReservedUser names.
func (s *Service) Register(ctx context.Context, user, password string) (string, error) {
	id, ok := wire.NormUser(user)
	if !ok || len(password) < s.opts.MinPassword || len(password) > 1024 {
		return "", ErrInvalid
	}
	if wire.ReservedUser(id) {
		return "", ErrReserved
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return "", err
	}
	err = s.st.CreateUser(ctx, store.User{ID: id, Display: user, PasswordHash: hash, Created: s.now().UnixMilli()})
	if errors.Is(err, store.ErrExists) {
		return "", ErrExists
	}
	if err == nil {
		s.Created(id)
	}
	return id, err
}

// Created tells Options.Events that user (canonical) was just created.
// Register calls it; so must every other path that creates a user (the
// server API, a JWT's first use), once the user is stored.
func (s *Service) Created(user string) {
	if s.opts.Events != nil {
		s.opts.Events.Registered(user, s.now())
	}
}

// Exists reports whether user (in any case) has an account.
func (s *Service) Exists(ctx context.Context, user string) (bool, error) {
	user, ok := wire.NormUser(user)
	if !ok {
		return false, nil
	}
	_, err := s.st.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Login checks the password and issues a token for user's device. user
// may be in any case; the session names the canonical ID and the display
// name registered.
func (s *Service) Login(ctx context.Context, user, password, device string) (wire.Session, error) {
	user, ok := wire.NormUser(user)
	if !ok || !wire.ValidDevice(device) {
		return wire.Session{}, ErrInvalid
	}
	u, err := s.checkPassword(ctx, user, password)
	if err != nil {
		return wire.Session{}, err
	}
	return s.issue(ctx, u, device, s.opts.TokenTTL)
}

// CheckPassword returns ErrBadCredentials unless password is user's (in
// any case).
func (s *Service) CheckPassword(ctx context.Context, user, password string) error {
	_, err := s.checkPassword(ctx, user, password)
	return err
}

func (s *Service) checkPassword(ctx context.Context, user, password string) (store.User, error) {
	user, valid := wire.NormUser(user)
	if !valid {
		return store.User{}, ErrBadCredentials
	}
	u, err := s.st.GetUser(ctx, user)
	missing := errors.Is(err, store.ErrNotFound)
	if err != nil && !missing {
		return store.User{}, fmt.Errorf("get user %s: %w", user, err)
	}
	// A user without a password (created by its first JWT, or by the
	// server API) is never opened by one.
	noPassword := !missing && u.PasswordHash == ""
	if missing || noPassword {
		// The same argon2id work as a wrong password, so that timing does
		// not tell which accounts exist, or have no password.
		u.PasswordHash = s.dummyHash()
	}
	if err := s.acquire(ctx); err != nil {
		return store.User{}, err
	}
	ok, err := CheckPassword(password, u.PasswordHash)
	<-s.sem
	if err != nil {
		return store.User{}, fmt.Errorf("check password of %s: %w", user, err)
	}
	if !ok || missing || noPassword {
		return store.User{}, ErrBadCredentials
	}
	return u, nil
}

// dummyHash is a hash of nothing with the configured cost, checked against
// for users that do not exist.
func (s *Service) dummyHash() string {
	s.dummyOnce.Do(func() {
		h, err := HashPassword("", s.opts.Params)
		if err != nil { // no randomness: a fixed salt does as well here
			h = fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				s.opts.Params.Memory, s.opts.Params.Time, s.opts.Params.Threads)
		}
		s.dummy = h
	})
	return s.dummy
}

// Verify returns the live token row for a bearer token; ErrBadCredentials if it
// is unknown, revoked or expired. With Options.JWT, a token of a JWT's
// shape is checked as a JWT only, and its user created at its first use
// (jwt.go).
func (s *Service) Verify(ctx context.Context, token string) (store.Token, error) {
	if s.opts.JWT != nil && jwtauth.Looks(token) {
		return s.verifyJWTCached(ctx, token)
	}
	if token == "" || len(token) > 128 {
		return store.Token{}, ErrBadCredentials
	}
	h := hashToken(token)
	c, ok := s.lookup(h)
	row := c.row
	if !ok {
		var err error
		row, err = s.once(ctx, h, func(ctx context.Context) (store.Token, error) {
			drops := s.dropsNow()
			row, err := s.st.GetToken(ctx, h)
			if errors.Is(err, store.ErrNotFound) {
				return store.Token{}, ErrBadCredentials
			}
			if err != nil {
				return store.Token{}, fmt.Errorf("get token: %w", err)
			}
			s.remember(drops, h, cached{row, s.now()})
			return row, nil
		})
		if err != nil {
			return store.Token{}, err
		}
	}
	if s.now().UnixMilli() >= row.Expires {
		return store.Token{}, ErrBadCredentials
	}
	return row, nil
}

// Revoke deletes a token. Idempotent.
func (s *Service) Revoke(ctx context.Context, token string) error {
	h := hashToken(token)
	// Dropped again after the delete: a lookup that missed the cache while
	// the delete ran found the row still there and cached it. (The drop
	// before only sends the checks meanwhile to the store.)
	s.Forget(h)
	if err := s.st.DeleteToken(ctx, h); err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	s.Forget(h)
	if s.opts.Revoked != nil {
		s.opts.Revoked(h)
	}
	return nil
}

// Forget drops a token from this process's cache: another node revoked it.
// It returns the client ID ("user/device") the token was issued to if this
// process had it cached (it verified the token lately, so a session here
// may use it and should be ended), else "".
func (s *Service) Forget(hash string) (clientID string) {
	s.mu.Lock()
	c, ok := s.cache.Peek(hash)
	s.cache.Remove(hash)
	s.drops++
	s.mu.Unlock()
	if !ok {
		return ""
	}
	return wire.ClientID(c.row.User, c.row.Device)
}

func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.sem }()
	return HashPassword(password, s.opts.Params)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
