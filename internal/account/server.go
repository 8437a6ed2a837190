package account

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// What the server API (/v1/server/, internal/api/server.go) asks of
// accounts: users without a password, device tokens minted for them, and
// every token of a deleted user revoked.

// The bounds of a minted token's lifetime.
const (
	DefaultMintTTL = 30 * 24 * time.Hour  // a ttl of 0
	MaxMintTTL     = 365 * 24 * time.Hour // the longest ttl taken
)

// ErrNoSuchUser: a token was asked for a user that has no account.
var ErrNoSuchUser = errors.New("no such user")

// CreateUser creates an account without a password and returns its
// canonical ID: it never logs in by password (a password check fails as
// a wrong password would), only by a token MintToken issues. The errors are
// Register's: ErrInvalid, ErrReserved, ErrExists (also for the ID of a
// deleted user, which stays taken).
func (s *Service) CreateUser(ctx context.Context, user string) (string, error) {
	id, ok := wire.NormUser(user)
	if !ok {
		return "", ErrInvalid
	}
	if wire.ReservedUser(id) {
		return "", ErrReserved
	}
	err := s.st.CreateUser(ctx, store.User{ID: id, Display: user, Created: s.now().UnixMilli()})
	if errors.Is(err, store.ErrExists) {
		return "", ErrExists
	}
	if err != nil {
		return "", fmt.Errorf("create user %s: %w", id, err)
	}
	s.Created(id) // user.registered
	return id, nil
}

// MintToken issues a login token for user's device, as Login does after
// a password (the same row, revoked by the same logout, ban or deletion),
// valid for ttl: 0 is DefaultMintTTL; past MaxMintTTL or negative is
// ErrInvalid, as are malformed IDs. ErrNoSuchUser if user has no account.
func (s *Service) MintToken(ctx context.Context, user, device string, ttl time.Duration) (wire.Session, error) {
	id, ok := wire.NormUser(user)
	if !ok || !wire.ValidDevice(device) || ttl < 0 || ttl > MaxMintTTL {
		return wire.Session{}, ErrInvalid
	}
	if ttl == 0 {
		ttl = DefaultMintTTL
	}
	u, err := s.st.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Session{}, ErrNoSuchUser
	}
	if err != nil {
		return wire.Session{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return s.issue(ctx, u, device, ttl)
}

// issue writes a new token row for u's device, valid for ttl.
func (s *Service) issue(ctx context.Context, u store.User, device string, ttl time.Duration) (wire.Session, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return wire.Session{}, fmt.Errorf("token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	row := store.Token{Hash: hashToken(token), User: u.ID, Device: device,
		Created: now.UnixMilli(), Expires: now.Add(ttl).UnixMilli()}
	if err := s.st.PutToken(ctx, row); err != nil {
		return wire.Session{}, fmt.Errorf("save token: %w", err)
	}
	display := u.Display
	if display == "" { // a row from before display names
		display = u.ID
	}
	return wire.Session{Token: token, ExpiresAt: row.Expires, User: u.ID, Display: display, Device: device}, nil
}

// UserTokens deletes a user's tokens in batches (store.Erasure).
type UserTokens interface {
	DeleteUserTokens(ctx context.Context, user string, limit int) ([]string, error)
}

// RevokeUser revokes up to limit of user's tokens (a deleted account's)
// through st, dropping each from this process's cache and telling the
// other nodes (Options.Revoked) as Revoke does, and forgets user as a
// JWT's known user, so that this node refuses their JWTs at once (other
// nodes within their knownTTL). It returns how many it revoked: 0 when
// none is left. Callers call it until then: that last call also drops
// the user's verified JWTs.
func (s *Service) RevokeUser(ctx context.Context, st UserTokens, user string, limit int) (int, error) {
	hashes, err := st.DeleteUserTokens(ctx, user, limit)
	if err != nil {
		return 0, fmt.Errorf("revoke the tokens of %s: %w", user, err)
	}
	s.mu.Lock()
	for _, h := range hashes {
		s.cache.Remove(h)
	}
	// The user's verified JWTs, which no row names, are found by a scan of
	// the whole cache, under the lock every Verify takes: once, on the
	// last call, not on each batch.
	if len(hashes) == 0 {
		for _, h := range s.cache.Keys() {
			if c, _ := s.cache.Peek(h); c.row.User == user {
				s.cache.Remove(h)
			}
		}
	}
	s.known.Remove(user) // a JWT's user: its next JWT looks it up (and finds it deleted)
	s.drops++
	s.mu.Unlock()
	if s.opts.Revoked != nil {
		for _, h := range hashes {
			s.opts.Revoked(h)
		}
	}
	return len(hashes), nil
}

// ClientIP is the throttling key of a client address, as the password
// throttles use it: its IP, or an IPv6 address's /64. The server API's
// auth failures are counted by it.
func ClientIP(from string) string { return clientIP(from) }
