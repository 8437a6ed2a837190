// Package testserver starts a whole imqttd inside a test process: the real
// embedded store under t.TempDir(), real listeners on port 0.
package testserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
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

// Roomy are abuse limits far above the defaults, which tests start with:
// tests log in and register hundreds of users from 127.0.0.1 within
// seconds and send thousands of messages a second as one user, which the
// defaults (made for the internet) would refuse. The limits stay on, so
// every test still goes through them; the tests of the limits set their
// own.
var Roomy = struct {
	SendRate  int64
	SendBurst int
	Throttle  account.Limits
}{
	SendRate: 1_000_000, SendBurst: 1_000_000,
	Throttle: account.Limits{
		LoginIP:     state.Limit{Rate: 1_000_000, Per: time.Second, Burst: 1_000_000},
		LoginUserIP: state.Limit{Rate: 1_000_000, Per: time.Second, Burst: 1_000_000},
		LoginUser:   state.Limit{Rate: 1_000_000, Per: time.Second, Burst: 1_000_000},
		RegisterIP:  state.Limit{Rate: 1_000_000, Per: time.Second, Burst: 1_000_000},
	},
}

// Start runs a server on a fresh data directory; it is shut down when the test ends.
// edit, if given, adjusts the configuration first. The abuse limits start
// Roomy.
func Start(t testing.TB, edit ...func(*daemon.Config)) *Server {
	t.Helper()
	cfg := daemon.Config{
		MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), NodeID: "test",
		PasswordParams: CheapPasswords, Logger: logger(),
		SendRate: Roomy.SendRate, SendBurst: Roomy.SendBurst, Throttle: Roomy.Throttle,
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

// logger is quiet unless IMQTT_TEST_LOG is set: to a level (debug, info,
// warn, error), or anything else for debug.
func logger() *slog.Logger {
	if v := os.Getenv("IMQTT_TEST_LOG"); v != "" {
		level := slog.LevelDebug
		_ = level.UnmarshalText([]byte(v))
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// PlantMessage commits a 1:1 message from `from` into user's inbox straight
// through the store, past every check of the send path, as data stored
// before a rule existed would be there (a meta nested 9,998 deep, say). It
// returns the message's version in user's inbox. Restart the server
// afterwards, so that the versions it hands out next come after it.
func (s *Server) PlantMessage(t testing.TB, user, from, body string, meta json.RawMessage) uint64 {
	t.Helper()
	ctx := context.Background()
	ver, err := s.Store().ReserveVersions(ctx, user, 1)
	if err != nil {
		t.Fatal(err)
	}
	id := time.Now().UnixNano()
	err = s.Store().Commit(ctx, &store.Batch{
		Messages: []store.Message{{ID: id, From: from, To: user, Type: "text", Body: body, Meta: meta,
			CMID: "c-planted-" + strconv.FormatInt(id, 10), TS: time.Now().UnixMilli()}},
		Entries: []store.Entry{{User: user, Ver: ver, Peer: from, MsgID: id}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

// DeepMeta is a JSON object nested depth levels deep: {"a":{"a":...1}}.
func DeepMeta(depth int) json.RawMessage {
	return json.RawMessage(strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth))
}
