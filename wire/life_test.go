package wire

import "testing"

func TestValidEmoji(t *testing.T) {
	for s, want := range map[string]bool{
		"👍": true, "👍🏽": true, "👨‍👩‍👧": true, "🇫🇷": true, "❤️": true, "☕": true, "✅": true, "⭐": true, "😀": true,
		"": false, "a": false, ".": false, "$": false, "ab": false, "👍👍": false, "👍a": false, "1": false,
		"\xff": false, "é": false, "中": false, "\u200d": false, " ": false,
		"👨‍👩‍👧‍👦‍👨‍👩‍👧‍👦": false, // one cluster of more than 32 bytes
	} {
		if got := ValidEmoji(s); got != want {
			t.Errorf("ValidEmoji(%q) = %v, want %v", s, got, want)
		}
	}
}
