package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs go list in dir and returns its output's fields.
func goList(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %q in %s: %v\n%s", args, dir, err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		t.Fatalf("go list %q in %s found only %q", args, dir, fields)
	}
	return fields
}

// TestServerModuleGraph: what only tests and tools need (FerretDB and its
// SQLite and Postgres drivers, a browser driver) is in the tools and e2e
// modules, never in the server's module graph, so never in imqttd.
func TestServerModuleGraph(t *testing.T) {
	for _, m := range goList(t, "../..", "-m", "all") {
		for _, bad := range []string{"github.com/FerretDB/", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/chromedp/"} {
			if strings.HasPrefix(m, bad) {
				t.Errorf("the server's module graph holds %s", m)
			}
		}
	}
}

// TestSDKDependencies: a bot that imports the Go SDK builds the SDK, the
// protocol types and an MQTT client, nothing of the server's.
func TestSDKDependencies(t *testing.T) {
	for _, p := range goList(t, "../../client", "-deps", "./...") {
		for _, bad := range []string{"github.com/cockroachdb/", "go.mongodb.org/", "github.com/redis/", "github.com/mochi-mqtt/",
			"github.com/prometheus/", "github.com/FerretDB/"} {
			if strings.HasPrefix(p, bad) {
				t.Errorf("the SDK depends on %s", p)
			}
		}
		if rest, ok := strings.CutPrefix(p, "github.com/imqtt/imqtt/"); ok && rest != "wire" && rest != "client" {
			t.Errorf("the SDK depends on the server's %s", p)
		}
	}
}
