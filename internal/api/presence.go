package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/imqtt/imqtt/wire"
)

// PresenceLister answers GET /v1/presence (*presence.Service). A refusal
// wraps one of chat's sentinels (ErrBadRequest, ErrRateLimited); any other
// error is a store or state failure.
type PresenceLister interface {
	List(ctx context.Context, caller string, users []string) (wire.PresenceList, error)
}

// presenceRoutes are docs/http.md#presence.
func (a *API) presenceRoutes() {
	if a.cfg.Presence != nil {
		a.mux.HandleFunc("GET /v1/presence", a.auth(a.presence))
	}
}

// presence answers the presence of ?users=a,b that share it with the
// caller; the others are absent.
func (a *API) presence(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query().Get("users")
	if q == "" {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "users required: ?users=a,b")
		return
	}
	if strings.Count(q, ",") >= wire.MaxPresenceUsers { // before splitting a huge list
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "at most "+strconv.Itoa(wire.MaxPresenceUsers)+" users")
		return
	}
	got, err := a.cfg.Presence.List(r.Context(), c.user, strings.Split(q, ","))
	if err != nil {
		a.chatError(w, "presence", err)
		return
	}
	writeJSON(w, http.StatusOK, got)
}
