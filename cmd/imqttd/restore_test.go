package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/internal/backup"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestRestoreCommand: imqttd restore unpacks a backup and says what it
// restored; a non-empty target and a corrupted tar are one line and exit 1,
// and a missing flag is a usage error.
func TestRestoreCommand(t *testing.T) {
	data := t.TempDir()
	st, err := pebble.Open(filepath.Join(data, "pebble"), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if _, err := backup.Write(context.Background(), &tarball, backup.Source{DataDir: data, Store: st, Node: "n7"}); err != nil {
		t.Fatal(err)
	}
	epoch := st.Epoch()
	_ = st.Close()
	file := filepath.Join(t.TempDir(), "b.tar")
	if err := os.WriteFile(file, tarball.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	if code := run([]string{"restore", "--from", file, "--data-dir", target}, os.Getenv, &errOut); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut.String())
	}
	// run prints to os.Stdout; runRestore takes its writers.
	out.Reset()
	target2 := filepath.Join(t.TempDir(), "data")
	if code := runRestore([]string{"--from", "-", "--data-dir", target2}, bytes.NewReader(tarball.Bytes()), &out, &errOut); code != 0 {
		t.Fatalf("restore from stdin: exit %d: %s", code, errOut.String())
	}
	if s := out.String(); !strings.Contains(s, "node n7") || !strings.Contains(s, "new epoch "+epoch+" -> ") {
		t.Errorf("output %q", s)
	}
	rs, err := pebble.Open(filepath.Join(target, "pebble"), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Epoch() == epoch {
		t.Error("restored store kept the old epoch")
	}
	_ = rs.Close()

	refuse := func(name string, args []string, want string) {
		t.Helper()
		errOut.Reset()
		if code := runRestore(args, bytes.NewReader(nil), &out, &errOut); code != 1 {
			t.Errorf("%s: exit %d, want 1", name, code)
		}
		if s := errOut.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, want) {
			t.Errorf("%s: stderr %q, want one line with %q", name, s, want)
		}
	}
	refuse("non-empty", []string{"--from", file, "--data-dir", target}, "not empty")
	bad := bytes.Clone(tarball.Bytes())
	bad = bad[:len(bad)/2]
	if err := os.WriteFile(file, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	refuse("truncated", []string{"--from", file, "--data-dir", filepath.Join(t.TempDir(), "x")}, "backup corrupt")
	refuse("no file", []string{"--from", file + ".none", "--data-dir", filepath.Join(t.TempDir(), "x")}, "no such file")
	if code := runRestore([]string{"--from", file}, nil, &out, &errOut); code != 2 {
		t.Errorf("no --data-dir: exit %d, want 2", code)
	}
}
