package main

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/wire"
)

// TestEchoBot: every message is answered exactly once, also across a bot restart.
func TestEchoBot(t *testing.T) {
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
			if ev.Kind == wire.KindMsg && ev.Msg.From == "echo" {
				mu.Lock()
				echoes = append(echoes, ev.Msg.Body)
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(echoes) }
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("got %d echoes, want %d", count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	stop := startBot()
	if _, err := alice.Send(ctx, wire.Send{To: "echo", Body: "one"}); err != nil {
		t.Fatal(err)
	}
	waitFor(1)
	stop()
	// Sent while the bot is down: answered once it is back, by sync.
	if _, err := alice.Send(ctx, wire.Send{To: "echo", Body: "two"}); err != nil {
		t.Fatal(err)
	}
	stop = startBot()
	defer stop()
	if _, err := alice.Send(ctx, wire.Send{To: "echo", Body: "three"}); err != nil {
		t.Fatal(err)
	}
	waitFor(3)
	// The bot answers in order, so a repeated answer to any of the three
	// would come before the answer to a marker.
	if _, err := alice.Send(ctx, wire.Send{To: "echo", Body: "marker"}); err != nil {
		t.Fatal(err)
	}
	waitFor(4)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(echoes, []string{"echo: one", "echo: two", "echo: three", "echo: marker"}) {
		t.Fatalf("echoes: %q", echoes)
	}
}
