package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/disktest"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// The attack: fill the disk imqttd writes to. The server panicked (Pebble's
// Fatalf on a failed WAL write) and, restarted on the still-full disk, spun
// in Pebble's open without ever serving. These tests mount a small tmpfs
// (CI runs as root; a failed mount fails the test) and fill it from outside.

// fillDisk writes dir/filler until the disk is full, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break // ENOSPC
		}
	}
	for _, n := range []int{64 << 10, 4 << 10, 1} { // the last blocks
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// daemonProc is an imqttd child process whose exit is watched.
type daemonProc struct {
	cmd        *exec.Cmd
	mqtt, http string
	exited     chan struct{}
	mu         sync.Mutex
	lines      []string // stderr
}

func (p *daemonProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// runDaemon starts imqttd on dataDir with extra flags. If serve, it waits
// for the daemon to log its addresses.
func runDaemon(t *testing.T, dataDir string, serve bool, flags ...string) *daemonProc {
	t.Helper()
	bin, err := buildDaemon()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data-dir", dataDir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--log-format", "json", "--node-id", "disk"}, flags...)
	p := &daemonProc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan struct{})
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, lines.Text())
			p.mu.Unlock()
			var rec struct{ Msg, MQTT, HTTP string }
			if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "imqttd serving" {
				p.mqtt, p.http = rec.MQTT, rec.HTTP
				close(found)
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.exited })
	if !serve {
		return p
	}
	select {
	case <-found:
	case <-p.exited:
		t.Fatalf("imqttd exited: %v\n%s", p.cmd.ProcessState, p.log())
	case <-time.After(30 * time.Second):
		t.Fatal("imqttd did not log its addresses")
	}
	return p
}

// alive fails the test if the daemon has exited.
func (p *daemonProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("imqttd exited (%v) on a full disk:\n%s", p.cmd.ProcessState, p.log())
	default:
	}
}

// getStatus GETs url and returns the status and body.
func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// Why 5 (a full disk crashes the server): with the data directory's disk
// full, sends are refused with unavailable (MQTT error event, HTTP 503),
// the process stays up, sync, history and conversations answer, /readyz is
// 503 saying why; once the filler is deleted, sends succeed again by
// themselves and everything acked before is there. With the guard, the
// store refuses before Pebble meets the full disk (and counts it); with it
// off, Pebble's WAL write fails, which crashed the server before.
func TestAttackDiskFull(t *testing.T) {
	t.Run("guard", func(t *testing.T) { diskFull(t, true) })
	t.Run("guard off", func(t *testing.T) { diskFull(t, false) })
}

func diskFull(t *testing.T, guard bool) {
	disk := disktest.Mount(t, 96)
	minFree, reason := 24<<20, "space"
	if !guard {
		minFree, reason = -1, "failed"
	}
	p := runDaemon(t, disk, true, "--min-free-disk", fmt.Sprint(minFree))
	base := "http://" + p.http
	for _, u := range []string{"alice", "bob"} {
		if code := httpJSON(t, "POST", base+"/v1/users", "", wire.Register{User: u, Password: "secret-" + u}, nil); code != 201 {
			t.Fatalf("register %s: %d", u, code)
		}
	}
	aliceTok, bobTok := loginAt(t, base, "alice"), loginAt(t, base, "bob")
	alice := connect(t, p.mqtt, "alice", "phone", "secret-alice")
	acked := map[string]wire.Ack{}
	body := strings.Repeat("b", 2000)
	for i := range 50 {
		cmid := fmt.Sprintf("before-%d", i)
		ack, werr := alice.send("bob", cmid, body)
		if werr != nil {
			t.Fatalf("send %s: %+v", cmid, werr)
		}
		acked[cmid] = ack
	}

	filler := fillDisk(t, disk)
	if guard {
		wait.For(t, "/readyz 503", 10*time.Second, func() bool { code, _ := getStatus(t, base+"/readyz"); return code == 503 })
	}
	// Sends are refused over MQTT (the last pages of the WAL may take a
	// few first, without the guard) and over HTTP.
	refused := ""
	for i := 0; refused == ""; i++ {
		cmid := fmt.Sprintf("full-%d", i)
		ack, werr := alice.send("bob", cmid, body)
		switch {
		case werr == nil:
			if guard || i > 1000 {
				t.Fatalf("send %s on a full disk acked", cmid)
			}
			acked[cmid] = ack
		case werr.Code == wire.CodeUnavailable:
			refused = cmid
		default:
			t.Fatalf("MQTT send on a full disk: %+v, want %s", werr, wire.CodeUnavailable)
		}
	}
	var werr wire.Error
	if code := httpJSON(t, "POST", base+"/v1/messages", aliceTok, wire.Send{CMID: "full-http", To: "bob", Type: "text", Body: body}, &werr); code != 503 || werr.Code != wire.CodeUnavailable {
		t.Fatalf("HTTP send on a full disk: %d %+v, want 503 %s", code, werr, wire.CodeUnavailable)
	}
	if code := uploadStatus(t, base, aliceTok); code != 503 {
		t.Fatalf("upload on a full disk: %d, want 503", code)
	}
	if code, why := getStatus(t, base+"/readyz"); code != 503 || !strings.Contains(why, reason) {
		t.Errorf("/readyz on a full disk: %d %s, want 503 saying %q", code, why, reason)
	}
	if _, m := getStatus(t, base+"/metrics"); guard && !strings.Contains(m, `imqtt_limit_refusals_total{limit="disk_space"}`) {
		t.Error("refusals for disk space not counted")
	}
	p.alive(t)

	// Reads go on, and show exactly what was acked.
	if items := syncAll(t, base, bobTok); len(items) != len(acked) {
		t.Fatalf("bob syncs %d messages on a full disk, want %d", len(items), len(acked))
	}
	var hist wire.History
	if code := httpJSON(t, "GET", base+"/v1/conversations/alice/messages?limit=1000", bobTok, nil, &hist); code != 200 || len(hist.Messages) != len(acked) {
		t.Fatalf("history on a full disk: %d, %d messages, want %d", code, len(hist.Messages), len(acked))
	}
	var convs wire.Conversations
	if code := httpJSON(t, "GET", base+"/v1/conversations", bobTok, nil, &convs); code != 200 || len(convs.Conversations) != 1 {
		t.Fatalf("conversations on a full disk: %d %+v", code, convs)
	}
	p.alive(t)

	// Space comes back: so does service, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "/readyz 200", 10*time.Second, func() bool { code, _ := getStatus(t, base+"/readyz"); return code == 200 })
	alice.mu.Lock()
	alice.direct = nil // forget the refusal: awaitReply takes the first reply to a cmid
	alice.mu.Unlock()
	ack, werr2 := alice.send("bob", refused, body) // the refused send, resent
	if werr2 != nil {
		t.Fatalf("MQTT resend after space came back: %+v\n%s", werr2, p.log())
	}
	acked[refused] = ack
	var a wire.Ack
	if code := httpJSON(t, "POST", base+"/v1/messages", aliceTok, wire.Send{CMID: "full-http", To: "bob", Type: "text", Body: body}, &a); code != 200 {
		t.Fatalf("HTTP resend after space came back: %d", code)
	}
	acked["full-http"] = a
	items := syncAll(t, base, bobTok)
	got := map[string]string{}
	for _, m := range items {
		got[m.CMID] = m.ID
	}
	for cmid, a := range acked {
		if got[cmid] != a.ID {
			t.Fatalf("acked %s (%s) missing: have %q", cmid, a.ID, got[cmid])
		}
	}
	if len(items) != len(acked) {
		t.Fatalf("bob has %d messages, want %d", len(items), len(acked))
	}
	p.alive(t)
	// The state changes are logged, not every refusal.
	var warned []string
	for _, line := range strings.Split(p.log(), "\n") {
		var rec struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && (rec.Level == "WARN" || rec.Level == "ERROR") {
			warned = append(warned, rec.Msg)
		}
	}
	t.Logf("warnings and errors: %q", warned)
	if len(warned) > 2 {
		t.Errorf("%d warnings and errors logged: %q", len(warned), warned)
	}
}

// uploadStatus uploads a small text file and returns the status.
func uploadStatus(t *testing.T, base, token string) int {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/v1/media", bytes.NewReader([]byte("some notes")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Why 5: restarted on a data directory it cannot use — the disk still full,
// not writable, not a directory, a store another imqttd holds — imqttd
// exits at once with one clear error line and a non-zero status, instead
// of spinning.
func TestAttackDiskStartup(t *testing.T) {
	cases := []struct {
		name string
		dir  func(t *testing.T) string
		want string
	}{
		{"full disk", func(t *testing.T) string {
			// The attack's restart: a store with data, its disk filled.
			disk := disktest.Mount(t, 64)
			p := runDaemon(t, disk, true, "--min-free-disk", fmt.Sprint(8<<20))
			if code := httpJSON(t, "POST", "http://"+p.http+"/v1/users", "", wire.Register{User: "alice", Password: "secret-alice"}, nil); code != 201 {
				t.Fatalf("register: %d", code)
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.exited
			fillDisk(t, disk)
			return disk
		}, "free"},
		{"not a directory", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "not a directory"},
		{"read-only", func(t *testing.T) string {
			disk := disktest.Mount(t, 32)
			if out, err := exec.Command("mount", "-o", "remount,ro", disk).CombinedOutput(); err != nil {
				t.Fatalf("remount read-only: %v: %s", err, out)
			}
			return disk
		}, "read-only"},
		{"corrupt", func(t *testing.T) string {
			dir := t.TempDir()
			p := runDaemon(t, dir, true)
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.exited
			manifests, _ := filepath.Glob(filepath.Join(dir, "pebble", "MANIFEST-*"))
			if len(manifests) == 0 {
				t.Fatal("no MANIFEST to corrupt")
			}
			for _, m := range manifests {
				if err := os.WriteFile(m, bytes.Repeat([]byte{0xA5}, 4096), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}, "malformed manifest"},
		{"locked", func(t *testing.T) string {
			dir := t.TempDir()
			runDaemon(t, dir, true)
			return dir
		}, "in use"},
	}
	if _, err := buildDaemon(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			start := time.Now()
			p := runDaemon(t, dir, false)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Fatalf("imqttd still running after 10s on an unusable data dir:\n%.2000s", p.log())
			}
			if p.cmd.ProcessState.ExitCode() == 0 {
				t.Fatal("imqttd exited 0 on an unusable data dir")
			}
			var errs []string
			for _, line := range strings.Split(p.log(), "\n") {
				var rec struct{ Level, Err string }
				if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" {
					errs = append(errs, rec.Err)
				}
			}
			if len(errs) != 1 || !strings.Contains(strings.ReplaceAll(errs[0], dir, "DIR"), c.want) {
				t.Fatalf("want one error line saying %q, got %q\n%s", c.want, errs, p.log())
			}
			t.Logf("exited %d after %v: %s", p.cmd.ProcessState.ExitCode(), time.Since(start).Round(time.Millisecond), errs[0])
		})
	}
}
