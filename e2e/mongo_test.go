package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/mongotest"
	"github.com/imqtt/imqtt/internal/wait"
	storemongo "github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/wire"
)

// devMongo starts a MongoDB-compatible server (tools/devmongo: FerretDB on
// SQLite, a process of its own) for one test.
func devMongo(t *testing.T) *mongotest.Server { return mongotest.New(t) }

// mongoURI is a fresh database on srv, reached at addr (srv's own address,
// or a proxy in front of it).
func mongoURI(addr string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "mongodb://" + addr + "/t" + hex.EncodeToString(b)
}

// sharedMongo is one MongoDB store for all the nodes of a test: faster on
// FerretDB, where a Store serialises its read-modify-writes with a lock in
// the process instead of the lock document that nodes with a Store each
// share (TestClusterMongo and TestStoreOutage open one per node, as
// production does).
func sharedMongo(t *testing.T) *storemongo.Store {
	t.Helper()
	srv := devMongo(t)
	st, err := storemongo.Open(t.Context(), mongoURI(srv.Addr()), storemongo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Each node opens its own Store on the URI, as in production.
func TestClusterMongo(t *testing.T) {
	runClusterChat(t, mongoURI(devMongo(t).Addr()))
}

func TestClusterRedisLossMongo(t *testing.T) {
	runRedisLoss(t, sharedMongo(t), true)
}

// The store goes away for a few seconds: /readyz says so, a send gets no
// ack but an error event, an SDK send keeps trying, and when the store is
// back the service resumes by itself with nothing lost or doubled.
func TestStoreOutage(t *testing.T) {
	srv := devMongo(t)
	g := newGate(t, srv.Addr())
	c := newCluster(t, mongoURI(g.Addr()))
	n1 := c.start("n1")
	account(t, n1, "alice", "x")
	account(t, n1, "bob", "x")
	raw := connect(t, n1.MQTT, "alice", "raw", login(t, n1, "alice", "raw"))
	var bobGot received
	dial(t, n1.HTTP, n1.MQTT, "bob", "b", login(t, n1, "bob", "b"), &bobGot)
	alice := dial(t, n1.HTTP, n1.MQTT, "alice", "sdk", login(t, n1, "alice", "sdk"), &received{})
	sendAll(t, alice, "bob", "", []string{"before"})

	g.close()
	wait.For(t, "/readyz to report the store", 10*time.Second, func() bool {
		return httpJSON(t, "GET", n1.HTTP+"/readyz", "", nil, nil) == http.StatusServiceUnavailable
	})
	raw.publish(wire.TopicSend, wire.Send{CMID: "o1", To: "bob", Type: "text", Body: "during"})
	if _, werr := raw.awaitReplyWithin("o1", 30*time.Second); werr == nil || werr.Code != wire.CodeUnavailable {
		t.Fatalf("send with the store away: %+v, want an unavailable error", werr)
	}
	sends := func() float64 { return testutil.ToFloat64(n1.Metrics().Publishes.WithLabelValues("in", "send")) }
	before := sends()
	sdkDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := alice.Send(ctx, wire.Send{CMID: "sdk-1", To: "bob", Body: "kept trying"})
		sdkDone <- err
	}()
	// The store comes back once the SDK's send has reached the server: it
	// is sent during the outage and goes through after it.
	wait.For(t, "the SDK's send to reach the server", 30*time.Second, func() bool { return sends() > before })
	g.open()

	wait.For(t, "/readyz to recover", 30*time.Second, func() bool {
		return httpJSON(t, "GET", n1.HTTP+"/readyz", "", nil, nil) == http.StatusOK
	})
	if err := <-sdkDone; err != nil {
		t.Fatalf("SDK send across the outage: %v", err)
	}
	// The device resends o1 as told (the first reply to o1 was the error).
	raw.publish(wire.TopicSend, wire.Send{CMID: "o1", To: "bob", Type: "text", Body: "during"})
	wait.For(t, "o1 acked after the outage", 30*time.Second, func() bool { return len(raw.directOf(wire.KindAck)) == 1 })
	// Each exactly once; the two sent across the outage in either order.
	wait.For(t, "bob to get all three", 30*time.Second, func() bool { return len(bobGot.bodies("alice", "")) >= 3 })
	// Not a wait: a duplicate is an absence with nothing to wait on; give it time to show.
	time.Sleep(200 * time.Millisecond)
	got := bobGot.bodies("alice", "")
	slices.Sort(got[1:])
	if !slices.Equal(got, []string{"before", "during", "kept trying"}) {
		t.Fatalf("bob got %q", got)
	}
}

// A bad or unreachable --mongo-uri or --redis-url stops imqttd at start
// with a message naming it and a non-zero exit.
func TestBadScaleOutURIs(t *testing.T) {
	srv := devMongo(t)
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"mongo not a URI", []string{"--mongo-uri", "not-a-uri", "--redis-url", "redis://127.0.0.1:1/0"}, "--mongo-uri"},
		{"mongo unreachable", []string{"--mongo-uri", "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=500", "--redis-url", "redis://127.0.0.1:1/0"}, "--mongo-uri"},
		{"redis not a URL", []string{"--mongo-uri", mongoURI(srv.Addr()), "--redis-url", "http://nope"}, "--redis-url"},
		{"redis unreachable", []string{"--mongo-uri", mongoURI(srv.Addr()), "--redis-url", "redis://127.0.0.1:1/0?dial_timeout=500ms&max_retries=-1"}, "--redis-url"},
		{"only one of them", []string{"--mongo-uri", mongoURI(srv.Addr())}, "both --mongo-uri and --redis-url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, c.args...)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("imqttd %v: exit %v (timed out: %v), want a failed start\n%s", c.args, err, ctx.Err() != nil, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("imqttd %v: output does not name %q:\n%s", c.args, c.want, out)
			}
		})
	}
}

// In scale-out, media uploaded to one node is served by any other (GridFS),
// to whom a message granted it, with Range, and to nobody else.
func TestClusterMediaMongo(t *testing.T) {
	c := newCluster(t, sharedMongo(t))
	n1, n2 := c.start("n1"), c.start("n2")
	alice := account(t, n1, "alice", "x")
	bob := account(t, n2, "bob", "x")
	eve := account(t, n2, "eve", "x")
	data := bytes.Repeat([]byte("imqtt media across nodes "), 20_000) // ~500 KB: more than one GridFS chunk
	info := mustUpload(t, n1, alice, "application/octet-stream", data)
	dev := connect(t, n1.MQTT, "alice", "m", login(t, n1, "alice", "m"))
	if _, werr := dev.sendMedia("bob", "m1", "file", info.ID); werr != nil {
		t.Fatalf("send media: %+v", werr)
	}
	resp, body := request(t, "GET", n2.HTTP+"/v1/media/"+info.ID, bob, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("bob's download from n2: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = request(t, "GET", n2.HTTP+"/v1/media/"+info.ID, bob, nil, map[string]string{"Range": "bytes=300000-300099"})
	if resp.StatusCode != 206 || !bytes.Equal(body, data[300000:300100]) {
		t.Fatalf("range from n2: %d %q", resp.StatusCode, body)
	}
	if resp, _ := request(t, "GET", n2.HTTP+"/v1/media/"+info.ID, eve, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("eve's download: %d, want 404", resp.StatusCode)
	}
}

// A ban made on one node holds on every node: a connection there is cut,
// and a login there refused.
func TestClusterBansMongo(t *testing.T) {
	c := newCluster(t, sharedMongo(t))
	n1, n2 := c.start("n1"), c.start("n2")
	tok := account(t, n2, "mallory", "x")
	conn := connect(t, n2.MQTT, "mallory", "x", tok)
	var ban struct{ ID string }
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/admin/bans", clusterAdmin, map[string]any{"user": "mallory", "reason": "spam"}, &ban); code != 201 {
		t.Fatalf("ban on n1: %d", code)
	}
	wait.For(t, "mallory's connection on n2 cut", 10*time.Second, func() bool { return !conn.c.IsConnectionOpen() })
	if code := httpJSON(t, "POST", n2.HTTP+"/v1/sessions", "", wire.Login{User: "mallory", Password: "secret-mallory", Device: "y"}, nil); code != 403 {
		t.Fatalf("login on n2 while banned: %d, want 403", code)
	}
	var list struct{ Bans []struct{ ID string } }
	httpJSON(t, "GET", n2.HTTP+"/v1/admin/bans", clusterAdmin, nil, &list)
	if len(list.Bans) != 1 || list.Bans[0].ID != ban.ID {
		t.Fatalf("bans listed on n2: %+v", list)
	}
	if code := httpJSON(t, "DELETE", n2.HTTP+"/v1/admin/bans/"+ban.ID, clusterAdmin, nil, nil); code/100 != 2 {
		t.Fatalf("lift on n2: %d", code)
	}
	wait.For(t, "login on n1 allowed again", 10*time.Second, func() bool {
		return httpJSON(t, "POST", n1.HTTP+"/v1/sessions", "", wire.Login{User: "mallory", Password: "secret-mallory", Device: "z"}, nil) == 200
	})
}
