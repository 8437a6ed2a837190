// Command devmongo runs a MongoDB-compatible server for development: FerretDB
// on SQLite (tools/internal/devmongo), so imqttd's scale-out mode can be tried
// without installing MongoDB:
//
//	go -C tools run ./devmongo -addr 127.0.0.1:27017 -data /tmp/imqtt-mongo
//
// It prints the connection URI on standard output and runs until SIGINT
// or SIGTERM. Not for production (see tools/internal/devmongo).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/imqtt/imqtt/tools/internal/devmongo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:27017", "TCP address to listen on (port 0: any free port)")
	data := flag.String("data", "devmongo-data", "directory of the SQLite files")
	verbose := flag.Bool("v", false, "log FerretDB's messages")
	flag.Parse()
	if err := run(*addr, *data, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "devmongo:", err)
		os.Exit(1)
	}
}

func run(addr, data string, verbose bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := devmongo.Options{Addr: addr, Dir: data}
	if verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	srv, err := devmongo.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Println(srv.URI())
	<-ctx.Done()
	return srv.Close()
}
