package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/wire"
)

// MaxClientsPage is the largest limit GET /v1/admin/clients takes.
const MaxClientsPage = 500

// adminClient is one connected client as the admin API shows it.
type adminClient struct {
	Node              string `json:"node"`
	ID                string `json:"id"` // {user}/{device}
	User              string `json:"user"`
	Device            string `json:"device"`
	Remote            string `json:"remote"`
	Listener          string `json:"listener"` // tcp, tls, ws
	MQTT              string `json:"mqtt"`     // 3.1.1 or 5
	Keepalive         uint16 `json:"keepalive"`
	Since             int64  `json:"since,omitempty"` // connected since, unix ms
	Inflight          int    `json:"inflight"`
	SubscriptionCount int    `json:"subscription_count"`
}

// adminClientDetail adds what GET /v1/admin/clients/{user}/{device} shows.
type adminClientDetail struct {
	adminClient
	Clean         bool                `json:"clean"`
	Subscriptions []adminSubscription `json:"subscriptions"`
	// HeadVer is the user's latest version: a device that is up to date has
	// seen it. (The device's own cursor lives on the device.)
	HeadVer *uint64 `json:"head_ver,omitempty"`
}

type adminSubscription struct {
	Filter string `json:"filter"`
	QoS    byte   `json:"qos"`
}

// Filters of GET /v1/admin/clients: substrings, so only the characters IDs
// and addresses can hold.
var (
	userFilterRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]{0,64}$`)
	deviceFilterRe = regexp.MustCompile(`^[A-Za-z0-9_-]{0,64}$`)
	ipFilterRe     = regexp.MustCompile(`^[0-9A-Fa-f.:\[\]]{0,47}$`)
)

func (a *API) toAdminClient(ci broker.ClientInfo) adminClient {
	user, device, _ := wire.SplitClientID(ci.ID)
	v := "3.1.1"
	switch ci.Protocol {
	case 5:
		v = "5"
	case 3:
		v = "3.1"
	}
	return adminClient{Node: a.adm.cfg.Node, ID: ci.ID, User: user, Device: device, Remote: ci.Remote, Listener: ci.Listener,
		MQTT: v, Keepalive: ci.Keepalive, Inflight: ci.Inflight, SubscriptionCount: ci.Subscriptions}
}

// adminClients lists this node's connected clients ordered by client ID:
// ?user=&device=&ip= are substring filters (case-insensitive), ?limit= (1 to
// 500, default 50) and ?cursor= (next_cursor of the previous page) page.
func (a *API) adminClients(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r, "user", "device", "ip", "limit", "cursor") {
		return
	}
	q := r.URL.Query()
	user, device, ip := q.Get("user"), q.Get("device"), q.Get("ip")
	switch {
	case !userFilterRe.MatchString(user):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "user filter: up to 64 of [A-Za-z0-9_.-]")
		return
	case !deviceFilterRe.MatchString(device):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "device filter: up to 64 of [A-Za-z0-9_-]")
		return
	case !ipFilterRe.MatchString(ip):
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "ip filter: part of an IPv4 or IPv6 address")
		return
	}
	limit, ok := intParam(w, r, "limit", 50, 1, MaxClientsPage)
	if !ok {
		return
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		u, d, ok := wire.SplitClientID(string(raw))
		if err != nil || !ok || !wire.ValidUser(u) || !wire.ValidDevice(d) {
			writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "cursor: not a next_cursor of this API")
			return
		}
		after = string(raw)
	} else if q.Has("cursor") {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "cursor: empty")
		return
	}
	user, device, ip = strings.ToLower(user), strings.ToLower(device), strings.ToLower(ip)
	var match []broker.ClientInfo
	for _, ci := range a.adm.cfg.Broker.ClientList() {
		u, d, ok := wire.SplitClientID(ci.ID)
		if !ok {
			continue
		}
		host, _ := splitHost(ci.Remote)
		if strings.Contains(strings.ToLower(u), user) && strings.Contains(strings.ToLower(d), device) &&
			strings.Contains(strings.ToLower(host), ip) {
			match = append(match, ci)
		}
	}
	slices.SortFunc(match, func(x, y broker.ClientInfo) int { return strings.Compare(x.ID, y.ID) })
	out := struct {
		Node       string        `json:"node"`
		Total      int           `json:"total"` // clients matching the filters, on all pages
		Clients    []adminClient `json:"clients"`
		NextCursor string        `json:"next_cursor,omitempty"`
	}{Node: a.adm.cfg.Node, Total: len(match), Clients: []adminClient{}}
	start, _ := slices.BinarySearchFunc(match, after, func(ci broker.ClientInfo, id string) int { return strings.Compare(ci.ID, id) })
	if after != "" && start < len(match) && match[start].ID == after {
		start++
	}
	rest := match[start:]
	page := rest[:min(int(limit), len(rest))]
	for _, ci := range page {
		out.Clients = append(out.Clients, a.toAdminClient(ci))
	}
	a.fillSince(r.Context(), out.Clients)
	if len(page) < len(rest) {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].ID))
	}
	writeJSON(w, http.StatusOK, out)
}

// fillSince sets when each client connected, from presence: one lookup per
// distinct user of the page.
func (a *API) fillSince(ctx context.Context, cs []adminClient) {
	p := a.adm.cfg.Presence
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	since := map[string]int64{}
	seen := map[string]bool{}
	for _, c := range cs {
		if seen[c.User] {
			continue
		}
		seen[c.User] = true
		devs, err := p.Devices(ctx, c.User)
		if err != nil {
			a.log.Warn("admin: presence", "user", c.User, "err", err)
			return
		}
		for _, d := range devs {
			if d.Node == a.adm.cfg.Node {
				since[wire.ClientID(d.User, d.Device)] = d.Since
			}
		}
	}
	for i := range cs {
		cs[i].Since = since[cs[i].ID]
	}
}

// clientPath validates {user}/{device} of the path.
func clientPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	user, ok := wire.NormUser(r.PathValue("user"))
	device := r.PathValue("device")
	if !ok || !wire.ValidDevice(device) {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "client must be {user}/{device} with valid IDs")
		return "", false
	}
	return wire.ClientID(user, device), true
}

func (a *API) adminClient(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	id, ok := clientPath(w, r)
	if !ok {
		return
	}
	ci, subs, ok := a.adm.cfg.Broker.ClientDetail(id)
	if !ok {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, id+" is not connected to node "+a.adm.cfg.Node)
		return
	}
	d := adminClientDetail{adminClient: a.toAdminClient(ci), Clean: ci.Clean, Subscriptions: []adminSubscription{}}
	for _, s := range subs {
		d.Subscriptions = append(d.Subscriptions, adminSubscription{Filter: s.Filter, QoS: s.QoS})
	}
	one := []adminClient{d.adminClient}
	a.fillSince(r.Context(), one)
	d.Since = one[0].Since
	if a.adm.cfg.Head != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if v, err := a.adm.cfg.Head(ctx, d.User); err == nil {
			d.HeadVer = &v
		} else {
			a.log.Warn("admin: head version", "user", d.User, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, d)
}

// adminKick disconnects a client of this node (MQTT 5 reason 0x98,
// administrative action). The device may reconnect; ban it to keep it out.
func (a *API) adminKick(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	id, ok := clientPath(w, r)
	if !ok {
		return
	}
	if !a.adm.cfg.Broker.Kick(id, packets.ErrAdministrativeAction) {
		if node := a.kickElsewhere(r.Context(), id); node != "" {
			a.log.Info("admin: kick sent", "client", id, "node", node, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusAccepted, map[string]any{"node": node, "kicked": id})
			return
		}
		writeError(w, http.StatusNotFound, wire.CodeNotFound, id+" is not connected")
		return
	}
	a.log.Info("admin: kicked", "client", id, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"node": a.adm.cfg.Node, "kicked": id})
}

// splitHost returns the host of host:port (IPv6 without brackets).
func splitHost(remote string) (string, string) {
	i := strings.LastIndexByte(remote, ':')
	if i < 0 {
		return remote, ""
	}
	return strings.Trim(remote[:i], "[]"), remote[i+1:]
}

// kickElsewhere asks the node that presence says holds id to disconnect it
// (scale-out), and returns that node; "" if no other node holds it.
func (a *API) kickElsewhere(ctx context.Context, id string) string {
	user, device, _ := wire.SplitClientID(id)
	if a.adm.cfg.Remote == nil || a.adm.cfg.Presence == nil {
		return ""
	}
	devs, err := a.adm.cfg.Presence.Devices(ctx, user)
	if err != nil {
		a.log.Warn("admin: kick: look up devices", "user", user, "err", err)
		return ""
	}
	for _, d := range devs {
		if d.Device == device && d.Node != a.adm.cfg.Node {
			a.adm.cfg.Remote.KickOn(d.Node, id)
			return d.Node
		}
	}
	return ""
}
