package hooks

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestConnLogBounded: a device reconnecting in a loop gets Burst lines,
// then the bound's rate; the next line written says how many were left
// out. Without the bound every connect and disconnect is a line.
func TestConnLogBounded(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	h := &ConnLog{Rate: 0.001, Burst: 4} // a line every 1000 s after the burst: none more in the test
	if err := h.Init(slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))); err != nil {
		t.Fatal(err)
	}
	cl := &mqtt.Client{ID: "mallory/loop"}
	for range 50 {
		h.OnSessionEstablished(cl, packets.Packet{})
		h.OnDisconnect(cl, io.EOF, true)
	}
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != 4 {
		t.Fatalf("%d lines for 100 connects and disconnects, want the burst of 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var first struct {
		Msg, User, Device string
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Msg != "mqtt connect" || first.User != "mallory" || first.Device != "loop" {
		t.Fatalf("first line %s (%v)", lines[0], err)
	}
	// Once the bound allows again, the line carries what was left out.
	h.lim.SetLimit(1e9)
	h.OnSessionEstablished(cl, packets.Packet{})
	mu.Lock()
	last := buf.String()[strings.LastIndex(strings.TrimSpace(buf.String()), "\n")+1:]
	mu.Unlock()
	var rec struct{ Suppressed int64 }
	if err := json.Unmarshal([]byte(last), &rec); err != nil || rec.Suppressed != 96 {
		t.Fatalf("the line after the flood: %s (%v), want suppressed 96", last, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
