package main

import (
	"bytes"
	"testing"

	"github.com/imqtt/imqtt/internal/version"
)

// TestVersion: --version prints the build's version line and exits 0,
// serving nothing.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version"} {
		var out, errOut bytes.Buffer
		if code := runTo([]string{arg}, envOf(nil), &out, &errOut); code != 0 || out.String() != version.Get().String("imqttd")+"\n" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", arg, code, out.String(), errOut.String())
		}
	}
}
