package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestMain lets a test run this binary as a second process that uses a
// data dir as imqttd does, its lock and then its store
// (IMQTT_TEST_HOLD_LOCK=<dir>), until its stdin closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv("IMQTT_TEST_HOLD_LOCK"); dir != "" {
		lock, err := daemon.LockDataDir(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		st, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{MinFreeDisk: -1})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = st.Close()
		_ = lock.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDataDirInUse: with another process holding the data dir, imqttd,
// restore and migrate each refuse at once, naming the dir and the
// holder's pid (Pebble alone said "resource temporarily unavailable").
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "IMQTT_TEST_HOLD_LOCK="+dir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = child.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("child: %q", line)
	}
	want := fmt.Sprintf("data dir %s in use by another imqttd (pid %d)", dir, child.Process.Pid)
	var stderr bytes.Buffer
	code := run([]string{"--data-dir", dir, "--mqtt-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, envOf(nil), &stderr)
	if code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("imqttd: exit %d, stderr %q, want %q", code, stderr.String(), want)
	}
	stderr.Reset()
	if code := run([]string{"restore", "--from", "-", "--data-dir", dir}, envOf(nil), &stderr); code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("restore: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"migrate", "--data-dir", dir, "--mongo-uri", "mongodb://127.0.0.1:1/x"}, envOf(nil), &stderr); code != 1 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("migrate: exit %d, stderr %q", code, stderr.String())
	}
}
