package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The cluster views (docs/http.md#cluster): GET /v1/admin/cluster/stats and
// /v1/admin/cluster/clients answer for every node. The node asked answers
// for itself and asks the others at once over Redis (ClusterAsker), within
// the asker's deadline; a node that is down, gone or slow is listed as
// down with why, never waited on past it. On one node
// (no cluster) they answer for it alone. Each node answers with its own
// GET /v1/admin/stats, /nodes and /clients, so every node's part is what
// that node would say.

// NodeAnswer is one other node's answer to a question, or why there is none.
type NodeAnswer struct {
	Node string
	Body []byte
	Err  error
}

// ClusterAsker asks every other node of the cluster a question (the
// daemon's cluster.Asker): the answers are what each node's AnswerNode
// returned. It returns when all have answered or ctx ends, and bounds the
// wait itself when ctx has no deadline (cluster.AskOptions.Deadline).
type ClusterAsker interface {
	AskAll(ctx context.Context, question []byte) ([]NodeAnswer, error)
}

// nodeQuestion is what one node asks another: admin GETs to run there.
type nodeQuestion struct {
	Get []string `json:"get"`
}

// nodeReply is the answer to one of those GETs.
type nodeReply struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// askable are the routes another node may ask this one to run: reads only.
func (a *API) askable(path string) http.HandlerFunc {
	switch path {
	case "/v1/admin/stats":
		return a.adminStats
	case "/v1/admin/nodes":
		return a.adminNodes
	case "/v1/admin/clients":
		return a.adminClients
	}
	return nil
}

// maxAsked bounds the GETs of one question.
const maxAsked = 4

// AnswerNode answers another node's question (cluster.AskOptions.Answer):
// it runs the admin GETs asked, read-only routes only, and returns their
// replies.
func (a *API) AnswerNode(ctx context.Context, question []byte) ([]byte, error) {
	if a.adm == nil || a.adm.cfg.Token == "" {
		return nil, errors.New("admin API disabled on this node")
	}
	var q nodeQuestion
	if err := json.Unmarshal(question, &q); err != nil || len(q.Get) == 0 || len(q.Get) > maxAsked {
		return nil, errors.New("not a question of this version")
	}
	out := make([]nodeReply, 0, len(q.Get))
	for _, target := range q.Get {
		status, body := a.runLocal(ctx, target)
		if status == 0 {
			return nil, errors.New("not a question of this version: " + target)
		}
		out = append(out, nodeReply{Status: status, Body: body})
	}
	return json.Marshal(out)
}

// runLocal runs one askable GET here; status 0 if target is not one.
func (a *API) runLocal(ctx context.Context, target string) (int, []byte) {
	u, err := url.Parse(target)
	if err != nil {
		return 0, nil
	}
	h := a.askable(u.Path)
	if h == nil {
		return 0, nil
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h(rec, r)
	return rec.status, rec.body.Bytes()
}

// recorder is an http.ResponseWriter that keeps the reply.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

// nodePart is one node's part of a cluster view.
type nodePart struct {
	Node  string `json:"node"`
	Self  bool   `json:"self,omitempty"` // the node that answered
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"` // why it is down
}

// askEveryone runs the GETs here and on every other node; parts[0] is
// this node's. A node whose reply is not 200 to each is down with why.
func (a *API) askEveryone(ctx context.Context, gets ...string) ([]nodePart, [][]nodeReply) {
	parts := []nodePart{{Node: a.adm.cfg.Node, Self: true, Up: true}}
	local := make([]nodeReply, len(gets))
	for i, g := range gets {
		local[i].Status, local[i].Body = a.runLocal(ctx, g)
	}
	replies := [][]nodeReply{local}
	c := a.adm.cfg.Cluster
	if c == nil {
		return parts, replies
	}
	q, _ := json.Marshal(nodeQuestion{Get: gets})
	answers, err := c.AskAll(ctx, q)
	if err != nil {
		a.log.Warn("admin: ask the other nodes", "err", err)
		parts[0].Error = "the other nodes could not be listed: " + err.Error()
		return parts, replies
	}
	for _, ans := range answers {
		p := nodePart{Node: ans.Node}
		var rs []nodeReply
		switch {
		case ans.Err != nil:
			p.Error = ans.Err.Error()
		case json.Unmarshal(ans.Body, &rs) != nil || len(rs) != len(gets):
			p.Error = "an answer this node cannot read"
		default:
			p.Up = true
			for _, r := range rs {
				if r.Status != http.StatusOK {
					p.Up, p.Error = false, "answered "+http.StatusText(r.Status)+": "+string(r.Body)
				}
			}
		}
		parts = append(parts, p)
		replies = append(replies, rs)
	}
	return parts, replies
}

// localFailed answers this node's own non-200 reply (a bad parameter)
// as it is, and says so.
func localFailed(w http.ResponseWriter, replies [][]nodeReply) bool {
	for _, r := range replies[0] {
		if r.Status != http.StatusOK {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(r.Status)
			w.Write(r.Body)
			return true
		}
	}
	return false
}

// clusterStatsNode is one node in GET /v1/admin/cluster/stats.
type clusterStatsNode struct {
	nodePart
	Info  *adminNode       `json:"info,omitempty"`
	Stats *adminStatsReply `json:"stats,omitempty"`
}

// adminClusterStats answers every node's GET /v1/admin/nodes and
// /v1/admin/stats (?window=; its chart points after ?since= summed into
// the cluster's series, not per node) and their sums.
func (a *API) adminClusterStats(w http.ResponseWriter, r *http.Request) {
	window, since, ok := statsParams(w, r)
	if !ok {
		return
	}
	stats := "/v1/admin/stats?window=" + strconv.FormatInt(window, 10)
	if since >= 0 {
		stats += "&since=" + strconv.FormatInt(since, 10)
	}
	parts, replies := a.askEveryone(r.Context(), "/v1/admin/nodes", stats)
	if localFailed(w, replies) {
		return
	}
	out := struct {
		TS    int64              `json:"ts"`
		Nodes []clusterStatsNode `json:"nodes"`
		Total struct {
			Nodes        int     `json:"nodes"`
			Up           int     `json:"up"`
			Connections  int64   `json:"connections"`
			InPerSec     float64 `json:"in_per_sec"`
			OutPerSec    float64 `json:"out_per_sec"`
			StoredPerSec float64 `json:"stored_per_sec"`
			ErrorsPerSec float64 `json:"errors_per_sec"`
		} `json:"total"`
		Series []point `json:"series"` // the cluster's, per second, after ?since=
	}{TS: time.Now().UnixMilli(), Nodes: []clusterStatsNode{}}
	var series [][]point
	for i, p := range parts {
		n := clusterStatsNode{nodePart: p}
		out.Total.Nodes++
		if p.Up {
			var nodes struct {
				Nodes []adminNode `json:"nodes"`
			}
			var st adminStatsReply
			if json.Unmarshal(replies[i][0].Body, &nodes) != nil || len(nodes.Nodes) != 1 || json.Unmarshal(replies[i][1].Body, &st) != nil {
				n.Up, n.Error = false, "an answer this node cannot read"
			} else {
				nodes.Nodes[0].Self = p.Self
				n.Info, n.Stats = &nodes.Nodes[0], &st
				series = append(series, st.Series)
				st.Series = nil
				out.Total.Up++
				out.Total.Connections += st.Connections
				out.Total.InPerSec += st.Messages.InPerSec
				out.Total.OutPerSec += st.Messages.OutPerSec
				out.Total.StoredPerSec += st.Messages.StoredPerSec
				out.Total.ErrorsPerSec += st.PerSec.Errors
			}
		}
		out.Nodes = append(out.Nodes, n)
	}
	out.Series = clusterSeries(series)
	writeJSON(w, http.StatusOK, out)
}

// clusterSeries sums the nodes' chart points by the second they end in
// (each node's latest in that second): connections and rates add up,
// latencies and the batch are the worst node's. Each point's t is the end
// of its second. A second is given only once every node with points has
// reached it, so a node sampling a little later than another is not left
// out of it, and asking again with ?since= the last t misses none. At
// most the node-local series' 600 points, the newest.
func clusterSeries(nodes [][]point) []point {
	const maxPoints = 600
	upTo := int64(math.MaxInt64) // the last second every node reached
	for _, s := range nodes {
		if len(s) > 0 {
			upTo = min(upTo, s[len(s)-1].T/1000)
		}
	}
	type key struct{ sec, node int64 }
	latest := map[key]point{}
	for i, s := range nodes {
		for _, p := range s {
			if p.T/1000 <= upTo {
				latest[key{p.T / 1000, int64(i)}] = p
			}
		}
	}
	bySec := map[int64]*point{}
	for k, p := range latest {
		sum := bySec[k.sec]
		if sum == nil {
			p.T = k.sec*1000 + 999
			bySec[k.sec] = &p
			continue
		}
		sum.Conns += p.Conns
		sum.In, sum.Out = roundRate(sum.In+p.In), roundRate(sum.Out+p.Out)
		sum.Errors, sum.Denials = roundRate(sum.Errors+p.Errors), roundRate(sum.Denials+p.Denials)
		sum.AckP50, sum.AckP99, sum.Batch = worse(sum.AckP50, p.AckP50), worse(sum.AckP99, p.AckP99), worse(sum.Batch, p.Batch)
		sum.CommitP50, sum.CommitP99 = worse(sum.CommitP50, p.CommitP50), worse(sum.CommitP99, p.CommitP99)
	}
	out := make([]point, 0, len(bySec))
	for _, p := range bySec {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(x, y point) int { return cmp.Compare(x.T, y.T) })
	if len(out) > maxPoints {
		out = out[len(out)-maxPoints:]
	}
	return out
}

func roundRate(v float64) float64 { return math.Round(v*1000) / 1000 }

// worse is the larger of two figures either of which may be unknown.
func worse(x, y num) num {
	if x == nil || (y != nil && *y > *x) {
		return y
	}
	return x
}

// clientsPage is a node's GET /v1/admin/clients.
type clientsPage struct {
	Total      int           `json:"total"`
	Clients    []adminClient `json:"clients"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// adminClusterClients lists the clients of every node, merged by client
// ID, with the filters and paging of GET /v1/admin/clients: every node
// pages by client ID, so a next_cursor serves them all.
func (a *API) adminClusterClients(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r, "user", "device", "ip", "limit", "cursor") {
		return
	}
	limit, ok := intParam(w, r, "limit", 50, 1, MaxClientsPage)
	if !ok {
		return
	}
	parts, replies := a.askEveryone(r.Context(), "/v1/admin/clients?"+r.URL.RawQuery)
	if localFailed(w, replies) {
		return
	}
	type nodeClients struct {
		nodePart
		Total int `json:"total"` // its clients matching the filters
	}
	out := struct {
		Total      int           `json:"total"`
		Nodes      []nodeClients `json:"nodes"`
		Clients    []adminClient `json:"clients"`
		NextCursor string        `json:"next_cursor,omitempty"`
	}{Nodes: []nodeClients{}, Clients: []adminClient{}}
	more := false
	for i, p := range parts {
		n := nodeClients{nodePart: p}
		if p.Up {
			var page clientsPage
			if json.Unmarshal(replies[i][0].Body, &page) != nil {
				n.Up, n.Error = false, "an answer this node cannot read"
			} else {
				n.Total = page.Total
				out.Total += page.Total
				out.Clients = append(out.Clients, page.Clients...)
				more = more || page.NextCursor != ""
			}
		}
		out.Nodes = append(out.Nodes, n)
	}
	slices.SortFunc(out.Clients, func(x, y adminClient) int {
		return cmp.Or(strings.Compare(x.ID, y.ID), strings.Compare(x.Node, y.Node))
	})
	if end := int(limit); len(out.Clients) > end {
		// The cursor is a client ID, so the copies of one ID (a takeover
		// in flight lists it on two nodes) go on one page: a cut between
		// them would lose the later ones. Every node's copy is here: each
		// listed its first limit clients after the cursor.
		for end < len(out.Clients) && out.Clients[end].ID == out.Clients[end-1].ID {
			end++
		}
		out.Clients, more = out.Clients[:end], more || end < len(out.Clients)
	}
	if more && len(out.Clients) > 0 {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(out.Clients[len(out.Clients)-1].ID))
	}
	writeJSON(w, http.StatusOK, out)
}

// adminClusterRoutes registers the cluster views.
func (a *API) adminClusterRoutes() {
	a.mux.HandleFunc("GET /v1/admin/cluster/stats", a.adminGuard(a.adminClusterStats))
	a.mux.HandleFunc("GET /v1/admin/cluster/clients", a.adminGuard(a.adminClusterClients))
}
