package api_test

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/bans"
	"github.com/imqtt/imqtt/internal/drain"
	"github.com/imqtt/imqtt/wire"
)

func count(v *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(v.WithLabelValues(label))
}

func banOf(user string) bans.Ban { return bans.Ban{User: user} }

// TestAdminGuard: the admin API answers only the admin token: none is 401,
// a user's token 403, a wrong one 401 (both counted); with no admin token
// configured everything is 403, and nothing runs.
func TestAdminGuard(t *testing.T) {
	r := newRig(t, nil)
	wantError(t, r.do("GET", "/v1/admin/nodes", "", ""), http.StatusUnauthorized, wire.CodeUnauthorized)
	wantError(t, r.do("GET", "/v1/admin/nodes", "tok-alice-phone", ""), http.StatusForbidden, wire.CodeForbidden)
	wantError(t, r.do("POST", "/v1/admin/drain", "guess", ""), http.StatusUnauthorized, wire.CodeUnauthorized)
	if n := count(r.m.AuthFailures, "admin"); n != 2 {
		t.Errorf("%v admin refusals counted, want 2", n)
	}
	if w := r.do("GET", "/v1/admin/nodes", adminToken, ""); w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("nodes: %d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
	wantError(t, r.do("GET", "/v1/admin/nothing", adminToken, ""), http.StatusNotFound, wire.CodeNotFound)

	off := newRig(t, func(c *api.Config) { c.Admin.Token = "" })
	wantError(t, off.do("GET", "/v1/admin/nodes", "", ""), http.StatusForbidden, wire.CodeForbidden)
	wantError(t, off.do("POST", "/v1/admin/drain", "", "{}"), http.StatusForbidden, wire.CodeForbidden)
	if off.broker.stopped {
		t.Error("a refused drain stopped the broker")
	}
}

// TestAdminBans: a ban is stored and disconnects the clients it covers on
// this node; a bad one is 400 before the list is asked; unban is 204, then
// 404; with no ban list, 501.
func TestAdminBans(t *testing.T) {
	r := newRig(t, nil)
	var b struct {
		bans.Ban
		Kicked int `json:"kicked"`
	}
	wantJSON(t, r.do("POST", "/v1/admin/bans", adminToken, `{"user":"bob","seconds":60,"reason":"spam"}`), http.StatusCreated, &b)
	if b.ID == "" || b.User != "bob" || b.Kicked != 2 || b.Expires < time.Now().UnixMilli() {
		t.Errorf("ban %+v", b)
	}
	if !slices.Equal(r.broker.kicked, []string{"bob/tab", "bob/web"}) {
		t.Errorf("kicked %v, want bob's two clients", r.broker.kicked)
	}
	wantError(t, r.do("POST", "/v1/admin/bans", adminToken, `{"user":"bob","ip":"10.0.0.1"}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/admin/bans", adminToken, `{"user":"bob","seconds":-1}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/admin/bans", adminToken, `{"user":"bob","why":"?"}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/admin/bans?x=1", adminToken, `{"user":"bob"}`), http.StatusBadRequest, wire.CodeBadRequest)
	var all struct{ Bans []bans.Ban }
	wantJSON(t, r.do("GET", "/v1/admin/bans", adminToken, ""), http.StatusOK, &all)
	if len(all.Bans) != 1 {
		t.Errorf("bans %+v", all)
	}
	if w := r.do("DELETE", "/v1/admin/bans/"+b.ID, adminToken, ""); w.Code != http.StatusNoContent {
		t.Errorf("unban: %d", w.Code)
	}
	wantError(t, r.do("DELETE", "/v1/admin/bans/"+b.ID, adminToken, ""), http.StatusNotFound, wire.CodeNotFound)

	none := newRig(t, func(c *api.Config) { c.Admin.Bans = nil })
	wantError(t, none.do("POST", "/v1/admin/bans", adminToken, `{"user":"bob"}`), http.StatusNotImplemented, wire.CodeInternal)
}

// TestAdminClients: the client list filters, pages with a cursor, and
// refuses what no filter can be; a client's detail and kick find it by
// {user}/{device}.
func TestAdminClients(t *testing.T) {
	r := newRig(t, nil)
	type page struct {
		Total   int `json:"total"`
		Clients []struct {
			ID   string `json:"id"`
			MQTT string `json:"mqtt"`
		} `json:"clients"`
		NextCursor string `json:"next_cursor"`
	}
	var p page
	wantJSON(t, r.do("GET", "/v1/admin/clients?user=BO&limit=1", adminToken, ""), http.StatusOK, &p)
	if p.Total != 2 || len(p.Clients) != 1 || p.Clients[0].ID != "bob/tab" || p.Clients[0].MQTT != "3.1.1" || p.NextCursor == "" {
		t.Fatalf("first page %+v", p)
	}
	cursor := p.NextCursor
	p = page{}
	wantJSON(t, r.do("GET", "/v1/admin/clients?user=bo&limit=1&cursor="+cursor, adminToken, ""), http.StatusOK, &p)
	if len(p.Clients) != 1 || p.Clients[0].ID != "bob/web" || p.NextCursor != "" {
		t.Fatalf("second page %+v", p)
	}
	p = page{}
	wantJSON(t, r.do("GET", "/v1/admin/clients?ip=2001:db8", adminToken, ""), http.StatusOK, &p)
	if p.Total != 1 || p.Clients[0].ID != "bob/web" {
		t.Errorf("by IPv6 prefix %+v", p)
	}
	for _, q := range []string{"user=a%2Fb", "limit=0", "limit=501", "cursor=%21%21", "cursor=", "sort=id", "user=a&user=b"} {
		wantError(t, r.do("GET", "/v1/admin/clients?"+q, adminToken, ""), http.StatusBadRequest, wire.CodeBadRequest)
	}
	var d struct {
		ID            string `json:"id"`
		Subscriptions []struct {
			Filter string `json:"filter"`
		} `json:"subscriptions"`
	}
	wantJSON(t, r.do("GET", "/v1/admin/clients/Alice/phone", adminToken, ""), http.StatusOK, &d)
	if d.ID != "alice/phone" || len(d.Subscriptions) != 1 {
		t.Errorf("detail %+v", d)
	}
	wantError(t, r.do("GET", "/v1/admin/clients/carol/phone", adminToken, ""), http.StatusNotFound, wire.CodeNotFound)
	wantJSON(t, r.do("POST", "/v1/admin/clients/alice/phone/kick", adminToken, ""), http.StatusOK, nil)
	wantError(t, r.do("POST", "/v1/admin/clients/carol/phone/kick", adminToken, ""), http.StatusNotFound, wire.CodeNotFound)
	wantError(t, r.do("POST", "/v1/admin/clients/.x/phone/kick", adminToken, ""), http.StatusBadRequest, wire.CodeBadRequest)
	if !slices.Equal(r.broker.kicked, []string{"alice/phone"}) {
		t.Errorf("kicked %v", r.broker.kicked)
	}
}

// TestAdminNoticeDrain: a notice goes to one user's inbox, or once to each
// user connected here; a drain stops accepting, starts the waves, makes
// /readyz 503, and a second POST reports it without starting another. The
// drain is the node's drain state's: it leaves the node list once and is
// told of the waves.
func TestAdminNoticeDrain(t *testing.T) {
	var left atomic.Int32
	st := drain.New(func() { left.Add(1) })
	r := newRig(t, func(c *api.Config) { c.Drain = st })
	wantJSON(t, r.do("POST", "/v1/admin/notice", adminToken, `{"text":"maintenance at noon"}`), http.StatusOK, nil)
	wantJSON(t, r.do("POST", "/v1/admin/notice", adminToken, `{"text":"hi","user":"Carol"}`), http.StatusOK, nil)
	if want := []string{"im/u/alice/inbox", "im/u/bob/inbox", "im/u/carol/inbox"}; !slices.Equal(r.pub.topics, want) {
		t.Errorf("notices on %v, want %v", r.pub.topics, want)
	}
	wantError(t, r.do("POST", "/v1/admin/notice", adminToken, `{"text":"  "}`), http.StatusBadRequest, wire.CodeBadRequest)
	wantError(t, r.do("POST", "/v1/admin/notice", adminToken, `{"text":"x","user":"a b"}`), http.StatusBadRequest, wire.CodeBadRequest)

	wantError(t, r.do("POST", "/v1/admin/drain", adminToken, `{"percent":0}`), http.StatusBadRequest, wire.CodeBadRequest)
	if r.broker.stopped || st.Draining() || left.Load() != 0 {
		t.Fatal("a refused drain stopped the broker or began the drain")
	}
	wantJSON(t, r.do("POST", "/v1/admin/drain", adminToken, `{"percent":50,"interval_ms":100}`), http.StatusAccepted, nil)
	select {
	case per := <-r.broker.drainReq:
		if per != 2 { // half of 3 clients, rounded up
			t.Errorf("waves of %d, want 2", per)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not start")
	}
	if !r.broker.stopped {
		t.Error("the broker still accepts connections")
	}
	wantJSON(t, r.do("POST", "/v1/admin/drain", adminToken, ""), http.StatusOK, nil)
	if w := r.do("GET", "/readyz", "", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: %d", w.Code)
	}
	r.broker.mu.Lock()
	waves := r.broker.waves
	r.broker.mu.Unlock()
	if p, ok := st.Progress(); !ok || p.Total != 3 || p.Percent != 50 || left.Load() != 1 || waves != broker.Waves(st) {
		t.Errorf("the drain state: %+v %v, left %d times, waves told to %v", p, ok, left.Load(), waves)
	}
	var nodes struct {
		Nodes []struct {
			Status string `json:"status"`
		} `json:"nodes"`
	}
	wantJSON(t, r.do("GET", "/v1/admin/nodes", adminToken, ""), http.StatusOK, &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].Status != "draining" {
		t.Errorf("nodes %+v", nodes)
	}
}
