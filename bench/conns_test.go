package bench

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"testing"
	"time"

	"github.com/imqtt/imqtt/bench/baseline"
	"github.com/imqtt/imqtt/broker"
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
