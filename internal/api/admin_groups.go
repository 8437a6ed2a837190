package api

import (
	"errors"
	"net/http"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// adminGroup is one group as the admin API shows it.
type adminGroup struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Owner     string `json:"owner"`
	Created   int64  `json:"created"`
	Members   int    `json:"members"`
	Muted     bool   `json:"muted,omitempty"`
	Disbanded int64  `json:"disbanded,omitempty"`
}

func toAdminGroup(g store.Group) adminGroup {
	return adminGroup{ID: g.ID, Name: g.Name, Owner: g.Owner, Created: g.Created, Members: g.Members, Muted: g.Muted, Disbanded: g.Disbanded}
}

// adminSearchGroups lists groups whose ID begins with ?prefix=, disbanded
// ones too, in ID order; next_after pages as for users.
func (a *API) adminSearchGroups(w http.ResponseWriter, r *http.Request) {
	adminSearch(a, w, r, "groups", AdminDirectory.SearchGroups, func(g store.Group) (string, adminGroup) { return g.ID, toAdminGroup(g) })
}

// groupPath validates {gid} of the path: group IDs follow the user ID rules.
func groupPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	g, ok := wire.NormUser(r.PathValue("gid"))
	if !ok {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "gid must be a group ID")
	}
	return g, ok
}

// adminShowGroup shows a group and a page of its members by user ID:
// ?after= (a user ID) and ?limit= (1 to MaxSearchPage, default 50).
func (a *API) adminShowGroup(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r, "after", "limit") {
		return
	}
	gid, ok := groupPath(w, r)
	if !ok {
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" {
		if after, ok = wire.NormUser(after); !ok {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "after must be a user ID")
			return
		}
	}
	limit, ok := intParam(w, r, "limit", 50, 1, MaxSearchPage)
	if !ok {
		return
	}
	dir, ok := a.directoryOrFail(w)
	if !ok {
		return
	}
	g, err := dir.GetGroup(r.Context(), gid)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "no such group: "+gid)
		return
	}
	if err != nil {
		a.storeError(w, "get group", err)
		return
	}
	ms, err := dir.Members(r.Context(), gid, after, int(limit))
	if err != nil {
		a.storeError(w, "group members", err)
		return
	}
	out := struct {
		adminGroup
		Notice    string        `json:"notice,omitempty"`
		Members   []adminMember `json:"member_list"`
		NextAfter string        `json:"next_after,omitempty"`
	}{adminGroup: toAdminGroup(g), Notice: g.Notice, Members: []adminMember{}}
	for _, m := range ms {
		out.Members = append(out.Members, adminMember{User: m.User, Role: m.Role, Joined: m.Joined})
	}
	if len(ms) == int(limit) {
		out.NextAfter = ms[len(ms)-1].User
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) groupOperatorOrFail(w http.ResponseWriter) (GroupOperator, bool) {
	if a.adm.cfg.Groups == nil {
		writeError(w, http.StatusNotImplemented, wire.CodeInternal, "this node cannot administer groups")
		return nil, false
	}
	return a.adm.cfg.Groups, true
}

// adminDisband disbands a group; its members get a "disbanded" group
// event by "system".
func (a *API) adminDisband(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	gid, ok := groupPath(w, r)
	if !ok {
		return
	}
	ops, ok := a.groupOperatorOrFail(w)
	if !ok {
		return
	}
	if err := ops.DisbandAsOperator(r.Context(), gid); err != nil {
		a.chatError(w, "disband group", err)
		return
	}
	a.log.Info("admin: group disbanded", "group", gid, "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

// adminRemoveMember removes a member (not the owner) from a group; the
// member gets a "removed" group event by "system".
func (a *API) adminRemoveMember(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	gid, ok := groupPath(w, r)
	if !ok {
		return
	}
	user, ok := userPath(w, r)
	if !ok {
		return
	}
	ops, ok := a.groupOperatorOrFail(w)
	if !ok {
		return
	}
	if err := ops.RemoveAsOperator(r.Context(), gid, user); err != nil {
		a.chatError(w, "remove member", err)
		return
	}
	a.log.Info("admin: member removed", "group", gid, "user", user, "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}
