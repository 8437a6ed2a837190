package bench

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"testing"
	"time"

	"github.com/imqtt/imqtt/bench/baseline"
	"github.com/imqtt/imqtt/broker"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
)

// TestConnsGoBreakdown: against a Go server with net/http/pprof (here this
// process, which runs bare mochi), the conns scenario splits the Go memory
// per connection into heap and stacks and counts the goroutines: mochi runs
// two per connection (its read loop and its write loop).
func TestConnsGoBreakdown(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b, err := baseline.StartMochi("127.0.0.1:0", broker.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := Conns(context.Background(), ConnsOptions{Target: Target{MQTT: b.MQTTAddr(), Plain: true, Label: LabelMochi},
		Conns: 40, Concurrency: 8, ServerPID: os.Getpid(), Settle: time.Millisecond, PprofURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// mochi v2.7.9's Close can deadlock while clients are still being
	// removed (Clients.GetByListener read-locks twice: mochi-mqtt/server#488).
	wait.For(t, "mochi to remove every client", 10*time.Second, func() bool { return b.Clients() == 0 })
	if r.Err() != nil || r.Extra["conns"] != 40 {
		t.Fatalf("%+v", r)
	}
	if g := r.Extra["server_goroutines_per_conn"]; g < 1.8 || g > 2.3 {
		t.Fatalf("%.2f goroutines per connection, want 2 (mochi's read and write loops)", g)
	}
	heap, stack, live := r.Extra["server_go_heap_kib_per_conn"], r.Extra["server_go_stack_kib_per_conn"], r.Extra["server_go_live_kib_per_conn"]
	if heap <= 0 || stack < 4 || math.Abs(live-(heap+stack)) > 1e-6 {
		t.Fatalf("heap %.2f + stack %.2f KiB per connection, live %.2f", heap, stack, live)
	}
}

// TestConnsWebSocketKeepalive: over WebSocket only (the TCP address given
// is one nobody listens on), the connections ask for a 2 s keepalive and
// ping at it; after an idle window longer than the server's 3 s limit
// (mochi: 1.5 times the keepalive), imqttd still counts every one of them.
func TestConnsWebSocketKeepalive(t *testing.T) {
	s := testserver.Start(t)
	r, err := Conns(context.Background(), ConnsOptions{Target: Target{Server: s.HTTP, MQTT: "127.0.0.1:1"}, WS: s.WS,
		Conns: 20, Concurrency: 4, Keepalive: 2 * time.Second, Idle: 4 * time.Second, ServerPID: os.Getpid(), Settle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Err() != nil || r.Extra["conns"] != 20 || r.Params["transport"] != "ws" {
		t.Fatalf("problems %v, extra %v, params %v", r.Problems, r.Extra, r.Params)
	}
	if got := r.Extra["server_connections"]; got != 20 {
		t.Fatalf("the server counts %v connections after the idle window, want 20", got)
	}
	// 20 connections, one ping every 2 s each.
	if p := r.Extra["idle_pings_per_s"]; p < 5 {
		t.Fatalf("%.1f PINGRESPs a second, want about 10", p)
	}
}

func TestConnsBadOptions(t *testing.T) {
	for _, o := range []ConnsOptions{
		{Keepalive: 500 * time.Millisecond},
		{Keepalive: 70000 * time.Second},
		{WS: "http://127.0.0.1:1/mqtt"},
		{WS: "ws://"},
	} {
		o.Target = Target{MQTT: "127.0.0.1:1", Plain: true}
		if _, err := Conns(context.Background(), o); err == nil || errors.Is(err, ErrUnreachable) {
			t.Errorf("%+v: %v, want an option error before any dial", o, err)
		}
	}
}
