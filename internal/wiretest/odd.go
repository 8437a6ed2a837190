// Package wiretest makes payload text for tests that hold a JSON codec to
// encoding/json's reading and writing of wire values.
package wiretest

import "math/rand/v2"

// OddStrings are pieces of text JSON codecs disagree on: HTML characters,
// escapes, control characters, JS line separators, invalid UTF-8, astral
// runes.
var OddStrings = []string{"a", "é", "\u2028", "\u2029", "<", ">", "&", `"`, `\`, "\x00", "\x1f", "\x7f", "\t", "\n", "\r",
	"日本", "😀", "\xff", "\xc3", "\xed\xa0\x80", "/", " ", "\u00a0", "\ufeff", "\ufffd", "0"}

// OddString is up to nine OddStrings, drawn at random.
func OddString(r *rand.Rand) string {
	var b []byte
	for range r.IntN(10) {
		b = append(b, OddStrings[r.IntN(len(OddStrings))]...)
	}
	return string(b)
}
