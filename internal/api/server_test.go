package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/api"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// The server API against a whole in-process imqttd (real store, real
// listeners): each route's success and refusals. The MQTT side (a system
// send reaching a device live, a deleted user's device kicked) is
// e2e/server_test.go's.

var (
	key1 = strings.Repeat("k", 32)
	key2 = strings.Repeat("z", 48)
)

func withKeys(keys ...string) func(*daemon.Config) {
	return func(c *daemon.Config) { c.ServerKeys = keys }
}

// call sends a JSON request with a bearer token and returns the status
// and the raw reply.
func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// want checks a call's status and, for an error, its code.
func want(t *testing.T, what string, status int, raw []byte, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: %d %s, want %d", what, status, raw, wantStatus)
		return
	}
	if wantCode != "" {
		var e wire.Error
		if json.Unmarshal(raw, &e) != nil || e.Code != wantCode {
			t.Errorf("%s: %s, want code %s", what, raw, wantCode)
		}
	}
}

func userToken(t *testing.T, s *testserver.Server, user string) string {
	t.Helper()
	if st, raw := call(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: user, Password: "secret-" + user}); st != 201 {
		t.Fatalf("register %s: %d %s", user, st, raw)
	}
	st, raw := call(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: user, Password: "secret-" + user, Device: "d"})
	var sess wire.Session
	if st != 200 || json.Unmarshal(raw, &sess) != nil {
		t.Fatalf("login %s: %d %s", user, st, raw)
	}
	return sess.Token
}

// TestServerAPIOff: with no --server-key the routes are not there.
func TestServerAPIOff(t *testing.T) {
	s := testserver.Start(t)
	tok := userToken(t, s, "alice")
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/server/users"}, {"POST", "/v1/server/tokens"},
		{"POST", "/v1/server/messages"}, {"DELETE", "/v1/server/users/alice"},
		{"GET", "/v1/server/users"}, {"GET", "/v1/server/users/alice"}, // no 405 either
	} {
		for _, bearer := range []string{"", tok, key1} {
			st, raw := call(t, c.method, s.HTTP+c.path, bearer, map[string]string{"user": "x"})
			want(t, c.method+" "+c.path+" without keys", st, raw, 404, wire.CodeNotFound)
		}
	}
}

// TestServerAPIAuth: only a configured key opens the API, any of them; a
// user's token, a wrong key, a key's prefix or extension, another scheme
// are 401, and an address that keeps failing gets 429 — but never with a
// right key.
func TestServerAPIAuth(t *testing.T) {
	old := api.ServerAuthLimit
	api.ServerAuthLimit.Rate, api.ServerAuthLimit.Per, api.ServerAuthLimit.Burst = 1, time.Hour, 8
	t.Cleanup(func() { api.ServerAuthLimit = old })
	s := testserver.Start(t, withKeys(key1, key2))
	tok := userToken(t, s, "alice")
	for i, k := range []string{key1, key2} {
		st, raw := call(t, "POST", s.HTTP+"/v1/server/users", k, map[string]string{"user": "bot" + string(rune('a'+i))})
		want(t, "create with key "+string(rune('1'+i)), st, raw, 201, "")
	}
	for _, bad := range []string{tok, "", key1[:31], key1 + "k", strings.ToUpper(key1), "Basic " + key1} {
		st, raw := call(t, "POST", s.HTTP+"/v1/server/users", bad, map[string]string{"user": "mallory"})
		want(t, "create with a wrong key", st, raw, 401, wire.CodeUnauthorized)
	}
	req, _ := http.NewRequest("POST", s.HTTP+"/v1/server/users", strings.NewReader(`{"user":"m2"}`))
	req.Header.Set("Authorization", key1) // no "Bearer "
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("a key without Bearer: %v %v", resp.StatusCode, err)
	}
	// 7 failures spent of a burst of 8: one more passes as 401, then 429.
	st, raw := call(t, "POST", s.HTTP+"/v1/server/users", "wrong", map[string]string{"user": "m3"})
	want(t, "the burst's last failure", st, raw, 401, wire.CodeUnauthorized)
	st, raw = call(t, "POST", s.HTTP+"/v1/server/users", "wrong", map[string]string{"user": "m3"})
	want(t, "a failure past the limit", st, raw, 429, wire.CodeRateLimited)
	st, raw = call(t, "POST", s.HTTP+"/v1/server/users", key2, map[string]string{"user": "botc"})
	want(t, "a right key from a throttled address", st, raw, 201, "")
}

// TestServerUsersAndTokens: users without a password, tokens minted for
// them that work as login tokens, and the refusals of both routes.
func TestServerUsersAndTokens(t *testing.T) {
	s := testserver.Start(t, withKeys(key1))
	users, tokens := s.HTTP+"/v1/server/users", s.HTTP+"/v1/server/tokens"
	st, raw := call(t, "POST", users, key1, map[string]string{"user": "Bot1"})
	want(t, "create", st, raw, 201, "")
	if !strings.Contains(string(raw), `"user":"bot1"`) {
		t.Errorf("create answered %s, want the canonical ID", raw)
	}
	for _, c := range []struct {
		body       any
		status     int
		code, what string
	}{
		{map[string]string{"user": "bot1"}, 409, wire.CodeExists, "taken"},
		{map[string]string{"user": "BOT1"}, 409, wire.CodeExists, "taken in another case"},
		{map[string]string{"user": "system"}, 400, wire.CodeBadRequest, "system"},
		{map[string]string{"user": "deleted"}, 400, wire.CodeBadRequest, "the anonymised sender"},
		{map[string]string{"user": ".dot"}, 400, wire.CodeBadRequest, "a dot ID"},
		{map[string]string{"user": "a/b"}, 400, wire.CodeBadRequest, "a slash"},
		{map[string]string{"user": ""}, 400, wire.CodeBadRequest, "empty"},
		{map[string]any{"user": "x", "password": "pw"}, 400, wire.CodeBadRequest, "an unknown field"},
	} {
		st, raw := call(t, "POST", users, key1, c.body)
		want(t, "create "+c.what, st, raw, c.status, c.code)
	}
	// No password logs the user in.
	st, raw = call(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: "bot1", Password: "", Device: "d"})
	want(t, "password login of a passwordless user", st, raw, 401, "")

	st, raw = call(t, "POST", tokens, key1, map[string]any{"user": "bot1", "device": "phone", "ttl": 3600})
	var sess wire.Session
	if want(t, "mint", st, raw, 200, ""); json.Unmarshal(raw, &sess) != nil || sess.Token == "" {
		t.Fatalf("mint answered %s", raw)
	}
	if d := time.Until(time.UnixMilli(sess.ExpiresAt)); d > time.Hour || d < 59*time.Minute {
		t.Errorf("a token of ttl 3600 expires in %v", d)
	}
	st, raw = call(t, "GET", s.HTTP+"/v1/sync?since=0", sess.Token, nil)
	want(t, "sync with a minted token", st, raw, 200, "")
	st, raw = call(t, "POST", tokens, key1, map[string]any{"user": "bot1", "device": "tablet", "ttl": "720h"})
	var sess2 wire.Session
	if want(t, "mint with a duration", st, raw, 200, ""); json.Unmarshal(raw, &sess2) != nil {
		t.Fatalf("mint answered %s", raw)
	}
	if d := time.Until(time.UnixMilli(sess2.ExpiresAt)); d > 720*time.Hour || d < 719*time.Hour {
		t.Errorf("a token of ttl 720h expires in %v", d)
	}
	st, raw = call(t, "POST", s.HTTP+"/v1/server/users", sess.Token, map[string]string{"user": "x"})
	want(t, "a minted user token on the server API", st, raw, 401, wire.CodeUnauthorized)
	st, raw = call(t, "DELETE", s.HTTP+"/v1/sessions/current", sess.Token, nil)
	want(t, "logout of a minted token", st, raw, 204, "")
	st, raw = call(t, "GET", s.HTTP+"/v1/sync?since=0", sess.Token, nil)
	want(t, "sync after logout", st, raw, 401, wire.CodeUnauthorized)
	for _, c := range []struct {
		body       any
		status     int
		code, what string
	}{
		{map[string]any{"user": "nobody", "device": "d"}, 404, wire.CodeNoSuchUser, "an unknown user"},
		{map[string]any{"user": "bot1", "device": "a/b"}, 400, wire.CodeBadRequest, "a bad device"},
		{map[string]any{"user": "..", "device": "d"}, 400, wire.CodeBadRequest, "a bad user"},
		{map[string]any{"user": "bot1", "device": "d", "ttl": -1}, 400, wire.CodeBadRequest, "a negative ttl"},
		{map[string]any{"user": "bot1", "device": "d", "ttl": 365*24*3600 + 1}, 400, wire.CodeBadRequest, "a ttl past a year"},
		{map[string]any{"user": "system", "device": "d"}, 404, wire.CodeNoSuchUser, "system"},
		{map[string]any{"user": "bot1", "device": "d", "ttl": "8761h"}, 400, wire.CodeBadRequest, "a duration past a year"},
		{map[string]any{"user": "bot1", "device": "d", "ttl": "-1h"}, 400, wire.CodeBadRequest, "a negative duration"},
		{map[string]any{"user": "bot1", "device": "d", "ttl": "soon"}, 400, wire.CodeBadRequest, "a ttl that is no duration"},
		{map[string]any{"user": "bot1", "device": "d", "ttl": 1.5}, 400, wire.CodeBadRequest, "a fraction of seconds"},
	} {
		st, raw := call(t, "POST", tokens, key1, c.body)
		want(t, "mint for "+c.what, st, raw, c.status, c.code)
	}
}

// syncMsgs returns a token's inbox from the start.
func syncMsgs(t *testing.T, s *testserver.Server, token string) []wire.Msg {
	t.Helper()
	st, raw := call(t, "GET", s.HTTP+"/v1/sync?since=0", token, nil)
	var b wire.Sync
	if st != 200 || json.Unmarshal(raw, &b) != nil {
		t.Fatalf("sync: %d %s", st, raw)
	}
	return b.Items
}

type serverSend struct {
	From string `json:"from"`
	wire.Send
}

// TestServerSend: sends as a user and as system are stored and acked like
// any; a replay answers the same ack and stores nothing; the refusals.
func TestServerSend(t *testing.T) {
	s := testserver.Start(t, withKeys(key1))
	msgs := s.HTTP + "/v1/server/messages"
	bob := userToken(t, s, "bob")
	userToken(t, s, "carol")
	st, raw := call(t, "POST", msgs, key1, serverSend{"carol", wire.Send{CMID: "c1", To: "bob", Type: "text", Body: "from carol"}})
	want(t, "send as carol", st, raw, 200, "")
	var ack1, ack2 wire.Ack
	_ = json.Unmarshal(raw, &ack1)
	st, raw = call(t, "POST", msgs, key1, serverSend{"carol", wire.Send{CMID: "c1", To: "bob", Type: "text", Body: "from carol"}})
	want(t, "replay", st, raw, 200, "")
	_ = json.Unmarshal(raw, &ack2)
	if ack1.ID == "" || ack1 != ack2 {
		t.Errorf("a replayed send answered %+v, the first %+v", ack2, ack1)
	}
	st, raw = call(t, "POST", msgs, key1, serverSend{"system", wire.Send{CMID: "s1", To: "bob", Type: "text", Body: "from system"}})
	want(t, "send as system", st, raw, 200, "")
	var sysAck wire.Ack
	if _ = json.Unmarshal(raw, &sysAck); sysAck.ID == "" || sysAck.Ver != 0 {
		t.Errorf("system's ack %+v: want an ID and ver 0 (system keeps no inbox)", sysAck)
	}
	items := syncMsgs(t, s, bob)
	if len(items) != 2 || items[0].From != "carol" || items[1].From != "system" || items[1].Body != "from system" {
		t.Fatalf("bob's inbox: %+v; want carol's message once, then system's", items)
	}

	for _, c := range []struct {
		body       serverSend
		status     int
		code, what string
	}{
		{serverSend{"nobody", wire.Send{CMID: "x", To: "bob", Type: "text", Body: "b"}}, 404, wire.CodeNoSuchUser, "from an unknown user"},
		{serverSend{"", wire.Send{CMID: "x", To: "bob", Type: "text", Body: "b"}}, 400, wire.CodeBadRequest, "without from"},
		{serverSend{"admin", wire.Send{CMID: "x", To: "bob", Type: "text", Body: "b"}}, 404, wire.CodeNoSuchUser, "from a reserved ID"},
		{serverSend{"carol", wire.Send{To: "bob", Type: "text", Body: "b"}}, 400, wire.CodeMissingCMID, "without cmid"},
	} {
		st, raw := call(t, "POST", msgs, key1, c.body)
		want(t, "send "+c.what, st, raw, c.status, c.code)
	}
}

// TestServerSendRate: each key's sends are bounded by --server-send-rate
// (here 1 a second, burst 1), apart from the sender's --max-send-rate, and
// apart from the other keys'; its creations and mints likewise.
func TestServerSendRate(t *testing.T) {
	s := testserver.Start(t, withKeys(key1, key2), func(c *daemon.Config) { c.ServerSendRate = 1; c.SendRate, c.SendBurst = 1, 1 })
	msgs := s.HTTP + "/v1/server/messages"
	bob := userToken(t, s, "bob")
	st, raw := call(t, "POST", s.HTTP+"/v1/messages", bob, wire.Send{CMID: "own", To: "bob", Type: "text", Body: "b"})
	want(t, "bob's own send, his --max-send-rate's burst", st, raw, 200, "")
	st, raw = call(t, "POST", msgs, key1, serverSend{"system", wire.Send{CMID: "s1", To: "bob", Type: "text", Body: "b"}})
	want(t, "the key's first send", st, raw, 200, "")
	st, raw = call(t, "POST", msgs, key1, serverSend{"system", wire.Send{CMID: "s2", To: "bob", Type: "text", Body: "b"}})
	want(t, "a send past --server-send-rate", st, raw, 429, wire.CodeRateLimited)
	st, raw = call(t, "POST", msgs, key2, serverSend{"bob", wire.Send{CMID: "s3", To: "bob", Type: "text", Body: "b"}})
	want(t, "another key's send as bob, past bob's own rate", st, raw, 200, "")
	// Creations and mints share a bucket of their own, at the same rate.
	st, raw = call(t, "POST", s.HTTP+"/v1/server/users", key1, map[string]string{"user": "u1"})
	want(t, "the key's first creation, apart from its sends", st, raw, 201, "")
	st, raw = call(t, "POST", s.HTTP+"/v1/server/tokens", key1, map[string]string{"user": "u1", "device": "d"})
	want(t, "a mint past the rate", st, raw, 429, wire.CodeRateLimited)
}

// TestServerSendGroup: system sends to a group it is no member of; a user
// must be a member.
func TestServerSendGroup(t *testing.T) {
	s := testserver.Start(t, withKeys(key1))
	msgs := s.HTTP + "/v1/server/messages"
	alice := userToken(t, s, "alice")
	userToken(t, s, "bob")
	st, raw := call(t, "POST", s.HTTP+"/v1/groups", alice, wire.GroupCreate{ID: "g1", Name: "g", Members: []string{"alice"}})
	want(t, "create group", st, raw, 201, "")
	st, raw = call(t, "POST", msgs, key1, serverSend{"system", wire.Send{CMID: "g-1", Group: "g1", Type: "text", Body: "to all"}})
	want(t, "system to a group", st, raw, 200, "")
	st, raw = call(t, "POST", msgs, key1, serverSend{"bob", wire.Send{CMID: "g-2", Group: "g1", Type: "text", Body: "x"}})
	want(t, "a non-member to a group", st, raw, 403, wire.CodeNotMember)
	st, raw = call(t, "POST", msgs, key1, serverSend{"alice", wire.Send{CMID: "g-3", Group: "g1", Type: "text", Body: "hi"}})
	want(t, "a member to a group", st, raw, 200, "")
	st, raw = call(t, "POST", msgs, key1, serverSend{"system", wire.Send{CMID: "g-4", Group: "nope", Type: "text", Body: "x"}})
	want(t, "system to no group", st, raw, 404, wire.CodeNotFound)
	st, raw = call(t, "GET", s.HTTP+"/v1/sync?group=g1&since=0", alice, nil)
	var b wire.Sync
	if st != 200 || json.Unmarshal(raw, &b) != nil || len(b.Items) != 2 || b.Items[0].From != "system" || b.Items[1].From != "alice" {
		t.Errorf("the group's log: %d %s", st, raw)
	}
}

// TestServerDeleteUser: a deleted user's tokens are refused, no password
// or new account brings the ID back, the messages they sent are
// anonymised in the other side's history and their own inbox is gone; a
// second DELETE is fine; the refusals.
func TestServerDeleteUser(t *testing.T) {
	s := testserver.Start(t, withKeys(key1))
	del := func(user string) (int, []byte) { return call(t, "DELETE", s.HTTP+"/v1/server/users/"+user, key1, nil) }
	alice, bob := userToken(t, s, "alice"), userToken(t, s, "bob")
	for i, m := range []wire.Send{{CMID: "a1", To: "bob", Type: "text", Body: "secret of alice", Meta: json.RawMessage(`{"k":"v"}`)},
		{CMID: "a2", To: "bob", Type: "text", Body: "more"}} {
		if st, raw := call(t, "POST", s.HTTP+"/v1/messages", alice, m); st != 200 {
			t.Fatalf("send %d: %d %s", i, st, raw)
		}
	}
	if st, raw := call(t, "POST", s.HTTP+"/v1/messages", bob, wire.Send{CMID: "b1", To: "alice", Type: "text", Body: "bob's"}); st != 200 {
		t.Fatalf("bob's send: %d %s", st, raw)
	}
	st, raw := call(t, "PUT", s.HTTP+"/v1/conversations/bob/settings", alice, map[string]any{"pin": true})
	want(t, "alice pins bob", st, raw, 200, "")
	st, raw = call(t, "POST", s.HTTP+"/v1/groups", alice, wire.GroupCreate{ID: "ga", Name: "alice's", Members: []string{"bob"}})
	want(t, "alice's group", st, raw, 201, "")
	st, raw = call(t, "POST", s.HTTP+"/v1/groups", bob, wire.GroupCreate{ID: "gb", Name: "bob's", Members: []string{"alice"}})
	want(t, "bob's group", st, raw, 201, "")
	if st, raw := call(t, "POST", s.HTTP+"/v1/messages", alice, wire.Send{CMID: "ga1", Group: "gb", Type: "text", Body: "alice in gb"}); st != 200 {
		t.Fatalf("alice's group send: %d %s", st, raw)
	}
	ctx, st0 := t.Context(), s.Store()
	if err := st0.PutPushDevice(ctx, store.PushDevice{User: "alice", Device: "d", Provider: "webhook", Token: "tok"}); err != nil {
		t.Fatal(err)
	}

	st, raw = del("nobody")
	want(t, "delete an unknown user", st, raw, 404, wire.CodeNoSuchUser)
	st, raw = del("system")
	want(t, "delete system", st, raw, 400, wire.CodeBadRequest)
	st, raw = del(".x")
	want(t, "delete a bad ID", st, raw, 400, wire.CodeBadRequest)
	st, raw = call(t, "DELETE", s.HTTP+"/v1/server/users/alice", bob, nil)
	want(t, "delete with a user token", st, raw, 401, wire.CodeUnauthorized)

	st, raw = del("Alice")
	want(t, "delete alice", st, raw, 200, "")
	if !strings.Contains(string(raw), `"status":"deleted"`) {
		t.Errorf("delete answered %s", raw)
	}
	st, raw = call(t, "GET", s.HTTP+"/v1/sync?since=0", alice, nil)
	want(t, "a deleted user's token", st, raw, 401, wire.CodeUnauthorized)
	st, raw = call(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: "alice", Password: "secret-alice", Device: "d"})
	want(t, "a deleted user's password", st, raw, 401, "")
	st, raw = call(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: "alice", Password: "secret-alice"})
	want(t, "register a deleted ID", st, raw, 409, wire.CodeExists)
	st, raw = call(t, "POST", s.HTTP+"/v1/server/users", key1, map[string]string{"user": "alice"})
	want(t, "create a deleted ID", st, raw, 409, wire.CodeExists)
	st, raw = call(t, "POST", s.HTTP+"/v1/server/tokens", key1, map[string]string{"user": "alice", "device": "d"})
	want(t, "mint for a deleted user", st, raw, 404, wire.CodeNoSuchUser)
	st, raw = call(t, "POST", s.HTTP+"/v1/messages", bob, wire.Send{CMID: "b2", To: "alice", Type: "text", Body: "x"})
	want(t, "a send to a deleted user", st, raw, 404, wire.CodeNoSuchUser)

	items := syncMsgs(t, s, bob)
	if len(items) != 3 {
		t.Fatalf("bob's inbox after alice's deletion: %+v", items)
	}
	for _, m := range items[:2] {
		if m.From != "deleted" || m.Body != "" || len(m.Meta) != 0 || m.CMID != "" || strings.Contains(string(mustJSON(t, m)), "alice") {
			t.Errorf("alice's message in bob's inbox: %+v; want anonymised", m)
		}
	}
	if items[2].From != "bob" || items[2].Body != "bob's" {
		t.Errorf("bob's own message changed: %+v", items[2])
	}
	if ms, err := st0.GroupRange(ctx, "gb", 0, 10); err != nil || len(ms) != 1 || ms[0].From != "deleted" || ms[0].Body != "" {
		t.Errorf("alice's group message: %+v, %v; want anonymised", ms, err)
	}
	for _, g := range []string{"ga", "gb"} {
		if _, err := st0.GetMember(ctx, g, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("alice is still in %s: %v", g, err)
		}
		if _, err := st0.GetMember(ctx, g, "bob"); err != nil {
			t.Errorf("bob left %s with alice: %v", g, err)
		}
	}
	if cs, err := st0.UserConvSettings(ctx, "alice"); err != nil || len(cs) != 0 {
		t.Errorf("alice's settings: %+v, %v", cs, err)
	}
	if ds, err := st0.PushDevices(ctx, []string{"alice"}); err != nil || len(ds) != 0 {
		t.Errorf("alice's push registrations: %+v, %v", ds, err)
	}
	if evs, err := st0.Range(ctx, "alice", 0, 100); err != nil || len(evs) != 0 {
		t.Errorf("alice's inbox: %d events, %v", len(evs), err)
	}
	if cs, err := st0.Conversations(ctx, "alice"); err != nil || len(cs) != 0 {
		t.Errorf("alice's conversations: %+v, %v", cs, err)
	}
	st, raw = del("alice")
	want(t, "delete again", st, raw, 200, "")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestServerDeleteResumes: a deletion cut short by its budget answers 202
// "deleting", and the next DELETE finishes it.
func TestServerDeleteResumes(t *testing.T) {
	budget := time.Nanosecond
	s := testserver.Start(t, withKeys(key1), func(c *daemon.Config) { c.ServerDeleteBudget = budget })
	alice, bob := userToken(t, s, "alice"), userToken(t, s, "bob")
	if st, raw := call(t, "POST", s.HTTP+"/v1/messages", alice, wire.Send{CMID: "a1", To: "bob", Type: "text", Body: "x"}); st != 200 {
		t.Fatalf("send: %d %s", st, raw)
	}
	st, raw := call(t, "DELETE", s.HTTP+"/v1/server/users/alice", key1, nil)
	want(t, "a deletion out of budget", st, raw, 202, "")
	if !strings.Contains(string(raw), `"status":"deleting"`) {
		t.Errorf("answered %s", raw)
	}
	st, raw = call(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: "alice", Password: "secret-alice", Device: "d"})
	want(t, "login once the deletion began", st, raw, 401, "")
	_ = alice
	s.Stop(t) // as after a crash half-way; then a server with a budget that finishes
	s2 := testserver.Start(t, withKeys(key1), func(c *daemon.Config) { c.DataDir = s.Dir })
	st, raw = call(t, "DELETE", s2.HTTP+"/v1/server/users/alice", key1, nil)
	want(t, "the deletion resumed", st, raw, 200, "")
	if items := syncMsgs(t, s2, bob); len(items) != 1 || items[0].From != "deleted" {
		t.Errorf("bob's inbox after the resumed deletion: %+v", items)
	}
}

// TestServerUsersWithSignupClosed: --signup closed shuts POST /v1/users,
// not the server API's creations, whose users log in by a minted token.
func TestServerUsersWithSignupClosed(t *testing.T) {
	s := testserver.Start(t, withKeys(key1), func(c *daemon.Config) { c.Signup = api.SignupClosed })
	st, raw := call(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: "alice", Password: "secret-alice"})
	want(t, "public sign-up", st, raw, 403, wire.CodeSignupClosed)
	st, raw = call(t, "POST", s.HTTP+"/v1/server/users", key1, map[string]string{"user": "alice"})
	want(t, "the server API's creation", st, raw, 201, "")
	st, raw = call(t, "POST", s.HTTP+"/v1/server/tokens", key1, map[string]string{"user": "alice", "device": "d"})
	var sess wire.Session
	if want(t, "mint", st, raw, 200, ""); json.Unmarshal(raw, &sess) != nil {
		t.Fatalf("mint: %s", raw)
	}
	st, raw = call(t, "GET", s.HTTP+"/v1/sync?since=0", sess.Token, nil)
	want(t, "the minted token", st, raw, 200, "")
}
