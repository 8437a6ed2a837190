package wire_test

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

// TestValidIDs: ValidUser and ValidDevice accept exactly what docs/protocol.md#identity's
// patterns do, and a user ID never begins with a dot.
func TestValidIDs(t *testing.T) {
	userRe := regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$`)
	deviceRe := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	cases := []string{"", "a", "alice", "a.b", "a-b_c", "A9", ".", "..", ".a", "a.", "a..b", "...", "a/b", "a b", "é", "a\x00", "+", "#",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a\n"}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aZ09_.-/ +#\x00é\xff"
	for range 5000 {
		b := make([]byte, r.IntN(70))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := wire.ValidUser(s), userRe.MatchString(s); got != want {
			t.Errorf("ValidUser(%q) = %v, want %v", s, got, want)
		}
		if got, want := wire.ValidDevice(s), deviceRe.MatchString(s); got != want {
			t.Errorf("ValidDevice(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestNormUser: the canonical ID is the ASCII lower-case form; dot-only and
// dot-led IDs are no IDs at all (attack finding 10: "imqtt history .."
// became GET /v1/conversations/../messages).
func TestNormUser(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice", "alice", true},
		{"ALICE", "alice", true},
		{"a.B-C_9", "a.b-c_9", true},
		{"a.", "a.", true},
		{".", "", false},
		{"..", "", false},
		{".Alice", "", false},
		{"a/b", "", false},
		{"", "", false},
		{"\u212Aelvin", "", false}, // the Kelvin sign lower-cases to k outside ASCII
		{strings.Repeat("A", 65), "", false},
	} {
		got, ok := wire.NormUser(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormUser(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
		if canon := wire.CanonicalUser(c.in); canon != (c.ok && c.in == c.want) {
			t.Errorf("CanonicalUser(%q) = %v", c.in, canon)
		}
	}
	for _, id := range []string{"system", "admin", "root", "deleted"} {
		if !wire.ReservedUser(id) {
			t.Errorf("ReservedUser(%q) = false", id)
		}
	}
	if wire.ReservedUser("alice") || wire.ReservedUser("administrator") {
		t.Error("ReservedUser reserves ordinary names")
	}
}

// TestNormUserNoAlloc: the common case (already canonical) costs nothing on
// the publish path.
func TestNormUserNoAlloc(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _, _ = wire.NormUser("alice-phone.1") }); n != 0 {
		t.Errorf("NormUser allocates %v times for a canonical ID", n)
	}
}
