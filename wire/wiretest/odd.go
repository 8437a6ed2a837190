// Package wiretest makes payload text for tests that hold a JSON codec to
// encoding/json's reading and writing of wire values.
package wiretest

import (
	"encoding/json"
	"math/rand/v2"

	"github.com/imqtt/imqtt/wire"
)

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

// OddMsg is a message with every field odd, set or left empty at random,
// and the kinds of meta and inline media clients send.
func OddMsg(r *rand.Rand) wire.Msg {
	m := wire.Msg{Kind: []string{wire.KindMsg, ""}[r.IntN(2)], ID: OddString(r), Ver: r.Uint64() >> r.IntN(64),
		From: OddString(r), To: OddString(r), Group: OddString(r), Seq: r.Uint64() >> r.IntN(65), Type: OddString(r),
		Body: OddString(r), Media: OddString(r), TS: r.Int64() - r.Int64(), CMID: OddString(r)}
	switch r.IntN(5) {
	case 0:
		m.Meta = json.RawMessage(`{"w": 800, "s":"\u00e9\ud83d\ude00 <x>", "a":[1, 2.5e3, -0, true, null, {}]}`)
	case 1:
		m.Meta = json.RawMessage(`"str"`)
	case 2:
		m.Meta = json.RawMessage("[ ]\n")
	}
	if r.IntN(2) == 0 {
		m.Inline = &wire.Inline{Type: OddString(r)}
		if r.IntN(5) > 0 {
			m.Inline.Data = make([]byte, r.IntN(40))
			for i := range m.Inline.Data {
				m.Inline.Data[i] = byte(r.IntN(256))
			}
		}
	}
	return m
}
