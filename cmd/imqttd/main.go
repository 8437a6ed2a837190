// Command imqttd is the imqtt server: an MQTT broker (mochi-mqtt) with the IM
// core, the HTTP API and the embedded store in one binary.
//
//	go run ./cmd/imqttd                 # embedded store under ./data
//	go run ./cmd/imqttd --help          # every flag; each also reads IMQTT_<FLAG>
//	go run ./cmd/imqttd --version       # the module version and VCS revision
//	go run ./cmd/imqttd restore --from backup.tar --data-dir ./data
//	go run ./cmd/imqttd migrate --help  # copy a stopped node's store into MongoDB
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run parses the configuration and runs the daemon on it until SIGINT or
// SIGTERM; every part of the server is built in internal/daemon. A first
// argument naming an offline tool runs that instead.
func run(args []string, env func(string) string, stderr io.Writer) int {
	return runTo(args, env, os.Stdout, stderr)
}

// runTo is run with its standard output given (--version, --help).
func runTo(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] { // offline tools; the default is to serve
		case "restore":
			return runRestore(args[1:], os.Stdin, os.Stdout, stderr)
		case "migrate":
			return runMigrate(args[1:], env, stderr)
		case "--version", "-version", "version":
			fmt.Fprintln(stdout, version.Get().String("imqttd"))
			return 0
		}
	}
	o, err := parse(args, env)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, newFlagSet(&options{}))
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "imqttd:", err)
		return 2
	}
	log, err := daemon.NewLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "imqttd:", err)
		return 2
	}
	o.cfg.Logger = log
	if o.cfg.Push.Pushers, err = o.push.pushers(log); err != nil {
		fmt.Fprintln(stderr, "imqttd:", err)
		return 2
	}
	if err := o.webhookConfig(); err != nil {
		fmt.Fprintln(stderr, "imqttd:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads the content filter's files (--filter-words,
	// --filter-links); it no longer stops the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	o.cfg.Reload = hup
	if err := daemon.Run(ctx, o.cfg); err != nil {
		log.Error("imqttd", "err", err)
		return 1
	}
	return 0
}
