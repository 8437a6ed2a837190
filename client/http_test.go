package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

func TestHTTPErrorsBecomeWireErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/users":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"code":"exists","message":"user alice exists"}`)
		case "/v1/messages":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "upstream down")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	err := Register(ctx, srv.URL, "alice", "pw")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeExists || we.Message != "user alice exists" {
		t.Fatalf("Register: %v", err)
	}
	_, err = (&HTTP{Server: srv.URL, Token: "t"}).Send(ctx, wire.Send{CMID: "c1", To: "bob", Type: "text"})
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable || !Retryable(err) {
		t.Fatalf("Send with a non-JSON 503: %v", err)
	}
	_, err = (&HTTP{Server: srv.URL, Token: "t"}).Conversations(ctx)
	if !errors.As(err, &we) || we.Code != wire.CodeNotFound {
		t.Fatalf("Conversations on a 404: %v", err)
	}
}

// TestHTTPCallAndStream: Call and Stream return the reply's status with
// its body or with its error (deleting a user is 202 while more is left;
// a refusal is a *wire.Error), sending the token and a JSON body.
func TestHTTPCallAndStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer adm" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":"unauthorized","message":"wrong admin token"}`)
			return
		}
		var in struct{ User string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"user":%q,"q":%q}`, in.User, r.URL.Query().Get("q"))
	}))
	defer srv.Close()
	ctx := context.Background()
	h := &HTTP{Server: srv.URL, Token: "adm"}
	code, raw, err := h.Call(ctx, http.MethodPost, "/v1/admin/x", url.Values{"q": {"1"}}, map[string]string{"user": "kim"})
	if err != nil || code != http.StatusAccepted || string(raw) != `{"user":"kim","q":"1"}` {
		t.Fatalf("Call: %d %s %v", code, raw, err)
	}
	code, body, err := h.Stream(ctx, http.MethodGet, "/v1/admin/backup", nil, nil)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("Stream: %d %v", code, err)
	}
	raw, _ = io.ReadAll(body)
	body.Close()
	if string(raw) != `{"user":"","q":""}` {
		t.Errorf("Stream's body: %s", raw)
	}
	h.Token = "wrong"
	var we *wire.Error
	if code, _, err := h.Call(ctx, http.MethodGet, "/v1/admin/x", nil, nil); code != http.StatusUnauthorized || !errors.As(err, &we) || we.Message != "wrong admin token" {
		t.Errorf("Call with a wrong token: %d %v", code, err)
	}
	if code, body, err := h.Stream(ctx, http.MethodGet, "/v1/admin/backup", nil, nil); code != http.StatusUnauthorized || body != nil || !errors.As(err, &we) || we.Code != "unauthorized" {
		t.Errorf("Stream with a wrong token: %d %v", code, err)
	}
}

func TestHTTPRequests(t *testing.T) {
	type seen struct{ method, uri, auth, body string }
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&body)
		got = append(got, seen{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), string(body)})
		switch r.URL.Path {
		case "/v1/sessions":
			fmt.Fprint(w, `{"token":"tok","expires_at":5}`)
		case "/v1/messages":
			fmt.Fprint(w, `{"cmid":"c1","id":"77","ver":3,"ts":9}`)
		case "/v1/read":
			fmt.Fprint(w, `{"kind":"unread","total":0,"peer":"bob","count":0}`)
		case "/v1/sessions/current":
			w.WriteHeader(http.StatusNoContent)
		default:
			fmt.Fprint(w, `{}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	s, err := Login(ctx, srv.URL+"/", "alice", "pw", "phone")
	if err != nil || s.Token != "tok" || s.User != "alice" || s.Device != "phone" {
		t.Fatalf("Login = %+v, %v", s, err)
	}
	h := &HTTP{Server: srv.URL, Token: "tok"}
	a, err := h.Send(ctx, wire.Send{CMID: "c1", To: "bob", Type: "text", Body: "hi"})
	if err != nil || a.ID != "77" || a.Kind != wire.KindAck {
		t.Fatalf("Send = %+v, %v", a, err)
	}
	if _, err := h.History(ctx, "bob", "123", 20); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Sync(ctx, wire.SyncRequest{Since: 4, Limit: 10, Epoch: "ep"}); err != nil {
		t.Fatal(err)
	}
	if u, err := h.Read(ctx, wire.Read{Peer: "bob", Upto: "77"}); err != nil || u.Peer != "bob" {
		t.Fatalf("Read = %+v, %v", u, err)
	}
	if err := h.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{"POST", "/v1/sessions", "", `{"user":"alice","password":"pw","device":"phone"}`},
		{"POST", "/v1/messages", "Bearer tok", `{"cmid":"c1","to":"bob","type":"text","body":"hi"}`},
		{"GET", "/v1/conversations/bob/messages?before=123&limit=20", "Bearer tok", ""},
		{"GET", "/v1/sync?epoch=ep&limit=10&since=4", "Bearer tok", ""},
		{"POST", "/v1/read", "Bearer tok", `{"peer":"bob","upto":"77"}`},
		{"DELETE", "/v1/sessions/current", "Bearer tok", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("requests %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestSyncCursor runs SyncCursor against a server whose history was lost
// (the saved epoch is gone) and that answers in pages.
func TestSyncCursor(t *testing.T) {
	h := &fakeHistory{vers: []uint64{1, 2, 4, 5, 6, 9}, epoch: "new", batchItems: 2, maxLimit: 2}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("heads") == "1" {
			json.NewEncoder(w).Encode(wire.Heads{Kind: wire.KindHeads, Groups: []wire.GroupHead{}})
			return
		}
		since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		b := h.serve(since, r.URL.Query().Get("epoch"), 2)[0] // one batch per call, as over HTTP
		b.More = b.More || len(h.serve(b.Upto, h.epoch, 1)[0].Items) > 0
		json.NewEncoder(w).Encode(b)
	}))
	defer srv.Close()
	cur := &MemoryCursor{}
	_ = cur.Save(Cursor{Ver: 50, Epoch: "old"})
	var got []uint64
	err := (&HTTP{Server: srv.URL}).SyncCursor(context.Background(), cur, 2, func(m wire.Msg) error {
		got = append(got, m.Ver)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(h.vers) {
		t.Fatalf("synced %v, want %v", got, h.vers)
	}
	if c, _ := cur.Load(); c.Ver != 9 || c.Epoch != "new" {
		t.Fatalf("cursor %+v, want 9 new", c)
	}
	// Nothing new: nothing delivered, the cursor stays.
	got = nil
	if err := (&HTTP{Server: srv.URL}).SyncCursor(context.Background(), cur, 2, func(m wire.Msg) error {
		got = append(got, m.Ver)
		return nil
	}); err != nil || len(got) != 0 {
		t.Fatalf("second sync: %v, %v", got, err)
	}
}

// TestSyncCursorGroups: after the inbox, SyncCursor asks heads once and
// syncs each group whose head differs from its cursor: a moved group from
// its cursor, a new one from its join, one whose cursor is past its head
// (another history: the server resets it), none of an unchanged one; a
// saved group heads no longer list is dropped from the cursor.
func TestSyncCursorGroups(t *testing.T) {
	groupSeqs := map[string][]uint64{"moved": {1, 2, 3, 4}, "fresh": {1, 2, 3, 4, 5, 6}, "ahead": {1, 2}, "still": {1, 2}}
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("heads") == "1":
			json.NewEncoder(w).Encode(wire.Heads{Kind: wire.KindHeads, Groups: []wire.GroupHead{
				{Group: "ahead", Seq: 2}, {Group: "fresh", Seq: 6, Join: 4}, {Group: "moved", Seq: 4}, {Group: "still", Seq: 2}}})
		case q.Get("group") != "":
			g := q.Get("group")
			since, _ := strconv.ParseUint(q.Get("since"), 10, 64)
			asked = append(asked, fmt.Sprintf("%s@%d", g, since))
			b := wire.Sync{Kind: wire.KindSync, Group: g, Epoch: "e1"}
			seqs := groupSeqs[g]
			if since > uint64(len(seqs)) { // past the head: reset to the join (0 here)
				since, b.Reset = 0, true
			}
			b.Since, b.Upto = since, uint64(len(seqs))
			for _, s := range seqs[since:] {
				b.Items = append(b.Items, wire.Msg{Kind: wire.KindMsg, ID: fmt.Sprint(g, s), Group: g, Seq: s})
			}
			json.NewEncoder(w).Encode(b)
		default:
			json.NewEncoder(w).Encode(wire.Sync{Kind: wire.KindSync, Epoch: "e1"})
		}
	}))
	defer srv.Close()
	cur := &MemoryCursor{}
	_ = cur.Save(Cursor{Epoch: "e1", Groups: map[string]GroupCursor{
		"moved": {Seq: 2, Epoch: "e1"}, "ahead": {Seq: 1000, Epoch: "e1"}, "still": {Seq: 2, Epoch: "e1"}, "left": {Seq: 7, Epoch: "e1"}}})
	var got []string
	err := (&HTTP{Server: srv.URL}).SyncCursor(context.Background(), cur, 0, func(m wire.Msg) error {
		got = append(got, m.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ahead@1000", "fresh@4", "moved@2"}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Fatalf("group syncs %v, want %v", asked, want)
	}
	if want := []string{"ahead1", "ahead2", "fresh5", "fresh6", "moved3", "moved4"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	c, _ := cur.Load()
	want := map[string]uint64{"ahead": 2, "fresh": 6, "moved": 4, "still": 2}
	if len(c.Groups) != len(want) {
		t.Fatalf("saved groups %+v, want %v", c.Groups, want)
	}
	for g, s := range want {
		if c.Groups[g].Seq != s {
			t.Fatalf("saved groups %+v, want %v", c.Groups, want)
		}
	}
}
