package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// TestEchoBot: every message is answered exactly once, also across a bot
// restart; the bot registers its own account (--register, which the
// restart finds existing) and logs each answer without its body.
func TestEchoBot(t *testing.T) { testEchoBot(t, "", false) }

// TestEchoBotGroup: the same in a group: what was sent to the group while
// the bot was down is caught up (the SDK's per-group cursor) and answered
// once, in order; --verbose logs the bodies too.
func TestEchoBotGroup(t *testing.T) { testEchoBot(t, "g1", true) }

func testEchoBot(t *testing.T, group string, verbose bool) {
	s := testserver.Start(t)
	ctx := context.Background()
	if err := client.Register(ctx, s.HTTP, "alice", "secret-alice"); err != nil {
		t.Fatal(err)
	}
	botArgs := func(more ...string) []string {
		return append([]string{"--server", s.HTTP, "--mqtt", s.MQTT, "--user", "echo", "--state", t.TempDir()}, more...)
	}
	// Not registered yet: the error says how to.
	if err := run(ctx, botArgs("--password", "secret-echo"), io.Discard); err == nil || !strings.Contains(err.Error(), "--register") {
		t.Fatalf("an unregistered bot without --register: %v", err)
	}
	state := t.TempDir()
	var logs syncbuf.Buffer
	startBot := func() (stop func()) {
		bctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		args := []string{"--server", s.HTTP, "--mqtt", s.MQTT, "--user", "echo", "--password", "secret-echo", "--state", state, "--register"}
		if verbose {
			args = append(args, "--verbose")
		}
		go func() {
			done <- run(bctx, args, &logs)
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
	listening := func(n int) {
		t.Helper()
		wait.ForErr(t, "the bot listening", 15*time.Second, func() error {
			if got := strings.Count(logs.String(), "msg=listening"); got < n {
				return fmt.Errorf("%d times, want %d:\n%s", got, n, logs.String())
			}
			return nil
		})
	}
	// The bot's first start registers it; a group with it in is made
	// while it is down.
	stop := startBot()
	listening(1)
	stop()
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

	stop = startBot()
	listening(2)
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

	// The log: registered once (the restart found the account), one line
	// per answer naming sender, conversation and message, the body only
	// with --verbose. The bot logs an answer once its send is acked, which
	// may be after alice has the echo: wait for the fourth line.
	wait.ForErr(t, "4 answers logged", 15*time.Second, func() error {
		if n := strings.Count(logs.String(), "msg=answered"); n < 4 {
			return fmt.Errorf("%d logged", n)
		}
		return nil
	})
	log := logs.String()
	conv := "alice"
	if group != "" {
		conv = group
	}
	answered := regexp.MustCompile(`level=INFO msg=answered from=alice conv=` + conv + ` id=\d+( body="?echo: |\n| body=)`)
	if n := strings.Count(log, "msg=registered user=echo"); n != 1 {
		t.Errorf("registered %d times in the log:\n%s", n, log)
	}
	if n := strings.Count(log, "msg=answered"); n != 4 || len(answered.FindAllString(log, -1)) != 4 {
		t.Errorf("want 4 answers logged with from, conv and id:\n%s", log)
	}
	if hasBody := strings.Contains(log, "body=marker"); hasBody != verbose {
		t.Errorf("verbose %v, a body in the log %v:\n%s", verbose, hasBody, log)
	}

	// Registering again with another password fails at the login.
	if err := run(ctx, botArgs("--password", "not-the-password", "--register"), io.Discard); err == nil || !strings.Contains(err.Error(), wire.CodeUnauthorized) {
		t.Errorf("--register of an existing account with another password: %v", err)
	}
}
