// Package testserver starts a whole imqttd inside a test process: the real
// embedded store under t.TempDir(), real listeners on port 0.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/imqtt/imqtt/account"
	"github.com/imqtt/imqtt/daemon"
)

// Server is a running imqttd.
type Server struct {
	*daemon.Daemon
	HTTP string // base URL, http://127.0.0.1:port
	MQTT string // host:port of MQTT over TCP
	WS   string // ws://127.0.0.1:port/mqtt
	Dir  string // data directory; survives Restart

	cfg daemon.Config
}

// CheapPasswords makes argon2id fast enough for tests; never use it elsewhere.
var CheapPasswords = account.Params{Memory: 64, Time: 1, Threads: 1}

// Start runs a server on a fresh data directory; it is shut down when the test ends.
// edit, if given, adjusts the configuration first.
func Start(t testing.TB, edit ...func(*daemon.Config)) *Server {
	t.Helper()
	cfg := daemon.Config{
		MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), NodeID: "test",
		PasswordParams: CheapPasswords, Logger: logger(),
	}
	for _, f := range edit {
		f(&cfg)
	}
	s := &Server{cfg: cfg, Dir: cfg.DataDir}
	s.start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	d, err := daemon.Start(context.Background(), s.cfg)
	if err != nil {
		t.Fatalf("start imqttd: %v", err)
	}
	s.Daemon = d
	s.HTTP = "http://" + d.HTTPAddr()
	s.MQTT = d.MQTTAddr()
	s.WS = "ws://" + d.HTTPAddr() + "/mqtt"
}

// Stop shuts the server down gracefully; calling it twice is harmless.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.Daemon == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shutdown imqttd: %v", err)
	}
	s.Daemon = nil
}

// Restart stops the server and starts it again on the same data directory.
// The addresses change (port 0); read them again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t)
}

// logger is quiet unless IMQTT_TEST_LOG is set.
func logger() *slog.Logger {
	if os.Getenv("IMQTT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
