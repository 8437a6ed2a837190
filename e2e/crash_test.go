package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// process is an imqttd running as a child process.
type process struct {
	cmd        *exec.Cmd
	mqtt, http string
	durability string // as the start-up line says it
}

// buildDaemon compiles cmd/imqttd once per test binary.
var buildDaemon = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "imqttd-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "imqttd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/imqtt/imqtt/cmd/imqttd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startProcess runs imqttd on dataDir and waits for it to log its addresses.
func startProcess(t *testing.T, dataDir string, extra ...string) *process {
	t.Helper()
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-dir", dataDir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json", "--node-id", "crash",
		// the tests stream sends far past the default per-user limit
		"--max-send-rate", "1000000", "--max-send-burst", "1000000")
	cmd.Args = append(cmd.Args, extra...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan struct{})
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			var rec struct{ Msg, MQTT, HTTP, Durability string }
			if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "imqttd serving" {
				p.mqtt, p.http, p.durability = rec.MQTT, rec.HTTP, rec.Durability
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("imqttd did not log its addresses")
	}
	return p
}

// TestKill9: kill -9 during a stream of sends. After a restart every acked
// message is there exactly once, resends of the unacked ones are stored once,
// and versions continue upward.
func TestKill9(t *testing.T) { runKill9(t, "synced to disk") }

// TestKill9SyncInterval: the same in the interval durability mode, with an
// interval far longer than the test, so that no acked send has been synced
// to the disk at the kill: each was written to the operating system before
// its ack, and a process crash loses none.
func TestKill9SyncInterval(t *testing.T) {
	runKill9(t, "written to the OS, synced every 1h0m0s", "--sync-interval", "1h")
}

// TestKill9WALDir: the same with the write-ahead log in a directory of its
// own (--wal-dir): the restart replays it from there, and it is there,
// not beside the tables.
func TestKill9WALDir(t *testing.T) {
	walDir := t.TempDir()
	dataDir := runKill9(t, "synced to disk", "--wal-dir", walDir)
	walLogs, _ := filepath.Glob(filepath.Join(walDir, "*.log"))
	storeLogs, _ := filepath.Glob(filepath.Join(dataDir, "pebble", "*.log"))
	if len(walLogs) == 0 || len(storeLogs) != 0 {
		t.Fatalf("logs in --wal-dir %v, beside the tables %v: want them in --wal-dir only", walLogs, storeLogs)
	}
}

// runKill9 runs the test on imqttd started with extra flags, whose
// start-up line names its durability mode as durability. It returns the
// data directory.
func runKill9(t *testing.T, durability string, extra ...string) string {
	dir := t.TempDir()
	p := startProcess(t, dir, extra...)
	if p.durability != durability {
		t.Fatalf("imqttd says its durability is %q, want %q", p.durability, durability)
	}
	httpBase := "http://" + p.http
	for _, u := range []string{"alice", "bob"} {
		if code := httpJSON(t, "POST", httpBase+"/v1/users", "", wire.Register{User: u, Password: "secret-" + u}, nil); code != 201 {
			t.Fatalf("register %s: %d", u, code)
		}
	}

	var mu sync.Mutex
	acked := map[string]wire.Ack{}
	// A send takes a slot and its first ack frees it: at most 100 unacked.
	slots := make(chan struct{}, 100)
	lost := make(chan struct{})
	opts := paho.NewClientOptions().AddBroker("tcp://" + p.mqtt).SetClientID("alice/phone").SetUsername("alice").
		SetPassword("secret-alice").SetAutoReconnect(false).SetCleanSession(true).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	c.Subscribe(wire.DeviceTopic("alice", "phone"), 1, func(_ paho.Client, m paho.Message) {
		var a wire.Ack
		if json.Unmarshal(m.Payload(), &a) == nil && a.Kind == wire.KindAck {
			mu.Lock()
			if _, again := acked[a.CMID]; !again {
				select {
				case <-slots:
				default:
				}
			}
			acked[a.CMID] = a
			mu.Unlock()
		}
	}).WaitTimeout(10 * time.Second)

	// Stream sends from a goroutine, without waiting for acks, and kill the
	// server once 100 are acked: the stream is still going then.
	// The sender keeps at most 100 sends unacked, so however slow the
	// machine, the stream is still going (and sends are in flight) at the kill.
	const max = 100_000
	var sent atomic.Int64
	go func() {
		for i := range max {
			select {
			case slots <- struct{}{}:
			case <-lost:
				return
			case <-t.Context().Done():
				return
			}
			payload, _ := json.Marshal(wire.Send{CMID: fmt.Sprintf("k-%d", i), To: "bob", Type: "text", Body: fmt.Sprint(i)})
			tok := c.Publish(wire.TopicSend, 1, false, payload)
			sent.Add(1)
			if tok.WaitTimeout(5*time.Second) && tok.Error() != nil {
				return
			}
		}
	}()
	wait.For(t, "100 acks", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 100 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	mu.Lock()
	before := maps.Clone(acked)
	mu.Unlock()
	total := int(sent.Load())
	if total >= max {
		t.Fatalf("all %d sends went out before the kill", total)
	}
	t.Logf("killed with %d sent, %d acked", total, len(before))

	p = startProcess(t, dir, extra...)
	httpBase = "http://" + p.http
	bobTok := loginAt(t, httpBase, "bob")
	items := syncAll(t, httpBase, bobTok)
	byCMID := map[string]wire.Msg{}
	var lastVer uint64
	for _, m := range items {
		if _, dup := byCMID[m.CMID]; dup {
			t.Fatalf("message %s stored twice", m.CMID)
		}
		if m.Ver <= lastVer {
			t.Fatalf("versions not increasing: %d after %d", m.Ver, lastVer)
		}
		byCMID[m.CMID], lastVer = m, m.Ver
	}
	for cmid, a := range before {
		if m, ok := byCMID[cmid]; !ok || m.ID != a.ID {
			t.Fatalf("acked %s (%s) lost after kill -9", cmid, a.ID)
		}
	}

	// alice resends everything over HTTP with the same cmids: each is stored once,
	// and the ones acked before get the same ack.
	aliceTok := loginAt(t, httpBase, "alice")
	for i := range total {
		var a wire.Ack
		cmid := fmt.Sprintf("k-%d", i)
		if code := httpJSON(t, "POST", httpBase+"/v1/messages", aliceTok, wire.Send{CMID: cmid, To: "bob", Type: "text", Body: fmt.Sprint(i)}, &a); code != 200 {
			t.Fatalf("resend %s: %d", cmid, code)
		}
		if old, ok := before[cmid]; ok && old != a {
			t.Fatalf("resend of acked %s: %+v, first ack %+v", cmid, a, old)
		}
	}
	items = syncAll(t, httpBase, bobTok)
	if len(items) != total {
		t.Fatalf("bob has %d messages after resends, want %d", len(items), total)
	}
	seen := map[string]bool{}
	for i, m := range items {
		if seen[m.CMID] || (i > 0 && m.Ver <= items[i-1].Ver) {
			t.Fatalf("duplicate or out of order at %d: %+v", i, m)
		}
		seen[m.CMID] = true
	}
	// A message sent now gets a version above every one given before the
	// crash. (The resends alone may all be repeats: with every send that
	// went out stored before the kill, none takes a new version.)
	var fresh wire.Ack
	if code := httpJSON(t, "POST", httpBase+"/v1/messages", aliceTok, wire.Send{CMID: "after-crash", To: "bob", Type: "text", Body: "new"}, &fresh); code != 200 {
		t.Fatalf("send after the crash: %d", code)
	}
	items = syncAll(t, httpBase, bobTok)
	if last := items[len(items)-1]; last.CMID != "after-crash" || last.Ver <= lastVer {
		t.Fatalf("versions went back after the crash: %+v, last version before %d", last, lastVer)
	}
	stopProcess(t, p)
	return dir
}

// stopProcess sends SIGTERM and expects a clean exit.
func stopProcess(t *testing.T, p *process) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("imqttd exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("imqttd did not stop on SIGTERM")
	}
}

func loginAt(t *testing.T, base, user string) string {
	t.Helper()
	var s wire.Session
	if code := httpJSON(t, "POST", base+"/v1/sessions", "", wire.Login{User: user, Password: "secret-" + user, Device: "d"}, &s); code != 200 {
		t.Fatalf("login %s: %d", user, code)
	}
	return s.Token
}

// syncAll pulls a user's whole inbox over HTTP.
func syncAll(t *testing.T, base, token string) []wire.Msg {
	t.Helper()
	var out []wire.Msg
	var since uint64
	for {
		var b wire.Sync
		if code := httpJSON(t, "GET", fmt.Sprintf("%s/v1/sync?since=%d&limit=1000", base, since), token, nil, &b); code != 200 {
			t.Fatalf("sync: %d", code)
		}
		out = append(out, b.Items...)
		if !b.More {
			return out
		}
		since = b.Upto
	}
}
