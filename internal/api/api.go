// Package api serves imqtt's short-connection HTTP API (docs/http.md) with the
// standard library's ServeMux: accounts and sessions, sending, sync,
// conversations, history, read positions, endpoints, health and metrics.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/wire"
)

// Kicker disconnects an MQTT client by client ID (the broker).
type Kicker interface {
	KickDevice(clientID string) bool
}

// The defaults of Config's limits, taken by their zero values (explained at
// its fields); cmd/imqttd's --http-* flags default to the same constants.
const (
	DefaultMaxBody       = 256 << 10
	DefaultBodyTimeout   = 10 * time.Second
	DefaultUploadMinRate = 1 << 10
	DefaultUploadWindow  = 30 * time.Second
)

// Config wires the API to the core.
type Config struct {
	Accounts  Accounts   // *account.Service
	Chat      Core       // *chat.Service
	Media     MediaStore // *media.Service; nil: no /v1/media
	Metrics   *metrics.Metrics
	Kicker    Kicker
	Endpoints func(ctx context.Context) ([]wire.Endpoint, error) // the live nodes, best first
	Ready     func(ctx context.Context) error
	// Drain is the node's drain state: /readyz answers 503 "draining"
	// once it drains, and POST /v1/admin/drain starts its operator's
	// drain. Default: a state of its own that never drains but by that
	// POST (tests).
	Drain     *drain.State
	WebSocket http.Handler // MQTT over WebSocket, mounted at /mqtt
	Web       http.Handler // the web chat (webchat.Handler), mounted at /chat/; nil: none
	MaxBody   int64        // request body limit; default 256 KiB
	Logger    *slog.Logger
	Admin     AdminConfig    // /v1/admin/ and /dashboard/ (admin.go)
	Push      *push.Registry // devices' push registrations (push.go); nil: none
	Server    ServerConfig   // /v1/server/ (server.go)
	Presence  PresenceLister // GET /v1/presence (presence.go); nil: none

	// Request bodies' deadlines (deadline.go): BodyTimeout bounds a body's
	// arrival (default 10s); an upload must bring UploadMinRate bytes a
	// second (default 1024) averaged over each UploadWindow (default 30s).
	BodyTimeout   time.Duration
	UploadMinRate int64
	UploadWindow  time.Duration

	// Signup is public sign-up, POST /v1/users: SignupOpen (the default,
	// "") or SignupClosed, which answers 403 signup_closed (accounts.go).
	Signup string

	// AccessLogSample is the share of successful requests the access log
	// writes (access.go): 0 none, 1 all; cmd/imqttd's default is
	// DefaultAccessLogSample. Errors are logged at a bounded rate.
	AccessLogSample float64

	// CORSOrigins are the origins (scheme://host[:port], or "*" alone)
	// whose pages may call /v1/ (cors.go); none: CORS is off.
	CORSOrigins []string
}

// API is the HTTP handler.
type API struct {
	cfg Config
	mux *routeMux // every route registers here (openapi.go: Routes)
	log *slog.Logger
	adm *admin
	srv *serverAPI
	// access is the access log (access.go)
	access *accessLog
}

// New builds the routes.
func New(cfg Config) *API {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.UploadMinRate <= 0 {
		cfg.UploadMinRate = DefaultUploadMinRate
	}
	if cfg.UploadWindow <= 0 {
		cfg.UploadWindow = DefaultUploadWindow
	}
	if cfg.Drain == nil {
		cfg.Drain = drain.New(nil)
	}
	a := &API{cfg: cfg, mux: newRouteMux(), log: cfg.Logger, access: newAccessLog(cfg.Logger, cfg.AccessLogSample)}
	a.mux.HandleFunc("POST /v1/users", a.register)
	a.mux.HandleFunc("POST /v1/sessions", a.login)
	a.mux.HandleFunc("DELETE /v1/sessions/current", a.auth(a.logout))
	a.mux.HandleFunc("POST /v1/messages", a.auth(a.send))
	a.mux.HandleFunc("GET /v1/sync", a.auth(a.sync))
	a.mux.HandleFunc("GET /v1/conversations", a.auth(a.conversations))
	a.mux.HandleFunc("GET /v1/conversations/{peer}/messages", a.auth(a.history))
	a.mux.HandleFunc("POST /v1/read", a.auth(a.read))
	a.mux.HandleFunc("POST /v1/groups", a.auth(a.createGroup))
	a.mux.HandleFunc("GET /v1/groups", a.auth(a.listGroups))
	a.mux.HandleFunc("GET /v1/groups/{gid}", a.auth(a.showGroup))
	a.mux.HandleFunc("POST /v1/groups/{gid}/members", a.auth(a.addMembers))
	a.mux.HandleFunc("DELETE /v1/groups/{gid}/members/{user}", a.auth(a.removeMember))
	a.mux.HandleFunc("PATCH /v1/groups/{gid}", a.auth(a.patchGroup))
	a.mux.HandleFunc("DELETE /v1/groups/{gid}", a.auth(a.disbandGroup))
	a.mux.HandleFunc("POST /v1/groups/{gid}/owner", a.auth(a.transferGroup))
	a.mux.HandleFunc("PUT /v1/groups/{gid}/members/{user}", a.auth(a.muteMember))
	a.settingsRoutes()
	a.lifeRoutes()
	a.socialRoutes()
	if cfg.Media != nil {
		a.mediaRoutes()
	}
	a.pushRoutes()
	a.presenceRoutes()
	a.mux.HandleFunc("GET /v1/endpoints", a.endpoints)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.ready)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	if cfg.WebSocket != nil {
		a.mux.Handle("/mqtt", cfg.WebSocket)
	}
	if cfg.Web != nil {
		a.mux.Handle("/chat/", http.StripPrefix("/chat", cfg.Web))
	}
	a.adminRoutes()
	a.serverRoutes()
	a.openapiRoutes()
	a.landingRoutes()                      // GET / (landing.go)
	a.mux.HandleFunc(catchAll, a.notRoute) // 404, or 405 with Allow (methods.go)
	return a
}

// ServeHTTP implements http.Handler. The WebSocket (/mqtt) is not
// access-logged: its connection is MQTT's, logged by hooks.ConnLog.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/mqtt" {
		a.serve(w, r)
		return
	}
	a.access.serve(w, r, a.serve) // access.go
}

// serve answers r and returns the request the mux routed (nil if none).
func (a *API) serve(w http.ResponseWriter, r *http.Request) *http.Request {
	if a.cors(w, r) { // a preflight, answered (cors.go)
		return nil
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") && dotSegment(r.URL.Path) {
		// ServeMux would answer 301 to the cleaned path, another route:
		// GET /v1/conversations/../messages is GET /v1/messages. No ID
		// begins with a dot (wire.ValidUser), so no API path has one.
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "path segments . and .. are not allowed: IDs never begin with a dot")
		return nil
	}
	r = a.withBodyDeadline(w, r) // every request body gets its deadline first (deadline.go)
	a.mux.ServeHTTP(w, r)
	return r
}

// dotSegment reports whether the (decoded) path has a "." or ".." segment.
func dotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// caller is the authenticated user of a request.
type caller struct {
	user, device, token string
	hash                string // the token's SHA-256, as the store keeps it
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c caller)

// auth checks the Bearer token and passes the caller on.
func (a *API) auth(next authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "Authorization: Bearer <token> required")
			return
		}
		row, err := a.cfg.Accounts.Verify(r.Context(), token)
		if errors.Is(err, account.ErrBadCredentials) {
			a.cfg.Metrics.AuthFailed("token", "", r.RemoteAddr, "HTTP "+r.Method+" "+r.URL.Path)
			writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "token unknown, revoked or expired")
			return
		}
		if err != nil {
			a.storeError(w, "verify token", err)
			return
		}
		if a.refuseBanned(w, r, row.User) {
			return
		}
		next(w, r, caller{user: row.User, device: row.Device, token: token, hash: row.Hash})
	}
}

// decode reads a JSON body of at most MaxBody bytes, nested at most
// wire.MaxDepth deep, into v, writing the 4xx itself when it cannot.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	data, ok := a.readBody(w, r)
	if !ok {
		return false
	}
	if err := wire.Unmarshal(data, v); err != nil {
		a.badJSON(w, err)
		return false
	}
	return true
}

// readBody reads a request body of at most MaxBody bytes, writing the 4xx
// itself when it cannot: 413 past MaxBody, 408 when the body came too
// slowly (bodyDeadline).
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	if err == nil {
		return data, true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		a.cfg.Metrics.Refused("body_size")
		writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "body over "+strconv.FormatInt(a.cfg.MaxBody, 10)+" bytes")
	case slowBody(r):
		a.bodyTimedOut(w)
	default:
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "body cut off: "+err.Error())
	}
	return nil, false
}

// badJSON answers a body wire.Unmarshal refused.
func (a *API) badJSON(w http.ResponseWriter, err error) {
	if errors.Is(err, wire.ErrTooDeep) {
		a.cfg.Metrics.Refused("json_depth")
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "JSON body nested too deeply: objects and arrays at most "+
			strconv.Itoa(wire.MaxDepth)+" levels")
		return
	}
	writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "malformed JSON body: "+err.Error())
}

// storeError answers a failure of the store: the caller may retry.
func (a *API) storeError(w http.ResponseWriter, what string, err error) {
	a.log.Error(what, "err", err)
	writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, what+": store unavailable; try again")
}

// chatError answers an error of the core: a refusal by its code, status
// and message (chat.Describe, wire.HTTPStatus); the request's context
// ending first as busy; anything else as a store failure.
func (a *API) chatError(w http.ResponseWriter, what string, err error) {
	code, msg, ok := chat.Describe(err)
	switch {
	case ok && errors.Is(err, chat.ErrRateLimited): // the send limit refills within a second
		writeRateLimited(w, time.Second, msg)
	case ok:
		writeError(w, wire.HTTPStatus(code), code, msg)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, wire.CodeBusy, what+": timed out")
	default:
		a.storeError(w, what, err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Code: code, Message: msg})
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if a.cfg.Drain.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if err := a.cfg.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *API) endpoints(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	eps, err := a.cfg.Endpoints(ctx)
	if err != nil {
		a.log.Warn("endpoints", "err", err)
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, "the node list is unavailable; retry")
		return
	}
	writeJSON(w, http.StatusOK, wire.Endpoints{Endpoints: eps})
}
