// Command echobot answers every message it receives, 1:1 or in a group it
// is in, with "echo: <body>". It is a complete imqtt bot on the Go SDK:
// login, connect, catch up from a saved cursor (its inbox and each of its
// groups: what came while it was down is answered too), answer exactly
// once (the reply's cmid is derived from the message ID, so a restart
// never answers twice).
//
//	go run ./examples/echobot --server http://127.0.0.1:8080 --user echo --password secret
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "echobot:", err)
		os.Exit(1)
	}
}

// run logs in, answers messages until ctx ends, and returns.
func run(ctx context.Context, args []string, logw io.Writer) error {
	fs := flag.NewFlagSet("echobot", flag.ContinueOnError)
	server := fs.String("server", envOr("IMQTT_SERVER", "http://127.0.0.1:8080"), "imqttd HTTP base URL")
	mqtt := fs.String("mqtt", os.Getenv("IMQTT_MQTT"), "MQTT host:port (default: from /v1/endpoints)")
	user := fs.String("user", envOr("ECHOBOT_USER", "echo"), "the bot's user ID")
	password := fs.String("password", os.Getenv("ECHOBOT_PASSWORD"), "the bot's password")
	state := fs.String("state", ".", "directory of the sync cursor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sess, err := client.Login(ctx, *server, *user, *password, "bot")
	if err != nil {
		return err
	}
	var bot *client.Client
	answer := func(ev client.Event) {
		m := ev.Msg
		if ev.Kind != wire.KindMsg || m.From == *user {
			return // not a message, or our own echo
		}
		reply := wire.Send{CMID: "echo-" + m.ID, To: m.From, Group: m.Group, Type: "text", Body: "echo: " + m.Body}
		if m.Group != "" {
			reply.To = ""
		}
		if _, err := bot.Send(ctx, reply); err != nil {
			fmt.Fprintln(logw, "echobot: answer", m.ID, err)
		}
	}
	// Answering inside OnEvent means the cursor moves only past answered
	// messages; events may start before Dial returns, hence ready.
	ready := make(chan struct{})
	bot, err = client.Dial(ctx, client.Config{Server: *server, MQTT: *mqtt, User: *user, Device: "bot", Token: sess.Token,
		Cursor:  client.NewFileCursor(filepath.Join(*state, "echobot-cursor.json")),
		OnEvent: func(ev client.Event) { <-ready; answer(ev) }})
	if err != nil {
		return err
	}
	close(ready)
	defer bot.Close()
	select {
	case <-bot.Done():
		return bot.Err()
	case <-ctx.Done():
		return nil
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
