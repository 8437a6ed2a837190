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
// The lifecycle's fields (store/change.go) came after the mentions the
// same way: a message with none of them is the bytes it was before them.
// One with any writes the mentions' count even when it is 0, then
//
//	uvarint flags (msgReplyTo|msgRecalled|msgEdited|msgReacted|msgChange, not 0)
//	[varint reply_to] [varint recalled, str recalled_by] [varint edited]
//	[change: str kind, varint target, str emoji, add(1),
//	         uvarint #ids, varint id*, str peer, uvarint count]
//	         [admin: str JSON of the change's store.GroupChange]]
//	[uvarint ttl]
//
// (msgTTL, burn after reading, came last, after the change.)
// each present when its flag is set (msgReacted is a flag alone). A count
// of 0 mentions with nothing after it is corrupt, as it was.
//
// str is uvarint length + bytes; bytes is uvarint (length+1) + bytes, 0
// for nil, so that nil and empty inline data stay apart as they did in
// JSON. An empty meta is written as none, as JSON's omitempty did.
const msgBinary = 0x01

// Flags of the lifecycle's fields; a value with a flag unknown here is
// corrupt (a later release's).
const (
	msgReplyTo = 1 << iota
	msgRecalled
	msgEdited
	msgReacted
	msgChange
	msgTTL
	msgAdmin // a group administration record's Change.Admin (with msgChange)
	msgFlags = msgReplyTo | msgRecalled | msgEdited | msgReacted | msgChange | msgTTL | msgAdmin
)

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
	flags := lifeFlags(m)
	if len(m.Mentions) > 0 || flags != 0 {
		buf = binary.AppendUvarint(buf, uint64(len(m.Mentions)))
		for _, u := range m.Mentions {
			buf = appendStr(buf, u)
		}
	}
	if flags != 0 {
		buf = appendLife(buf, m, flags)
	}
	return buf, nil
}

// lifeFlags are the flags of the lifecycle's fields m has.
func lifeFlags(m *store.Message) uint64 {
	var f uint64
	if m.ReplyTo != 0 {
		f |= msgReplyTo
	}
	if m.Recalled != 0 || m.RecalledBy != "" {
		f |= msgRecalled
	}
	if m.Edited != 0 {
		f |= msgEdited
	}
	if m.Reacted {
		f |= msgReacted
	}
	if m.Change != nil {
		f |= msgChange
		if m.Change.Admin != nil {
			f |= msgAdmin
		}
	}
	if m.TTL != 0 {
		f |= msgTTL
	}
	return f
}

func appendLife(buf []byte, m *store.Message, flags uint64) []byte {
	buf = binary.AppendUvarint(buf, flags)
	if flags&msgReplyTo != 0 {
		buf = binary.AppendVarint(buf, m.ReplyTo)
	}
	if flags&msgRecalled != 0 {
		buf = binary.AppendVarint(buf, m.Recalled)
		buf = appendStr(buf, m.RecalledBy)
	}
	if flags&msgEdited != 0 {
		buf = binary.AppendVarint(buf, m.Edited)
	}
	if c := m.Change; c != nil {
		buf = appendStr(buf, c.Kind)
		buf = binary.AppendVarint(buf, c.Target)
		buf = appendStr(buf, c.Emoji)
		buf = append(buf, boolByte(c.Add))
		buf = binary.AppendUvarint(buf, uint64(len(c.IDs)))
		for _, id := range c.IDs {
			buf = binary.AppendVarint(buf, id)
		}
		buf = appendStr(buf, c.Peer)
		buf = binary.AppendUvarint(buf, c.Count)
		if c.Admin != nil {
			admin, _ := json.Marshal(c.Admin) // strings, ints and bools: cannot fail
			buf = appendStr(buf, string(admin))
		}
	}
	if flags&msgTTL != 0 {
		buf = binary.AppendUvarint(buf, uint64(m.TTL))
	}
	return buf
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
		// corrupt, and nothing is made for it. A count of 0 says the
		// lifecycle's fields follow.
		n := d.uvarint()
		if n > uint64(len(d.s)-d.off) || n == 0 && d.off == len(d.s) {
			return errCorrupt
		}
		if n > 0 {
			m.Mentions = make([]string, n)
			for i := range m.Mentions {
				m.Mentions[i] = d.str()
			}
		}
		if d.off < len(d.s) && !d.bad {
			if err := d.life(m); err != nil {
				return err
			}
		}
	}
	if d.bad || d.off != len(d.s) {
		return errCorrupt
	}
	return nil
}

// life reads the lifecycle's fields.
func (d *msgDecoder) life(m *store.Message) error {
	flags := d.uvarint()
	if flags == 0 || flags&^msgFlags != 0 || flags&msgAdmin != 0 && flags&msgChange == 0 {
		return errCorrupt
	}
	if flags&msgReplyTo != 0 {
		m.ReplyTo = d.varint()
	}
	if flags&msgRecalled != 0 {
		m.Recalled = d.varint()
		m.RecalledBy = d.str()
	}
	if flags&msgEdited != 0 {
		m.Edited = d.varint()
	}
	m.Reacted = flags&msgReacted != 0
	if flags&msgChange != 0 {
		c := &store.Change{Kind: d.str(), Target: d.varint(), Emoji: d.str(), Add: d.byte() == 1}
		// Each ID takes at least a byte.
		n := d.uvarint()
		if n > uint64(len(d.s)-d.off) {
			return errCorrupt
		}
		if n > 0 {
			c.IDs = make([]int64, n)
			for i := range c.IDs {
				c.IDs[i] = d.varint()
			}
		}
		c.Peer = d.str()
		c.Count = d.uvarint()
		if flags&msgAdmin != 0 {
			c.Admin = new(store.GroupChange)
			if err := json.Unmarshal([]byte(d.str()), c.Admin); err != nil || d.bad {
				return errCorrupt
			}
		}
		m.Change = c
	}
	if flags&msgTTL != 0 {
		ttl := d.uvarint()
		if ttl > 1<<31-1 {
			return errCorrupt
		}
		m.TTL = int(ttl)
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
