package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imqtt/imqtt/internal/jwtauth"
	"github.com/imqtt/imqtt/store"
)

// External auth (docs/integration.md "External auth (JWT)"). With
// Options.JWT set, a secret with a JWT's shape (jwtauth.Looks) is only ever
// checked as a JWT: it is never looked up as a login token nor tried as a
// password, so a forged JWT costs a signature check, not an argon2id run,
// and is not throttled as a password guess (it is not one: nobody guesses
// a signature). Login tokens never have that shape; a password that has
// it cannot log in while --jwt-key is set.
//
// The user of a valid JWT exists from its first use: an account without a
// password (which no password opens) is created then. Creation is
// idempotent (store.ErrExists is success), so two devices connecting at
// once both pass. A JWT is stateless: Revoke does nothing to it, and it
// lives until its exp; a ban of the user still refuses it (the MQTT ban
// hook and the HTTP API's check run on the user, whatever the credential).

// JWTDevice is the device of an HTTP request made with a JWT that has no
// device claim (the device POST /v1/sessions defaults to).
const JWTDevice = "default"

// knownTTL is how long a user seen to exist is not looked up again by
// verifyJWT: a user deleted meanwhile is created again by its next JWT
// after at most this long.
const knownTTL = time.Minute

// verifyJWT checks a JWT presented by user's device (each "" on HTTP:
// any) and makes sure its user exists. It returns the token's row as Verify does: the user,
// the device (the claim, else device, else JWTDevice) and the expiry. Its
// Hash is empty: no row stores a JWT, so nothing made with one (a push
// registration) can be bound to it and looked up later — the push worker
// would find no such login and drop the registration as revoked.
func (s *Service) verifyJWT(ctx context.Context, token, user, device string) (store.Token, error) {
	c, err := s.opts.JWT.Verify(token, device)
	if err == nil && user != "" && c.User != user {
		err = fmt.Errorf("%w: issued to another user", jwtauth.ErrInvalid)
	}
	if err != nil {
		// err names a fixed reason, never the token or its claims.
		s.opts.Logger.Debug("jwt refused", "err", err)
		return store.Token{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	if err := s.ensureUser(ctx, c.User, c.Display); err != nil {
		return store.Token{}, err
	}
	switch {
	case c.Device != "":
		device = c.Device
	case device == "":
		device = JWTDevice
	}
	return store.Token{User: c.User, Device: device,
		Created: s.now().UnixMilli(), Expires: c.Expires.UnixMilli()}, nil
}

// verifyJWTCached is verifyJWT for Bearer tokens, which come with every
// HTTP request: a JWT verified once is remembered, by its hash, until its
// exp (or CacheTTL, or the user's deletion: RevokeUser drops it), as login
// tokens are; a signature check is 20–220 µs of CPU (ES256 the most).
func (s *Service) verifyJWTCached(ctx context.Context, token string) (store.Token, error) {
	h := "jwt:" + hashToken(token)
	if c, ok := s.lookup(h); ok && s.now().UnixMilli() < c.row.Expires {
		return c.row, nil
	}
	return s.once(ctx, h, func(ctx context.Context) (store.Token, error) {
		now, drops := s.now(), s.dropsNow()
		row, err := s.verifyJWT(ctx, token, "", "")
		if err != nil {
			return store.Token{}, err
		}
		s.remember(drops, h, cached{row, now})
		return row, nil
	})
}

// ensureUser creates the account user (canonical), without a password,
// unless it exists; display is its display name.
func (s *Service) ensureUser(ctx context.Context, user, display string) error {
	now := s.now()
	s.mu.Lock()
	seen, ok := s.known.Get(user)
	drops := s.drops
	s.mu.Unlock()
	if ok && now.Sub(time.Unix(0, seen)) < knownTTL {
		return nil
	}
	_, err := s.st.GetUser(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		err = s.st.CreateUser(ctx, store.User{ID: user, Display: display, Created: now.UnixMilli()})
		switch {
		case err == nil:
			s.opts.Logger.Info("user created by its first JWT", "user", user)
			s.Created(user) // user.registered
		case errors.Is(err, store.ErrExists):
			// Another device of the user, at the same moment — or a
			// deleted user's tombstone (store.Erasure), which GetUser
			// does not return: a deleted user's JWT opens nothing.
			if _, err = s.st.GetUser(ctx, user); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("user of a JWT %s: deleted: %w", user, ErrBadCredentials)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("user of a JWT %s: %w", user, err)
	}
	s.mu.Lock()
	if s.drops == drops { // else a user may have been deleted meanwhile: look up again next time
		s.known.Add(user, now.UnixNano())
	}
	s.mu.Unlock()
	return nil
}
