package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// pushRoutes are the devices' push registrations (docs/http.md#offline-push).
func (a *API) pushRoutes() {
	if a.cfg.Push == nil {
		return
	}
	a.mux.HandleFunc("GET /v1/devices", a.auth(a.pushDevices))
	a.mux.HandleFunc("PUT /v1/devices/{device}/push", a.auth(a.registerPush))
	a.mux.HandleFunc("DELETE /v1/devices/{device}/push", a.auth(a.unregisterPush))
}

// device is the device a path names: "current" (or the caller's own ID)
// is the caller's device.
func (c caller) deviceOf(r *http.Request) (string, bool) {
	d := r.PathValue("device")
	if d == "current" || d == c.device {
		return c.device, true
	}
	return d, false
}

func (a *API) registerPush(w http.ResponseWriter, r *http.Request, c caller) {
	device, own := c.deviceOf(r)
	if !own {
		// A device registers its own token: another device's is its
		// business. Unknown (or not this user's): 404, as for any device
		// of which the caller has no registration.
		if a.hasPushDevice(w, r, c.user, device) {
			writeError(w, http.StatusForbidden, wire.CodeForbidden, "a device registers its own push token: use /v1/devices/current/push from it")
		}
		return
	}
	var req wire.PushRegister
	if !a.decode(w, r, &req) {
		return
	}
	d, err := a.cfg.Push.Register(r.Context(), c.user, device, c.hash, req)
	var limited *push.RateLimited
	switch {
	case errors.As(err, &limited):
		a.cfg.Metrics.Refused("push_register")
		writeRateLimited(w, limited.RetryAfter, "push registrations too frequent for this user; retry later")
	case errors.Is(err, push.ErrBadProvider):
		writeError(w, http.StatusBadRequest, wire.CodeBadProvider, "provider must be apns, fcm or webhook")
	case errors.Is(err, push.ErrNoProvider):
		writeError(w, http.StatusBadRequest, wire.CodeBadProvider, "this server does not push through "+req.Provider)
	case errors.Is(err, push.ErrBadToken):
		writeError(w, http.StatusBadRequest, wire.CodeBadToken, "token must be 1 to 512 printable ASCII characters (APNs: at least 64 hex digits)")
	case errors.Is(err, push.ErrBadTopic):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "topic must be at most 255 of A-Z a-z 0-9 . - _")
	case errors.Is(err, push.ErrTooMany):
		writeError(w, http.StatusConflict, wire.CodeTooManyDevices, "this user has "+strconv.Itoa(push.MaxDevices)+" push registrations, the most allowed: unregister one (DELETE /v1/devices/{device}/push) first")
	case errors.Is(err, push.ErrTokenInUse):
		writeError(w, http.StatusBadRequest, wire.CodeTokenInUse, "another user's device holds this token; it must log out first")
	case err != nil:
		a.storeError(w, "register push", err)
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// hasPushDevice reports whether user's device has a registration, and
// answers 404 (or the store's error) when it does not.
func (a *API) hasPushDevice(w http.ResponseWriter, r *http.Request, user, device string) bool {
	ds, err := a.cfg.Push.Devices(r.Context(), user, false)
	if err != nil {
		a.storeError(w, "push devices", err)
		return false
	}
	for _, d := range ds {
		if d.Device == device {
			return true
		}
	}
	writeError(w, http.StatusNotFound, wire.CodeNotFound, "no device "+device+" with a push registration")
	return false
}

func (a *API) unregisterPush(w http.ResponseWriter, r *http.Request, c caller) {
	device, _ := c.deviceOf(r)
	if !wire.ValidDevice(device) {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such device")
		return
	}
	switch err := a.cfg.Push.Unregister(r.Context(), c.user, device); {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no device "+device+" with a push registration")
	case err != nil:
		a.storeError(w, "unregister push", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) pushDevices(w http.ResponseWriter, r *http.Request, c caller) {
	ds, err := a.cfg.Push.Devices(r.Context(), c.user, false)
	if err != nil {
		a.storeError(w, "push devices", err)
		return
	}
	writeJSON(w, http.StatusOK, wire.PushDevices{Devices: ds})
}

// adminPushDevices lists a user's push registrations, tokens cut short.
func (a *API) adminPushDevices(w http.ResponseWriter, r *http.Request) {
	user, ok := userPath(w, r)
	if !ok {
		return
	}
	if a.cfg.Push == nil {
		writeJSON(w, http.StatusOK, wire.PushDevices{Devices: []wire.PushDevice{}})
		return
	}
	ds, err := a.cfg.Push.Devices(r.Context(), user, true)
	if err != nil {
		a.storeError(w, "push devices", err)
		return
	}
	writeJSON(w, http.StatusOK, wire.PushDevices{Devices: ds})
}
