package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
)

type clusterStats struct {
	Nodes []struct {
		Node  string `json:"node"`
		Self  bool   `json:"self"`
		Up    bool   `json:"up"`
		Error string `json:"error"`
		Info  *struct {
			Status string `json:"status"`
		} `json:"info"`
		Stats *struct {
			Connections int64 `json:"connections"`
		} `json:"stats"`
	} `json:"nodes"`
	Total struct {
		Nodes, Up   int
		Connections int64
	} `json:"total"`
}

type clusterClients struct {
	Total int `json:"total"`
	Nodes []struct {
		Node  string `json:"node"`
		Up    bool   `json:"up"`
		Total int    `json:"total"`
	} `json:"nodes"`
	Clients []struct {
		Node, ID string
	} `json:"clients"`
	NextCursor string `json:"next_cursor"`
}

// TestClusterAdminViews: three nodes, one client on each. Any node's
// cluster stats and clients answer for all three, each part labelled with
// its node; the clients page across nodes by one cursor; a kick through
// one node reaches the node holding the client. Once a node stops, it is
// listed as down with why, and the views still answer at once.
func TestClusterAdminViews(t *testing.T) {
	c := newCluster(t, sharedPebble(t))
	n1, n2, n3 := c.start("n1"), c.start("n2"), c.start("n3")
	for i, n := range []struct {
		user string
		addr string
	}{{"cara", n1.MQTT}, {"cbob", n2.MQTT}, {"ccid", n3.MQTT}} {
		connect(t, n.addr, n.user, "d", account(t, []*testserver.Server{n1, n2, n3}[i], n.user, "d"))
	}
	var st clusterStats
	wait.For(t, "n2's stats name every node up with its client", 10*time.Second, func() bool {
		st = clusterStats{}
		return adminCluster(t, n2.HTTP, "cluster/stats", &st) == 200 && st.Total.Up == 3 && st.Total.Connections == 3
	})
	for i, n := range st.Nodes {
		if want := []string{"n2", "n1", "n3"}[i]; n.Node != want || !n.Up || n.Self != (i == 0) || n.Stats.Connections != 1 || n.Info.Status != "serving" {
			t.Errorf("node %d: %+v, want %s up with 1 connection, self first", i, n, want)
		}
	}
	var cl clusterClients
	if code := adminCluster(t, n1.HTTP, "cluster/clients?limit=2&user=c", &cl); code != 200 || cl.Total != 3 || len(cl.Clients) != 2 ||
		cl.Clients[0].ID != "cara/d" || cl.Clients[0].Node != "n1" || cl.Clients[1].ID != "cbob/d" || cl.Clients[1].Node != "n2" || cl.NextCursor == "" {
		t.Fatalf("cluster clients, page 1: %d %+v", code, cl)
	}
	cursor := cl.NextCursor
	cl = clusterClients{}
	if code := adminCluster(t, n1.HTTP, "cluster/clients?limit=2&user=c&cursor="+cursor, &cl); code != 200 || len(cl.Clients) != 1 ||
		cl.Clients[0].ID != "ccid/d" || cl.Clients[0].Node != "n3" || cl.NextCursor != "" {
		t.Fatalf("cluster clients, page 2: %d %+v", code, cl)
	}
	if code := adminCluster(t, n1.HTTP, "cluster/clients?user=*", nil); code != 400 {
		t.Errorf("a bad filter: %d", code)
	}
	if code := adminCluster(t, n1.HTTP, "cluster/stats?window=0", nil); code != 400 {
		t.Errorf("a bad window: %d", code)
	}
	if code := httpJSON(t, "GET", n1.HTTP+"/v1/admin/cluster/stats", "wrong", nil, nil); code != 401 {
		t.Errorf("a wrong token: %d", code)
	}

	// A kick through n1 of the client on n3.
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/admin/clients/ccid/d/kick", clusterAdmin, nil, nil); code != 202 {
		t.Fatalf("kick through n1: %d", code)
	}
	wait.For(t, "ccid/d off n3", 10*time.Second, func() bool { return len(n3.Broker().ClientList()) == 0 })

	c.stop("n3")
	start := time.Now()
	st = clusterStats{}
	if code := adminCluster(t, n1.HTTP, "cluster/stats", &st); code != 200 || st.Total.Nodes != 3 || st.Total.Up != 2 {
		t.Fatalf("stats with n3 stopped: %d %+v", code, st)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("stats with n3 stopped took %v", took)
	}
	if n := st.Nodes[2]; n.Node != "n3" || n.Up || !strings.Contains(n.Error, "left the cluster") || n.Stats != nil {
		t.Errorf("stopped n3: %+v", n)
	}
	cl = clusterClients{}
	if code := adminCluster(t, n2.HTTP, "cluster/clients", &cl); code != 200 || cl.Total != 2 || len(cl.Nodes) != 3 || cl.Nodes[2].Up {
		t.Errorf("clients with n3 stopped: %d %+v", code, cl)
	}
}

func adminCluster(t *testing.T, base, path string, out any) int {
	t.Helper()
	return httpJSON(t, "GET", base+"/v1/admin/"+path, clusterAdmin, nil, out)
}
