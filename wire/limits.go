package wire

import (
	"errors"
	"fmt"
)

// MaxDepth is how deeply objects and arrays may nest in any JSON imqtt
// decodes from a client or stores for one (a message's meta included).
// encoding/json would follow 10,000 levels, and other decoders give up far
// sooner (Python's json.loads near 1,000), so a message nested that deep
// would be stored and then break every client that syncs it.
const MaxDepth = 32

// ErrTooDeep is CheckDepth's error.
var ErrTooDeep = errors.New("JSON nested too deeply")

// CheckDepth reports an error if data, read as JSON, nests objects and
// arrays more than max levels deep. It only counts brackets outside strings
// (escapes honoured) and validates nothing else: run it before a decoder,
// which then judges the syntax. It allocates nothing.
func CheckDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > max {
				return fmt.Errorf("%w: over %d levels at byte %d", ErrTooDeep, max, i)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
