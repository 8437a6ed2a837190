package wire

import (
	"encoding/json"
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

// MaxMeta bounds a message's meta in bytes. Meta carries what a client
// renders beside the body (an image's size, a voice note's length, a link
// preview's title): a few hundred bytes in practice. It is copied into every
// event, sync item and conversation row that carries the message, so it
// gets its own bound well inside the message's (MaxBody, 64 KiB by default).
const MaxMeta = 8 << 10

// MaxMetaDepth bounds how deeply a message's meta nests. Events wrap meta in
// up to four more levels (a conversation list: object, array, row, message),
// so the JSON any client receives stays within MaxDepth with room to spare.
const MaxMetaDepth = 16

// Unmarshal decodes JSON from a client into v: nesting is bounded by
// MaxDepth first (an error wrapping ErrTooDeep), then encoding/json, whose
// errors name what is wrong, decodes it.
func Unmarshal(data []byte, v any) error {
	if err := CheckDepth(data, MaxDepth); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// DecodeRequest decodes a request a client published (what names it:
// "send", "sync", "read") with Unmarshal. A request that does not decode
// gets the bad_request error event the client is told, and limit names the
// limit that refused it ("json_depth"), or is empty.
func DecodeRequest(what string, data []byte, v any) (e *Error, limit string) {
	err := Unmarshal(data, v)
	switch {
	case err == nil:
		return nil, ""
	case errors.Is(err, ErrTooDeep):
		return NewError(CodeBadRequest, fmt.Sprintf("%s: JSON nested too deeply: objects and arrays at most %d levels", what, MaxDepth)), "json_depth"
	}
	return NewError(CodeBadRequest, what+": malformed JSON: "+err.Error()), ""
}
