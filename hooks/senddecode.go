package hooks

import (
	"unicode/utf8"

	"github.com/imqtt/imqtt/wire"
)

// decodeSendFast decodes the common shape of an im/send payload without
// reflection: one flat JSON object whose members are among cmid, to,
// group, type, body and media, spelled exactly so, each a string without
// \u escapes, in valid UTF-8. For such a payload it returns what
// encoding/json (wire.Unmarshal) returns, and ok; for anything else
// (meta, another member, a key in another case, a null, a \u escape,
// invalid UTF-8, malformed JSON) it returns !ok and decodes nothing, and
// DecodeSend asks encoding/json, which then decides alone, with its own
// error messages. So the pair accepts and rejects exactly what
// encoding/json does; FuzzDecodeSendFast checks that every payload this
// accepts encoding/json accepts with the same values.
//
// Hand-written rather than a faster JSON library: goccy/go-json, sonic and
// segmentio/encoding each differ from encoding/json at the edges (invalid
// UTF-8, case folding of keys, duplicate keys, errors), and this type is
// flat strings.
//
// The strings share one copy of the payload (a single allocation); a value
// with an escape gets its own.
func decodeSendFast(payload []byte) (req wire.Send, ok bool) {
	d := sendDecoder{in: payload}
	d.skipSpace()
	if !d.take('{') {
		return wire.Send{}, false
	}
	d.skipSpace()
	if d.take('}') {
		return req, d.end()
	}
	for {
		key, ok := d.key()
		if !ok {
			return wire.Send{}, false
		}
		d.skipSpace()
		if !d.take(':') {
			return wire.Send{}, false
		}
		d.skipSpace()
		val, ok := d.str()
		if !ok {
			return wire.Send{}, false
		}
		switch key {
		case fieldCMID:
			req.CMID = val
		case fieldTo:
			req.To = val
		case fieldGroup:
			req.Group = val
		case fieldType:
			req.Type = val
		case fieldBody:
			req.Body = val
		case fieldMedia:
			req.Media = val
		}
		d.skipSpace()
		if d.take('}') {
			return req, d.end()
		}
		if !d.take(',') {
			return wire.Send{}, false
		}
		d.skipSpace()
	}
}

// sendDecoder reads in from pos; whole is in as one string, made on the
// first string value without escapes, for the values to share.
type sendDecoder struct {
	in    []byte
	pos   int
	whole string
}

// skipSpace skips JSON's whitespace (RFC 8259: space, tab, LF, CR).
func (d *sendDecoder) skipSpace() {
	for d.pos < len(d.in) {
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *sendDecoder) take(c byte) bool {
	if d.pos < len(d.in) && d.in[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (d *sendDecoder) end() bool {
	d.skipSpace()
	return d.pos == len(d.in)
}

// The members decodeSendFast knows, as key returns them.
const (
	fieldCMID = iota
	fieldTo
	fieldGroup
	fieldType
	fieldBody
	fieldMedia
)

// key reads a member name spelled exactly as one of wire.Send's (no
// escapes) and returns which; !ok for any other.
func (d *sendDecoder) key() (int, bool) {
	if !d.take('"') {
		return 0, false
	}
	start := d.pos
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			k := d.in[start:d.pos]
			d.pos++
			switch string(k) { // no allocation: compared in place
			case "cmid":
				return fieldCMID, true
			case "to":
				return fieldTo, true
			case "group":
				return fieldGroup, true
			case "type":
				return fieldType, true
			case "body":
				return fieldBody, true
			case "media":
				return fieldMedia, true
			}
			return 0, false
		case c < 0x20 || c == '\\' || c >= 0x80:
			return 0, false
		}
		d.pos++
	}
	return 0, false
}

// str reads a string value. It refuses (!ok) a \u escape, a control
// character, an unknown escape and invalid UTF-8: encoding/json decides
// those.
func (d *sendDecoder) str() (string, bool) {
	if !d.take('"') {
		return "", false
	}
	start := d.pos
	var buf []byte // the unescaped value, once an escape is met
	high := false  // a byte >= 0x80 was seen
	for d.pos < len(d.in) {
		c := d.in[d.pos]
		switch {
		case c == '"':
			raw := d.in[start:d.pos]
			d.pos++
			if high && !utf8.Valid(raw) {
				return "", false
			}
			if buf != nil {
				return string(buf), true
			}
			if d.whole == "" {
				d.whole = string(d.in)
			}
			return d.whole[start : d.pos-1], true
		case c < 0x20:
			return "", false
		case c >= 0x80:
			high = true
		case c == '\\':
			if d.pos+1 >= len(d.in) {
				return "", false
			}
			var r byte
			switch d.in[d.pos+1] {
			case '"', '\\', '/':
				r = d.in[d.pos+1]
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			default: // \u and anything unknown
				return "", false
			}
			if buf == nil {
				buf = append(make([]byte, 0, d.pos-start+16), d.in[start:d.pos]...)
			}
			buf = append(buf, r)
			d.pos += 2
			continue
		}
		if buf != nil {
			buf = append(buf, c)
		}
		d.pos++
	}
	return "", false
}
