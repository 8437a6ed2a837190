package wire_test

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/imqtt/imqtt/wire"
)

// TestValidIDs: ValidUser and ValidDevice accept exactly what SPEC §2's
// patterns do.
func TestValidIDs(t *testing.T) {
	userRe := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	deviceRe := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	cases := []string{"", "a", "alice", "a.b", "a-b_c", "A9", ".", "a/b", "a b", "é", "a\x00", "+", "#",
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
