package version

import (
	"strings"
	"testing"
)

func TestShortAndString(t *testing.T) {
	in := Info{Module: "github.com/imqtt/imqtt", Version: "v1.2.3", Revision: "0123456789abcdef0123", Time: "2026-12-07T10:00:00Z", Modified: true, Go: "go1.26.0"}
	if got, want := in.Short(), "v1.2.3 0123456789ab+dirty"; got != want {
		t.Errorf("Short() = %q, want %q", got, want)
	}
	s := in.String("imqttd")
	for _, part := range []string{"imqttd v1.2.3", "revision 0123456789abcdef0123", "2026-12-07T10:00:00Z", "modified", "github.com/imqtt/imqtt", "go1.26.0"} {
		if !strings.Contains(s, part) {
			t.Errorf("String() = %q, lacks %q", s, part)
		}
	}
	if got := (Info{Version: "(devel)"}).Short(); got != "(devel)" {
		t.Errorf("unstamped Short() = %q", got)
	}
}

// A test binary has build information; its main module is this one.
func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Go == "" {
		t.Fatalf("Get() = %+v: version and toolchain must be set", in)
	}
}
