package pebble

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// Ack (d/) and conversation (c/) values are binary from format 2 on: the
// JSON of format 1 was about 100 and 120 bytes, written three times for
// every 1:1 message (one ack, two conversation rows), through the WAL, the
// memtable and every compaction, with a json.Marshal each and a
// json.Unmarshal of each conversation row read back. The names in the key
// (from and cmid; user and peer) are no longer repeated in the value. A
// value that starts with '{' is format 1's JSON: both are read, only the
// binary form is written, and Open's step to format 2 rewrites nothing.
//
//	ackBinary(1) uvarint id, uvarint ver, varint ts, uvarint seq, group (the rest)
//	convBinary(1) varint last, varint last_ts, uvarint ver, varint unread, varint read_upto
//	              [varint peer_read]
//
// peer_read came later, written only when set: a row without it is the
// bytes it was before.
const (
	ackBinary  = 0x01
	convBinary = 0x01
)

var errCorruptRow = errors.New("corrupt value")

// appendAck appends a's value (From and CMID are in its key).
func appendAck(buf []byte, a *store.Ack) []byte {
	buf = append(buf, ackBinary)
	buf = binary.AppendUvarint(buf, uint64(a.ID))
	buf = binary.AppendUvarint(buf, a.Ver)
	buf = binary.AppendVarint(buf, a.TS)
	buf = binary.AppendUvarint(buf, a.Seq)
	return append(buf, a.Group...)
}

// decodeAck reads the ack row of key (d/{from}\x00{cmid}) in either form.
func decodeAck(key, val []byte) (store.Ack, error) {
	var a store.Ack
	if len(val) > 0 && val[0] == '{' {
		err := json.Unmarshal(val, &a)
		return a, err
	}
	from, cmid, err := splitPair(key, pfxAck)
	if err != nil || len(val) == 0 || val[0] != ackBinary {
		return a, errCorruptRow
	}
	a.From, a.CMID = string(from), string(cmid)
	r := rowReader{val: val[1:]}
	a.ID = int64(r.uvarint())
	a.Ver = r.uvarint()
	a.TS = r.varint()
	a.Seq = r.uvarint()
	if r.bad {
		return store.Ack{}, errCorruptRow
	}
	a.Group = string(r.val)
	return a, nil
}

// appendConv appends c's value (User and Peer are in its key).
func appendConv(buf []byte, c *store.Conversation) []byte {
	buf = append(buf, convBinary)
	buf = binary.AppendVarint(buf, c.Last)
	buf = binary.AppendVarint(buf, c.LastTS)
	buf = binary.AppendUvarint(buf, c.Ver)
	buf = binary.AppendVarint(buf, c.Unread)
	buf = binary.AppendVarint(buf, c.ReadUpto)
	if c.PeerRead != 0 {
		buf = binary.AppendVarint(buf, c.PeerRead)
	}
	return buf
}

// decodeConv reads the conversation row of key (c/{user}\x00{peer}) in
// either form.
func decodeConv(key, val []byte) (store.Conversation, error) {
	var c store.Conversation
	if len(val) > 0 && val[0] == '{' {
		err := json.Unmarshal(val, &c)
		return c, err
	}
	user, peer, err := splitPair(key, pfxConv)
	if err != nil || len(val) == 0 || val[0] != convBinary {
		return c, errCorruptRow
	}
	c.User, c.Peer = string(user), string(peer)
	r := rowReader{val: val[1:]}
	c.Last = r.varint()
	c.LastTS = r.varint()
	c.Ver = r.uvarint()
	c.Unread = r.varint()
	c.ReadUpto = r.varint()
	if len(r.val) != 0 && !r.bad {
		// Written only when set: a 0 there is no value of ours.
		if c.PeerRead = r.varint(); c.PeerRead == 0 {
			r.bad = true
		}
	}
	if r.bad || len(r.val) != 0 {
		return store.Conversation{}, errCorruptRow
	}
	return c, nil
}

// getConv reads the conversation row of key, translating Pebble's
// not-found into store.ErrNotFound.
func (s *Store) getConv(key []byte) (store.Conversation, error) {
	val, closer, err := s.db.Get(key)
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return store.Conversation{}, store.ErrNotFound
		}
		return store.Conversation{}, err
	}
	defer closer.Close()
	c, err := decodeConv(key, val)
	if err != nil {
		return store.Conversation{}, fmt.Errorf("decode %s value: %w", key[:2], err)
	}
	return c, nil
}

// rowReader reads varints from val; bad is set by the first that fails.
type rowReader struct {
	val []byte
	bad bool
}

func (r *rowReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.val)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.val = r.val[n:]
	return v
}

func (r *rowReader) varint() int64 {
	v, n := binary.Varint(r.val)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.val = r.val[n:]
	return v
}
