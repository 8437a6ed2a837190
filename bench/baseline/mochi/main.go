// Command mochi is the bench's bare-broker baseline: mochi-mqtt with an
// allow-all auth hook and imqttd's broker limits, nothing else.
//
//	go run ./bench/baseline/mochi --addr 127.0.0.1:1884 [--writes-pending 8192 --max-inflight 8192] [--pprof-addr 127.0.0.1:6061]
//
// It prints the bound address and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/imqtt/imqtt/bench/baseline"
	"github.com/imqtt/imqtt/broker"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1884", "MQTT listen address (port 0 picks one)")
	pending := flag.Int("writes-pending", 256, "per-client outbound queue in packets (imqttd's 256; mochi's own default is 8192)")
	inflight := flag.Int("max-inflight", 1024, "unacknowledged QoS 1 deliveries per client (imqttd's 1024; mochi's own default is 8192)")
	pprofAddr := flag.String("pprof-addr", "", "serve net/http/pprof here (for the bench's forced GC before memory readings); empty: off")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := baseline.StartMochi(*addr, broker.Options{MaxWritesPending: int32(*pending), MaxInflight: uint16(*inflight)}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mochi:", err)
			os.Exit(1)
		}
		go func() { _ = http.Serve(ln, nil) }() // net/http/pprof registers on the default mux
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
