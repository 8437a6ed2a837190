package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/wire"
)

// Lifecycle changes stored messages and relays what is not stored
// (docs/http.md#message-lifecycle). The changes are taken as sends are
// (Messenger): each returns its ack once stored, or a refusal
// (chat.ErrNotFound, chat.ErrNotAllowed, chat.ErrTooLate,
// chat.ErrBadRequest, the send's); any other error is a store failure.
type Lifecycle interface {
	Recall(ctx context.Context, from chat.Sender, req wire.Recall, done func(chat.Result))
	Edit(ctx context.Context, from chat.Sender, req wire.Edit, done func(chat.Result))
	React(ctx context.Context, from chat.Sender, req wire.React, done func(chat.Result))
	Delete(ctx context.Context, from chat.Sender, req wire.Delete, done func(chat.Result))
	// Typing relays req (false: dropped by the rate, not an error).
	Typing(ctx context.Context, user string, req wire.Typing) (bool, error)
	UserSettings(ctx context.Context, user string) (wire.UserSettings, error)
	SetUserSettings(ctx context.Context, user string, req wire.UserSettings) (wire.UserSettings, error)
	// GroupReads counts who has read the group message at seq.
	GroupReads(ctx context.Context, user, group string, seq uint64, after string, limit int) (wire.GroupReads, error)
}

// lifeRoutes are docs/http.md#message-lifecycle.
func (a *API) lifeRoutes() {
	a.mux.HandleFunc("POST /v1/messages/{id}/recall", a.auth(a.recall))
	a.mux.HandleFunc("PATCH /v1/messages/{id}", a.auth(a.edit))
	a.mux.HandleFunc("POST /v1/messages/delete", a.auth(a.deleteMessages))
	a.mux.HandleFunc("DELETE /v1/conversations/{peer}", a.auth(a.clearConversation))
	a.mux.HandleFunc("PUT /v1/messages/{id}/reactions/{emoji}", a.auth(a.react))
	a.mux.HandleFunc("DELETE /v1/messages/{id}/reactions/{emoji}", a.auth(a.react))
	a.mux.HandleFunc("POST /v1/typing", a.auth(a.typing))
	a.mux.HandleFunc("GET /v1/me/settings", a.auth(a.userSettings))
	a.mux.HandleFunc("PUT /v1/me/settings", a.auth(a.putUserSettings))
	a.mux.HandleFunc("GET /v1/groups/{gid}/messages/{seq}/reads", a.auth(a.groupReads))
}

// cmidOf is a change's cmid: the body's (optional on the routes whose
// path says the rest), else ?cmid=, else a new one (a
// retry without one is a second change, which every change but a recall
// makes harmlessly: a reaction there already is acked as it is).
func cmidOf(r *http.Request, body string) string {
	if body != "" {
		return body
	}
	if q := r.URL.Query().Get("cmid"); q != "" {
		return q
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "http-" + hex.EncodeToString(b[:])
}

// change waits for a change's result and writes it.
func (a *API) change(w http.ResponseWriter, r *http.Request, what string, submit func(done func(chat.Result))) {
	ack, err := chat.Wait(r.Context(), submit)
	if err != nil {
		a.chatError(w, what, err)
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

func sender(c caller) chat.Sender { return chat.Sender{User: c.user, Device: c.device} }

func (a *API) recall(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.Recall
	if !a.decodeStrict(w, r, &req, true) {
		return
	}
	req.ID, req.CMID = r.PathValue("id"), cmidOf(r, req.CMID)
	a.change(w, r, "recall", func(done func(chat.Result)) { a.cfg.Chat.Recall(r.Context(), sender(c), req, done) })
}

func (a *API) edit(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.Edit
	if !a.decodeStrict(w, r, &req, false) {
		return
	}
	req.ID, req.CMID = r.PathValue("id"), cmidOf(r, req.CMID)
	a.change(w, r, "edit", func(done func(chat.Result)) { a.cfg.Chat.Edit(r.Context(), sender(c), req, done) })
}

func (a *API) deleteMessages(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.Delete
	if !a.decodeStrict(w, r, &req, false) {
		return
	}
	req.CMID = cmidOf(r, req.CMID)
	a.change(w, r, "delete", func(done func(chat.Result)) { a.cfg.Chat.Delete(r.Context(), sender(c), req, done) })
}

// The routes whose path says what to change take an optional body of
// the MQTT payload's shape for its cmid: what the path says wins.

func (a *API) clearConversation(w http.ResponseWriter, r *http.Request, c caller) {
	var body wire.Delete
	if !a.decodeStrict(w, r, &body, true) {
		return
	}
	req := wire.Delete{CMID: cmidOf(r, body.CMID), Peer: r.PathValue("peer")}
	a.change(w, r, "clear conversation", func(done func(chat.Result)) { a.cfg.Chat.Delete(r.Context(), sender(c), req, done) })
}

func (a *API) react(w http.ResponseWriter, r *http.Request, c caller) {
	var body wire.React
	if !a.decodeStrict(w, r, &body, true) {
		return
	}
	req := wire.React{CMID: cmidOf(r, body.CMID), ID: r.PathValue("id"), Emoji: r.PathValue("emoji"), Op: wire.ReactAdd}
	if r.Method == http.MethodDelete {
		req.Op = wire.ReactRemove
	}
	a.change(w, r, "react", func(done func(chat.Result)) { a.cfg.Chat.React(r.Context(), sender(c), req, done) })
}

func (a *API) typing(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.Typing
	if !a.decodeStrict(w, r, &req, false) {
		return
	}
	if _, err := a.cfg.Chat.Typing(r.Context(), c.user, req); err != nil {
		a.chatError(w, "typing", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) userSettings(w http.ResponseWriter, r *http.Request, c caller) {
	us, err := a.cfg.Chat.UserSettings(r.Context(), c.user)
	if err != nil {
		a.chatError(w, "user settings", err)
		return
	}
	writeJSON(w, http.StatusOK, us)
}

func (a *API) putUserSettings(w http.ResponseWriter, r *http.Request, c caller) {
	var req wire.UserSettings
	if !a.decodeStrict(w, r, &req, false) {
		return
	}
	us, err := a.cfg.Chat.SetUserSettings(r.Context(), c.user, req)
	if err != nil {
		a.chatError(w, "set user settings", err)
		return
	}
	writeJSON(w, http.StatusOK, us)
}

func (a *API) groupReads(w http.ResponseWriter, r *http.Request, c caller) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "seq must be a group message's seq")
		return
	}
	q := r.URL.Query()
	limit, err := uintParam(q.Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "limit must be a number")
		return
	}
	after := q.Get("after")
	if after != "" && !wire.ValidUser(after) {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "after must be a user ID")
		return
	}
	out, err := a.cfg.Chat.GroupReads(r.Context(), c.user, r.PathValue("gid"), seq, after, int(min(limit, chat.MaxReadsUsers)))
	if err != nil {
		a.chatError(w, "group reads", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
