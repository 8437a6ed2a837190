package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	storemongo "github.com/imqtt/imqtt/store/mongo"
	"github.com/imqtt/imqtt/wire"
)

// syncFrom0 pages through GET /v1/sync from 0 (of a group, if group).
func syncFrom0(t *testing.T, base, token, group string) (string, []wire.Msg) {
	t.Helper()
	var all []wire.Msg
	var epoch string
	for since := uint64(0); ; {
		q := url.Values{"since": {fmt.Sprint(since)}, "limit": {"500"}}
		if group != "" {
			q.Set("group", group)
		}
		var s wire.Sync
		if code := httpJSON(t, "GET", base+"/v1/sync?"+q.Encode(), token, nil, &s); code != 200 {
			t.Fatalf("sync %s since %d: %d", group, since, code)
		}
		all, epoch = append(all, s.Items...), s.Epoch
		if !s.More || s.Upto <= since {
			return epoch, all
		}
		since = s.Upto
	}
}

// answers is what a server says to the users' devices: their sync from 0,
// conversations, one history, and the groups' logs.
type answers struct {
	Epoch   string
	Sync    map[string][]wire.Msg
	Convs   map[string]wire.Conversations
	History []json.RawMessage
	Groups  map[string][]wire.Msg
}

func askAll(t *testing.T, base string, tokens map[string]string, groups []string) answers {
	t.Helper()
	a := answers{Sync: map[string][]wire.Msg{}, Convs: map[string]wire.Conversations{}, Groups: map[string][]wire.Msg{}}
	for user, tok := range tokens {
		a.Epoch, a.Sync[user] = syncFrom0(t, base, tok, "")
		var cs wire.Conversations
		if code := httpJSON(t, "GET", base+"/v1/conversations", tok, nil, &cs); code != 200 {
			t.Fatalf("conversations of %s: %d", user, code)
		}
		a.Convs[user] = cs
	}
	var h struct{ Items []json.RawMessage }
	if code := httpJSON(t, "GET", base+"/v1/conversations/u1/messages?limit=100", tokens["u0"], nil, &h); code != 200 {
		t.Fatalf("history: %d", code)
	}
	a.History = h.Items
	for _, g := range groups {
		_, a.Groups[g] = syncFrom0(t, base, tokens["watcher"], g)
	}
	return a
}

// TestMigrateToMongo: an embedded node's history, groups, read positions,
// media and bans, migrated with `imqttd migrate`, are served the same by a
// two-node cluster on MongoDB; a device keeps its cursor across (the epoch
// is kept) and gets only what came after, once.
func TestMigrateToMongo(t *testing.T) {
	const users, perUser, perGroup = 8, 250, 100
	emb := testserver.Start(t, func(c *daemon.Config) { c.AdminToken = clusterAdmin })
	names := []string{"watcher"}
	for i := range users {
		names = append(names, fmt.Sprintf("u%d", i))
	}
	tokens := map[string]string{}
	clients := map[string]*client.Client{}
	for _, u := range names {
		tokens[u] = account(t, emb, u, "http")
	}
	for _, u := range names[1:] {
		clients[u] = dial(t, emb.HTTP, emb.MQTT, u, "sdk", login(t, emb, u, "sdk"), &received{})
	}
	var groups []string
	for i := range 3 {
		var g wire.Group
		members := append([]string{"watcher"}, names[1+i:4+i]...) // u_i among them: it sends there
		if code := httpJSON(t, "POST", emb.HTTP+"/v1/groups", tokens["u0"], wire.GroupCreate{Name: fmt.Sprint("g", i), Members: members}, &g); code != 201 {
			t.Fatalf("create group: %d", code)
		}
		groups = append(groups, g.ID)
	}
	// Thousands of 1:1 messages among the users and to the watcher, and
	// the groups' messages, sent at once from every user.
	start := time.Now()
	var wg sync.WaitGroup
	for i, u := range names[1:] {
		wg.Go(func() {
			c := clients[u]
			for k := range perUser {
				to := names[1+(i+1+k%(users-1))%users]
				if k%10 == 0 {
					to = "watcher"
				}
				sendAll(t, c, to, "", []string{fmt.Sprintf("%s>%s %d", u, to, k)})
			}
			if i < 3 {
				sendAll(t, c, "", groups[i], numbered(u+" in group ", perGroup))
			}
		})
	}
	wg.Wait()
	t.Logf("sent %d messages in %v", users*perUser+3*perGroup, time.Since(start).Round(time.Millisecond))
	// Read positions: 1:1 and a group's.
	for _, u := range names[1:4] {
		if code := httpJSON(t, "POST", emb.HTTP+"/v1/read", tokens[u], wire.Read{Peer: names[1+(slices.Index(names, u))%users]}, nil); code/100 != 2 {
			t.Fatalf("read: %d", code)
		}
	}
	if code := httpJSON(t, "POST", emb.HTTP+"/v1/read", tokens["watcher"], wire.Read{Group: groups[0], Seq: perGroup / 2}, nil); code/100 != 2 {
		t.Fatalf("group read: %d", code)
	}
	// A media upload granted to u1, and a ban.
	account(t, emb, "mallory", "x")
	data := bytes.Repeat([]byte("migrated media "), 30_000)
	info := mustUpload(t, emb, tokens["u0"], "application/octet-stream", data)
	if _, err := clients["u0"].Send(t.Context(), wire.Send{To: "u1", Type: "file", Media: info.ID}); err != nil {
		t.Fatal(err)
	}
	if code := httpJSON(t, "POST", emb.HTTP+"/v1/admin/bans", clusterAdmin, map[string]any{"user": "mallory", "reason": "spam"}, nil); code != 201 {
		t.Fatalf("ban: %d", code)
	}

	// The watcher's device syncs everything and keeps its cursor in a file.
	cursor := client.NewFileCursor(filepath.Join(t.TempDir(), "cursor.json"))
	kept := login(t, emb, "watcher", "kept")
	var before received
	w := dialCursor(t, emb.HTTP, emb.MQTT, "watcher", kept, cursor, &before)
	if err := w.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}
	toWatcher := users * perUser / 10
	wait.For(t, "the watcher to get everything", 30*time.Second, func() bool {
		n := 0
		for _, u := range names[1:] {
			n += len(before.bodies(u, ""))
		}
		return n == toWatcher
	})
	w.Close()
	cur, err := cursor.Load()
	if err != nil || cur.Ver == 0 || len(cur.Groups) != 3 || cur.Epoch == "" {
		t.Fatalf("the watcher's cursor %+v (%v)", cur, err)
	}
	for _, c := range clients {
		c.Close()
	}
	pre := askAll(t, emb.HTTP, tokens, groups)
	emb.Stop(t)

	// The real command, on the stopped node's data directory.
	srv := devMongo(t)
	uri := mongoURI(srv.Addr())
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "migrate", "--data-dir", emb.Dir, "--mongo-uri", uri)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("imqttd migrate: %v\n%s", err, out.String())
	}
	t.Logf("imqttd migrate:\n%s", out.String())
	if !strings.Contains(out.String(), "0 mismatches") || !strings.Contains(out.String(), "media 1 copied") {
		t.Fatalf("migrate output lacks the verification:\n%s", out.String())
	}

	// Two nodes on the migrated database and a fresh redis-server.
	c := newCluster(t, uri)
	n1, n2 := c.start("n1"), c.start("n2")
	for _, n := range []*testserver.Server{n1, n2} {
		post := askAll(t, n.HTTP, tokens, groups) // the old tokens work: sessions came over
		if post.Epoch != pre.Epoch {
			t.Fatalf("epoch %q on %s, want the embedded store's %q", post.Epoch, n.HTTP, pre.Epoch)
		}
		if !reflect.DeepEqual(pre, post) {
			for u := range pre.Sync {
				if !reflect.DeepEqual(pre.Sync[u], post.Sync[u]) {
					t.Errorf("%s: sync of %s: %d items, want %d", n.HTTP, u, len(post.Sync[u]), len(pre.Sync[u]))
				}
				if !reflect.DeepEqual(pre.Convs[u], post.Convs[u]) {
					t.Errorf("%s: conversations of %s differ:\n%+v\nwant\n%+v", n.HTTP, u, post.Convs[u], pre.Convs[u])
				}
			}
			t.Fatalf("%s serves other answers than the embedded node did", n.HTTP)
		}
	}
	if n := len(pre.Sync["u0"]); n < perUser {
		t.Fatalf("u0 had only %d messages: the comparison proves little", n)
	}

	// Media from GridFS, the ban in force.
	resp, body := request(t, "GET", n2.HTTP+"/v1/media/"+info.ID, tokens["u1"], nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("media on n2: %d, %d bytes", resp.StatusCode, len(body))
	}
	if code := httpJSON(t, "POST", n1.HTTP+"/v1/sessions", "", wire.Login{User: "mallory", Password: "secret-mallory", Device: "y"}, nil); code != http.StatusForbidden {
		t.Fatalf("banned mallory's login on n1: %d, want 403", code)
	}

	// New messages, sent on n1, some before the watcher's device comes
	// back (on n2) with its old cursor, some after: it gets those only,
	// once each, and keeps its epoch.
	var u0got received
	u0 := dial(t, n1.HTTP, n1.MQTT, "u0", "sdk2", login(t, n1, "u0", "sdk2"), &u0got)
	u2 := dial(t, n1.HTTP, n1.MQTT, "u2", "sdk2", login(t, n1, "u2", "sdk2"), &received{})
	after := numbered("after ", 6)
	sendAll(t, u0, "watcher", "", after[:3])
	sendAll(t, u2, "", groups[0], []string{"group after 0"})
	var got received
	w2 := dialCursor(t, n2.HTTP, n2.MQTT, "watcher", kept, cursor, &got)
	if err := w2.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}
	sendAll(t, u0, "watcher", "", after[3:])
	sendAll(t, u2, "", groups[0], []string{"group after 1"})
	got.waitBodies(t, "watcher on n2", "u0", "", after, 30*time.Second)
	got.waitBodies(t, "watcher on n2 in the group", "u2", groups[0], []string{"group after 0", "group after 1"}, 30*time.Second)
	// Not a wait: an old message redelivered is an absence with nothing to wait on.
	time.Sleep(300 * time.Millisecond)
	got.mu.Lock()
	n := len(got.msgs)
	got.mu.Unlock()
	if n != len(after)+2 {
		t.Fatalf("the watcher got %d messages after the migration, want %d: old ones again", n, len(after)+2)
	}
	if e := w2.Cursor().Epoch; e != cur.Epoch {
		t.Fatalf("the watcher's epoch moved from %q to %q: its device was reset", cur.Epoch, e)
	}
	// And a send across the two nodes, the other way.
	sendAll(t, w2, "u0", "", []string{"from n2"})
	u0got.waitBodies(t, "u0 on n1", "watcher", "", []string{"from n2"}, 30*time.Second)
}

// dialCursor is dial with a cursor store.
func dialCursor(t *testing.T, server, mqttAddr, user, token string, cur client.CursorStore, r *received) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Server: server, MQTT: mqttAddr, User: user, Device: "kept", Token: token,
		Cursor: cur, OnEvent: r.on, Logger: sdkLogger(user + "/kept"), MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, ResendInterval: time.Second, SyncTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeRefusesUnfinishedMigration: a node started on a database that a
// migration has begun and not finished refuses to start, saying why,
// instead of serving part of the history under an epoch the migration
// will replace.
func TestServeRefusesUnfinishedMigration(t *testing.T) {
	uri := mongoURI(devMongo(t).Addr())
	st, err := storemongo.Open(t.Context(), uri, storemongo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	meta := st.Database().Collection("meta")
	if _, err := meta.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "migration"}, {Key: "source_epoch", Value: "E"},
		{Key: "node", Value: "old"}, {Key: "started", Value: time.Now().UnixMilli()}, {Key: "done_kinds", Value: bson.A{"users"}}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = daemon.Run(ctx, daemon.Config{MongoURI: uri, RedisURL: "redis://127.0.0.1:1", DataDir: t.TempDir(),
		MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "has not finished") || !strings.Contains(err.Error(), "imqttd migrate again") {
		t.Fatalf("start on a half-migrated database: %v", err)
	}
}
