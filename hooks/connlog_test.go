package hooks

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/syncbuf"
)

// TestConnLogBounded: a device reconnecting in a loop gets Burst lines,
// then the bound's rate; the next line written says how many were left
// out. Without the bound every connect and disconnect is a line.
func TestConnLogBounded(t *testing.T) {
	var buf syncbuf.Buffer
	h := &ConnLog{Rate: 2, Burst: 4} // a line every 500 ms after the burst: none more in the loop, which takes a few ms
	if err := h.Init(slog.New(slog.NewJSONHandler(&buf, nil))); err != nil {
		t.Fatal(err)
	}
	cl := &mqtt.Client{ID: "mallory/loop"}
	for range 50 {
		h.OnSessionEstablished(cl, packets.Packet{})
		h.OnDisconnect(cl, io.EOF, true)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
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
	time.Sleep(600 * time.Millisecond)
	h.OnSessionEstablished(cl, packets.Packet{})
	all := strings.TrimSpace(buf.String())
	last := all[strings.LastIndex(all, "\n")+1:]
	var rec struct{ Suppressed int64 }
	if err := json.Unmarshal([]byte(last), &rec); err != nil || rec.Suppressed != 96 {
		t.Fatalf("the line after the flood: %s (%v), want suppressed 96", last, err)
	}
}
