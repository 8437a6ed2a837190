package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotInDaemon fails if FerretDB (or devmongo) is linked into imqttd:
// only tests and this tool may import internal/devmongo.
func TestNotInDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/imqtt/imqtt/cmd/imqttd").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found only %d packages: %q", len(deps), deps)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/FerretDB/") || p == "github.com/imqtt/imqtt/internal/devmongo" ||
			strings.HasPrefix(p, "modernc.org/sqlite") {
			t.Errorf("imqttd depends on %s", p)
		}
	}
}
