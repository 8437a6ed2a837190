package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// Why 4 (client side): a stored message whose meta nests 9,998 levels made
// `imqtt sync` fail on every retry (encoding/json's depth limit, for the
// whole reply) and `imqtt listen` deliver nothing more (its sync never
// ended). The server now drops such a meta from what it sends, so both print
// that message without it, and the rest. And should a server still send an
// item the CLI cannot decode (an older imqttd, a proxy that mangles), `imqtt
// sync` skips it, says so on stderr, and prints the rest.
func TestAttackCLIPoisonItem(t *testing.T) {
	s := testserver.Start(t)
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	for _, u := range []*user{alice, bob} {
		u.ok("register", u.name, "--password", "pw-"+u.name)
		u.ok("login", u.name, "--password", "pw-"+u.name)
	}
	alice.ok("send", "--to", "bob", "before")
	s.PlantMessage(t, "bob", "alice", "poison", testserver.DeepMeta(9_998))
	s.Restart(t) // on a new port
	for _, u := range []*user{alice, bob} {
		u.env = fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": s.HTTP, "IMQTT_HOME": u.home, "IMQTT_MQTT": s.MQTT})
	}
	alice.ok("send", "--to", "bob", "after")

	code, stdout, stderr := runIn(t, bob.env, "sync")
	if code != exitOK {
		t.Fatalf("imqtt sync: exit %d: %s", code, stderr)
	}
	msgs := jsonLines[wire.Msg](t, stdout)
	if len(msgs) != 3 || msgs[0].Body != "before" || msgs[1].Body != "poison" || msgs[2].Body != "after" || msgs[1].Meta != nil {
		t.Fatalf("imqtt sync printed %q, stderr %q", stdout, stderr)
	}
	if strings.Contains(stderr, `{"a":`) {
		t.Fatalf("the poison's payload was logged: %.200s", stderr)
	}

	// listen, from the start: its sync gets past the poison, and the live
	// message after it is printed.
	if err := os.Remove(bob.home + "/cursor.json"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var listenOut, listenErr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- runContext(ctx, bob.env, []string{"listen"}, &listenOut, &listenErr) }()
	wait.For(t, "listen's sync", 15*time.Second, func() bool { return strings.Contains(listenOut.String(), `"after"`) })
	alice.ok("send", "--to", "bob", "live")
	wait.For(t, "listen's live line", 15*time.Second, func() bool { return strings.Contains(listenOut.String(), `"live"`) })
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("listen exit %d: %s", code, listenErr.String())
	}
	evs := jsonLines[wire.Msg](t, listenOut.String())
	if len(evs) != 4 || evs[0].Body != "before" || evs[1].Body != "poison" || evs[2].Body != "after" || evs[3].Body != "live" {
		t.Fatalf("listen printed %q", listenOut.String())
	}
	if strings.Contains(listenErr.String(), `{"a":`) {
		t.Fatalf("listen's stderr: %.300s", listenErr.String())
	}

	// A server that still sends the poison: imqtt sync skips that item.
	deep := string(testserver.DeepMeta(9_998))
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sync" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("heads") == "1" { // the groups, after the inbox: none
			_, _ = io.WriteString(w, `{"kind":"heads","groups":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"kind":"sync","since":0,"upto":3,"more":false,"epoch":"e1","items":[`+
			`{"kind":"msg","id":"1","ver":1,"from":"alice","to":"bob","type":"text","body":"one","ts":1},`+
			`{"kind":"msg","id":"2","ver":2,"from":"alice","to":"bob","type":"text","body":"poison","ts":2,"meta":`+deep+`},`+
			`{"kind":"msg","id":"3","ver":3,"from":"alice","to":"bob","type":"text","body":"three","ts":3}]}`)
	}))
	defer fake.Close()
	if err := os.Remove(bob.home + "/cursor.json"); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	old := fakeEnv(t.TempDir(), map[string]string{"IMQTT_SERVER": fake.URL, "IMQTT_HOME": bob.home, "IMQTT_MQTT": s.MQTT})
	code, stdout, stderr = runIn(t, old, "sync")
	msgs = jsonLines[wire.Msg](t, stdout)
	if code != exitOK || len(msgs) != 2 || msgs[0].Body != "one" || msgs[1].Body != "three" || !strings.Contains(stderr, "skipped") {
		t.Fatalf("imqtt sync from a server sending the poison: exit %d, printed %q, stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stderr, `{"a":`) {
		t.Fatalf("the poison's payload was logged: %.200s", stderr)
	}
}
