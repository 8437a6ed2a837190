package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/internal/testserver"
)

// TestMeter drives the progress line with a clock of its own: it is
// redrawn at most once per 100 ms however often bytes come, shows the
// size, percentage and rate, and ends with a newline.
func TestMeter(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	m := newMeter(&out, "upload cat.png", 10_000, func() time.Time { return now })
	for range 100 { // 1 s of 100 bytes every 10 ms
		now = now.Add(10 * time.Millisecond)
		m.add(100)
	}
	if n := strings.Count(out.String(), "\r"); n < 9 || n > 11 {
		t.Errorf("%d draws in 1 s of writes every 10 ms, want about 10:\n%q", n, out.String())
	}
	m.finish()
	draws := strings.Split(out.String(), "\r")
	last := draws[len(draws)-1]
	if want := "upload cat.png: 10.0 kB of 10.0 kB (100%), 10.0 kB/s\x1b[K\n"; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
	if first := draws[1]; first != "upload cat.png: 100 B of 10.0 kB (1%), 10.0 kB/s\x1b[K" {
		t.Errorf("first line %q", first)
	}

	out.Reset()
	m = newMeter(&out, "download m-1", -1, func() time.Time { return now })
	now = now.Add(2 * time.Second)
	m.add(3_000_000)
	m.finish()
	if got, want := out.String(), "\rdownload m-1: 3.0 MB, 1.5 MB/s\x1b[K\rdownload m-1: 3.0 MB, 1.5 MB/s\x1b[K\n"; got != want {
		t.Errorf("unknown size: %q, want %q", got, want)
	}
	m.setTotal(0)
	out.Reset()
	m.finish()
	if !strings.Contains(out.String(), "of 0 B (100%)") {
		t.Errorf("an empty file: %q", out.String())
	}
	var none *meter // what cli.meter gives when not on a terminal
	none.add(1)
	none.setTotal(1)
	none.finish()
}

// TestFirstHourCLI runs against one server: the password from stdin, and
// upload and download with progress on a terminal and none when piped.
func TestFirstHourCLI(t *testing.T) {
	s := testserver.Start(t)
	u := newUser(t, s, "dora")
	stdin := func(s string) env { e := u.env; e.stdin = strings.NewReader(s); return e }
	if code, out, stderr := runIn(t, stdin("pw-dora\n"), "register", "Dora", "--password-stdin"); code != exitOK || !strings.Contains(out, `"user":"dora"`) {
		t.Fatalf("register --password-stdin: exit %d %s %s", code, out, stderr)
	}
	if code, _, stderr := runIn(t, stdin("wrong\n"), "login", "dora", "--password-stdin"); code != exitFailure || !strings.Contains(stderr, "unauthorized") {
		t.Fatalf("login with a wrong password on stdin: exit %d %s", code, stderr)
	}
	if code, out, stderr := runIn(t, stdin("pw-dora\r\n"), "login", "dora", "--password-stdin"); code != exitOK || !strings.Contains(out, `"device":"cli"`) {
		t.Fatalf("login --password-stdin: exit %d %s %s", code, out, stderr)
	}

	file := filepath.Join(t.TempDir(), "notes.txt")
	body := bytes.Repeat([]byte("imqtt "), 50_000)
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	terminal := u.env
	terminal.isTerminal = func(f any) bool { return true }
	for _, tc := range []struct {
		name string
		e    env
		want string // on stderr
	}{
		{"piped", u.env, ""},
		{"terminal", terminal, "300.0 kB of 300.0 kB (100%)"},
	} {
		code, out, stderr := runIn(t, tc.e, "upload", file)
		var info client.MediaInfo
		if code != exitOK || json.Unmarshal([]byte(out), &info) != nil || info.Size != int64(len(body)) {
			t.Fatalf("%s: upload: exit %d %q %s", tc.name, code, out, stderr)
		}
		if tc.want == "" && stderr != "" || tc.want != "" && (!strings.Contains(stderr, "upload notes.txt: "+tc.want) || !strings.HasSuffix(stderr, "\n")) {
			t.Errorf("%s: upload's stderr %q, want %q", tc.name, stderr, tc.want)
		}
		got := filepath.Join(t.TempDir(), "got")
		code, out, stderr = runIn(t, tc.e, "download", info.ID, "-o", got)
		if b, _ := os.ReadFile(got); code != exitOK || !bytes.Equal(b, body) || !strings.HasPrefix(out, `{"id":"`+info.ID) {
			t.Fatalf("%s: download: exit %d %q %s", tc.name, code, out, stderr)
		}
		if tc.want == "" && stderr != "" || tc.want != "" && !strings.Contains(stderr, "download "+info.ID+": "+tc.want) {
			t.Errorf("%s: download's stderr %q, want %q", tc.name, stderr, tc.want)
		}
	}
}
