package pebble

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/imqtt/imqtt/store"
)

// Key layout. User IDs never contain NUL, so NUL separates the parts of a
// key; numbers are 8-byte big-endian so that byte order is numeric order.
//
//	u/{user}                        User JSON
//	t/{hash}                        Token JSON
//	m/{id}                          Message (binary, codec.go; JSON in older stores)
//	v/{user}\x00{ver}               inbox entry: msgid(8) flags(1: 1 out, 2 change) peer
//	h/{user}\x00{peer}\x00{msgid}   history entry: ver(8) out(1)
//	c/{user}\x00{peer}              Conversation (binary, rows.go; JSON in format 1)
//	d/{from}\x00{cmid}              Ack (binary, rows.go; JSON in format 1)
//	r/{key}                         next unreserved version (8)
//	g/{media}\x00{principal}        media grant: the newest granting msgid (8; empty before it)
//	gr/{group}                      Group JSON
//	gm/{group}\x00{user}             Member JSON
//	ug/{user}\x00{group}             a user's membership (empty value)
//	gh/{group}                      group head: seq(8) msgid(8) ts(8) [changes mention_all msg_seq]
//	gq/{group}\x00{seq}              group message: msgid(8)
//	gc/{group}\x00{seq}              group change record: its Change.Count (8)
//	s/{user}\x00{device}             persistent MQTT session (binary, sessions.go)
//	cs/{user}\x00{conv}              conversation settings (binary, settings.go)
//	cr/{conv}\x00{user}              the same row, by conversation (ConvSettingsFor)
//	pd/{user}\x00{device}            push registration (JSON, push.go)
//	pt/{provider}\x00{token}         push token index: user\x00device
//	pj/{msgid}                       push job: created(8)
//	pi/{user}\x00{device}\x00{msgid}  push item (binary, push.go)
//	pq/{due}{user}\x00{device}\x00{msgid}   pending push item, by due (empty value)
//	px/{done}{user}\x00{device}\x00{msgid}  done push item, by when (empty value)
//	rc/{msgid}{emoji}                reactions of one emoji: count and listed users (life.go)
//	rx/{msgid}{emoji}\x00{user}      one reaction: ts (varint)
//	ru/{msgid}{user}\x00{emoji}      the same, by user (empty value)
//	hd/{user}\x00{msgid}             a group message user hid: group
//	us/{user}                       UserSettings (binary, life.go)
//	ct/{user}\x00{peer}              one side of a contact (binary, social.go)
//	bk/{user}\x00{peer}              user's block of peer: since (varint)
//	bb/{peer}\x00{user}              the same block, by the one blocked (empty value)
//	ls/{user}                       when user was last seen (varint)
//	meta/epoch                      the store's epoch
//
// The p*/ rows came after format 2 without a new format, as s/ did. No
// other prefix starts with 'p', and none of the six is a prefix of
// another, so an iteration of one never meets the others' rows. Times in
// pq/ and px/ keys are 8 bytes big-endian with the sign bit flipped, so
// that byte order is numeric order for negative times too.
//
// s/ came after format 2 without a new format: no older binary reads it
// (it only ever looks up its own prefixes), so its rows mean nothing to
// a store an older release opens, and a store an older release wrote
// simply has no sessions. A change of its value's meaning needs one.
// cs/ and cr/ (conversation settings) came the same way. A prefix is a whole key part
// up to its '/': a scan of c/ (LowerBound "c/", UpperBound "c0") never
// meets cs/ or cr/, whose second byte is above '0'.
// wh/ (the webhook outbox, webhook.go) came the same way.
//
// The lifecycle's rows (gc/, rc/, rx/, ru/, hd/, us/) came the same way,
// with the new fields at the end of existing values (a message's, a
// head's, a conversation's, an inbox entry's flag bit), which older values
// lack and decode without: a store written before has no change records,
// so none of its rows needs an upgrade. None of the six prefixes is a
// prefix of another or of an older one (gc/ is not g/: a scan of g/ stops
// at "g0"; us/ is not u/). {msgid} in rc/, rx/ and ru/ is 8 bytes, so one
// message's rows are one range; an emoji never holds a NUL, so the NUL
// after it ends it ("👍" and "👍🏽" stay apart).
const (
	pfxUser      = "u/"
	pfxToken     = "t/"
	pfxMsg       = "m/"
	pfxInbox     = "v/"
	pfxHist      = "h/"
	pfxConv      = "c/"
	pfxAck       = "d/"
	pfxReserve   = "r/"
	pfxGrant     = "g/"
	pfxGroup     = "gr/"
	pfxMember    = "gm/"
	pfxUserGrp   = "ug/"
	pfxHead      = "gh/"
	pfxGroupQ    = "gq/"
	pfxSession   = "s/"
	pfxConvSet   = "cs/"
	pfxConvRev   = "cr/"
	pfxPushDev   = "pd/"
	pfxPushTok   = "pt/"
	pfxPushJob   = "pj/"
	pfxPushItm   = "pi/"
	pfxPushDue   = "pq/"
	pfxPushDon   = "px/"
	pfxWebhook   = "wh/"
	pfxGroupC    = "gc/"
	pfxReactC    = "rc/"
	pfxReactX    = "rx/"
	pfxReactU    = "ru/"
	pfxHidden    = "hd/"
	pfxUserSet   = "us/"
	pfxContact   = "ct/"
	pfxBlock     = "bk/"
	pfxBlockedBy = "bb/"
	pfxLastSeen  = "ls/"
	keyEpoch     = "meta/epoch"
	keyFormat    = "meta/format"
	sep          = 0
)

// grantPrefix is g/{media}\x00.
func grantPrefix(buf []byte, media string) []byte {
	buf = append(buf, pfxGrant...)
	buf = append(buf, media...)
	return append(buf, sep)
}

func userKey(id string) []byte   { return append([]byte(pfxUser), id...) }
func tokenKey(h string) []byte   { return append([]byte(pfxToken), h...) }
func reserveKey(k string) []byte { return append([]byte(pfxReserve), k...) }

func msgKey(buf []byte, id int64) []byte {
	buf = append(buf, pfxMsg...)
	return binary.BigEndian.AppendUint64(buf, uint64(id))
}

// inboxPrefix is v/{user}\x00.
func inboxPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxInbox...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func inboxKey(buf []byte, user string, ver uint64) []byte {
	return binary.BigEndian.AppendUint64(inboxPrefix(buf, user), ver)
}

// histPrefix is h/{user}\x00{peer}\x00.
func histPrefix(buf []byte, user, peer string) []byte {
	buf = append(buf, pfxHist...)
	buf = append(buf, user...)
	buf = append(buf, sep)
	buf = append(buf, peer...)
	return append(buf, sep)
}

func histKey(buf []byte, user, peer string, id int64) []byte {
	return binary.BigEndian.AppendUint64(histPrefix(buf, user, peer), uint64(id))
}

// convPrefix is c/{user}\x00.
func convPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxConv...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func convKey(buf []byte, user, peer string) []byte {
	return append(convPrefix(buf, user), peer...)
}

func ackKey(buf []byte, from, cmid string) []byte {
	buf = append(buf, pfxAck...)
	buf = append(buf, from...)
	buf = append(buf, sep)
	return append(buf, cmid...)
}

// prefixEnd returns the smallest key above every key that starts with p,
// for a p that ends in the NUL separator.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	end[len(end)-1]++
	return end
}

// suffixUint64 reads the trailing 8-byte big-endian number of a key.
func suffixUint64(key []byte) uint64 {
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

// Flags of an inbox entry; before change records the byte was out alone
// (0 or 1), which reads the same.
const (
	entryOut    = 1
	entryChange = 2
)

// encodeEntry is the value of an inbox key: msgid(8) flags(1) peer.
func encodeEntry(buf []byte, e *store.Entry) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.MsgID))
	flags := boolByte(e.Out)
	if e.Change {
		flags |= entryChange
	}
	buf = append(buf, flags)
	return append(buf, e.Peer...)
}

func decodeEntry(user string, key, val []byte) (store.Entry, error) {
	if len(val) < 9 || len(key) < 8 || val[8]&^(entryOut|entryChange) != 0 {
		return store.Entry{}, fmt.Errorf("corrupt inbox entry %q", key)
	}
	return store.Entry{
		User:   user,
		Ver:    suffixUint64(key),
		Peer:   string(val[9:]),
		Out:    val[8]&entryOut != 0,
		MsgID:  int64(binary.BigEndian.Uint64(val)),
		Change: val[8]&entryChange != 0,
	}, nil
}

// encodeHist is the value of a history key: ver(8) out(1).
func encodeHist(buf []byte, ver uint64, out bool) []byte {
	buf = binary.BigEndian.AppendUint64(buf, ver)
	return append(buf, boolByte(out))
}

func decodeHist(val []byte) (ver uint64, out bool, err error) {
	if len(val) != 9 {
		return 0, false, fmt.Errorf("corrupt history value of %d bytes", len(val))
	}
	return binary.BigEndian.Uint64(val), val[8] == 1, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// checkID rejects an ID that would break the key layout.
func checkID(what, id string) error {
	if strings.IndexByte(id, sep) >= 0 {
		return fmt.Errorf("%s %q: %w", what, id, ErrInvalid)
	}
	return nil
}
