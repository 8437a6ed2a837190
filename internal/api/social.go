package api

import (
	"context"
	"net/http"

	"github.com/imqtt/imqtt/wire"
)

// Social is the core's social graph (docs/http.md#contacts-and-privacy):
// contacts and blocks. Refusals: chat.ErrSelf, chat.ErrNoSuchUser,
// chat.ErrNoRequest, chat.ErrNotFound, chat.ErrTooManyContacts,
// chat.ErrTooManyBlocks, chat.ErrRateLimited, chat.ErrBadRequest; any
// other error is a store failure.
type Social interface {
	RequestContact(ctx context.Context, user, peer string) (wire.Contact, error)
	AcceptContact(ctx context.Context, user, peer string) (wire.Contact, error)
	RemoveContact(ctx context.Context, user, peer string) error
	Contacts(ctx context.Context, user, after string, limit int) (wire.Contacts, error)
	Block(ctx context.Context, user, peer string) (wire.Block, error)
	Unblock(ctx context.Context, user, peer string) error
	Blocks(ctx context.Context, user, after string, limit int) (wire.Blocks, error)
}

// socialRoutes are docs/http.md#contacts-and-privacy, served when the
// core has the social graph (*chat.Service has).
func (a *API) socialRoutes() {
	sc, ok := a.cfg.Chat.(Social)
	if !ok {
		return
	}
	a.mux.HandleFunc("POST /v1/contacts", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		var req wire.ContactAsk
		if !a.decodeStrict(w, r, &req, false) {
			return
		}
		ct, err := sc.RequestContact(r.Context(), c.user, req.User)
		a.reply(w, "request contact", ct, err)
	}))
	a.mux.HandleFunc("POST /v1/contacts/{user}/accept", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		ct, err := sc.AcceptContact(r.Context(), c.user, r.PathValue("user"))
		a.reply(w, "accept contact", ct, err)
	}))
	a.mux.HandleFunc("DELETE /v1/contacts/{user}", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		a.reply(w, "remove contact", nil, sc.RemoveContact(r.Context(), c.user, r.PathValue("user")))
	}))
	a.mux.HandleFunc("GET /v1/contacts", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		after, limit, ok := pageParams(w, r)
		if !ok {
			return
		}
		cs, err := sc.Contacts(r.Context(), c.user, after, limit)
		a.reply(w, "contacts", cs, err)
	}))
	a.mux.HandleFunc("PUT /v1/blocks/{user}", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		b, err := sc.Block(r.Context(), c.user, r.PathValue("user"))
		a.reply(w, "block", b, err)
	}))
	a.mux.HandleFunc("DELETE /v1/blocks/{user}", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		a.reply(w, "unblock", nil, sc.Unblock(r.Context(), c.user, r.PathValue("user")))
	}))
	a.mux.HandleFunc("GET /v1/blocks", a.auth(func(w http.ResponseWriter, r *http.Request, c caller) {
		after, limit, ok := pageParams(w, r)
		if !ok {
			return
		}
		bs, err := sc.Blocks(r.Context(), c.user, after, limit)
		a.reply(w, "blocks", bs, err)
	}))
}

// reply answers a call of the core: its refusal, else 200 with v, or 204
// for a call with nothing to say (v nil).
func (a *API) reply(w http.ResponseWriter, what string, v any, err error) {
	switch {
	case err != nil:
		a.chatError(w, what, err)
	case v == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// maxSocialPage caps ?limit= of the contact and block lists.
const maxSocialPage = 1000

// pageParams reads ?after= (a user ID) and ?limit= (0: the default; at
// most maxSocialPage), answering bad_request for anything else.
func pageParams(w http.ResponseWriter, r *http.Request) (string, int, bool) {
	q := r.URL.Query()
	limit, err := uintParam(q.Get("limit"))
	if err != nil || limit > maxSocialPage {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit must be a number up to 1000")
		return "", 0, false
	}
	after := q.Get("after")
	if after != "" && !wire.ValidUser(after) {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "after must be a user ID")
		return "", 0, false
	}
	return after, int(limit), true
}
