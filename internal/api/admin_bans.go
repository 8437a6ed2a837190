package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/wire"
)

// MaxBanSeconds bounds a ban's duration (ten years); 0 bans until removed.
const MaxBanSeconds = 10 * 365 * 24 * 3600

// banRequest is the body of POST /v1/admin/bans.
type banRequest struct {
	User    string `json:"user"`
	IP      string `json:"ip"`      // an address or a CIDR prefix
	Seconds int64  `json:"seconds"` // 0: until removed
	Reason  string `json:"reason"`
}

func (a *API) bansOrFail(w http.ResponseWriter) (bans.List, bool) {
	if a.adm.cfg.Bans == nil {
		writeError(w, http.StatusNotImplemented, wire.CodeInternal, "this node has no ban list")
		return nil, false
	}
	return a.adm.cfg.Bans, true
}

func (a *API) adminBans(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	list, ok := a.bansOrFail(w)
	if !ok {
		return
	}
	all, err := list.All(r.Context())
	if err != nil {
		a.storeError(w, "list bans", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"bans": all})
}

// adminAddBan bans a user or an address: it is stored durably, new CONNECTs
// and HTTP logins are refused, and the clients it covers on this node are
// disconnected (MQTT 5 reason 0x98, administrative action).
func (a *API) adminAddBan(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	list, ok := a.bansOrFail(w)
	if !ok {
		return
	}
	var req banRequest
	if !a.decodeStrict(w, r, &req, false) {
		return
	}
	if req.Seconds < 0 || req.Seconds > MaxBanSeconds {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "seconds must be from 0 (until removed) to 315360000")
		return
	}
	b := bans.Ban{User: req.User, IP: req.IP, Reason: req.Reason}
	if req.Seconds > 0 {
		b.Expires = time.Now().Add(time.Duration(req.Seconds) * time.Second).UnixMilli()
	}
	b, err := list.Add(r.Context(), b)
	switch {
	case errors.Is(err, bans.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, err.Error())
		return
	case errors.Is(err, bans.ErrFull):
		writeError(w, http.StatusConflict, wire.CodeExists, err.Error())
		return
	case err != nil:
		a.storeError(w, "add ban", err)
		return
	}
	if d := a.adm.cfg.Sessions; d != nil && b.User != "" {
		// Before the kick, so that the kicked connections' sessions save nothing.
		if err := d.DropUser(r.Context(), b.User); err != nil {
			a.log.Warn("admin: ban: drop the user's persistent sessions", "user", b.User, "err", err)
		}
	}
	if a.cfg.Push != nil && b.User != "" {
		// Nothing is pushed to a banned user's phones.
		if err := a.cfg.Push.DropUser(r.Context(), b.User); err != nil {
			a.log.Warn("admin: ban: remove the user's push registrations", "user", b.User, "err", err)
		}
	}
	kicked := KickBanned(a.adm.cfg.Broker, b)
	a.log.Info("admin: ban", "ban", b.ID, "user", b.User, "ip", b.IP, "expires", b.Expires, "kicked", kicked)
	writeJSON(w, http.StatusCreated, struct {
		bans.Ban
		Kicked int `json:"kicked"`
	}{b, kicked})
}

func (a *API) adminRemoveBan(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	list, ok := a.bansOrFail(w)
	if !ok {
		return
	}
	err := list.Remove(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, bans.ErrNotFound):
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no ban "+r.PathValue("id")+" in force")
	case err != nil:
		a.storeError(w, "remove ban", err)
	default:
		a.log.Info("admin: unban", "ban", r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	}
}

// refuseBanned answers 403 and returns true if user (when not empty) or the
// request's remote address is banned. The login and every user endpoint ask.
func (a *API) refuseBanned(w http.ResponseWriter, r *http.Request, user string) bool {
	list := a.cfg.Admin.Bans
	if list == nil {
		return false
	}
	b, banned := list.Banned(user, bans.ParseRemote(r.RemoteAddr))
	if !banned {
		return false
	}
	a.cfg.Metrics.AuthFailed("banned", user, r.RemoteAddr, "HTTP "+r.Method+" "+r.URL.Path+" refused by ban "+b.ID)
	msg := "banned"
	if b.Expires != 0 {
		msg += " until " + time.UnixMilli(b.Expires).UTC().Format(time.RFC3339)
	}
	writeError(w, http.StatusForbidden, wire.CodeForbidden, msg)
	return true
}

// KickBanned disconnects this node's clients that the bans cover, and
// returns how many. In scale-out each node calls it for bans added
// elsewhere (bans.SharedOptions.Added).
func KickBanned(b AdminBroker, bs ...bans.Ban) int {
	kicked := 0
	for _, ci := range b.ClientList() {
		for _, ban := range bs {
			if ban.Covers(ci.User, bans.ParseRemote(ci.Remote)) && b.Kick(ci.ID, packets.ErrAdministrativeAction) {
				kicked++
				break
			}
		}
	}
	return kicked
}
