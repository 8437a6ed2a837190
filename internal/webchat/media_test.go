package webchat

import (
	"os/exec"
	"testing"
)

// TestMediaJS runs testdata/media_test.mjs, the tests of the pure helpers
// of static/media.js (links, sizes) and static/groups-ui.js (the members
// field), in Node. A missing node fails: ./scripts/test.sh installs it.
func TestMediaJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run ./scripts/test.sh, which installs it")
	}
	out, err := exec.Command(node, "--test", "testdata/media_test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
