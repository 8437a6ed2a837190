package api_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/api"
)

// askers is a cluster of other nodes for the cluster views: each answers
// with answer(question), or fails with its error.
type askers map[string]func(q []byte) ([]byte, error)

func (a askers) AskAll(_ context.Context, q []byte) ([]api.NodeAnswer, error) {
	var out []api.NodeAnswer
	for _, node := range []string{"n2", "n3", "n4"} {
		if f, ok := a[node]; ok {
			body, err := f(q)
			out = append(out, api.NodeAnswer{Node: node, Body: body, Err: err})
		}
	}
	return out, nil
}

// TestAnswerNode: another node may have this one run its read-only admin
// GETs (stats, nodes, clients), at most four at once, and nothing else:
// no action (kick, drain, ban, backup), no other route, nothing when the
// admin API is off.
func TestAnswerNode(t *testing.T) {
	r := newRig(t, nil)
	out, err := r.api.AnswerNode(t.Context(), []byte(`{"get":["/v1/admin/nodes","/v1/admin/clients?user=bob&limit=1"]}`))
	if err != nil || !strings.Contains(string(out), `"status":200`) || !strings.Contains(string(out), `"bob/tab"`) || strings.Contains(string(out), "bob/web") {
		t.Fatalf("nodes and clients: %s %v", out, err)
	}
	for _, q := range []string{
		`{"get":["/v1/admin/drain"]}`, `{"get":["/v1/admin/clients/bob/tab/kick"]}`, `{"get":["/v1/admin/bans"]}`,
		`{"get":["/v1/admin/backup"]}`, `{"get":["/v1/conversations"]}`, `{"get":[]}`, `{"get":["%zz"]}`, `not json`,
		`{"get":["/v1/admin/nodes","/v1/admin/nodes","/v1/admin/nodes","/v1/admin/nodes","/v1/admin/nodes"]}`,
	} {
		if out, err := r.api.AnswerNode(t.Context(), []byte(q)); err == nil {
			t.Errorf("%s answered: %s", q, out)
		}
	}
	if r.broker.stopped || len(r.broker.kicked) != 0 {
		t.Error("a question acted")
	}
	off := newRig(t, func(c *api.Config) { c.Admin.Token = "" })
	if _, err := off.api.AnswerNode(t.Context(), []byte(`{"get":["/v1/admin/nodes"]}`)); err == nil {
		t.Error("a node with the admin API off answered")
	}
}

// TestClusterViews: the cluster views list this node first, then each
// other node's part as it answered, a node that failed or answered what
// cannot be read as down with why, and sum what is up, the chart series
// too; a bad parameter is refused as the node-local route refuses it.
func TestClusterViews(t *testing.T) {
	other := newRig(t, func(c *api.Config) { c.Admin.Node = "n2"; c.Admin.SampleEvery = 10 * time.Millisecond })
	r := newRig(t, func(c *api.Config) {
		c.Admin.SampleEvery = 10 * time.Millisecond
		c.Admin.Cluster = askers{
			"n2": func(q []byte) ([]byte, error) { return other.api.AnswerNode(context.Background(), q) },
			"n3": func([]byte) ([]byte, error) { return nil, errors.New("not listening; last seen 9s ago") },
			"n4": func([]byte) ([]byte, error) { return []byte(`[{"status":200}]`), nil },
		}
	})
	var st struct {
		Nodes []struct {
			Node, Error string
			Up, Self    bool
			Stats       *struct{ Connections int64 }
		}
		Total struct{ Nodes, Up, Connections int64 }
	}
	wantJSON(t, r.do("GET", "/v1/admin/cluster/stats", adminToken, ""), http.StatusOK, &st)
	if len(st.Nodes) != 4 || st.Total.Nodes != 4 || st.Total.Up != 2 || st.Total.Connections != 6 {
		t.Fatalf("cluster stats: %+v", st)
	}
	for i, want := range []string{"n1 up", "n2 up", "n3 not listening", "n4 an answer this node cannot read"} {
		n := st.Nodes[i]
		got := n.Node + " " + n.Error
		if n.Up {
			got = n.Node + " up"
		}
		if !strings.HasPrefix(got, want) || n.Self != (i == 0) || (n.Stats != nil) != n.Up {
			t.Errorf("node %d: %+v, want %s", i, n, want)
		}
	}
	// Both nodes sample their three clients every 10 ms: the cluster's
	// series counts six once both have reached a second.
	var series struct {
		Series []struct {
			T     int64
			Conns int64
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		wantJSON(t, r.do("GET", "/v1/admin/cluster/stats?since=0", adminToken, ""), http.StatusOK, &series)
		if n := len(series.Series); n > 0 && series.Series[n-1].Conns == 6 && series.Series[n-1].T%1000 == 999 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster series never summed both nodes: %+v", series)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(series.Series); n > 600 || series.Series[0].Conns > 6 {
		t.Errorf("cluster series: %+v", series)
	}
	var cl struct {
		Total   int
		Clients []struct{ Node, ID string }
		Next    string `json:"next_cursor"`
	}
	wantJSON(t, r.do("GET", "/v1/admin/cluster/clients?user=bob&limit=2", adminToken, ""), http.StatusOK, &cl)
	if cl.Total != 4 || len(cl.Clients) != 2 || cl.Clients[0].ID != "bob/tab" || cl.Clients[1].ID != "bob/tab" ||
		cl.Clients[0].Node != "n1" || cl.Clients[1].Node != "n2" || cl.Next == "" {
		t.Fatalf("cluster clients: %+v", cl)
	}
	// Both nodes list both of bob's clients (as in a takeover): paging
	// one at a time still sees every copy, each once.
	var seen []string
	for q, pages := "", 0; ; pages++ {
		if pages == 4 {
			t.Fatalf("no end of pages: %v", seen)
		}
		cl.Next = ""
		wantJSON(t, r.do("GET", "/v1/admin/cluster/clients?user=bob&limit=1"+q, adminToken, ""), http.StatusOK, &cl)
		for _, c := range cl.Clients {
			seen = append(seen, c.Node+" "+c.ID)
		}
		if cl.Next == "" {
			break
		}
		q = "&cursor=" + cl.Next
	}
	if want := []string{"n1 bob/tab", "n2 bob/tab", "n1 bob/web", "n2 bob/web"}; !slices.Equal(seen, want) {
		t.Errorf("paged one by one: %v, want %v", seen, want)
	}
	wantError(t, r.do("GET", "/v1/admin/cluster/clients?user=*", adminToken, ""), http.StatusBadRequest, "bad_request")
	wantError(t, r.do("GET", "/v1/admin/cluster/stats?window=601", adminToken, ""), http.StatusBadRequest, "bad_request")
	wantError(t, r.do("GET", "/v1/admin/cluster/stats?since=-1", adminToken, ""), http.StatusBadRequest, "bad_request")
	wantError(t, r.do("GET", "/v1/admin/cluster/stats", "", ""), http.StatusUnauthorized, "unauthorized")
}
