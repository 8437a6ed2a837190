package api

import (
	"errors"
	"net/http"

	"github.com/imqtt/imqtt/account"
	"github.com/imqtt/imqtt/wire"
)

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	var req wire.Register
	if !a.decode(w, r, &req) {
		return
	}
	err := a.cfg.Accounts.Register(r.Context(), req.User, req.Password)
	switch {
	case errors.Is(err, account.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest,
			"user must match [A-Za-z0-9_.-]{1,64}; password must be 6 to 1024 bytes")
	case errors.Is(err, account.ErrExists):
		writeError(w, http.StatusConflict, wire.CodeExists, "user "+req.User+" already exists")
	case err != nil:
		a.storeError(w, "register", err)
	default:
		writeJSON(w, http.StatusCreated, map[string]string{"user": req.User})
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
	if a.refuseBanned(w, r, req.User) {
		return
	}
	s, err := a.cfg.Accounts.Login(r.Context(), req.User, req.Password, req.Device)
	switch {
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
	if a.cfg.Kicker != nil {
		a.cfg.Kicker.KickDevice(c.user + "/" + c.device)
	}
	w.WriteHeader(http.StatusNoContent)
}
