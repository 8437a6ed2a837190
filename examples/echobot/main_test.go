package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestEchoBot: every message is answered exactly once, also across a bot restart.
func TestEchoBot(t *testing.T) { testEchoBot(t, "") }

// TestEchoBotGroup: the same in a group: what was sent to the group while
// the bot was down is caught up (the SDK's per-group cursor) and answered
// once, in order.
func TestEchoBotGroup(t *testing.T) { testEchoBot(t, "g1") }

func testEchoBot(t *testing.T, group string) {
	s := testserver.Start(t)
	ctx := context.Background()
	for _, u := range []string{"echo", "alice"} {
		if err := client.Register(ctx, s.HTTP, u, "secret-"+u); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	startBot := func() (stop func()) {
		bctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- run(bctx, []string{"--server", s.HTTP, "--mqtt", s.MQTT, "--user", "echo", "--password", "secret-echo", "--state", state}, io.Discard)
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("bot: %v", err)
			}
		}
	}

	var mu sync.Mutex
	var echoes []string
	sess, err := client.Login(ctx, s.HTTP, "alice", "secret-alice", "phone")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.Dial(ctx, client.Config{Server: s.HTTP, MQTT: s.MQTT, User: "alice", Device: "phone", Token: sess.Token,
		OnEvent: func(ev client.Event) {
			if ev.Kind == wire.KindMsg && ev.Msg.From == "echo" && ev.Msg.Group == group {
				mu.Lock()
				echoes = append(echoes, ev.Msg.Body)
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	to := wire.Send{To: "echo", Group: group}
	if group != "" {
		to.To = ""
		h := &client.HTTP{Server: s.HTTP, Token: sess.Token}
		if _, err := h.CreateGroup(ctx, wire.GroupCreate{ID: group, Name: group, Members: []string{"echo"}}); err != nil {
			t.Fatal(err)
		}
	}
	send := func(body string) {
		t.Helper()
		m := to
		m.Body = body
		if _, err := alice.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(echoes) }
	echoed := func(n int) {
		t.Helper()
		wait.ForErr(t, fmt.Sprintf("%d echoes", n), 15*time.Second, func() error {
			if got := count(); got < n {
				return fmt.Errorf("got %d", got)
			}
			return nil
		})
	}

	stop := startBot()
	send("one")
	echoed(1)
	stop()
	// Sent while the bot is down: answered once it is back, by sync.
	send("two")
	stop = startBot()
	defer stop()
	send("three")
	echoed(3)
	// The bot answers in order, so a repeated answer to any of the three
	// would come before the answer to a marker.
	send("marker")
	echoed(4)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(echoes, []string{"echo: one", "echo: two", "echo: three", "echo: marker"}) {
		t.Fatalf("echoes: %q", echoes)
	}
}
