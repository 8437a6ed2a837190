package hooks

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/wait"
)

// TestConnLogBounded: a device reconnecting in a loop gets Burst lines,
// then the bound's rate; the next line written says how many were left
// out. Without the bound every connect and disconnect is a line.
func TestConnLogBounded(t *testing.T) {
	var buf syncbuf.Buffer
	h := &ConnLog{Rate: 2, Burst: 4, PerHost: 1000} // a line every 500 ms after the burst: none more in the loop, which takes a few ms
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

// TestConnLogPerHost: a machine reconnecting in a loop logs PerHost lines
// of each kind a window, then one summary of what it left out; another
// machine's connect is still logged.
func TestConnLogPerHost(t *testing.T) {
	var buf syncbuf.Buffer
	h := &ConnLog{PerHost: 3, Window: 300 * time.Millisecond}
	if err := h.Init(slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatal(err)
	}
	loop := &mqtt.Client{ID: "mallory/loop", Net: mqtt.ClientConnection{Remote: "10.0.0.9:4000"}}
	for range 50 {
		h.OnSessionEstablished(loop, packets.Packet{})
		h.OnDisconnect(loop, io.EOF, true)
	}
	h.OnSessionEstablished(&mqtt.Client{ID: "bob/phone", Net: mqtt.ClientConnection{Remote: "10.0.0.7:5000"}}, packets.Packet{})
	out := buf.String()
	if n := strings.Count(out, "user=mallory"); n != 6 {
		t.Errorf("%d lines about mallory's loop, want 3 connects and 3 disconnects:\n%s", n, out)
	}
	if !strings.Contains(out, "user=bob") {
		t.Errorf("another machine's connect was held back:\n%s", out)
	}
	wait.ForErr(t, "the summaries", 5*time.Second, func() error {
		out := buf.String()
		for _, want := range []string{`"suppressed 47 similar lines" similar="mqtt connect" source=10.0.0.9`,
			`"suppressed 47 similar lines" similar="mqtt disconnect" source=10.0.0.9`} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("no %s in:\n%s", want, out)
			}
		}
		return nil
	})
}
