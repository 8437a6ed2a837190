package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// The server API (issue 17) end to end, through the SDK's client.Server:
// a backend creates a user, mints its token, the user's devices log in
// over MQTT with it (paho and mosquitto_sub), system messages reach them
// live and by sync, and a deletion disconnects them and erases what the
// user sent — on one node, and across two nodes on MongoDB.

const serverKey = "e2e-server-key-0123456789abcdef-0123456789"

func withServerKey(c *daemon.Config) { c.ServerKeys = []string{serverKey} }

// wireCode returns the code of the *wire.Error in err, or "".
func wireCode(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func TestServerAPISDK(t *testing.T) {
	mosqSub := requireTool(t, "mosquitto_sub")
	s := testserver.Start(t, withServerKey)
	ctx := t.Context()
	srv := client.NewServer(s.HTTP, serverKey)

	if _, err := client.NewServer(s.HTTP, "not-the-key-but-long-enough-0123456789").CreateUser(ctx, "x"); wireCode(err) != wire.CodeUnauthorized {
		t.Fatalf("a wrong key: %v", err)
	}
	id, err := srv.CreateUser(ctx, "Carol")
	if err != nil || id != "carol" {
		t.Fatalf("create: %q, %v", id, err)
	}
	if _, err := srv.CreateUser(ctx, "carol"); wireCode(err) != wire.CodeExists {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := srv.MintToken(ctx, "nobody", "phone", 0); wireCode(err) != wire.CodeNoSuchUser {
		t.Fatalf("mint for no one: %v", err)
	}
	phone, err := srv.MintToken(ctx, "carol", "phone", time.Hour)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	cli, err := srv.MintToken(ctx, "carol", "cli", 0)
	if err != nil {
		t.Fatal(err)
	}
	bobTok := account(t, s, "bob", "web")
	if code := httpJSON(t, "POST", s.HTTP+"/v1/groups", bobTok, wire.GroupCreate{ID: "news", Name: "news", Members: []string{"carol"}}, nil); code != 201 {
		t.Fatalf("create group: %d", code)
	}

	// Carol's phone (paho) and a mosquitto_sub, both logged in with minted tokens.
	dev := connect(t, s.MQTT, "carol", "phone", phone.Token)
	host, port := hostPort(s.MQTT)
	subCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sub := exec.CommandContext(subCtx, mosqSub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "carol/cli", "-u", "carol",
		"-P", cli.Token, "-q", "1", "-t", wire.InboxTopic("carol"), "-v")
	var out syncbuf.Buffer // written by the process's copier while the test reads
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sub.Wait() }()
	wait.For(t, "mosquitto_sub subscribed", 10*time.Second, func() bool { return subscribed(s, "carol/cli", wire.InboxTopic("carol")) })

	// system to carol, to the group, and a replay.
	ack, err := srv.Send(ctx, client.System, wire.Send{CMID: "welcome-1", To: "carol", Type: "text", Body: "welcome carol"})
	if err != nil {
		t.Fatalf("system send: %v", err)
	}
	again, err := srv.Send(ctx, client.System, wire.Send{CMID: "welcome-1", To: "carol", Type: "text", Body: "welcome carol"})
	if err != nil || again != ack {
		t.Fatalf("replayed send: %+v, %v; first %+v", again, err, ack)
	}
	gack, err := srv.Send(ctx, client.System, wire.Send{CMID: "news-1", Group: "news", Type: "text", Body: "to the group"})
	if err != nil || gack.Seq == 0 {
		t.Fatalf("system group send: %+v, %v", gack, err)
	}
	if _, err := srv.Send(ctx, "carol", wire.Send{CMID: "c-1", To: "bob", Type: "text", Body: "carol's secret"}); err != nil {
		t.Fatalf("send as carol: %v", err)
	}
	wait.For(t, "carol's phone gets system's messages live", 10*time.Second, func() bool {
		n := 0
		for _, m := range dev.msgs() {
			if m.From == "system" && (m.Body == "welcome carol" || (m.Group == "news" && m.Body == "to the group")) {
				n++
			}
		}
		return n == 2
	})
	wait.For(t, "mosquitto_sub gets system's message live", 10*time.Second, func() bool {
		return strings.Contains(out.String(), "welcome carol")
	})
	var sync wire.Sync
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync?since=0", phone.Token, nil, &sync); code != 200 {
		t.Fatalf("sync: %d", code)
	}
	welcome := 0
	for _, m := range sync.Items {
		if m.From == "system" && m.Body == "welcome carol" {
			welcome++
		}
	}
	if welcome != 1 {
		t.Errorf("carol's sync holds system's message %d times, want once (the replay stored nothing): %+v", welcome, sync.Items)
	}

	// Deletion: both devices are disconnected, the tokens refused, the ID kept.
	if err := srv.DeleteUser(ctx, "carol"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wait.For(t, "carol's phone disconnected", 10*time.Second, func() bool { return !dev.c.IsConnectionOpen() })
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("mosquitto_sub still connected after the deletion: %s", out.String())
	}
	if code := httpJSON(t, "GET", s.HTTP+"/v1/sync?since=0", phone.Token, nil, nil); code != 401 {
		t.Errorf("a deleted user's token: %d, want 401", code)
	}
	if b, err := exec.CommandContext(ctx, mosqSub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "carol/cli", "-u", "carol",
		"-P", cli.Token, "-t", wire.InboxTopic("carol"), "-C", "1", "-W", "5").CombinedOutput(); err == nil ||
		!strings.Contains(string(b), "Bad User Name or Password") {
		t.Errorf("mosquitto_sub with a deleted user's token: %v %s", err, b)
	}
	if err := srv.DeleteUser(ctx, "carol"); err != nil {
		t.Errorf("delete again: %v", err)
	}
	if err := srv.DeleteUser(ctx, "nobody"); wireCode(err) != wire.CodeNoSuchUser {
		t.Errorf("delete no one: %v", err)
	}
	if err := srv.DeleteUser(ctx, "../v1/users"); wireCode(err) != wire.CodeBadRequest {
		t.Errorf("delete a path: %v", err)
	}
	if _, err := srv.CreateUser(ctx, "carol"); wireCode(err) != wire.CodeExists {
		t.Errorf("create a deleted ID: %v", err)
	}
	var hist wire.History
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations/carol/messages", bobTok, nil, &hist); code != 200 {
		t.Fatalf("bob's history: %d", code)
	}
	if len(hist.Messages) != 1 || hist.Messages[0].From != store.DeletedSender || hist.Messages[0].Body != "" {
		t.Errorf("carol's message in bob's history: %+v; want anonymised", hist.Messages)
	}
}

// TestServerAPIDeleteCluster: on two nodes over MongoDB and Redis, a
// deletion asked of one node disconnects the user's device on the other
// (logged in with the password: only the kick through presence and the
// bus ends it), and the user's token stops working there too.
func TestServerAPIDeleteCluster(t *testing.T) {
	c := newCluster(t, mongoURI(devMongo(t).Addr()))
	c.edit = withServerKey
	a, b := c.start("a"), c.start("b")
	ctx := t.Context()
	srvA := client.NewServer(a.HTTP, serverKey)
	account(t, a, "dave", "web") // a password account: its device on b holds no token to revoke
	tok, err := client.NewServer(b.HTTP, serverKey).MintToken(ctx, "dave", "tablet", 0)
	if err != nil {
		t.Fatal(err)
	}
	bob := account(t, a, "bob", "web")
	dev := connect(t, b.MQTT, "dave", "phone", "secret-dave")
	if _, werr := dev.send("bob", "d-1", "dave's words"); werr != nil {
		t.Fatalf("dave's send: %v", werr)
	}
	if code := httpJSON(t, "GET", b.HTTP+"/v1/sync?since=0", tok.Token, nil, nil); code != 200 {
		t.Fatalf("dave's sync on b: %d", code)
	}
	wait.ForErr(t, "dave online in presence", 10*time.Second, func() error {
		ds, err := a.Presence().Devices(ctx, "dave")
		if err == nil && len(ds) == 0 {
			err = errors.New("no device")
		}
		return err
	})
	if err := srvA.DeleteUser(ctx, "dave"); err != nil {
		t.Fatalf("delete on a: %v", err)
	}
	wait.For(t, "dave's device on b disconnected", 10*time.Second, func() bool { return !dev.c.IsConnectionOpen() })
	wait.For(t, "dave's token refused on b", 10*time.Second, func() bool {
		return httpJSON(t, "GET", b.HTTP+"/v1/sync?since=0", tok.Token, nil, nil) == 401
	})
	var sync wire.Sync
	if code := httpJSON(t, "GET", b.HTTP+"/v1/sync?since=0", bob, nil, &sync); code != 200 {
		t.Fatalf("bob's sync: %d", code)
	}
	if len(sync.Items) != 1 || sync.Items[0].From != store.DeletedSender || sync.Items[0].Body != "" {
		t.Errorf("dave's message in bob's inbox: %+v; want anonymised", sync.Items)
	}
}

// TestServerAPISDKDeleteResumes: DeleteUser repeats the DELETE while the
// server answers 202, and when its ctx ends first it says the deletion is
// not done; called again on a server that finishes, it finishes.
func TestServerAPISDKDeleteResumes(t *testing.T) {
	s := testserver.Start(t, withServerKey, func(c *daemon.Config) { c.ServerDeleteBudget = time.Nanosecond })
	srv := client.NewServer(s.HTTP, serverKey)
	if _, err := srv.CreateUser(t.Context(), "erin"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := srv.DeleteUser(ctx, "erin"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a deletion that never finishes: %v, want the context's end", err)
	}
	s.Stop(t)
	s2 := testserver.Start(t, withServerKey, func(c *daemon.Config) { c.DataDir = s.Dir })
	if err := client.NewServer(s2.HTTP, serverKey).DeleteUser(t.Context(), "erin"); err != nil {
		t.Fatalf("the deletion resumed: %v", err)
	}
}
