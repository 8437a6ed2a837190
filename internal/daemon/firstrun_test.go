package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/version"
)

// startLog starts a daemon on cfg (local addresses, a JSON log), shuts it
// down, and returns its log's records.
func startLog(t *testing.T, cfg Config) []map[string]any {
	t.Helper()
	var logs syncBuffer
	log, err := NewLogger("json", "info", &logs)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MQTTAddr, cfg.HTTPAddr, cfg.Logger = "127.0.0.1:0", "127.0.0.1:0", log
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func byMsg(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// TestStartLogGeneratedToken: --admin-token generate makes a token,
// keeps it in the data dir (0600) for the next start, and shows it on the
// dashboard's line and no other, on the start that made it only; the
// start log names the version and the URLs of the web chat, the
// dashboard, the docs and the WebSocket.
func TestStartLogGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	recs := startLog(t, Config{DataDir: dir, AdminToken: GenerateAdminToken})
	file := filepath.Join(dir, AdminTokenFile)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}
	raw, _ := os.ReadFile(file)
	token := strings.TrimSpace(string(raw))
	if len(token) != 64 {
		t.Fatalf("token %q: want 32 bytes in hex", token)
	}
	dash := byMsg(recs, "dashboard")
	if dash == nil || dash["admin_token"] != token || !strings.HasSuffix(dash["url"].(string), "/dashboard/") {
		t.Fatalf("dashboard line %v", dash)
	}
	shown := 0
	for _, r := range recs {
		line, _ := json.Marshal(r)
		if strings.Contains(string(line), token) {
			shown++
		}
	}
	if shown != 1 {
		t.Fatalf("the token is on %d log lines, want 1", shown)
	}
	serving := byMsg(recs, "imqttd serving")
	if serving == nil || serving["version"] != version.Get().Short() {
		t.Fatalf("serving line %v", serving)
	}
	http := serving["http"].(string)
	for msg, want := range map[string]string{"web chat": "http://" + http + "/chat/", "API docs": "http://" + http + "/docs/",
		"MQTT over WebSocket": "ws://" + http + "/mqtt"} {
		if r := byMsg(recs, msg); r == nil || r["url"] != want {
			t.Errorf("%s: %v, want url %s", msg, r, want)
		}
	}
	if serving["ws"] != "ws://"+http+"/mqtt" {
		t.Errorf("serving ws %v", serving["ws"])
	}
	// The next start takes the kept token, and says where it is, not what.
	cfg := Config{DataDir: dir, AdminToken: GenerateAdminToken}
	recs = startLog(t, cfg)
	if dash := byMsg(recs, "dashboard"); dash == nil || dash["kept_in"] != file {
		t.Fatalf("second start's dashboard line %v, want kept_in %s", dash, file)
	}
	for _, r := range recs {
		if line, _ := json.Marshal(r); strings.Contains(string(line), token) {
			t.Fatalf("the second start logs the kept token: %s", line)
		}
	}
	if got, _, _, err := adminToken(cfg); err != nil || got != token {
		t.Fatalf("second start's token %q, %v; want the kept one", got, err)
	}
}

// TestAdminTokenFileOpen: a kept token that other users can read is
// refused, naming the file, not taken.
func TestAdminTokenFileOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, AdminTokenFile)
	if err := os.WriteFile(file, []byte(strings.Repeat("a", 64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	token, _, _, err := adminToken(Config{DataDir: dir, AdminToken: GenerateAdminToken})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("a token file of mode 0644: %q, %v; want an error naming it", token, err)
	}
}

// TestStartLogTokenHint: with no admin token the log says how to set one;
// a token the operator gave is never printed.
func TestStartLogTokenHint(t *testing.T) {
	recs := startLog(t, Config{DataDir: t.TempDir()})
	found := false
	for _, r := range recs {
		msg, _ := r["msg"].(string)
		found = found || strings.Contains(msg, "IMQTT_ADMIN_TOKEN") && strings.Contains(msg, "--admin-token generate")
	}
	if !found {
		t.Fatalf("no hint how to set a token:\n%v", recs)
	}
	const given = "operator-token-0123456789abcdef0123456789"
	dir := t.TempDir()
	for _, r := range startLog(t, Config{DataDir: dir, AdminToken: given}) {
		if line, _ := json.Marshal(r); strings.Contains(string(line), given) {
			t.Fatalf("a given token is in the log: %s", line)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, AdminTokenFile)); err == nil {
		t.Fatal("a given token was written to the data dir")
	}
}

// TestAdminTokenScaleOut: in scale-out --admin-token generate is refused
// before anything is opened: the data dir is not the cluster's, each node
// would make its own token, and it would be written nowhere.
func TestAdminTokenScaleOut(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(t.Context(), Config{DataDir: dir, AdminToken: GenerateAdminToken,
		MongoURI: "mongodb://127.0.0.1:1", RedisURL: "redis://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "IMQTT_ADMIN_TOKEN") {
		t.Fatalf("Start in scale-out with --admin-token generate: %v, want a refusal naming IMQTT_ADMIN_TOKEN", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("data dir holds %v", entries)
	}
}

func TestUsableHost(t *testing.T) {
	for in, want := range map[string]string{"[::]:8080": "localhost:8080", "0.0.0.0:1": "localhost:1", ":80": "localhost:80",
		"127.0.0.1:9": "127.0.0.1:9", "example.com:443": "example.com:443"} {
		if got := usableHost(in); got != want {
			t.Errorf("usableHost(%q) = %q, want %q", in, got, want)
		}
	}
}
