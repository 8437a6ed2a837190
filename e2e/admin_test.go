package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

const adminToken = "admin-token-for-tests"

// startAdmin runs a server with the admin API on.
func startAdmin(t testing.TB) *testserver.Server {
	t.Helper()
	return testserver.Start(t, func(c *daemon.Config) { c.AdminToken = adminToken })
}

// adminDo calls the admin API with the admin token; body may be a string
// (sent as is) or a value (sent as JSON).
func adminDo(t testing.TB, s *testserver.Server, method, path string, body, out any) int {
	t.Helper()
	return rawDo(t, method, s.HTTP+"/v1/admin/"+path, adminToken, body, out)
}

// rawDo is httpJSON that also sends a string body as it is.
func rawDo(t testing.TB, method, url, token string, body, out any) int {
	t.Helper()
	raw, isRaw := body.(string)
	if !isRaw {
		return httpJSON(t, method, url, token, body, out)
	}
	req, err := http.NewRequest(method, url, strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		mustUnmarshal(t, b, out)
	}
	return resp.StatusCode
}

// wantError checks an error reply's status and code.
func wantError(t testing.TB, what string, status int, got wire.Error, gotStatus int, code string) {
	t.Helper()
	if gotStatus != status || got.Code != code {
		t.Errorf("%s: %d %+v, want %d %s", what, gotStatus, got, status, code)
	}
}

// tryConnect opens and closes an MQTT connection, returning the refusal.
// version 4 is MQTT 3.1.1 (no fallback to 3.1: one attempt, one refusal).
func tryConnect(addr, user, dev, secret string) error {
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user + "/" + dev).
		SetUsername(user).SetPassword(secret).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetProtocolVersion(4)
	c := paho.NewClient(opts)
	tk := c.Connect()
	if !tk.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("connect timed out")
	}
	if tk.Error() == nil {
		c.Disconnect(0)
	}
	return tk.Error()
}

type adminClientList struct {
	Node       string `json:"node"`
	Total      int    `json:"total"`
	NextCursor string `json:"next_cursor"`
	Clients    []struct {
		Node, ID, User, Device, Remote, Listener, MQTT string
		Keepalive                                      int
		Since                                          int64
		Inflight                                       int
		SubscriptionCount                              int `json:"subscription_count"`
	} `json:"clients"`
}

func (l adminClientList) ids() []string {
	var out []string
	for _, c := range l.Clients {
		out = append(out, c.ID)
	}
	return out
}

func clientIDs(t testing.TB, s *testserver.Server, query string) []string {
	t.Helper()
	var l adminClientList
	if code := adminDo(t, s, "GET", "clients"+query, nil, &l); code != 200 {
		t.Fatalf("GET clients%s: %d", query, code)
	}
	return l.ids()
}

type adminNodes struct {
	Nodes []struct {
		ID, Status, Version string
		Self                bool
		Addresses           map[string]string
		UptimeSeconds       int64 `json:"uptime_seconds"`
		Connections         int64
		Drain               *struct {
			Total, Disconnected, Remaining, Waves int
			Done                                  bool
		}
	}
}

func nodes(t testing.TB, s *testserver.Server) adminNodes {
	t.Helper()
	var n adminNodes
	if code := adminDo(t, s, "GET", "nodes", nil, &n); code != 200 || len(n.Nodes) != 1 {
		t.Fatalf("GET nodes: %d %+v", code, n)
	}
	return n
}

// TestAdminGuards: with the admin API off every endpoint answers 403; with
// it on, no token is 401, a user's token 403, a wrong token 401, and none
// of them does anything.
func TestAdminGuards(t *testing.T) {
	off := testserver.Start(t)
	var e wire.Error
	code := rawDo(t, "GET", off.HTTP+"/v1/admin/nodes", "anything", nil, &e)
	wantError(t, "admin API off", 403, e, code, wire.CodeForbidden)
	if !strings.Contains(e.Message, "--admin-token") {
		t.Errorf("admin API off: message %q does not say how to turn it on", e.Message)
	}

	s := startAdmin(t)
	aliceTok := account(t, s, "alice", "phone")
	alice := connect(t, s.MQTT, "alice", "phone", aliceTok)
	endpoints := []struct{ method, path, body string }{
		{"GET", "nodes", ""},
		{"GET", "stats", ""},
		{"GET", "events", ""},
		{"GET", "clients", ""},
		{"GET", "clients/alice/phone", ""},
		{"POST", "clients/alice/phone/kick", ""},
		{"GET", "bans", ""},
		{"POST", "bans", `{"user":"alice","reason":"test"}`},
		{"DELETE", "bans/b-0000000000000000", ""},
		{"POST", "notice", `{"text":"should never arrive"}`},
		{"POST", "drain", `{}`},
		{"GET", "no-such-endpoint", ""},
	}
	for _, ep := range endpoints {
		for _, c := range []struct {
			name, token string
			status      int
			code        string
		}{
			{"no token", "", 401, wire.CodeUnauthorized},
			{"user token", aliceTok, 403, wire.CodeForbidden},
			{"wrong token", "not-the-admin-token", 401, wire.CodeUnauthorized},
			{"admin token as a prefix", adminToken + "x", 401, wire.CodeUnauthorized},
		} {
			var e wire.Error
			code := rawDo(t, ep.method, s.HTTP+"/v1/admin/"+ep.path, c.token, ep.body, &e)
			wantError(t, ep.method+" "+ep.path+" with "+c.name, c.status, e, code, c.code)
		}
	}
	// Nothing was done: alice is connected, not banned, got no notice; the
	// node is not draining.
	if !alice.c.IsConnectionOpen() {
		t.Fatal("a refused kick disconnected alice")
	}
	if n := len(alice.inboxOf("notice")); n != 0 {
		t.Fatalf("a refused notice reached alice (%d)", n)
	}
	var bl struct{ Bans []json.RawMessage }
	if code := adminDo(t, s, "GET", "bans", nil, &bl); code != 200 || len(bl.Bans) != 0 {
		t.Fatalf("bans after refused requests: %d %s", code, bl.Bans)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/readyz", "", nil, nil); code != 200 {
		t.Fatalf("readyz after a refused drain: %d", code)
	}
	if st := nodes(t, s).Nodes[0].Status; st != "serving" {
		t.Fatalf("node status after a refused drain: %s", st)
	}
	if err := tryConnect(s.MQTT, "alice", "laptop", login(t, s, "alice", "laptop")); err != nil {
		t.Fatalf("alice refused after a refused ban: %v", err)
	}
	// The refusals are counted and listed among the recent events.
	var ev struct {
		Events []struct{ Kind, Code, User, Detail string }
	}
	if code := adminDo(t, s, "GET", "events?kind=auth_failure", nil, &ev); code != 200 {
		t.Fatalf("events: %d", code)
	}
	users := 0
	for _, e := range ev.Events {
		if e.Code == "admin" && e.User == "alice" {
			users++
		}
	}
	if users != len(endpoints) {
		t.Errorf("user-token refusals listed %d, want %d: %+v", users, len(endpoints), ev.Events)
	}
}

// TestAdminClients: search, paging, one client's detail, kick; every bad
// filter and page is 400, a client that is not connected 404.
func TestAdminClients(t *testing.T) {
	s := startAdmin(t)
	aliceTok := account(t, s, "alice", "phone")
	alicePhone := connect(t, s.MQTT, "alice", "phone", aliceTok)
	connect(t, s.MQTT, "alice", "laptop", login(t, s, "alice", "laptop"))
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	connect(t, s.MQTT, "carol", "tablet", account(t, s, "carol", "tablet"))

	all := []string{"alice/laptop", "alice/phone", "bob/phone", "carol/tablet"}
	if got := clientIDs(t, s, ""); !slices.Equal(got, all) {
		t.Fatalf("clients: %v, want %v", got, all)
	}
	for q, want := range map[string][]string{
		"?user=ali":                 {"alice/laptop", "alice/phone"},
		"?user=ALI":                 {"alice/laptop", "alice/phone"},
		"?device=phone":             {"alice/phone", "bob/phone"},
		"?user=o&device=ph":         {"bob/phone"},
		"?ip=127.0.0":               all,
		"?ip=10.99":                 nil,
		"?user=nobody":              nil,
		"?user=&device=&ip=":        all,
		"?device=tab&limit=500":     {"carol/tablet"},
		"?user=alice&device=laptop": {"alice/laptop"},
	} {
		if got := clientIDs(t, s, q); !slices.Equal(got, want) {
			t.Errorf("clients%s: %v, want %v", q, got, want)
		}
	}
	// Paging one by one with the cursor visits each client once, in order.
	var paged []string
	cursor := ""
	for i := 0; i < 10; i++ {
		var l adminClientList
		q := "clients?limit=1"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		if code := adminDo(t, s, "GET", q, nil, &l); code != 200 || l.Total != 4 || len(l.Clients) != 1 {
			t.Fatalf("GET %s: %d %+v", q, code, l)
		}
		paged = append(paged, l.Clients[0].ID)
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged: %v, want %v", paged, all)
	}
	var page adminClientList
	adminDo(t, s, "GET", "clients?limit=3", nil, &page)
	if len(page.Clients) != 3 || page.NextCursor == "" || page.Clients[0].Node != "test" {
		t.Fatalf("first page of 3: %+v", page)
	}
	if got := clientIDs(t, s, "?limit=3&cursor="+page.NextCursor); !slices.Equal(got, all[3:]) {
		t.Fatalf("second page: %v", got)
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, q := range []string{
		"limit=0", "limit=501", "limit=ten", "limit=-1", "limit=1&limit=2", "limit=",
		"cursor=!!!", "cursor=" + b64("no-slash"), "cursor=" + b64("a b/c"), "cursor=",
		"user=a%20b", "user=" + strings.Repeat("a", 65), "device=a.b", "ip=zz", "ip=1.2.3.4/8",
		"offset=3", "sort=desc",
	} {
		var e wire.Error
		code := adminDo(t, s, "GET", "clients?"+q, nil, &e)
		wantError(t, "clients?"+q, 400, e, code, wire.CodeBadRequest)
	}

	// One client's detail.
	var d struct {
		ID, User, Device, Remote, Listener, MQTT string
		Keepalive                                int
		Since                                    int64
		Inflight                                 int
		Clean                                    bool
		HeadVer                                  *uint64 `json:"head_ver"`
		Subscriptions                            []struct {
			Filter string
			QoS    int
		}
	}
	if _, werr := alicePhone.send("bob", "c-1", "hi"); werr != nil {
		t.Fatal(werr)
	}
	wait.For(t, "bob's message", 10*time.Second, func() bool { return len(bob.msgs()) == 1 })
	if code := adminDo(t, s, "GET", "clients/bob/phone", nil, &d); code != 200 {
		t.Fatalf("detail: %d", code)
	}
	subs := fmt.Sprint(d.Subscriptions)
	if d.ID != "bob/phone" || d.User != "bob" || d.Device != "phone" || d.MQTT != "3.1.1" || d.Keepalive != 30 ||
		d.Listener != "tcp" || !strings.HasPrefix(d.Remote, "127.0.0.1:") || !d.Clean ||
		d.Since < time.Now().Add(-time.Minute).UnixMilli() || d.HeadVer == nil || *d.HeadVer != 1 ||
		subs != "[{im/u/bob/d/phone 1} {im/u/bob/inbox 1}]" {
		t.Fatalf("detail of bob/phone: %+v (subscriptions %s)", d, subs)
	}
	for path, want := range map[string]int{
		"clients/nobody/phone": 404, "clients/bob/laptop": 404, "clients/bad%20user/phone": 400, "clients/bob/dev.ice": 400,
		"clients/bob/phone?verbose=1": 400,
	} {
		var e wire.Error
		code := adminDo(t, s, "GET", path, nil, &e)
		wantError(t, path, want, e, code, map[int]string{404: wire.CodeNotFound, 400: wire.CodeBadRequest}[want])
	}

	// Kick: bob's connection ends; kicking again, or a device never
	// connected, is 404; a malformed ID 400.
	var kick struct{ Kicked string }
	if code := adminDo(t, s, "POST", "clients/bob/phone/kick", nil, &kick); code != 200 || kick.Kicked != "bob/phone" {
		t.Fatalf("kick: %d %+v", code, kick)
	}
	wait.For(t, "bob disconnected", 10*time.Second, func() bool { return !bob.c.IsConnectionOpen() })
	wait.For(t, "bob gone from the list", 10*time.Second, func() bool { return !slices.Contains(clientIDs(t, s, ""), "bob/phone") })
	for path, want := range map[string]int{
		"clients/bob/phone/kick": 404, "clients/nobody/x/kick": 404, "clients/bad%20user/x/kick": 400,
	} {
		var e wire.Error
		code := adminDo(t, s, "POST", path, nil, &e)
		wantError(t, "POST "+path, want, e, code, map[int]string{404: wire.CodeNotFound, 400: wire.CodeBadRequest}[want])
	}
	if got := clientIDs(t, s, ""); !slices.Equal(got, []string{"alice/laptop", "alice/phone", "carol/tablet"}) {
		t.Fatalf("after the kick: %v", got)
	}
}

type banReply struct {
	ID, User, IP, Reason string
	Created, Expires     int64
	Kicked               int
}

// TestAdminBans: a banned user or address is refused at CONNECT (3.1.1
// return code 5, MQTT 5 reason 0x8A) and at HTTP login (403), its
// connections are kicked; a ban ends when removed or expired and survives
// a restart; bad bans are 400 and change nothing.
func TestAdminBans(t *testing.T) {
	mosquittoPub := requireTool(t, "mosquitto_pub")
	s := startAdmin(t)
	eveTok := account(t, s, "eve", "phone")
	eve := connect(t, s.MQTT, "eve", "phone", eveTok)
	bobTok := account(t, s, "bob", "phone")
	bob := connect(t, s.MQTT, "bob", "phone", bobTok)

	v5 := func(user, secret string) string { // mosquitto_pub as an MQTT 5 client; its output
		host, port := hostPort(s.MQTT)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, mosquittoPub, "-h", host, "-p", port, "-V", "mqttv5", "-i", user+"/cli",
			"-u", user, "-P", secret, "-q", "1", "-t", wire.TopicSend, "-m", `{"cmid":"b-1","to":"bob","type":"text","body":"x"}`).CombinedOutput()
		return string(out)
	}
	login := func(user string) int {
		return httpJSON(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: user, Password: "secret-" + user, Device: "web"}, nil)
	}
	refusedV3 := packetsErr(5).Error()

	// Bad bans change nothing.
	for _, body := range []string{
		`{}`, `{"user":"eve","ip":"127.0.0.1"}`, `{"user":"e ve"}`, `{"ip":"300.1.1.1"}`, `{"ip":"127.0.0.1/33"}`,
		`{"user":"eve","seconds":-1}`, `{"user":"eve","seconds":999999999999}`, `{"user":"eve","seconds":"10"}`,
		`{"user":"eve","extra":1}`, `{"user":"eve"`, `{"user":"eve"} {}`, ``,
		`{"user":"eve","reason":"` + strings.Repeat("x", 257) + `"}`,
	} {
		var e wire.Error
		code := adminDo(t, s, "POST", "bans", body, &e)
		wantError(t, "POST bans "+body, 400, e, code, wire.CodeBadRequest)
	}
	if !eve.c.IsConnectionOpen() {
		t.Fatal("a bad ban disconnected eve")
	}

	// Ban eve: her connection is kicked, MQTT 3.1.1 and 5 and HTTP refuse her.
	var ban banReply
	if code := adminDo(t, s, "POST", "bans", map[string]any{"user": "eve", "reason": "spam"}, &ban); code != 201 ||
		ban.ID == "" || ban.User != "eve" || ban.Reason != "spam" || ban.Expires != 0 || ban.Kicked != 1 {
		t.Fatalf("ban eve: %d %+v", code, ban)
	}
	wait.For(t, "eve kicked", 10*time.Second, func() bool { return !eve.c.IsConnectionOpen() })
	if err := tryConnect(s.MQTT, "eve", "phone", eveTok); err == nil || err.Error() != refusedV3 {
		t.Fatalf("banned eve over 3.1.1: %v, want %s", err, refusedV3)
	}
	if out := v5("eve", "secret-eve"); !strings.Contains(out, "Banned") {
		t.Fatalf("banned eve over MQTT 5: %q, want Banned", out)
	}
	if code := login("eve"); code != 403 {
		t.Fatalf("banned eve's login: %d", code)
	}
	var e wire.Error
	code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", eveTok, nil, &e)
	wantError(t, "banned eve's token", 403, e, code, wire.CodeForbidden)
	// Bob is not touched.
	if !bob.c.IsConnectionOpen() || login("bob") != 200 {
		t.Fatal("eve's ban hit bob")
	}
	if out := v5("bob", "secret-bob"); out != "" {
		t.Fatalf("bob over MQTT 5 while eve is banned: %q", out)
	}

	// Unban: eve is back; unbanning again is 404.
	if code := adminDo(t, s, "DELETE", "bans/"+ban.ID, nil, nil); code != 204 {
		t.Fatalf("unban: %d", code)
	}
	code = adminDo(t, s, "DELETE", "bans/"+ban.ID, nil, &e)
	wantError(t, "unban twice", 404, e, code, wire.CodeNotFound)
	if err := tryConnect(s.MQTT, "eve", "phone", eveTok); err != nil {
		t.Fatalf("unbanned eve: %v", err)
	}
	if code := login("eve"); code != 200 {
		t.Fatalf("unbanned eve's login: %d", code)
	}

	wait.For(t, "eve's test connection gone", 10*time.Second, func() bool { return slices.Equal(clientIDs(t, s, ""), []string{"bob/phone"}) })
	// An address ban covers everyone from it (bob is kicked and refused);
	// the admin API itself is not subject to it.
	var ipBan banReply
	if code := adminDo(t, s, "POST", "bans", map[string]any{"ip": "127.0.0.0/8", "seconds": 3600}, &ipBan); code != 201 ||
		ipBan.IP != "127.0.0.0/8" || ipBan.Kicked != 1 || ipBan.Expires < time.Now().Add(59*time.Minute).UnixMilli() {
		t.Fatalf("ban 127/8: %d %+v", code, ipBan)
	}
	wait.For(t, "bob kicked", 10*time.Second, func() bool { return !bob.c.IsConnectionOpen() })
	if err := tryConnect(s.MQTT, "bob", "phone", bobTok); err == nil || err.Error() != refusedV3 {
		t.Fatalf("bob from a banned address: %v", err)
	}
	if code := login("bob"); code != 403 {
		t.Fatalf("bob's login from a banned address: %d", code)
	}
	if code := adminDo(t, s, "DELETE", "bans/"+ipBan.ID, nil, nil); code != 204 {
		t.Fatalf("remove the address ban: %d", code)
	}
	if err := tryConnect(s.MQTT, "bob", "phone", bobTok); err != nil {
		t.Fatalf("bob after the address ban: %v", err)
	}

	// Expiry: a one-second ban refuses, then lets eve in by itself.
	var short banReply
	if code := adminDo(t, s, "POST", "bans", map[string]any{"user": "eve", "seconds": 1}, &short); code != 201 {
		t.Fatalf("short ban: %d", code)
	}
	if err := tryConnect(s.MQTT, "eve", "phone", eveTok); err == nil || err.Error() != refusedV3 {
		t.Fatalf("eve under a short ban: %v", err)
	}
	wait.For(t, "the short ban to expire", 10*time.Second, func() bool {
		var bl struct{ Bans []banReply }
		adminDo(t, s, "GET", "bans", nil, &bl)
		return len(bl.Bans) == 0
	})
	if err := tryConnect(s.MQTT, "eve", "phone", eveTok); err != nil {
		t.Fatalf("eve after her ban expired: %v", err)
	}

	// A ban survives a restart.
	var lasting banReply
	if code := adminDo(t, s, "POST", "bans", map[string]any{"user": "eve", "reason": "again"}, &lasting); code != 201 {
		t.Fatalf("ban again: %d", code)
	}
	s.Restart(t)
	var bl struct{ Bans []banReply }
	if code := adminDo(t, s, "GET", "bans", nil, &bl); code != 200 || len(bl.Bans) != 1 || bl.Bans[0].ID != lasting.ID ||
		bl.Bans[0].Reason != "again" {
		t.Fatalf("bans after restart: %d %+v", code, bl)
	}
	if err := tryConnect(s.MQTT, "eve", "phone", eveTok); err == nil || err.Error() != refusedV3 {
		t.Fatalf("eve after restart: %v", err)
	}
	if code := login("eve"); code != 403 {
		t.Fatalf("eve's login after restart: %d", code)
	}
	if err := tryConnect(s.MQTT, "bob", "phone", bobTok); err != nil {
		t.Fatalf("bob after restart: %v", err)
	}
	// The refusals are listed as recent events of kind banned.
	var ev struct{ Events []struct{ Kind, User string } }
	adminDo(t, s, "GET", "events?kind=banned", nil, &ev)
	if len(ev.Events) < 2 || ev.Events[0].User != "eve" {
		t.Fatalf("banned events after restart: %+v", ev.Events)
	}
}

// TestAdminNotice: a notice reaches every connected device of every user,
// or only the user named; bad notices are 400.
func TestAdminNotice(t *testing.T) {
	s := startAdmin(t)
	aliceTok := account(t, s, "alice", "phone")
	phone := connect(t, s.MQTT, "alice", "phone", aliceTok)
	laptop := connect(t, s.MQTT, "alice", "laptop", login(t, s, "alice", "laptop"))
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	for _, body := range []string{`{}`, `{"text":"  "}`, `{"text":"x","user":"a b"}`, `{"txt":"x"}`,
		`{"text":"` + strings.Repeat("x", 4097) + `"}`, `not json`} {
		var e wire.Error
		code := adminDo(t, s, "POST", "notice", body, &e)
		wantError(t, "notice "+body, 400, e, code, wire.CodeBadRequest)
	}

	texts := func(d *device) []string {
		var out []string
		for _, raw := range d.inboxOf("notice") {
			var n struct {
				Kind, Text string
				TS         int64
			}
			mustUnmarshal(t, raw, &n)
			if n.TS <= 0 {
				t.Errorf("notice without ts: %s", raw)
			}
			out = append(out, n.Text)
		}
		return out
	}
	var r struct{ Users int }
	if code := adminDo(t, s, "POST", "notice", map[string]string{"text": "maintenance at 10:00"}, &r); code != 200 || r.Users != 2 {
		t.Fatalf("notice to all: %d %+v", code, r)
	}
	for _, d := range []*device{phone, laptop, bob} {
		wait.For(t, d.user+"/"+d.device+" notice", 10*time.Second, func() bool { return len(texts(d)) == 1 })
	}
	if code := adminDo(t, s, "POST", "notice", map[string]string{"text": "just bob", "user": "bob"}, &r); code != 200 || r.Users != 1 {
		t.Fatalf("notice to bob: %d %+v", code, r)
	}
	if code := adminDo(t, s, "POST", "notice", map[string]string{"text": "just alice", "user": "alice"}, nil); code != 200 {
		t.Fatalf("notice to alice: %d", code)
	}
	wait.For(t, "bob's own notice", 10*time.Second, func() bool { return len(texts(bob)) == 2 })
	for _, d := range []*device{phone, laptop} {
		wait.For(t, "alice's own notice", 10*time.Second, func() bool { return len(texts(d)) == 2 })
		if got := texts(d); !slices.Equal(got, []string{"maintenance at 10:00", "just alice"}) {
			t.Fatalf("%s/%s notices: %q", d.user, d.device, got)
		}
	}
	if got := texts(bob); !slices.Equal(got, []string{"maintenance at 10:00", "just bob"}) {
		t.Fatalf("bob's notices: %q", got)
	}
	var st struct {
		Messages struct {
			OutTotal float64 `json:"out_total"`
		}
	}
	adminDo(t, s, "GET", "stats", nil, &st)
	if st.Messages.OutTotal < 4 {
		t.Fatalf("notices not counted as out: %+v", st)
	}
}

// TestAdminDrain: a drain makes /readyz 503 at once, refuses new
// connections, and disconnects every client in waves.
func TestAdminDrain(t *testing.T) {
	s := startAdmin(t)
	for _, body := range []string{`{"percent":0}`, `{"percent":101}`, `{"interval_ms":1}`, `{"interval_ms":60001}`, `{"waves":3}`, `[]`} {
		var e wire.Error
		code := adminDo(t, s, "POST", "drain", body, &e)
		wantError(t, "drain "+body, 400, e, code, wire.CodeBadRequest)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/readyz", "", nil, nil); code != 200 {
		t.Fatalf("readyz after bad drains: %d", code)
	}

	const n = 10
	var mu sync.Mutex
	var lost []time.Time
	token := account(t, s, "u", "d0")
	for i := 0; i < n; i++ {
		opts := paho.NewClientOptions().AddBroker("tcp://" + s.MQTT).SetClientID(fmt.Sprintf("u/d%d", i)).
			SetUsername("u").SetPassword("secret-u").SetAutoReconnect(false).SetProtocolVersion(4). // the password opens every device; a token only its own
			SetConnectionLostHandler(func(paho.Client, error) {
				mu.Lock()
				lost = append(lost, time.Now())
				mu.Unlock()
			})
		c := paho.NewClient(opts)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("connect %d: %v", i, tk.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
	}
	const interval = 200 * time.Millisecond
	var started struct {
		Drain struct{ Total, Percent int }
	}
	if code := adminDo(t, s, "POST", "drain", map[string]int{"percent": 20, "interval_ms": int(interval.Milliseconds())}, &started); code != 202 ||
		started.Drain.Total != n || started.Drain.Percent != 20 {
		t.Fatalf("drain: %d %+v", code, started)
	}
	var ready struct{ Status string }
	if code := httpJSON(t, "GET", s.HTTP+"/readyz", "", nil, &ready); code != 503 || ready.Status != "draining" {
		t.Fatalf("readyz while draining: %d %+v", code, ready)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/healthz", "", nil, nil); code != 200 {
		t.Fatalf("healthz while draining: %d", code)
	}
	if err := tryConnect(s.MQTT, "u", "late", token); err == nil {
		t.Fatal("a new connection was accepted while draining")
	}
	wait.For(t, "the drain to finish", 10*time.Second, func() bool {
		d := nodes(t, s).Nodes[0].Drain
		return d != nil && d.Done
	})
	node := nodes(t, s).Nodes[0]
	if d := node.Drain; node.Status != "drained" || d.Total != n || d.Disconnected != n || d.Remaining != 0 || d.Waves != 5 {
		t.Fatalf("drained node: %+v %+v", node, d)
	}
	wait.For(t, "every client to see its connection end", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lost) == n
	})
	mu.Lock()
	slices.SortFunc(lost, func(a, b time.Time) int { return a.Compare(b) })
	spread := lost[n-1].Sub(lost[0])
	mu.Unlock()
	if spread < 3*interval {
		t.Fatalf("all %d clients disconnected within %v: not in waves of %v", n, spread, interval)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/readyz", "", nil, &ready); code != 503 {
		t.Fatalf("readyz after the drain: %d", code)
	}
	var again struct{ Drain struct{ Disconnected int } }
	if code := adminDo(t, s, "POST", "drain", `{}`, &again); code != 200 || again.Drain.Disconnected != n {
		t.Fatalf("second drain: %d %+v", code, again)
	}
}

// TestAdminStatsAndEvents: stats count what happened, the recent events
// list the refusals, /metrics has publishes by direction and kind.
func TestAdminStatsAndEvents(t *testing.T) {
	s := startAdmin(t)
	alice := connect(t, s.MQTT, "alice", "phone", account(t, s, "alice", "phone"))
	bob := connect(t, s.MQTT, "bob", "phone", account(t, s, "bob", "phone"))
	for i := 0; i < 3; i++ {
		if _, werr := alice.send("bob", fmt.Sprintf("c-%d", i), "hi"); werr != nil {
			t.Fatal(werr)
		}
	}
	wait.For(t, "bob's messages", 10*time.Second, func() bool { return len(bob.msgs()) == 3 })
	alice.publish(wire.TopicSend, wire.Send{CMID: "bad", To: "bob", Type: "hologram", Body: "x"})
	if _, werr := alice.awaitReply("bad"); werr == nil || werr.Code != wire.CodeBadType {
		t.Fatalf("bad type: %+v", werr)
	}
	alice.c.Subscribe("im/u/bob/inbox", 1, nil).WaitTimeout(5 * time.Second)
	if err := tryConnect(s.MQTT, "alice", "x", "wrong-password"); err == nil {
		t.Fatal("wrong password accepted")
	}

	var st struct {
		Node          string
		Connections   int64
		WindowSeconds float64 `json:"window_seconds"`
		Messages      struct {
			InTotal     float64 `json:"in_total"`
			OutTotal    float64 `json:"out_total"`
			StoredTotal float64 `json:"stored_total"`
			InPerSec    float64 `json:"in_per_sec"`
		}
		AckMS struct {
			P50, P99 *float64
			Count    int
		} `json:"ack_ms"`
		Store struct {
			Batch    struct{ Count int }
			CommitMS struct {
				P99   *float64
				Count int
			} `json:"commit_ms"`
		}
		Totals struct {
			Errors       float64
			ACLDenials   float64 `json:"acl_denials"`
			AuthFailures float64 `json:"auth_failures"`
		}
		Series []struct {
			T     int64
			Conns int64
			In    float64
		}
	}
	if code := adminDo(t, s, "GET", "stats?window=600", nil, &st); code != 200 {
		t.Fatalf("stats: %d", code)
	}
	if st.Node != "test" || st.Connections != 2 || st.Messages.InTotal != 4 || st.Messages.StoredTotal != 3 ||
		st.Messages.OutTotal < 3+3+1 || st.AckMS.Count != 3 || st.AckMS.P50 == nil || *st.AckMS.P50 <= 0 ||
		*st.AckMS.P99 < *st.AckMS.P50 || st.Store.Batch.Count < 1 || st.Store.CommitMS.P99 == nil ||
		st.Totals.Errors != 1 || st.Totals.ACLDenials != 1 || st.Totals.AuthFailures != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if len(st.Series) != 0 {
		t.Fatalf("series without since: %+v", st.Series)
	}
	wait.For(t, "two samples", 10*time.Second, func() bool {
		adminDo(t, s, "GET", "stats?since=0", nil, &st)
		return len(st.Series) >= 1
	})
	if p := st.Series[len(st.Series)-1]; p.Conns != 2 || p.T <= 0 {
		t.Fatalf("last point: %+v", p)
	}
	last := st.Series[len(st.Series)-1].T
	adminDo(t, s, "GET", fmt.Sprintf("stats?since=%d", last), nil, &st)
	for _, p := range st.Series {
		if p.T <= last {
			t.Fatalf("since=%d returned the older point %+v", last, p)
		}
	}
	for _, q := range []string{"window=0", "window=601", "window=x", "since=-5", "since=soon", "foo=1"} {
		var e wire.Error
		code := adminDo(t, s, "GET", "stats?"+q, nil, &e)
		wantError(t, "stats?"+q, 400, e, code, wire.CodeBadRequest)
	}

	type event struct{ Kind, Code, User, Client, Detail string }
	var ev struct{ Events []event }
	if code := adminDo(t, s, "GET", "events", nil, &ev); code != 200 {
		t.Fatalf("events: %d", code)
	}
	want := []event{
		{Kind: "auth_failure", Code: "credentials", User: "alice"},
		{Kind: "acl_denial", Code: "subscribe", Client: "alice/phone", Detail: "im/u/bob/inbox"},
		{Kind: "error", Code: wire.CodeBadType},
	}
	if len(ev.Events) != len(want) {
		t.Fatalf("events: %+v", ev.Events)
	}
	for i, w := range want {
		g := ev.Events[i]
		if g.Kind != w.Kind || g.Code != w.Code || (w.User != "" && g.User != w.User) ||
			(w.Client != "" && g.Client != w.Client) || (w.Detail != "" && g.Detail != w.Detail) {
			t.Errorf("event %d: %+v, want %+v", i, g, w)
		}
	}
	adminDo(t, s, "GET", "events?kind=acl_denial&limit=5", nil, &ev)
	if len(ev.Events) != 1 || ev.Events[0].Kind != "acl_denial" {
		t.Fatalf("acl denials: %+v", ev.Events)
	}
	for _, q := range []string{"kind=bogus", "limit=0", "limit=501", "after=-1", "user=alice"} {
		var e wire.Error
		code := adminDo(t, s, "GET", "events?"+q, nil, &e)
		wantError(t, "events?"+q, 400, e, code, wire.CodeBadRequest)
	}

	resp, err := http.Get(s.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`imqtt_publishes_total{direction="in",kind="send"} 4`,
		`imqtt_publishes_total{direction="out",kind="ack"} 3`,
		`imqtt_publishes_total{direction="out",kind="error"} 1`,
		`imqtt_publishes_total{direction="out",kind="msg"} 6`, // to bob's inbox and alice's own
		`imqtt_publishes_total{direction="out",kind="notice"} 0`,
		`imqtt_connections 2`,
	} {
		if !bytes.Contains(body, []byte(line+"\n")) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	var nd adminNodes
	adminDo(t, s, "GET", "nodes", nil, &nd)
	n := nd.Nodes[0]
	if n.ID != "test" || !n.Self || n.Status != "serving" || n.Connections != 2 || n.Version == "" ||
		n.Addresses["mqtt"] != s.MQTT || "http://"+n.Addresses["http"] != s.HTTP {
		t.Fatalf("nodes: %+v", nd)
	}
}
