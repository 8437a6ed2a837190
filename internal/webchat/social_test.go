package webchat

import (
	"os/exec"
	"testing"
)

// TestSocialJS runs testdata/social_test.mjs, the tests of static/social.js's
// helpers, in Node. (The sequencer the page uses is the JavaScript SDK's,
// sdk/js, tested there.) A missing node fails: ./scripts/test.sh installs it.
func TestSocialJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run ./scripts/test.sh, which installs it")
	}
	out, err := exec.Command(node, "--test", "testdata/social_test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
