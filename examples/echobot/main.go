// Command echobot answers every message it receives, 1:1 or in a group it
// is in, with "echo: <body>". It is a complete imqtt bot on the Go SDK:
// register (with --register), login, connect, catch up from a saved cursor
// (its inbox and each of its groups: what came while it was down is
// answered too), answer exactly once (the reply's cmid is derived from the
// message ID, so a restart never answers twice), and log each answer.
//
//	go run ./examples/echobot --register --user echo --password secret
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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

// run logs in (registering first with --register), answers messages until
// ctx ends, and returns. It logs to logw.
func run(ctx context.Context, args []string, logw io.Writer) error {
	fs := flag.NewFlagSet("echobot", flag.ContinueOnError)
	fs.SetOutput(logw)
	server := fs.String("server", envOr("IMQTT_SERVER", "http://127.0.0.1:8080"), "imqttd HTTP base URL (env IMQTT_SERVER)")
	mqtt := fs.String("mqtt", os.Getenv("IMQTT_MQTT"), "MQTT host:port (env IMQTT_MQTT; default: from /v1/endpoints)")
	user := fs.String("user", envOr("ECHOBOT_USER", "echo"), "the bot's user ID (env ECHOBOT_USER)")
	password := fs.String("password", os.Getenv("ECHOBOT_PASSWORD"), "the bot's password (env ECHOBOT_PASSWORD)")
	register := fs.Bool("register", false, "create the bot's account first (an existing one is fine)")
	verbose := fs.Bool("verbose", false, "log the body of each message answered too")
	state := fs.String("state", ".", "directory of the sync cursor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logw, nil))
	if *password == "" {
		return errors.New("no password: give --password or set ECHOBOT_PASSWORD")
	}
	if *register {
		err := client.Register(ctx, *server, *user, *password)
		var we *wire.Error
		switch {
		case err == nil:
			log.Info("registered", "user", *user)
		case errors.As(err, &we) && we.Code == wire.CodeExists:
			// Registered before: the login below checks the password.
		default:
			return err
		}
	}
	sess, err := client.Login(ctx, *server, *user, *password, "bot")
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.CodeUnauthorized && !*register {
		return fmt.Errorf("%w (no account %s yet? run with --register to create it)", err, *user)
	}
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
		conv := m.From
		if m.Group != "" {
			reply.To, conv = "", m.Group
		}
		attrs := []any{"from", m.From, "conv", conv, "id", m.ID}
		if *verbose {
			attrs = append(attrs, "body", m.Body)
		}
		if _, err := bot.Send(ctx, reply); err != nil {
			log.Error("answer", append(attrs, "err", err)...)
			return
		}
		log.Info("answered", attrs...)
	}
	// Answering inside OnEvent means the cursor moves only past answered
	// messages; events may start before Dial returns, hence ready.
	ready := make(chan struct{})
	bot, err = client.Dial(ctx, client.Config{Server: *server, MQTT: *mqtt, User: *user, Device: "bot", Token: sess.Token,
		Cursor: client.NewFileCursor(filepath.Join(*state, "echobot-cursor.json")), Logger: log,
		OnEvent: func(ev client.Event) { <-ready; answer(ev) }})
	if err != nil {
		return err
	}
	close(ready)
	defer bot.Close()
	log.Info("listening", "user", *user, "server", *server)
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
