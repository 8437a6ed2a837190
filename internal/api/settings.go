package api

import (
	"context"
	"net/http"

	"github.com/imqtt/imqtt/wire"
)

// ConvSettings sets and reads a user's settings of one conversation (mute,
// mute_until, pin). A refusal wraps one of chat's sentinels (ErrBadRequest,
// ErrNoSuchUser, ErrNotMember); any other error is a store failure.
type ConvSettings interface {
	// SetConvSettings replaces user's settings of the conversation cs
	// names (Peer or Group), tells user's devices, and returns them.
	SetConvSettings(ctx context.Context, user string, cs wire.ConvSettings) (wire.ConvSettings, error)
	// GetConvSettings returns user's settings of the conversation with
	// peer or of group (one of them set): all false where none were set.
	GetConvSettings(ctx context.Context, user, peer, group string) (wire.ConvSettings, error)
}

// settingsRoutes are docs/http.md#conversation-settings.
func (a *API) settingsRoutes() {
	a.mux.HandleFunc("PUT /v1/conversations/{peer}/settings", a.auth(a.putConvSettings))
	a.mux.HandleFunc("GET /v1/conversations/{peer}/settings", a.auth(a.getConvSettings))
	a.mux.HandleFunc("PUT /v1/groups/{gid}/settings", a.auth(a.putConvSettings))
	a.mux.HandleFunc("GET /v1/groups/{gid}/settings", a.auth(a.getConvSettings))
}

// settingsBody is the body of a PUT: only these fields (a misspelt one,
// which would silently clear the setting it meant, is a 400); a PUT
// replaces, so an absent field is false or 0, and an empty body clears all.
type settingsBody struct {
	Mute      bool  `json:"mute"`
	MuteUntil int64 `json:"mute_until"`
	Pin       bool  `json:"pin"`
}

func (a *API) putConvSettings(w http.ResponseWriter, r *http.Request, c caller) {
	var body settingsBody
	if !a.decodeStrict(w, r, &body, true) {
		return
	}
	cs := wire.ConvSettings{Peer: r.PathValue("peer"), Group: r.PathValue("gid"),
		Mute: body.Mute, MuteUntil: body.MuteUntil, Pin: body.Pin}
	got, err := a.cfg.Chat.SetConvSettings(r.Context(), c.user, cs)
	if err != nil {
		a.chatError(w, "set conversation settings", err)
		return
	}
	writeJSON(w, http.StatusOK, got)
}

func (a *API) getConvSettings(w http.ResponseWriter, r *http.Request, c caller) {
	got, err := a.cfg.Chat.GetConvSettings(r.Context(), c.user, r.PathValue("peer"), r.PathValue("gid"))
	if err != nil {
		a.chatError(w, "conversation settings", err)
		return
	}
	writeJSON(w, http.StatusOK, got)
}
