package pebble

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/imqtt/imqtt/store"
)

// Message values (m/{id}) are written in a compact binary form: decoding
// JSON was most of the CPU of a sync catch-up (Range reads one message per
// event). A value that starts with '{' is the JSON of stores written before
// the binary form; both are read, only the binary form is written.
//
//	msgBinary(1)
//	uvarint id, str from, str to, str group, uvarint seq,
//	str type, str body, str media, bytes meta, str cmid, varint ts,
//	inline: 0 (none) | 1, str type, bytes data
//	[uvarint #mentions (1 or more), str mention*]
//
// The mentions came later, at the end and only when there are any, so a
// value written before them (or of a message without them) is the same
// bytes and decodes as it did. A release from before them refuses a value
// that has them (trailing bytes).
//
// str is uvarint length + bytes; bytes is uvarint (length+1) + bytes, 0
// for nil, so that nil and empty inline data stay apart as they did in
// JSON. An empty meta is written as none, as JSON's omitempty did.
const msgBinary = 0x01

var errCorrupt = errors.New("corrupt message value")

// appendMessage appends m's binary value to buf. Meta must be valid JSON
// (it is compacted, as json.Marshal of a RawMessage did).
func appendMessage(buf []byte, m *store.Message) ([]byte, error) {
	buf = append(buf, msgBinary)
	buf = binary.AppendUvarint(buf, uint64(m.ID))
	buf = appendStr(buf, m.From)
	buf = appendStr(buf, m.To)
	buf = appendStr(buf, m.Group)
	buf = binary.AppendUvarint(buf, m.Seq)
	buf = appendStr(buf, m.Type)
	buf = appendStr(buf, m.Body)
	buf = appendStr(buf, m.Media)
	if len(m.Meta) == 0 { // omitted, as in JSON
		buf = append(buf, 0)
	} else {
		var c bytes.Buffer
		if err := json.Compact(&c, m.Meta); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		buf = appendBytes(buf, c.Bytes(), true)
	}
	buf = appendStr(buf, m.CMID)
	buf = binary.AppendVarint(buf, m.TS)
	if m.Inline == nil {
		buf = append(buf, 0)
	} else {
		buf = append(buf, 1)
		buf = appendStr(buf, m.Inline.Type)
		buf = appendBytes(buf, m.Inline.Data, m.Inline.Data != nil)
	}
	if len(m.Mentions) > 0 {
		buf = binary.AppendUvarint(buf, uint64(len(m.Mentions)))
		for _, u := range m.Mentions {
			buf = appendStr(buf, u)
		}
	}
	return buf, nil
}

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendBytes(buf, b []byte, present bool) []byte {
	if !present {
		return append(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(b))+1)
	return append(buf, b...)
}

// decodeMessage reads a message value in either form.
func decodeMessage(val []byte, m *store.Message) error {
	if len(val) > 0 && val[0] == '{' {
		return json.Unmarshal(val, m)
	}
	if len(val) == 0 || val[0] != msgBinary {
		return errCorrupt
	}
	// One string holds every text field: one allocation per message.
	d := msgDecoder{s: string(val), off: 1}
	m.ID = int64(d.uvarint())
	m.From = d.str()
	m.To = d.str()
	m.Group = d.str()
	m.Seq = d.uvarint()
	m.Type = d.str()
	m.Body = d.str()
	m.Media = d.str()
	if meta, ok := d.bytes(); ok {
		m.Meta = json.RawMessage(meta)
	}
	m.CMID = d.str()
	m.TS = d.varint()
	if d.byte() == 1 {
		in := &store.Inline{Type: d.str()}
		in.Data, _ = d.bytes()
		m.Inline = in
	}
	if d.off < len(d.s) && !d.bad {
		// Each mention takes at least a byte: a count past what is left is
		// corrupt, and nothing is made for it.
		n := d.uvarint()
		if n == 0 || n > uint64(len(d.s)-d.off) {
			return errCorrupt
		}
		m.Mentions = make([]string, n)
		for i := range m.Mentions {
			m.Mentions[i] = d.str()
		}
	}
	if d.bad || d.off != len(d.s) {
		return errCorrupt
	}
	return nil
}

// msgDecoder reads the binary form; a read past the end sets bad and
// returns zero values.
type msgDecoder struct {
	s   string
	off int
	bad bool
}

func (d *msgDecoder) uvarint() uint64 {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.off >= len(d.s) {
			d.bad = true
			return 0
		}
		b := d.s[d.off]
		d.off++
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x
		}
	}
	d.bad = true
	return 0
}

func (d *msgDecoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *msgDecoder) byte() byte {
	if d.off >= len(d.s) {
		d.bad = true
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

func (d *msgDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.bad = true
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// bytes reads a nil-or-bytes field into a new slice.
func (d *msgDecoder) bytes() ([]byte, bool) {
	n := d.uvarint()
	if n == 0 {
		return nil, false
	}
	n--
	if n > uint64(len(d.s)-d.off) {
		d.bad = true
		return nil, false
	}
	b := []byte(d.s[d.off : d.off+int(n)])
	d.off += int(n)
	return b, true
}
