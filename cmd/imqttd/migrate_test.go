package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/store/pebble"
)

// A store in use (a running imqttd holds its LOCK) is refused with one
// line that says to stop it, before anything else is touched.
func TestMigrateRefusesStoreInUse(t *testing.T) {
	dir := t.TempDir()
	st, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out bytes.Buffer
	code := run([]string{"migrate", "--data-dir", dir, "--mongo-uri", "mongodb://127.0.0.1:1/x"}, func(string) string { return "" }, &out)
	if code != 1 || strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), "stop the imqttd") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestMigrateArgs(t *testing.T) {
	var out bytes.Buffer
	env := func(k string) string { return map[string]string{"IMQTT_DATA_DIR": t.TempDir()}[k] }
	if code := run([]string{"migrate"}, env, &out); code != 2 || !strings.Contains(out.String(), "--mongo-uri is required") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
	// A negative (or NaN) rate is refused, not taken as no limit.
	for _, r := range []string{"-5", "NaN"} {
		out.Reset()
		if code := run([]string{"migrate", "--mongo-uri", "mongodb://127.0.0.1:1/x", "--rate", r}, env, &out); code != 2 ||
			!strings.Contains(out.String(), "--rate") {
			t.Fatalf("--rate %s: exit %d, output %q", r, code, out.String())
		}
	}
	out.Reset()
	// No store in the data directory: a clear error, nothing created.
	code := run([]string{"migrate", "--mongo-uri", "mongodb://127.0.0.1:1/x"}, env, &out)
	if code != 1 || !strings.Contains(out.String(), "pebble") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

// An unreachable target fails with the URI's error, never its password,
// and leaves the source as it was.
func TestMigrateUnreachableTarget(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "pebble"), os.DirFS("../../store/pebble/testdata/format1")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := run([]string{"migrate", "--data-dir", dir, "--mongo-uri", "mongodb://admin:s3cret-pw@127.0.0.1:1/x?serverSelectionTimeoutMS=300"},
		func(string) string { return "" }, &out)
	if code != 1 || !strings.Contains(out.String(), "--mongo-uri") || strings.Contains(out.String(), "s3cret-pw") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
	// The source opens read-write afterwards: its LOCK was let go.
	st, err := pebble.Open(filepath.Join(dir, "pebble"), pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}
