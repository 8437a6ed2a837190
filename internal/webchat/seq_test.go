package webchat

import (
	"os/exec"
	"testing"
)

// TestSequencerJS runs testdata/seq_test.mjs, the tests of static/seq.js
// (the page's twin of client/sequencer.go, with the same random simulation),
// and testdata/social_test.mjs, those of static/social.js's helpers, in
// Node. A missing node fails: ./scripts/test.sh installs it.
func TestSequencerJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run ./scripts/test.sh, which installs it")
	}
	out, err := exec.Command(node, "--test", "testdata/seq_test.mjs", "testdata/social_test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
