package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Config.Signup's values; --signup defaults to DefaultSignup.
const (
	SignupOpen    = "open"
	SignupClosed  = "closed"
	DefaultSignup = SignupOpen
)

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Signup == SignupClosed {
		// Before the body is read (a password to hash) or the store
		// touched: closed costs nothing. The operator's backend still
		// creates users (the server API; a JWT's first use).
		writeError(w, http.StatusForbidden, wire.CodeSignupClosed, "this server takes no public sign-up; accounts come from its operator")
		return
	}
	var req wire.Register
	if !a.decode(w, r, &req) {
		return
	}
	id, err := a.cfg.Accounts.RegisterFrom(r.Context(), r.RemoteAddr, req.User, req.Password)
	switch {
	case a.throttled(w, err):
	case errors.Is(err, account.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest,
			"user must be 1 to 64 of A-Z a-z 0-9 _ . - not starting with a dot; password must be 6 to 1024 bytes")
	case errors.Is(err, account.ErrReserved):
		// 400, not 409: a rule on the name, like its characters, that no
		// retry or other server changes; 409 would say an account holds it.
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user ID "+req.User+" is reserved; choose another")
	case errors.Is(err, account.ErrExists):
		// Case-insensitive: "Alice" is taken when "alice" exists.
		writeError(w, http.StatusConflict, wire.CodeExists, "user "+req.User+" already exists (user IDs ignore case)")
	case err != nil:
		a.storeError(w, "register", err)
	default:
		writeJSON(w, http.StatusCreated, wire.Registered{User: id, Display: req.User})
	}
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req wire.Login
	if !a.decode(w, r, &req) {
		return
	}
	if req.Device == "" {
		req.Device = "default"
	}
	if id, ok := wire.NormUser(req.User); ok {
		req.User = id // bans and metrics name the canonical ID
	}
	if a.refuseBanned(w, r, req.User) {
		return
	}
	s, err := a.cfg.Accounts.LoginFrom(r.Context(), r.RemoteAddr, req.User, req.Password, req.Device)
	switch {
	case a.throttled(w, err):
	case errors.Is(err, account.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user or device ID malformed")
	case errors.Is(err, account.ErrBadCredentials):
		a.cfg.Metrics.AuthFailed("password", req.User, r.RemoteAddr, "HTTP login")
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "wrong user or password")
	case err != nil:
		a.storeError(w, "login", err)
	default:
		writeJSON(w, http.StatusOK, s)
	}
}

// logout revokes the caller's token and disconnects the device it was issued
// for, so a revoked token stops working everywhere at once.
func (a *API) logout(w http.ResponseWriter, r *http.Request, c caller) {
	if err := a.cfg.Accounts.Revoke(r.Context(), c.token); err != nil {
		a.storeError(w, "revoke", err)
		return
	}
	if a.cfg.Push != nil {
		// The device logged out: nothing more is pushed to it.
		if err := a.cfg.Push.Unregister(r.Context(), c.user, c.device); err != nil && !errors.Is(err, store.ErrNotFound) {
			a.log.Warn("logout: remove the device's push registration; it goes with the login at its next push", "err", err)
		}
	}
	if a.cfg.Kicker != nil {
		a.cfg.Kicker.KickDevice(wire.ClientID(c.user, c.device))
	}
	w.WriteHeader(http.StatusNoContent)
}

// throttled answers an attempt a limit refused (account.Throttled), counted
// by limit: 429 rate_limited with Retry-After. It reports whether it did.
func (a *API) throttled(w http.ResponseWriter, err error) bool {
	var th *account.Throttled
	if !errors.As(err, &th) {
		return false
	}
	a.cfg.Metrics.Refused(th.Limit)
	writeRateLimited(w, th.RetryAfter, "too many attempts from this address or at this account; retry later")
	return true
}

// writeRateLimited answers 429 rate_limited with a Retry-After header in
// whole seconds, rounded up (RFC 9110 §10.2.3; RFC 6585 §4).
func writeRateLimited(w http.ResponseWriter, retry time.Duration, msg string) {
	secs := max(int64(math.Ceil(retry.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, http.StatusTooManyRequests, wire.CodeRateLimited, msg)
}
