package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/imqtt/imqtt/bench"
	"github.com/imqtt/imqtt/internal/push"
	"github.com/imqtt/imqtt/internal/push/webhook"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
)

func TestBenchCommand(t *testing.T) {
	s := testserver.Start(t)
	u := newUser(t, s, "bencher")
	dir := t.TempDir()
	p2p := filepath.Join(dir, "p2p.json")

	out := u.ok("bench", "p2p", "--pairs", "2", "--messages", "40", "--quiet", "--json", p2p)
	for _, want := range []string{"lost", "dup", "msgs/s", "p99 ms", "PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("p2p table lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(p2p)
	if err != nil {
		t.Fatal(err)
	}
	var r bench.Result
	if err := json.Unmarshal(raw, &r); err != nil || r.Delivered != 40 || r.Lost != 0 || r.Target != "imqttd" {
		t.Fatalf("result file: %v %+v", err, r)
	}

	out = u.ok("bench", "sync", "--messages", "50", "--format", "json", "--quiet")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Scenario != "sync" || r.Delivered != 50 {
		t.Fatalf("sync JSON on stdout: %v %q", err, out)
	}
	syncFile := filepath.Join(dir, "sync.json")
	if err := os.WriteFile(syncFile, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	out = u.ok("bench", "replay", "--devices", "2", "--missed", "10", "--format", "json", "--quiet")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Scenario != "replay" || r.Delivered != 20 || r.Extra["devices_complete"] != 2 {
		t.Fatalf("replay JSON on stdout: %v %q", err, out)
	}
	out = u.ok("bench", "p2p", "--pairs", "1", "--messages", "10", "--sessions", "--format", "json", "--quiet")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Delivered != 10 || r.Extra["server_sessions_active"] != 1 {
		t.Fatalf("p2p --sessions JSON on stdout: %v %q", err, out)
	}
	out = u.ok("bench", "compare", p2p, syncFile)
	if !strings.Contains(out, "### p2p") || !strings.Contains(out, "### Targets") {
		t.Fatalf("compare:\n%s", out)
	}
}

func TestBenchFailsLoudly(t *testing.T) {
	e := fakeEnv(t.TempDir(), map[string]string{"IMQTT_HOME": t.TempDir()})
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"bench", "p2p", "--server", "http://127.0.0.1:1", "--quiet"}, exitFailure, "target unreachable"},
		{[]string{"bench", "p2p", "--plain", "--quiet"}, exitUsage, "--plain needs --mqtt"},
		{[]string{"bench", "conns", "--plain", "--mqtt", "127.0.0.1:1", "--quiet"}, exitFailure, "target unreachable"},
		{[]string{"bench", "p2p", "--plain", "--mqtt", "127.0.0.1:1", "--sessions", "--quiet"}, exitUsage, "--sessions is for imqttd"},
		{[]string{"bench", "replay", "--server", "http://127.0.0.1:1", "--quiet"}, exitFailure, "target unreachable"},
		{[]string{"bench", "sync", "--format", "yaml"}, exitUsage, "--format is table or json"},
		{[]string{"bench", "compare"}, exitUsage, "missing arguments"},
		{[]string{"bench", "compare", "/nonexistent.json"}, exitFailure, "no such file"},
		{[]string{"bench", "p2p", "--help"}, exitOK, ""},
	}
	for _, c := range cases {
		code, _, stderr := runIn(t, e, c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("imqtt %q: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.err)
		}
	}
}

// syncBuffer is an io.Writer the test reads while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBenchPushSink runs imqtt bench push-sink in-process: it prints its
// URL, takes a push signed as imqttd signs them, and prints its figures
// when its context (SIGINT, SIGTERM) ends.
func TestBenchPushSink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runContext(ctx, fakeEnv(t.TempDir(), map[string]string{"IMQTT_PUSH_SECRET": "s3cret"}),
			[]string{"bench", "push-sink", "--delay", "1ms"}, &stdout, &stderr)
	}()
	var start struct{ URL string }
	wait.For(t, "the sink's URL", 10*time.Second, func() bool {
		return json.Unmarshal([]byte(stdout.String()), &start) == nil && start.URL != ""
	})
	p, err := webhook.New(webhook.Options{URL: start.URL, Secret: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt((time.Now().UnixMilli()-snowflake.Epoch)<<22, 10)
	if err := p.Push(ctx, push.Notification{Device: store.PushDevice{Token: "bench-bob"}, MessageID: id}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
	lines := jsonLines[bench.SinkStats](t, stdout.String())
	if len(lines) != 2 || lines[1].Pushes != 1 || lines[1].BadSignature != 0 || lines[1].Latency.Max <= 0 {
		t.Fatalf("stdout %q", stdout.String())
	}

	// Without a secret, or with a status that is none: usage errors.
	for _, args := range [][]string{{"bench", "push-sink"}, {"bench", "push-sink", "--secret", "s", "--status", "42"}} {
		if c, _, errOut := runIn(t, fakeEnv(t.TempDir(), nil), args...); c == exitOK {
			t.Errorf("%q: exit 0: %s", args, errOut)
		}
	}
}
