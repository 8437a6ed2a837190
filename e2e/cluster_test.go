package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/redistest"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
	"github.com/imqtt/imqtt/wire"
)

const clusterAdmin = "cluster-admin-token"

// cluster is N imqttd nodes in this process over one real redis-server and
// one store: a MongoDB URI that each node opens itself, as in production,
// or a store.Store shared in the process.
type cluster struct {
	t     *testing.T
	st    store.Store
	mongo string // a MongoDB URI; when set, st is nil
	// sendRate is the nodes' --max-send-rate and burst (set before start;
	// 0: testserver's)
	sendRate int64
	// edit, if set, adjusts each node's configuration last
	edit    func(*daemon.Config)
	redis   *redistest.Server
	prefix  string
	mu      sync.Mutex
	nodes   map[string]*testserver.Server
	stopped map[string]bool
}

// newCluster makes a cluster over st, a store.Store or a MongoDB URI.
func newCluster(t *testing.T, st any) *cluster {
	t.Helper()
	r, err := redistest.Start(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	b := make([]byte, 4)
	rand.Read(b)
	c := &cluster{t: t, redis: r, prefix: "c" + hex.EncodeToString(b) + ":", nodes: map[string]*testserver.Server{},
		stopped: map[string]bool{}}
	switch st := st.(type) {
	case store.Store:
		c.st = st
	case string:
		c.mongo = st
	default:
		t.Fatalf("newCluster: store %T", st)
	}
	return c
}

// start starts node id (stopped when the test ends).
func (c *cluster) start(id string) *testserver.Server {
	c.t.Helper()
	s := testserver.Start(c.t, func(cfg *daemon.Config) {
		cfg.NodeID, cfg.RedisURL, cfg.RedisPrefix = id, c.redis.URL(), c.prefix
		if c.st != nil {
			cfg.Store = c.st
		} else {
			cfg.MongoURI = c.mongo
		}
		cfg.DrainPeriod, cfg.AdminToken = 500*time.Millisecond, clusterAdmin
		if c.sendRate != 0 {
			cfg.SendRate, cfg.SendBurst = c.sendRate, int(c.sendRate)
		}
		if c.edit != nil {
			c.edit(cfg)
		}
	})
	c.mu.Lock()
	c.nodes[id] = s
	c.mu.Unlock()
	return s
}

// live returns the HTTP base URLs of the nodes not stopped.
func (c *cluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
		if !c.stopped[id] {
			out = append(out, c.nodes[id].HTTP)
		}
	}
	return out
}

func (c *cluster) stop(id string) {
	c.t.Helper()
	c.mu.Lock()
	s := c.nodes[id]
	c.stopped[id] = true
	c.mu.Unlock()
	s.Stop(c.t)
}

// balancer is an HTTP load balancer in front of the live nodes, as the
// one a deployment puts there: clients reach /v1/endpoints through it.
func (c *cluster) balancer() string {
	var next atomic.Int64
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		live := c.live()
		if len(live) == 0 {
			return
		}
		u, _ := url.Parse(live[int(next.Add(1))%len(live)])
		r.SetURL(u)
	}}
	srv := &http.Server{Handler: proxy}
	ln := listen(c.t)
	go srv.Serve(ln)
	c.t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// received collects the messages a device was handed by the SDK.
type received struct {
	mu   sync.Mutex
	msgs []wire.Msg
}

func (r *received) on(ev client.Event) {
	if ev.Kind == wire.KindMsg && ev.Msg != nil {
		r.mu.Lock()
		r.msgs = append(r.msgs, *ev.Msg)
		r.mu.Unlock()
	}
}

// bodies are the bodies of the messages from user (or to group, if group).
func (r *received) bodies(from, group string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		if m.From == from && m.Group == group {
			out = append(out, m.Body)
		}
	}
	return out
}

// waitBodies waits until r holds exactly want from user, in order, and
// fails on a duplicate or a reordering as soon as it shows.
func (r *received) waitBodies(t *testing.T, who, from, group string, want []string, within time.Duration) {
	t.Helper()
	wait.ForErr(t, fmt.Sprintf("%s: all messages from %s%s", who, from, group), within, func() error {
		got := r.bodies(from, group)
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("%s: from %s%s got %d messages %v, want %v", who, from, group, len(got), got, want)
		}
		if len(got) < len(want) {
			return fmt.Errorf("got %d of %d messages; missing from %q", len(got), len(want), want[len(got)])
		}
		return nil
	})
}

// dial connects user's device with the SDK: to mqtt if given, else to an
// endpoint that server lists.
func dial(t *testing.T, server, mqttAddr, user, device, token string, r *received) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Server: server, MQTT: mqttAddr, User: user, Device: device, Token: token,
		OnEvent: r.on, Logger: sdkLogger(user + "/" + device), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, ResendInterval: time.Second,
		SyncTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("dial %s/%s: %v", user, device, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func sendAll(t *testing.T, c *client.Client, to, group string, bodies []string) {
	t.Helper()
	for _, b := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Send(ctx, wire.Send{To: to, Group: group, Body: b})
		cancel()
		if err != nil {
			t.Errorf("send %q: %v", b, err)
			return
		}
	}
}

// runClusterChat is the scale-out contract on any shared store: users on
// different nodes chat both ways, a user with devices on two nodes gets
// everything on both, a group reaches members on every node, every node
// lists every node, and a node stopped mid-stream loses and repeats nothing
// for the clients that move off it.
func runClusterChat(t *testing.T, st any) {
	c := newCluster(t, st)
	// n3 first: the clients that discover their node through /v1/endpoints
	// land on it, and it is the one stopped below.
	n3 := c.start("n3")
	lb := c.balancer()
	for _, u := range []string{"alice", "bob", "carol"} {
		account(t, n3, u, "x")
	}
	var carolGot, bob2Got, bob3Got, aliceGot received
	carol := dial(t, lb, "", "carol", "phone", login(t, n3, "carol", "phone"), &carolGot)
	n1, n2 := c.start("n1"), c.start("n2")
	alice := dial(t, n1.HTTP, n1.MQTT, "alice", "a", login(t, n1, "alice", "a"), &aliceGot)
	bob2 := dial(t, n2.HTTP, n2.MQTT, "bob", "b2", login(t, n2, "bob", "b2"), &bob2Got)
	dial(t, n3.HTTP, n3.MQTT, "bob", "b3", login(t, n3, "bob", "b3"), &bob3Got)
	if n := len(n3.Broker().ClientList()); n != 2 {
		t.Fatalf("%d clients on n3, want carol and bob's b3", n)
	}

	var eps wire.Endpoints
	wait.For(t, "three nodes in /v1/endpoints", 10*time.Second, func() bool {
		httpJSON(t, "GET", n2.HTTP+"/v1/endpoints", "", nil, &eps)
		return len(eps.Endpoints) == 3
	})

	// One device connecting to another node takes over from its old
	// connection, as it would within one broker.
	tab := login(t, n1, "alice", "tab")
	old := connect(t, n1.MQTT, "alice", "tab", tab)
	connect(t, n2.MQTT, "alice", "tab", tab)
	wait.For(t, "alice/tab's old connection on n1 closed", 10*time.Second, func() bool { return !old.c.IsConnectionOpen() })

	// A token revoked on one node stops working on the others at once,
	// though they had it cached.
	tmp := login(t, n1, "alice", "tmp")
	for _, n := range []*testserver.Server{n1, n2, n3} {
		if code := httpJSON(t, "GET", n.HTTP+"/v1/conversations", tmp, nil, nil); code != 200 {
			t.Fatalf("conversations with a fresh token on %s: %d", n.HTTP, code)
		}
	}
	if code := httpJSON(t, "DELETE", n1.HTTP+"/v1/sessions/current", tmp, nil, nil); code/100 != 2 {
		t.Fatalf("revoke: %d", code)
	}
	wait.For(t, "the revoked token refused on n2 and n3", 10*time.Second, func() bool {
		return httpJSON(t, "GET", n2.HTTP+"/v1/conversations", tmp, nil, nil) == 401 &&
			httpJSON(t, "GET", n3.HTTP+"/v1/conversations", tmp, nil, nil) == 401
	})

	// 1:1 across nodes, both ways; bob's two devices on two nodes.
	toBob, toAlice := numbered("a>b ", 20), numbered("b>a ", 20)
	var wg sync.WaitGroup
	wg.Go(func() { sendAll(t, alice, "bob", "", toBob) })
	wg.Go(func() { sendAll(t, bob2, "alice", "", toAlice) })
	wg.Wait()
	bob2Got.waitBodies(t, "bob/b2 on n2", "alice", "", toBob, 10*time.Second)
	bob3Got.waitBodies(t, "bob/b3 on n3", "alice", "", toBob, 10*time.Second)
	aliceGot.waitBodies(t, "alice on n1", "bob", "", toAlice, 10*time.Second)
	bob3Got.waitBodies(t, "bob/b3 on n3 (its own sends from b2)", "bob", "", toAlice, 10*time.Second)

	// A group with members on all three nodes.
	var g wire.Group
	tok := login(t, n1, "alice", "http")
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/groups", tok, wire.GroupCreate{Name: "trio", Members: []string{"bob", "carol"}}, &g); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	toGroup := numbered("g ", 10)
	sendAll(t, alice, "", g.ID, toGroup)
	for who, r := range map[string]*received{"bob/b2": &bob2Got, "bob/b3": &bob3Got, "carol": &carolGot} {
		r.waitBodies(t, who, "alice", g.ID, toGroup, 10*time.Second)
	}

	// n3 stops while alice streams to carol and carol to alice: carol moves
	// to another node through the balancer's /v1/endpoints and syncs.
	toCarol, fromCarol := numbered("a>c ", 60), numbered("c>a ", 30)
	wg.Go(func() { sendAll(t, alice, "carol", "", toCarol) })
	wg.Go(func() { sendAll(t, carol, "alice", "", fromCarol) })
	carolGot.waitBodies(t, "carol before the stop", "alice", "", toCarol[:0], time.Second)
	wait.For(t, "carol to get some", 10*time.Second, func() bool { return len(carolGot.bodies("alice", "")) >= 10 })
	c.stop("n3")
	wg.Wait()
	carolGot.waitBodies(t, "carol after moving", "alice", "", toCarol, 30*time.Second)
	aliceGot.waitBodies(t, "alice from carol", "carol", "", fromCarol, 30*time.Second)
	httpJSON(t, "GET", n1.HTTP+"/v1/endpoints", "", nil, &eps)
	if len(eps.Endpoints) != 2 || slices.ContainsFunc(eps.Endpoints, func(e wire.Endpoint) bool { return e.Node == "n3" }) {
		t.Fatalf("endpoints after n3 stopped: %+v", eps.Endpoints)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestClusterSharedPebble runs the cluster contract with the nodes sharing
// one embedded store in this process: the cross-node paths (bus, presence,
// endpoints, leases, drain) without MongoDB.
func TestClusterSharedPebble(t *testing.T) {
	runClusterChat(t, sharedPebble(t))
}

// runRedisLoss: Redis loses everything in the middle of a two-way stream
// between users on two nodes: it restarts empty (restart), or is flushed
// (FLUSHALL, connections kept). Sends fail while it is away (the SDK
// resends with the same cmid), versions come from new store blocks,
// presence, endpoints and the bus rebuild themselves, and nothing is lost
// or repeated.
func runRedisLoss(t *testing.T, st any, restart bool) {
	c := newCluster(t, st)
	n1, n2 := c.start("n1"), c.start("n2")
	account(t, n1, "alice", "x")
	account(t, n1, "bob", "x")
	var aliceGot, bobGot received
	alice := dial(t, n1.HTTP, n1.MQTT, "alice", "a", login(t, n1, "alice", "a"), &aliceGot)
	bob := dial(t, n2.HTTP, n2.MQTT, "bob", "b", login(t, n2, "bob", "b"), &bobGot)

	toBob, toAlice := numbered("a>b ", 60), numbered("b>a ", 60)
	var wg sync.WaitGroup
	wg.Go(func() { sendAll(t, alice, "bob", "", toBob) })
	wg.Go(func() { sendAll(t, bob, "alice", "", toAlice) })
	wait.For(t, "some messages before Redis goes", 10*time.Second, func() bool { return len(bobGot.bodies("alice", "")) >= 10 })
	if restart {
		if err := c.redis.Restart(); err != nil {
			t.Fatal(err)
		}
	} else {
		flush := goredis.NewClient(&goredis.Options{Addr: c.redis.Addr()})
		if err := flush.FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		flush.Close()
	}
	wg.Wait()
	bobGot.waitBodies(t, "bob", "alice", "", toBob, 30*time.Second)
	aliceGot.waitBodies(t, "alice", "bob", "", toAlice, 30*time.Second)

	// Routing is rebuilt within seconds: n2 records bob again; then live
	// delivery across nodes works as before.
	rdb := goredis.NewClient(&goredis.Options{Addr: c.redis.Addr()})
	defer rdb.Close()
	wait.For(t, "bob's device recorded again in Redis", 5*time.Second, func() bool {
		return rdb.HLen(t.Context(), c.prefix+"{p:bob}:d").Val() != 0
	})
	more := numbered("after ", 5)
	sendAll(t, alice, "bob", "", more)
	bobGot.waitBodies(t, "bob after the loss", "alice", "", append(toBob, more...), 30*time.Second)
	var eps wire.Endpoints
	wait.For(t, "both nodes listed again", 10*time.Second, func() bool {
		httpJSON(t, "GET", n2.HTTP+"/v1/endpoints", "", nil, &eps)
		return len(eps.Endpoints) == 2
	})
}

func TestClusterRedisFlushSharedPebble(t *testing.T) {
	runRedisLoss(t, sharedPebble(t), false)
}

func TestClusterRedisLossSharedPebble(t *testing.T) {
	runRedisLoss(t, sharedPebble(t), true)
}

// An operator drains a node: it leaves /v1/endpoints at once, /readyz turns
// 503, and its clients move to the other node through the balancer.
func TestClusterAdminDrain(t *testing.T) {
	c := newCluster(t, sharedPebble(t))
	n2 := c.start("n2")
	lb := c.balancer()
	account(t, n2, "alice", "x")
	account(t, n2, "bob", "x")
	var aliceGot received
	dial(t, lb, "", "alice", "a", login(t, n2, "alice", "a"), &aliceGot)
	n1 := c.start("n1")
	bob := dial(t, n1.HTTP, n1.MQTT, "bob", "b", login(t, n1, "bob", "b"), &received{})
	if len(n2.Broker().ClientList()) != 1 {
		t.Fatal("alice is not on n2")
	}
	// An operator's notice sent through n1 reaches bob on n2.
	raw := connect(t, n2.MQTT, "bob", "raw", login(t, n2, "bob", "raw"))
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/admin/notice", clusterAdmin, map[string]string{"text": "maintenance", "user": "bob"}, nil); code != 200 {
		t.Fatalf("notice through n1: %d", code)
	}
	wait.For(t, "bob on n2 to get the notice", 10*time.Second, func() bool { return len(raw.inboxOf("notice")) == 1 })
	// One to everyone reaches n2's users too (alice and bob). Each notice is
	// counted once in the cluster, by n1 that sent it (internal/deliver):
	// the one to bob, the one to everyone for its own user (bob), and one
	// for the other nodes' users; n2 counts none of what arrived.
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/admin/notice", clusterAdmin, map[string]string{"text": "everyone"}, nil); code != 200 {
		t.Fatalf("notice to all through n1: %d", code)
	}
	wait.For(t, "bob on n2 to get the notice to all", 10*time.Second, func() bool { return len(raw.inboxOf("notice")) == 2 })
	notices := func(n *testserver.Server) float64 {
		return testutil.ToFloat64(n.Metrics().Publishes.WithLabelValues("out", wire.KindNotice))
	}
	if a, b := notices(n1), notices(n2); a != 3 || b != 0 {
		t.Fatalf("notices counted: n1 %v, n2 %v; want 3 and 0", a, b)
	}

	// A kick asked of n1 for a client on n2 reaches it.
	var kicked map[string]any
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/admin/clients/bob/raw/kick", clusterAdmin, nil, &kicked); code != 202 || kicked["node"] != "n2" {
		t.Fatalf("kick through n1: %d %v", code, kicked)
	}
	wait.For(t, "bob/raw kicked off n2", 10*time.Second, func() bool { return !raw.c.IsConnectionOpen() })
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/admin/clients/bob/nobody/kick", clusterAdmin, nil, nil); code != 404 {
		t.Fatalf("kick of a client connected nowhere: %d", code)
	}

	if code := httpJSON(t, "POST", n2.HTTP+"/v1/admin/drain", clusterAdmin, map[string]int{"percent": 100, "interval_ms": 100}, nil); code != 202 {
		t.Fatalf("drain: %d", code)
	}
	var eps wire.Endpoints
	httpJSON(t, "GET", n1.HTTP+"/v1/endpoints", "", nil, &eps)
	if len(eps.Endpoints) != 1 || eps.Endpoints[0].Node != "n1" {
		t.Fatalf("endpoints right after the drain began: %+v", eps.Endpoints)
	}
	if code := httpJSON(t, "GET", n2.HTTP+"/readyz", "", nil, nil); code != 503 {
		t.Fatalf("drained node's /readyz: %d", code)
	}
	wait.For(t, "alice moved to n1", 10*time.Second, func() bool { return len(n1.Broker().ClientList()) == 2 })
	msgs := numbered("after drain ", 3)
	sendAll(t, bob, "alice", "", msgs)
	aliceGot.waitBodies(t, "alice on n1", "bob", "", msgs, 10*time.Second)
}

// sdkLogger shows the SDK's log when IMQTT_TEST_LOG is set.
func sdkLogger(who string) *slog.Logger {
	if os.Getenv("IMQTT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("sdk", who)
}

// sharedPebble is one embedded store for all the nodes of a test.
func sharedPebble(t *testing.T) store.Store {
	t.Helper()
	st, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
