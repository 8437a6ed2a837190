package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unit is a systemd unit file: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	sec := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("%s:%d: continuation lines are not used here", path, n)
		case line[0] == '[' && line[len(line)-1] == ']':
			sec = line[1 : len(line)-1]
			if u[sec] != nil {
				t.Errorf("%s:%d: section [%s] twice", path, n, sec)
			}
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" || strings.TrimSpace(k) == "" {
				t.Fatalf("%s:%d: %q is no key=value in a section", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[sec][k] = append(u[sec][k], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) get(sec, key string) string {
	v := u[sec][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnit checks the hardening and the drain settings of
// systemd/imqttd.service, and runs systemd-analyze verify on it (with
// ExecStart pointed at a binary that exists) when systemd is installed.
func TestSystemdUnit(t *testing.T) {
	const path = "systemd/imqttd.service"
	u := parseUnit(t, path)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("no [%s] section", s)
		}
	}
	for key, want := range map[string]string{
		"Type":            "exec",
		"ExecStart":       "/usr/local/bin/imqttd",
		"StateDirectory":  "imqttd",
		"ProtectSystem":   "strict",
		"NoNewPrivileges": "yes",
		"LimitNOFILE":     "1048576",
		"Restart":         "on-failure",
		"KillSignal":      "SIGTERM",
		"EnvironmentFile": "-/etc/imqttd/env",
		"Environment":     "IMQTT_DATA_DIR=/var/lib/imqttd",
		"PrivateTmp":      "yes",
		"ProtectHome":     "yes",
	} {
		if got := u.get("Service", key); got != want {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	if u.get("Service", "DynamicUser") != "yes" && u.get("Service", "User") == "" {
		t.Error("neither DynamicUser=yes nor a dedicated User=")
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Error("[Install] WantedBy=multi-user.target missing")
	}
	// The drain (imqttd bounds its shutdown to 30 s) ends before SIGKILL.
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil || stop < 45*time.Second {
		t.Errorf("TimeoutStopSec=%q: want a duration of at least 45s for the drain (%v)", u.get("Service", "TimeoutStopSec"), err)
	}
	// StateDirectory is /var/lib/<name>, the data dir the unit gives imqttd.
	if u.get("Service", "Environment") != "IMQTT_DATA_DIR=/var/lib/"+u.get("Service", "StateDirectory") {
		t.Error("IMQTT_DATA_DIR is not the StateDirectory")
	}

	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (scripts/test.sh installs systemd): the unit cannot be verified")
	}
	// verify wants ExecStart to exist: point it at this test's own binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(readFile(t, path), "ExecStart=/usr/local/bin/imqttd", "ExecStart="+self, 1)
	tmp := filepath.Join(t.TempDir(), "imqttd.service")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", tmp).CombinedOutput()
	// verify warns (unknown keys, bad values) with exit status 0: any output fails too.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
