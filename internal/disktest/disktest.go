// Package disktest gives tests a real small disk to fill: a tmpfs of its
// own. Mounting needs root, as CI has; a failed mount fails the test rather
// than skipping it (a full-disk test that does not run proves nothing).
package disktest

import (
	"fmt"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size MiB on a new temporary directory, returns
// the directory, and unmounts it when the test ends (lazily, so that a
// process the test started and is still ending cannot keep it busy).
func Mount(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs (these tests run as root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
