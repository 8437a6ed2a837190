package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/account"
	"github.com/imqtt/imqtt/state"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "imqttd.yaml")
	os.WriteFile(file, []byte("mqtt-addr: \":1999\"\nhttp_addr: \":8999\"\ndata-dir: /from/file\nmax-packet-size: 1000\n"), 0o600)
	o, err := parse([]string{"--config", file, "--data-dir", "/from/flag"},
		envOf(map[string]string{"IMQTT_HTTP_ADDR": ":7000", "IMQTT_NODE_ID": "n7"}))
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.DataDir != "/from/flag" || c.HTTPAddr != ":7000" || c.MQTTAddr != ":1999" || c.NodeID != "n7" ||
		c.Broker.MaxPacketSize != 1000 || c.Broker.Keepalive != 60 {
		t.Fatalf("config = %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mqtt-adr: \":1\"\n"), 0o600)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--config", bad}, nil, `unknown key "mqtt-adr"`},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "no such file"},
		{[]string{"--tls-cert", "x"}, nil, "go together"},
		{nil, map[string]string{"IMQTT_MAX_PACKET_SIZE": "lots"}, "IMQTT_MAX_PACKET_SIZE"},
		{[]string{"stray"}, nil, "unexpected arguments"},
		{[]string{"--sync-interval", "-1s"}, nil, "positive duration"},
		{[]string{"--max-read-backlog", "0"}, nil, "positive number of bytes"},
		{[]string{"--max-write-backlog", "-1"}, nil, "positive number of bytes"},
		{[]string{"--sync-interval", "1s", "--mongo-uri", "mongodb://x/db", "--redis-url", "redis://y"}, nil, "write concern"},
		{[]string{"--wal-dir", "/wal", "--mongo-uri", "mongodb://x/db", "--redis-url", "redis://y"}, nil, "MongoDB's (its journal)"},
		{[]string{"--wal-dir", "/data/wal", "--data-dir", "/data"}, nil, "inside --data-dir"},
		{[]string{"--wal-dir", "/data", "--data-dir", "/data/"}, nil, "inside --data-dir"},
		{[]string{"--wal-dir", "data/pebble/x", "--data-dir", "data"}, nil, "inside --data-dir"},
		{[]string{"--webhook-url", "http://h/in", "--webhook-ttl", "10ms"}, map[string]string{"IMQTT_WEBHOOK_SECRET": "k"}, "--webhook-ttl: at least 1s"},
	} {
		_, err := parse(c.args, envOf(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q, %v) = %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

// TestWALDirBesideDataDir: a log directory whose name only begins like
// the data directory's is outside it.
func TestWALDirBesideDataDir(t *testing.T) {
	o, err := parse([]string{"--wal-dir", "/data-wal", "--data-dir", "/data"}, envOf(nil))
	if err != nil || o.cfg.WALDir != "/data-wal" {
		t.Fatalf("parse: %v, WALDir %q", err, o.cfg.WALDir)
	}
}

// TestWALDirSymlinkIntoDataDir: a link that leads into the data
// directory is inside it.
func TestWALDirSymlinkIntoDataDir(t *testing.T) {
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "wal")
	if err := os.Symlink(filepath.Join(data, "wal"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := parse([]string{"--wal-dir", link, "--data-dir", data}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "inside --data-dir") {
		t.Fatalf("parse: %v, want inside --data-dir", err)
	}
}

// TestBadStartExits: a bad setting is a clear error and a non-zero exit.
func TestBadStartExits(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--mongo-uri", "mongodb://nowhere", "--data-dir", t.TempDir(), "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"},
		envOf(nil), &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "scale-out") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"--log-format", "xml"}, envOf(nil), &stderr); code != 2 {
		t.Fatalf("bad log format: exit %d", code)
	}
}

// TestConfigLimits: the abuse limits are on by default, read RATE/PERIOD:BURST
// or off from flags, the environment and the file, and refuse nonsense;
// --max-send-rate 0 is "no limit".
func TestConfigLimits(t *testing.T) {
	o, err := parse(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.SendRate != 50 || c.SendBurst != 0 || c.Throttle != account.DefaultLimits { // burst 0: 4×the rate, in chat
		t.Fatalf("defaults: send %d/%d, throttle %+v", c.SendRate, c.SendBurst, c.Throttle)
	}
	file := filepath.Join(t.TempDir(), "imqttd.yaml")
	os.WriteFile(file, []byte("register-ip-limit: 5/m:10\n"), 0o600)
	o, err = parse([]string{"--config", file, "--login-ip-limit", "off", "--max-send-rate", "0"},
		envOf(map[string]string{"IMQTT_LOGIN_USER_LIMIT": "3/15m"}))
	if err != nil {
		t.Fatal(err)
	}
	c = o.cfg
	if c.Throttle.LoginIP.Rate >= 0 || c.SendRate >= 0 ||
		c.Throttle.LoginUser != (state.Limit{Rate: 3, Per: 15 * time.Minute, Burst: 3}) ||
		c.Throttle.RegisterIP != (state.Limit{Rate: 5, Per: time.Minute, Burst: 10}) ||
		c.Throttle.LoginUserIP != account.DefaultLimits.LoginUserIP {
		t.Fatalf("config: send %d, throttle %+v", c.SendRate, c.Throttle)
	}
	if _, err := parse([]string{"--login-ip-limit", "lots"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "RATE/PERIOD") {
		t.Fatalf("a bad limit: %v", err)
	}
}
