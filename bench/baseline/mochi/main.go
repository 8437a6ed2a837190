// Command mochi is the bench's bare-broker baseline: mochi-mqtt with an
// allow-all auth hook and imqttd's broker limits, nothing else.
//
//	go run ./bench/baseline/mochi --addr 127.0.0.1:1884
//
// It prints the bound address and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/imqtt/imqtt/bench/baseline"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1884", "MQTT listen address (port 0 picks one)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := baseline.StartMochi(*addr, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
	fmt.Printf("mochi listening on %s (pid %d)\n", b.MQTTAddr(), os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	if err := b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
}
