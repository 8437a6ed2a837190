package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// The server API (docs/http.md#server-api, docs/integration.md#server-api)
// lives under /v1/server/ behind the server keys (--server-key): a
// business backend creates users without a password, mints their device
// tokens, sends as a user or as system, and deletes a user GDPR-style.

// The defaults and bounds of ServerConfig.
const (
	// MinServerKey is the shortest server key taken (bytes): a key is a
	// bearer secret, as strong as 256 random bits when made right.
	MinServerKey = 32
	// DefaultServerSendRate is the sends a second one key may make
	// (--server-send-rate), after a burst of as many.
	DefaultServerSendRate = 1000
	// DefaultDeleteBudget bounds the work of one DELETE /v1/server/users/{user}:
	// past it the answer is 202 and the next DELETE carries on.
	DefaultDeleteBudget = 5 * time.Second
	// deleteBatch is the rows one step of a deletion writes at once.
	deleteBatch = 1000
)

// ServerAuthLimit bounds failed attempts (a wrong key, a user's token) per
// client address (an IPv6 /64); past it they get 429. A right key is
// never refused by it.
var ServerAuthLimit = state.Limit{Rate: 30, Per: time.Minute, Burst: 60}

// ServerAccounts is what the server API asks of accounts (*account.Service).
type ServerAccounts interface {
	CreateUser(ctx context.Context, user string) (string, error)
	MintToken(ctx context.Context, user, device string, ttl time.Duration) (wire.Session, error)
	RevokeUser(ctx context.Context, st account.UserTokens, user string, limit int) (int, error)
}

// ServerCore is what the server API asks of the core (*chat.Service).
type ServerCore interface {
	SendAs(ctx context.Context, from string, req wire.Send) (wire.Ack, error)
	ForgetUser(user string)
	LeaveGroups(ctx context.Context, user string) (int, error)
}

// ServerStore is the store's part in deleting a user.
type ServerStore interface {
	store.Erasure
	DeleteUserConvSettings(ctx context.Context, user string) error
	DeleteUserSocial(ctx context.Context, user string, limit int) (int, error)
}

// ServerConfig wires /v1/server/.
type ServerConfig struct {
	// Keys are the server keys, any of which opens the API (several, so
	// that a key can be rotated: add the new, move the backends, drop the
	// old). None turns the API off: its routes answer 404. Each is at
	// least MinServerKey bytes (cmd/imqttd refuses shorter at start).
	Keys     []string
	Accounts ServerAccounts
	Chat     ServerCore
	Store    ServerStore
	// Limiter bounds each key's sends, and apart from them its user
	// creations and token mints together (SendRate a second each;
	// default DefaultServerSendRate), and each address's failed
	// authentications (ServerAuthLimit); nil: nothing is bounded.
	Limiter  state.Limiter
	SendRate int
	// DeleteBudget bounds one DELETE's work; default DefaultDeleteBudget.
	DeleteBudget time.Duration
}

type serverAPI struct {
	cfg      ServerConfig
	keys     [][sha256.Size]byte
	deleting chan struct{} // one token per deletion running: at most maxDeleting
}

// maxDeleting bounds the deletions a node runs at once; more wait for
// their turn within their budget (then 202: DELETE again).
const maxDeleting = 4

// serverKey is the key a request came with: its name for limits and
// logs (a prefix of its hash; never the key).
type serverKey string

type serverHandler func(w http.ResponseWriter, r *http.Request, k serverKey)

func (a *API) serverRoutes() {
	c := a.cfg.Server
	if c.SendRate <= 0 {
		c.SendRate = DefaultServerSendRate
	}
	if c.DeleteBudget <= 0 {
		c.DeleteBudget = DefaultDeleteBudget
	}
	s := &serverAPI{cfg: c, deleting: make(chan struct{}, maxDeleting)}
	for _, k := range c.Keys {
		s.keys = append(s.keys, sha256.Sum256([]byte(k)))
	}
	a.srv = s // the admin API deletes users through it, keys or not
	if len(s.keys) == 0 {
		return // no routes: nothing tells a prober that the server API exists
	}
	for pattern, h := range map[string]serverHandler{
		"POST /v1/server/users":          a.serverCreateUser,
		"POST /v1/server/tokens":         a.serverMintToken,
		"POST /v1/server/messages":       a.serverSend,
		"DELETE /v1/server/users/{user}": a.serverDeleteUser,
	} {
		a.mux.HandleFunc(pattern, a.serverGuard(s, h))
	}
}

// serverGuard lets through only requests bearing a server key. Nothing is
// read from the request before the key is checked.
func (a *API) serverGuard(s *serverAPI, next serverHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if k, found := s.match(token); ok && found {
			next(w, r, k) // a right key is never throttled: no one locks the backend out
			return
		}
		// Not a server key: a user's token (or anything else) is refused
		// alike, counted, and charged to the address.
		a.cfg.Metrics.AuthFailed("server", "", r.RemoteAddr, "wrong server key on "+r.Method+" "+r.URL.Path)
		if d, ok := a.serverLimit(r.Context(), "server_auth:"+account.ClientIP(r.RemoteAddr), ServerAuthLimit); !ok {
			a.cfg.Metrics.Refused("server_auth")
			writeRateLimited(w, d, "too many failed server-key attempts from this address; retry later")
			return
		}
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "Authorization: Bearer <server key> required")
	}
}

// match compares token with every key in constant time: both sides are
// hashed to 32 bytes first, so neither the key's length nor which key
// matched (or how far) shows in the time taken.
func (s *serverAPI) match(token string) (serverKey, bool) {
	got := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.keys {
		if subtle.ConstantTimeCompare(got[:], s.keys[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 || token == "" {
		return "", false
	}
	return serverKey(hex.EncodeToString(s.keys[found][:6])), true
}

// serverLimit takes one event from a bucket of the server API's Limiter.
// A missing or failing Limiter lets everything through: the keys, not the
// limiter, guard the API.
func (a *API) serverLimit(ctx context.Context, key string, l state.Limit) (time.Duration, bool) {
	lim := a.srv.cfg.Limiter
	if lim == nil {
		return 0, true
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d, err := lim.Allow(ctx, key, l)
	if err != nil {
		a.log.Warn("server API: rate limit", "err", err)
		return 0, true
	}
	return d.RetryAfter, d.OK
}

// serverUser is the body of POST /v1/server/users and its answer.
type serverUser struct {
	User string `json:"user"`
}

// serverRate takes one of key k's events of kind (sends, or accounts:
// users and tokens together), SendRate a second; past it the answer is
// 429 and false.
func (a *API) serverRate(w http.ResponseWriter, r *http.Request, kind string, k serverKey) bool {
	rate := a.srv.cfg.SendRate
	l := state.Limit{Rate: rate, Per: time.Second, Burst: rate}
	if d, ok := a.serverLimit(r.Context(), "server_"+kind+":"+string(k), l); !ok {
		a.cfg.Metrics.Refused("server_" + kind + "_rate")
		writeRateLimited(w, d, "over this key's --server-send-rate; retry later (a send: with the same cmid)")
		return false
	}
	return true
}

func (a *API) serverCreateUser(w http.ResponseWriter, r *http.Request, k serverKey) {
	var req serverUser
	if !onlyParams(w, r) || !a.decodeStrict(w, r, &req, false) || !a.serverRate(w, r, "accounts", k) {
		return
	}
	id, err := a.srv.cfg.Accounts.CreateUser(r.Context(), req.User)
	switch {
	case errors.Is(err, account.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user must be 1 to 64 of A-Z a-z 0-9 _ . - not starting with a dot")
	case errors.Is(err, account.ErrReserved):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user ID "+req.User+" is reserved")
	case errors.Is(err, account.ErrExists):
		writeError(w, http.StatusConflict, wire.CodeExists, "user "+req.User+" already exists, or was deleted (user IDs ignore case)")
	case err != nil:
		a.storeError(w, "server API: create user", err)
	default:
		a.log.Info("server API: user created", "user", id)
		writeJSON(w, http.StatusCreated, serverUser{User: id})
	}
}

// serverTokenRequest is the body of POST /v1/server/tokens. TTL is
// seconds (86400) or a duration ("720h"); absent or 0:
// account.DefaultMintTTL.
type serverTokenRequest struct {
	User   string          `json:"user"`
	Device string          `json:"device"`
	TTL    json.RawMessage `json:"ttl"`
}

// ttl reads TTL: a whole number of seconds or a Go duration string.
func (r serverTokenRequest) ttl() (time.Duration, bool) {
	raw := bytes.TrimSpace(r.TTL)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, true
	}
	var secs int64
	if json.Unmarshal(raw, &secs) == nil {
		if secs < 0 || secs > int64(account.MaxMintTTL/time.Second) {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	var str string
	if json.Unmarshal(raw, &str) != nil {
		return 0, false
	}
	d, err := time.ParseDuration(str)
	return d, err == nil && d >= 0 && d <= account.MaxMintTTL
}

func (a *API) serverMintToken(w http.ResponseWriter, r *http.Request, k serverKey) {
	var req serverTokenRequest
	if !onlyParams(w, r) || !a.decodeStrict(w, r, &req, false) || !a.serverRate(w, r, "accounts", k) {
		return
	}
	ttl, ok := req.ttl()
	if !ok {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest,
			`ttl must be seconds from 0 (30 days) to 31536000 (365 days), or a duration such as "720h"`)
		return
	}
	s, err := a.srv.cfg.Accounts.MintToken(r.Context(), req.User, req.Device, ttl)
	switch {
	case errors.Is(err, account.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user and device must be IDs (docs/protocol.md#identity)")
	case errors.Is(err, account.ErrNoSuchUser):
		writeError(w, http.StatusNotFound, wire.CodeNoSuchUser, "no such user: "+req.User)
	case err != nil:
		a.storeError(w, "server API: mint token", err)
	default:
		writeJSON(w, http.StatusOK, s)
	}
}

// serverSendRequest is the body of POST /v1/server/messages: the send
// fields of POST /v1/messages and who it is from.
type serverSendRequest struct {
	From string `json:"from"`
	wire.Send
}

func (a *API) serverSend(w http.ResponseWriter, r *http.Request, k serverKey) {
	var req serverSendRequest
	if !onlyParams(w, r) || !a.decodeStrict(w, r, &req, false) || !a.serverRate(w, r, "send", k) {
		return
	}
	if req.From == "" {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, `from is required: a user ID or "system"`)
		return
	}
	ack, err := a.srv.cfg.Chat.SendAs(r.Context(), req.From, req.Send)
	if err != nil {
		a.chatError(w, "server API: send", err)
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

// Statuses of a deletion.
const (
	deletionDone    = "deleted"  // everything is gone or anonymised
	deletionPending = "deleting" // more is left: DELETE again
)

// serverDeletion is the answer of DELETE /v1/server/users/{user}.
type serverDeletion struct {
	User   string `json:"user"`
	Status string `json:"status"`
}

// serverDeleteUser deletes a user GDPR-style (docs/integration.md#server-api):
// the account becomes a tombstone (no login; the ID never registers again),
// its tokens are revoked, its devices disconnected, its sessions, push
// registrations, conversation settings and group memberships removed, the
// messages it sent anonymised in place and its inbox and conversations
// deleted. Every step is idempotent, so the request is too, and each
// request works at most DeleteBudget: 200 "deleted" when all is done, 202
// "deleting" when more is left (DELETE again; a crash half-way is the
// same). An unknown user is 404; one deleted already is 200.
func (a *API) serverDeleteUser(w http.ResponseWriter, r *http.Request, _ serverKey) {
	a.deleteUser(w, r, "server API")
}

// deleteUser deletes the path's {user} and answers as DELETE
// /v1/server/users/{user} does; who names the API asking, in the log. The
// server API and the admin API (admin_users.go) share it.
func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, who string) {
	if !onlyParams(w, r) {
		return
	}
	user, ok := userPath(w, r)
	if !ok {
		return
	}
	if wire.ReservedUser(user) {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user ID "+user+" is reserved")
		return
	}
	c := a.srv.cfg
	err := c.Store.TombstoneUser(r.Context(), user, time.Now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, wire.CodeNoSuchUser, "no such user: "+user)
		return
	}
	if err != nil {
		a.storeError(w, who+": delete user", err)
		return
	}
	c.Chat.ForgetUser(user)
	ctx, cancel := context.WithTimeout(r.Context(), c.DeleteBudget)
	defer cancel()
	done, err := false, ctx.Err()
	select { // a few deletions at once: the store keeps serving the users
	case a.srv.deleting <- struct{}{}:
		done, err = a.eraseUser(ctx, user)
		<-a.srv.deleting
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		done = false // the budget ran out: the next DELETE carries on
	case err != nil:
		a.storeError(w, who+": delete user", err)
		return
	}
	a.log.Info(who+": user deleted", "user", user, "done", done)
	if !done {
		writeJSON(w, http.StatusAccepted, serverDeletion{User: user, Status: deletionPending})
		return
	}
	writeJSON(w, http.StatusOK, serverDeletion{User: user, Status: deletionDone})
}

// eraseUser runs the steps of a deletion after the tombstone, each to its
// end or until ctx ends, and reports whether all are done.
func (a *API) eraseUser(ctx context.Context, user string) (bool, error) {
	c := a.srv.cfg
	for { // tokens first: a kicked device cannot come back with one
		n, err := c.Accounts.RevokeUser(ctx, c.Store, user, deleteBatch)
		if err != nil {
			return false, err
		}
		if n == 0 {
			break
		}
	}
	// Sessions before the kick, so that the kicked connections' sessions
	// save nothing (as a ban does).
	if d := a.cfg.Admin.Sessions; d != nil {
		if err := d.DropUser(ctx, user); err != nil {
			return false, err
		}
	}
	a.kickUser(ctx, user)
	if a.cfg.Push != nil {
		if err := a.cfg.Push.DropUser(ctx, user); err != nil {
			return false, err
		}
	}
	if err := c.Store.DeleteUserConvSettings(ctx, user); err != nil {
		return false, err
	}
	for { // contacts (both sides), blocks made, last seen
		n, err := c.Store.DeleteUserSocial(ctx, user, deleteBatch)
		if err != nil {
			return false, err
		}
		if n == 0 {
			break
		}
	}
	if _, err := c.Chat.LeaveGroups(ctx, user); err != nil {
		return false, err
	}
	for {
		n, _, err := c.Store.EraseSentMessages(ctx, user, deleteBatch)
		if err != nil {
			return false, err
		}
		if n == 0 {
			break
		}
	}
	for {
		n, err := c.Store.DeleteUserInbox(ctx, user, deleteBatch)
		if err != nil {
			return false, err
		}
		if n == 0 {
			return true, nil
		}
	}
}

// kickUser disconnects every device of user: this node's from its
// client list, the other nodes' (scale-out) through presence and the bus.
func (a *API) kickUser(ctx context.Context, user string) {
	adm := a.cfg.Admin
	if adm.Broker != nil {
		for _, ci := range adm.Broker.ClientList() {
			if ci.User == user {
				adm.Broker.Kick(ci.ID, packets.ErrAdministrativeAction)
			}
		}
	}
	if adm.Presence == nil || adm.Remote == nil {
		return
	}
	devs, err := adm.Presence.Devices(ctx, user)
	if err != nil {
		a.log.Warn("server API: delete user: list devices", "user", user, "err", err)
		return
	}
	for _, d := range devs {
		if d.Node != adm.Node {
			adm.Remote.KickOn(d.Node, wire.ClientID(user, d.Device))
		}
	}
}
