package e2e

import (
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
)

// httpFrom is an HTTP client whose connections start at the local address
// ip (any 127.x address reaches the server on loopback), one connection a
// request.
func httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// healthy reports whether GET /healthz from ip answers 200.
func healthy(s *testserver.Server, ip string) bool {
	resp, err := httpFrom(ip).Get(s.HTTP + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Why 2 (the HTTP side): about 20,000 sockets that never sent a byte took
// every file descriptor, and HTTP stopped answering along with MQTT. One
// address may now hold only so many HTTP connections: past the cap a new
// one is closed at once (counted), other addresses are still served, the
// address is served again once its connections close, and a connection
// taken over for MQTT over WebSocket no longer counts.
func TestAttackHTTPConnFlood(t *testing.T) {
	const perIP = 8
	s := testserver.Start(t, func(c *daemon.Config) { c.HTTPConnsPerIP = perIP })
	addr := s.HTTPAddr()
	var idle []net.Conn
	for range perIP {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	// Once the server has accepted the idle ones, a request from their
	// address is refused.
	wait.For(t, "the cap to bite", 5*time.Second, func() bool { return !healthy(s, "127.0.0.1") })

	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection past the cap was kept open")
	}
	if !healthy(s, "127.0.0.2") {
		t.Fatal("another address is not served while 127.0.0.1 is at its cap")
	}
	if n := testutil.ToFloat64(s.Metrics().Refusals.WithLabelValues("http_conns_per_ip")); n < 1 {
		t.Fatalf("refusals counted: %v", n)
	}

	for _, c := range idle {
		c.Close()
	}
	wait.For(t, "127.0.0.1 to be served again", 10*time.Second, func() bool { return healthy(s, "127.0.0.1") })

	// MQTT over WebSocket: once upgraded, a connection leaves the HTTP
	// count (the broker's gate counts it until it logs in).
	dialer := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	for range perIP {
		ws, _, err := dialer.Dial(s.WS, nil)
		if err != nil {
			t.Fatalf("websocket: %v", err)
		}
		t.Cleanup(func() { ws.Close() })
	}
	if !healthy(s, "127.0.0.1") {
		t.Fatal("upgraded WebSocket connections still count against the HTTP cap")
	}
}
