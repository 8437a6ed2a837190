package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store/pebble"
)

// syncBuffer is a log the daemon writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRun: Run serves until its context ends, then shuts down and returns
// nil, having closed the store (Pebble's lock is free again).
func TestRun(t *testing.T) {
	var logs syncBuffer
	log, err := NewLogger("json", "info", &logs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir, Logger: log})
	}()
	var mqttAddr string
	wait.For(t, "imqttd serving", 20*time.Second, func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, MQTT string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "imqttd serving" {
				mqttAddr = rec.MQTT
				return true
			}
		}
		return false
	})
	c, err := net.Dial("tcp", mqttAddr)
	if err != nil {
		t.Fatalf("dial the served MQTT address %q: %v", mqttAddr, err)
	}
	c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(ShutdownTimeout):
		t.Fatal("Run did not return after its context ended")
	}
	for _, want := range []string{"shutting down", "imqttd stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	st, err := pebble.Open(dir+"/pebble", pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatalf("the store is still open after Run: %v", err)
	}
	st.Close()
}

// TestRunStartError: a start that fails is Run's error, said as such.
func TestRunStartError(t *testing.T) {
	err := Run(context.Background(), Config{MongoURI: "mongodb://nowhere", DataDir: t.TempDir()})
	if err == nil || !strings.HasPrefix(err.Error(), "start: ") || !strings.Contains(err.Error(), "scale-out") {
		t.Fatalf("Run = %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	var out bytes.Buffer
	log, err := NewLogger("JSON", "warn", &out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "user", "bob")
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec["msg"] != "shown" || rec["user"] != "bob" {
		t.Fatalf("log %q: %v", out.String(), err)
	}
	for _, c := range [][2]string{{"xml", "info"}, {"text", "loud"}} {
		if _, err := NewLogger(c[0], c[1], &out); err == nil {
			t.Errorf("NewLogger(%q, %q) took it", c[0], c[1])
		}
	}
}
