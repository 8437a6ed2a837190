package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/internal/version"
	"github.com/imqtt/imqtt/wire"
)

// The admin API (docs/http.md, issue 7) lives under /v1/admin/ behind the admin
// token. Everything it reports and does is about this node: its clients,
// its counters, its drain. Replies name the node ("node" fields, a "nodes"
// list) so that a cluster can answer the same shapes by asking every node
// over the bus and merging; bans are the one thing that must become
// cluster-wide storage (see package bans).

// AdminBroker is what the admin API reads and acts on in this node's
// broker; *broker.Broker implements it. None of its methods does I/O
// beyond this node's connections.
type AdminBroker interface {
	ClientDirectory
	ClientKicker
	Drainer
}

// ClientDirectory lists this node's connected clients.
type ClientDirectory interface {
	// ClientList returns the connected clients, in no order: not the
	// server's inline client, not sessions whose connection has ended.
	ClientList() []broker.ClientInfo
	// ClientDetail returns a connected client and its subscriptions,
	// sorted by filter; false if it is not connected here.
	ClientDetail(id string) (broker.ClientInfo, []broker.Subscription, bool)
	// Clients is the number of connected clients, read without a lock.
	Clients() int64
}

// ClientKicker disconnects one client of this node.
type ClientKicker interface {
	// Kick disconnects the client with this ID, with code as the MQTT 5
	// DISCONNECT reason; false if it is not connected here. It does not
	// wait for the connection to end.
	Kick(clientID string, code packets.Code) bool
}

// Drainer empties this node of its clients.
type Drainer interface {
	// StopAccepting closes the listeners to new connections; connected
	// clients stay.
	StopAccepting()
	// Drain disconnects the clients in waves of per, one now and one every
	// interval, telling w (if set) of each wave: Quiesce with its IDs
	// first, Wave after. It blocks until no client is left (true) or stop
	// is closed (false).
	Drain(per int, interval time.Duration, stop <-chan struct{}, w broker.Waves) bool
}

// KickRemote disconnects clients connected to other nodes (cluster.Bus).
type KickRemote interface {
	KickOn(node, clientID string)
}

// SessionDropper deletes every persistent session of a user
// (internal/session).
type SessionDropper interface {
	DropUser(ctx context.Context, user string) error
}

// AdminConfig wires /v1/admin/ and /dashboard/.
type AdminConfig struct {
	// Token is the admin token. Empty turns the admin API off: every admin
	// request is answered 403. It is compared in constant time.
	Token string
	// Node is this node's ID; Version the build (default: from the binary's
	// build info); Started when the node started.
	Node    string
	Version string
	Started time.Time
	// Addrs returns this node's bound addresses by name (mqtt, http, ws, ...).
	Addrs  func() map[string]string
	Broker AdminBroker
	// Sender delivers notices, here and on the other nodes (the delivery
	// path, internal/deliver).
	Sender deliver.Sender
	// Bans is the ban list; nil: no bans (POST bans answers 501). Bans also
	// refuse logins and token use when the admin API is off.
	Bans bans.List
	// Presence gives the connected-since of this node's devices and finds
	// the node to send a kick to; may be nil.
	Presence DeviceLister
	// Head returns a user's latest version (what an up-to-date device has
	// seen); may be nil.
	Head func(ctx context.Context, user string) (uint64, error)
	// Dashboard is served at /dashboard/; nil: no dashboard.
	Dashboard http.Handler
	// Remote carries kicks to other nodes (scale-out; nil on one node).
	Remote KickRemote
	// Sessions drops a banned user's persistent MQTT sessions (may be nil).
	Sessions SessionDropper
	// SampleEvery is the stats sampling period (default 1 s); History the
	// samples kept (default 600: ten minutes at 1 s).
	SampleEvery time.Duration
	History     int
	// Backup streams a backup of the node (admin_backup.go); nil: the
	// store is shared (MongoDB), GET /v1/admin/backup answers 501.
	Backup BackupFunc
	// Directory finds users and groups, Groups acts on groups
	// (admin_users.go, admin_groups.go); nil: those routes answer 501.
	Directory AdminDirectory
	Groups    GroupOperator
	// Cluster asks the other nodes for the cluster views
	// (admin_cluster.go); nil: one node.
	Cluster ClusterAsker
}

// admin is the admin API's state: the token's hash, the stats sampler. The
// drain's is the node's drain state (Config.Drain).
type admin struct {
	cfg       AdminConfig
	tokenHash [sha256.Size]byte
	sampler   *sampler
	stop      chan struct{}
	closeOnce sync.Once
	backingUp atomic.Bool // a backup runs
}

// adminRoutes registers /v1/admin/ and /dashboard/ and starts the sampler.
func (a *API) adminRoutes() {
	c := &a.cfg.Admin
	if c.SampleEvery <= 0 {
		c.SampleEvery = time.Second
	}
	if c.History <= 0 {
		c.History = 600
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	if c.Version == "" {
		c.Version = version.Get().Short()
	}
	a.adm = &admin{cfg: *c, tokenHash: sha256.Sum256([]byte(c.Token)), stop: make(chan struct{})}
	if c.Token != "" && c.Broker != nil {
		a.adm.sampler = newSampler(a.cfg.Metrics, c.Broker, c.History)
		go a.adm.sampler.run(c.SampleEvery, a.adm.stop)
	}
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /v1/admin/nodes":                         a.adminNodes,
		"GET /v1/admin/stats":                         a.adminStats,
		"GET /v1/admin/events":                        a.adminEvents,
		"GET /v1/admin/clients":                       a.adminClients,
		"GET /v1/admin/clients/{user}/{device}":       a.adminClient,
		"GET /v1/admin/users/{user}/push":             a.adminPushDevices,
		"POST /v1/admin/clients/{user}/{device}/kick": a.adminKick,
		"GET /v1/admin/bans":                          a.adminBans,
		"POST /v1/admin/bans":                         a.adminAddBan,
		"DELETE /v1/admin/bans/{id}":                  a.adminRemoveBan,
		"POST /v1/admin/notice":                       a.adminNotice,
		"POST /v1/admin/drain":                        a.adminDrain,
		"GET /v1/admin/backup":                        a.adminBackup,
		// The admin fallback is guarded too, so only the admin learns
		// which admin paths exist (404, or 405 with Allow).
		adminCatchAll: a.notRoute,
	} {
		a.mux.HandleFunc(pattern, a.adminGuard(h))
	}
	a.adminUserRoutes()
	a.adminClusterRoutes()
	if c.Dashboard != nil {
		a.mux.Handle("GET /dashboard/", c.Dashboard)
		a.mux.Handle("GET /dashboard", http.RedirectHandler("/dashboard/", http.StatusMovedPermanently))
	}
}

// Close stops the admin API's background work (the stats sampler, a drain
// in progress). The handler keeps answering.
func (a *API) Close() {
	if a.adm != nil {
		a.adm.closeOnce.Do(func() { close(a.adm.stop) })
	}
}

// adminGuard lets through only requests bearing the admin token. Nothing is
// read from the request and nothing is done before the token is checked.
func (a *API) adminGuard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if a.adm.cfg.Token == "" {
			writeError(w, http.StatusForbidden, wire.CodeForbidden, "admin API disabled: set --admin-token")
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "Authorization: Bearer <admin token> required")
			return
		}
		got := sha256.Sum256([]byte(token)) // equal lengths: the compare leaks nothing
		if subtle.ConstantTimeCompare(got[:], a.adm.tokenHash[:]) == 1 {
			next(w, r)
			return
		}
		// Not the admin token. A valid user token is a known identity without
		// the right (403); anything else is no identity at all (401).
		if row, err := a.cfg.Accounts.Verify(r.Context(), token); err == nil {
			a.cfg.Metrics.AuthFailed("admin", row.User, r.RemoteAddr, "user token on "+r.Method+" "+r.URL.Path)
			writeError(w, http.StatusForbidden, wire.CodeForbidden, "user tokens cannot use the admin API")
			return
		}
		a.cfg.Metrics.AuthFailed("admin", "", r.RemoteAddr, "wrong admin token on "+r.Method+" "+r.URL.Path)
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "wrong admin token")
	}
}

// adminNode is one node as GET /v1/admin/nodes shows it.
type adminNode struct {
	ID            string            `json:"id"`
	Self          bool              `json:"self"` // the node that answered
	Status        string            `json:"status"`
	Version       string            `json:"version"`
	Go            string            `json:"go"`
	Addresses     map[string]string `json:"addresses"`
	Started       int64             `json:"started"` // unix ms
	UptimeSeconds int64             `json:"uptime_seconds"`
	Connections   int64             `json:"connections"`
	Drain         *drain.Progress   `json:"drain,omitempty"`
}

// Node statuses.
const (
	nodeServing  = "serving"
	nodeDraining = "draining"
	nodeDrained  = "drained"
)

func (a *API) adminNodes(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	c := a.adm.cfg
	n := adminNode{ID: c.Node, Self: true, Status: nodeServing, Version: c.Version, Go: runtime.Version(),
		Addresses: map[string]string{}, Started: c.Started.UnixMilli(),
		UptimeSeconds: int64(time.Since(c.Started).Seconds())}
	if c.Addrs != nil {
		n.Addresses = c.Addrs()
	}
	if c.Broker != nil {
		n.Connections = c.Broker.Clients()
	}
	if d, ok := a.cfg.Drain.Progress(); ok {
		n.Drain, n.Status = &d, nodeDraining
		if d.Done {
			n.Status = nodeDrained
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": []adminNode{n}})
}

// onlyParams refuses query parameters other than allowed, and repeated ones.
func onlyParams(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for k, v := range r.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "unknown parameter "+strconv.Quote(k))
			return false
		}
		if len(v) > 1 {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "parameter "+k+" given more than once")
			return false
		}
	}
	return true
}

// intParam reads an integer parameter in [lo, hi]; def if absent.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int64) (int64, bool) {
	s := r.URL.Query().Get(name)
	if s == "" && !r.URL.Query().Has(name) {
		return def, true
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest,
			name+" must be an integer from "+strconv.FormatInt(lo, 10)+" to "+strconv.FormatInt(hi, 10))
		return 0, false
	}
	return v, true
}

// decodeStrict reads a JSON body that must hold only v's fields, bounded
// like decode's. An empty body leaves v as it is when emptyOK.
func (a *API) decodeStrict(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) bool {
	data, ok := a.readBody(w, r)
	if !ok {
		return false
	}
	if err := wire.CheckDepth(data, wire.MaxDepth); err != nil {
		a.badJSON(w, err)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if emptyOK && errors.Is(err, io.EOF) {
		return true
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		a.badJSON(w, err)
		return false
	}
	return true
}
