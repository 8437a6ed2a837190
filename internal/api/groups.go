package api

import (
	"net/http"

	"github.com/imqtt/imqtt/wire"
)

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.GroupCreate
	if !a.decode(w, r, &req) {
		return
	}
	g, err := a.cfg.Chat.CreateGroup(r.Context(), c.user, req)
	if err != nil {
		a.chatError(w, "create group", err)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, c caller) {
	gs, err := a.cfg.Chat.Groups(r.Context(), c.user)
	if err != nil {
		a.chatError(w, "groups", err)
		return
	}
	writeJSON(w, http.StatusOK, gs)
}

// showGroup pages through members with ?after=USER&limit=N.
func (a *API) showGroup(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	limit, err := uintParam(q.Get("limit"))
	if err != nil || limit > 1000 {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit must be a number up to 1000")
		return
	}
	g, err := a.cfg.Chat.Group(r.Context(), c.user, r.PathValue("gid"), q.Get("after"), int(limit))
	if err != nil {
		a.chatError(w, "group", err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *API) addMembers(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.GroupMembers
	if !a.decode(w, r, &req) {
		return
	}
	g, err := a.cfg.Chat.AddMembers(r.Context(), c.user, r.PathValue("gid"), req)
	if err != nil {
		a.chatError(w, "add members", err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// removeMember removes a member, or leaves when the user is the caller.
func (a *API) removeMember(w http.ResponseWriter, r *http.Request, c caller) {
	if err := a.cfg.Chat.RemoveMember(r.Context(), c.user, r.PathValue("gid"), r.PathValue("user")); err != nil {
		a.chatError(w, "remove member", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
