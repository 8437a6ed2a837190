package api

import (
	"context"
	"net/http"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/wire"
)

// GroupAdmin is a group's administration (docs/http.md#group-administration).
// A refusal wraps one of chat's sentinels (ErrBadRequest, ErrTooLarge,
// ErrNotMember, ErrNotAllowed, ErrGroupGone, ErrRateLimited); any other
// error is a store failure.
type GroupAdmin interface {
	// PatchGroup changes the group's name, notice, avatar or muted (owner
	// and admins) and returns the group.
	PatchGroup(ctx context.Context, from chat.Sender, group string, p wire.GroupPatch) (wire.Group, error)
	// DisbandGroup disbands the group (owner).
	DisbandGroup(ctx context.Context, from chat.Sender, group string) error
	// TransferGroup makes a member the owner (owner) and returns the group.
	TransferGroup(ctx context.Context, from chat.Sender, group string, req wire.GroupTransfer) (wire.Group, error)
	// MuteMember mutes user in group until req.MuteUntil (owner and
	// admins) and returns the member.
	MuteMember(ctx context.Context, from chat.Sender, group, user string, req wire.MemberMute) (wire.Member, error)
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.GroupPatch
	if !a.decode(w, r, &req) {
		return
	}
	g, err := a.cfg.Chat.PatchGroup(r.Context(), sender(c), r.PathValue("gid"), req)
	if err != nil {
		a.chatError(w, "patch group", err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *API) disbandGroup(w http.ResponseWriter, r *http.Request, c caller) {
	if err := a.cfg.Chat.DisbandGroup(r.Context(), sender(c), r.PathValue("gid")); err != nil {
		a.chatError(w, "disband group", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) transferGroup(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.GroupTransfer
	if !a.decode(w, r, &req) {
		return
	}
	g, err := a.cfg.Chat.TransferGroup(r.Context(), sender(c), r.PathValue("gid"), req)
	if err != nil {
		a.chatError(w, "transfer group", err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *API) muteMember(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.MemberMute
	if !a.decode(w, r, &req) {
		return
	}
	m, err := a.cfg.Chat.MuteMember(r.Context(), sender(c), r.PathValue("gid"), r.PathValue("user"), req)
	if err != nil {
		a.chatError(w, "mute member", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
