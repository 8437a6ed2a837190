// Command imqtt is the imqtt client for people, scripts and bots (docs/cli.md):
// register, login, send, listen, sync, conversations, history, read, logout.
//
// Usage:
//
//	imqtt [--server URL] [--home DIR] [--mqtt HOST:PORT] [--verbose] COMMAND [ARGS]
//	imqtt --version
//
// Global flags may also follow the command. Output is JSON: one object, or
// one line per event for listen and sync. Errors go to stderr; the exit
// code is 2 for a usage error and 1 for any other failure.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole CLI with the process's environment; it returns the exit
// code. SIGINT and SIGTERM cancel the command (listen stops cleanly).
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, osEnv(), args, stdout, stderr)
}
