package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// User and group management in the admin API (docs/http.md#users-and-groups):
// search by the start of an ID, show one, revoke a user's tokens, delete a
// user (the server API's deletion), remove a group's member, disband a
// group. Bans are POST/DELETE /v1/admin/bans (admin_bans.go).

// AdminDirectory is the store as user and group management reads it.
type AdminDirectory interface {
	store.Directory
	GetUser(ctx context.Context, id string) (store.User, error)
	GetGroup(ctx context.Context, id string) (store.Group, error)
	Members(ctx context.Context, group, after string, limit int) ([]store.Member, error)
	UserGroups(ctx context.Context, user string) ([]store.Member, error)
}

// GroupOperator acts on groups on an operator's word (*chat.Service).
type GroupOperator interface {
	DisbandAsOperator(ctx context.Context, group string) error
	RemoveAsOperator(ctx context.Context, group, user string) error
}

// The bounds of a search page and of what one user's page lists.
const (
	MaxSearchPage  = 200
	maxShownGroups = 100
)

// prefixRe is what a search prefix may hold: the characters of user and
// group IDs (folded), at most an ID's length.
var prefixRe = regexp.MustCompile(`^[a-z0-9_.-]{0,64}$`)

func (a *API) adminUserRoutes() {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /v1/admin/users":                          a.adminSearchUsers,
		"GET /v1/admin/users/{user}":                   a.adminShowUser,
		"POST /v1/admin/users/{user}/revoke":           a.adminRevokeUser,
		"DELETE /v1/admin/users/{user}":                a.adminDeleteUser,
		"GET /v1/admin/groups":                         a.adminSearchGroups,
		"GET /v1/admin/groups/{gid}":                   a.adminShowGroup,
		"DELETE /v1/admin/groups/{gid}":                a.adminDisband,
		"DELETE /v1/admin/groups/{gid}/members/{user}": a.adminRemoveMember,
	} {
		a.mux.HandleFunc(pattern, a.adminGuard(h))
	}
}

func (a *API) directoryOrFail(w http.ResponseWriter) (AdminDirectory, bool) {
	if a.adm.cfg.Directory == nil {
		writeError(w, http.StatusNotImplemented, wire.CodeInternal, "this node has no user directory")
		return nil, false
	}
	return a.adm.cfg.Directory, true
}

// searchParams reads ?prefix=&after=&limit= (1 to MaxSearchPage, default 50).
func searchParams(w http.ResponseWriter, r *http.Request) (prefix, after string, limit int, ok bool) {
	if !onlyParams(w, r, "prefix", "after", "limit") {
		return "", "", 0, false
	}
	q := r.URL.Query()
	prefix, after = store.FoldID(q.Get("prefix")), store.FoldID(q.Get("after"))
	if !prefixRe.MatchString(prefix) || !prefixRe.MatchString(after) {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "prefix and after: up to 64 of [A-Za-z0-9_.-]")
		return "", "", 0, false
	}
	n, ok := intParam(w, r, "limit", 50, 1, MaxSearchPage)
	return prefix, after, int(n), ok
}

// adminUser is one account as a search lists it.
type adminUser struct {
	ID      string `json:"id"`
	Display string `json:"display,omitempty"`
	Created int64  `json:"created"`
}

// adminSearchUsers lists accounts whose ID begins with ?prefix=, in ID
// order; next_after (when there may be more) is the next page's ?after=.
func (a *API) adminSearchUsers(w http.ResponseWriter, r *http.Request) {
	adminSearch(a, w, r, "users", AdminDirectory.SearchUsers, func(u store.User) (string, adminUser) {
		return u.ID, adminUser{ID: u.ID, Display: u.Display, Created: u.Created}
	})
}

// adminSearch answers a directory search (users or groups): ?prefix=,
// ?after=, ?limit= in, {"<key>":[...],"next_after":"..."} out, each row
// shown by show, which also names its ID for the next page.
func adminSearch[T, R any](a *API, w http.ResponseWriter, r *http.Request, key string,
	search func(AdminDirectory, context.Context, string, string, int) ([]T, error), show func(T) (string, R)) {
	prefix, after, limit, ok := searchParams(w, r)
	if !ok {
		return
	}
	dir, ok := a.directoryOrFail(w)
	if !ok {
		return
	}
	found, err := search(dir, r.Context(), prefix, after, limit)
	if err != nil {
		a.storeError(w, "search "+key, err)
		return
	}
	rows := make([]R, 0, len(found))
	last := ""
	for _, t := range found {
		var row R
		last, row = show(t)
		rows = append(rows, row)
	}
	out := map[string]any{key: rows}
	if len(found) == limit {
		out["next_after"] = last
	}
	writeJSON(w, http.StatusOK, out)
}

// existingUser reads {user} of the path and checks the account exists,
// writing the 4xx/5xx itself when not.
func (a *API) existingUser(w http.ResponseWriter, r *http.Request) (string, AdminDirectory, store.User, bool) {
	user, ok := userPath(w, r)
	if !ok {
		return "", nil, store.User{}, false
	}
	dir, ok := a.directoryOrFail(w)
	if !ok {
		return "", nil, store.User{}, false
	}
	u, err := dir.GetUser(r.Context(), user)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, wire.CodeNoSuchUser, "no such user: "+user)
		return "", nil, store.User{}, false
	}
	if err != nil {
		a.storeError(w, "get user", err)
		return "", nil, store.User{}, false
	}
	return user, dir, u, true
}

// userPath validates {user} of the path: a user ID, folded.
func userPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	user, ok := wire.NormUser(r.PathValue("user"))
	if !ok {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user must be a user ID")
	}
	return user, ok
}

// adminUserDetail is GET /v1/admin/users/{user}.
type adminUserDetail struct {
	adminUser
	Online  bool           `json:"online"`
	Devices []state.Device `json:"devices"` // connected now, with their node
	Groups  []adminMember  `json:"groups"`  // the first maxShownGroups, by group ID
	// GroupsMore: the user is in more groups than listed.
	GroupsMore bool       `json:"groups_more,omitempty"`
	Bans       []bans.Ban `json:"bans"` // in force, naming the user
}

// adminMember is one membership.
type adminMember struct {
	Group  string `json:"group,omitempty"`
	User   string `json:"user,omitempty"`
	Role   string `json:"role"`
	Joined int64  `json:"joined"`
}

func (a *API) adminShowUser(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	user, dir, u, ok := a.existingUser(w, r)
	if !ok {
		return
	}
	out := adminUserDetail{adminUser: adminUser{ID: u.ID, Display: u.Display, Created: u.Created},
		Devices: []state.Device{}, Groups: []adminMember{}, Bans: []bans.Ban{}}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if p := a.adm.cfg.Presence; p != nil {
		if ds, err := p.Devices(ctx, user); err == nil {
			out.Devices = append(out.Devices, ds...)
		} else {
			a.log.Warn("admin: user's devices", "user", user, "err", err)
		}
	}
	out.Online = len(out.Devices) > 0
	ms, err := dir.UserGroups(ctx, user)
	if err != nil {
		a.storeError(w, "user's groups", err)
		return
	}
	for i, m := range ms {
		if i == maxShownGroups {
			out.GroupsMore = true
			break
		}
		out.Groups = append(out.Groups, adminMember{Group: m.Group, Role: m.Role, Joined: m.Joined})
	}
	if list := a.adm.cfg.Bans; list != nil {
		all, err := list.All(ctx)
		if err != nil {
			a.storeError(w, "list bans", err)
			return
		}
		for _, b := range all {
			if b.User == user {
				out.Bans = append(out.Bans, b)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// adminRevokeUser revokes every token of the user and disconnects its
// devices, here and on the other nodes: they must log in again. The
// account stays (ban it to keep it out). JWTs (--jwt-key) are the
// issuer's, not ours: one stays valid, so its device comes straight back.
func (a *API) adminRevokeUser(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	user, _, _, ok := a.existingUser(w, r)
	if !ok {
		return
	}
	c := a.srv.cfg
	revoked := 0
	for { // tokens first: a kicked device cannot come back with one
		n, err := c.Accounts.RevokeUser(r.Context(), c.Store, user, deleteBatch)
		if err != nil {
			a.storeError(w, "revoke tokens", err)
			return
		}
		revoked += n
		if n == 0 {
			break
		}
	}
	a.kickUser(r.Context(), user)
	a.log.Info("admin: tokens revoked", "user", user, "tokens", revoked, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "revoked": revoked})
}

// adminDeleteUser deletes a user as DELETE /v1/server/users/{user} does
// (server.go): 200 deleted, 202 when more is left (DELETE again).
func (a *API) adminDeleteUser(w http.ResponseWriter, r *http.Request) {
	a.deleteUser(w, r, "admin")
}
