package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/internal/syncbuf"
	"github.com/imqtt/imqtt/internal/wait"
)

// TestMochiLogDropsPackets: mochi's calls keep their event and lose the
// packet, will and bytes they pass (attack 7: a second CONNECT logged its
// password as a byte list).
func TestMochiLogDropsPackets(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf syncbuf.Buffer
		var inner slog.Handler = slog.NewTextHandler(&buf, nil)
		if format == "json" {
			inner = slog.NewJSONHandler(&buf, nil)
		}
		log := slog.New(newMochiLog(inner)).With("component", "mqtt", "secret", []byte("hunter2"))
		pk := packets.Packet{Connect: packets.ConnectParams{Password: []byte("hunter2"), Username: []byte("alice")},
			Payload: bytes.Repeat([]byte{0xfe}, 250<<10)}
		log.Warn("error processing packet", "error", packets.ErrProtocolViolationSecondConnect, "client", "alice/phone",
			"listener", "tcp", "pk", pk)
		log.Error("parse will error", "error", errors.New("bad will"), "hook", "x", "will", mqtt.Will{Payload: []byte("hunter2")})
		log.Debug("client disconnected", "client", strings.Repeat("c", 10_000), "remote", "1.2.3.4:5")
		log.Info("g", slog.Group("g", "pk", pk, "n", 3))

		out := buf.String()
		for _, bad := range []string{"hunter2", "104 117 110", "254 254", "aHVudGVy", "/v/v"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: log holds %q:\n%s", format, bad, out)
			}
		}
		for _, want := range []string{"error processing packet", "alice/phone", "tcp", packets.ErrProtocolViolationSecondConnect.Reason, "bad will", "n"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: log lacks %q:\n%s", format, want, out)
			}
		}
		if len(out) > 2000 {
			t.Errorf("%s: %d bytes of log for four lines", format, len(out))
		}
	}
}

// TestMochiLogRateLimit: one source logs a message at most per times a
// window, then one summary says how many lines it suppressed; other sources
// and messages are not held back.
func TestMochiLogRateLimit(t *testing.T) {
	var buf syncbuf.Buffer
	h := newMochiLog(slog.NewTextHandler(&buf, nil))
	h.lim.Window = 200 * time.Millisecond
	h.lim.remote = func(id string) string {
		if id == "eve/a" || id == "eve/b" {
			return "10.0.0.9:1000"
		}
		return ""
	}
	log := slog.New(h)
	for i := range 100 {
		dev := "eve/a"
		if i%2 == 1 {
			dev = "eve/b" // the same machine: one count
		}
		log.Warn("error processing packet", "client", dev)
	}
	log.Warn("error processing packet", "client", "bob/phone")
	log.Warn("other", "client", "eve/a")
	out := buf.String()
	if n := strings.Count(out, "eve/"); n != logPerWindow+1 {
		t.Errorf("%d lines about eve, want %d:\n%s", n, logPerWindow+1, out)
	}
	if !strings.Contains(out, "bob/phone") {
		t.Error("another source was held back")
	}
	wait.ForErr(t, "the summary", 5*time.Second, func() error {
		if out := buf.String(); !strings.Contains(out, "suppressed 80 similar lines") {
			return fmt.Errorf("no summary:\n%s", out)
		}
		return nil
	})
	if !strings.Contains(buf.String(), "source=10.0.0.9") {
		t.Errorf("summary does not name the source:\n%s", buf.String())
	}
	log.Warn("error processing packet", "client", "eve/a")
	if n := strings.Count(buf.String(), `msg="error processing packet" client=eve/`); n != logPerWindow+1 {
		t.Errorf("a new window: %d lines, want %d", n, logPerWindow+1)
	}
}
