package pebble

import (
	"testing"

	"github.com/imqtt/imqtt/store"
)

// TestRowCodecCorrupt: every truncation of a binary ack or conversation
// value, and a key without its separator, is an error, never a panic or a
// row with made-up fields.
func TestRowCodecCorrupt(t *testing.T) {
	a := store.Ack{From: "alice", CMID: "c\x00d", ID: 1 << 60, Ver: 1 << 33, TS: -5, Group: "g", Seq: 9}
	akey := ackKey(nil, a.From, a.CMID)
	aval := appendAck(nil, &a)
	if got, err := decodeAck(akey, aval); err != nil || got != a {
		t.Fatalf("ack round trip: %+v, %v", got, err)
	}
	c := store.Conversation{User: "bob", Peer: "alice", Last: 1 << 62, LastTS: -1, Ver: 1 << 40, Unread: 3, ReadUpto: 7}
	ckey := convKey(nil, c.User, c.Peer)
	cval := appendConv(nil, &c)
	if got, err := decodeConv(ckey, cval); err != nil || got != c {
		t.Fatalf("conversation round trip: %+v, %v", got, err)
	}
	// An ack's group is the value's tail, so only cuts into its numbers
	// (the first 1+9+5+1 bytes) must fail.
	for n := range len(aval) - len(a.Group) {
		if got, err := decodeAck(akey, aval[:n]); err == nil {
			t.Errorf("ack value cut to %d bytes decoded: %+v", n, got)
		}
	}
	for n := range len(cval) {
		if got, err := decodeConv(ckey, cval[:n]); err == nil {
			t.Errorf("conversation value cut to %d bytes decoded: %+v", n, got)
		}
	}
	if _, err := decodeConv(ckey, append(cval, 0)); err == nil {
		t.Error("conversation value with a trailing byte decoded")
	}
	// PeerRead extends the value of before, which still decodes (as the
	// row without it); any other cut fails.
	pc := c
	pc.PeerRead = 1 << 50
	pval := appendConv(nil, &pc)
	if got, err := decodeConv(ckey, pval); err != nil || got != pc || string(pval[:len(cval)]) != string(cval) {
		t.Fatalf("conversation with peer_read: %+v, %v; value %x extends %x?", got, err, pval, cval)
	}
	for n := len(cval) + 1; n < len(pval); n++ {
		if got, err := decodeConv(ckey, pval[:n]); err == nil {
			t.Errorf("conversation value with peer_read cut to %d bytes decoded: %+v", n, got)
		}
	}
	if _, err := decodeAck([]byte("d/nosep"), aval); err == nil {
		t.Error("ack key without a separator decoded")
	}
	if _, err := decodeConv(ckey, []byte{0x7f, 1, 2, 3, 4, 5}); err == nil {
		t.Error("conversation value of an unknown form decoded")
	}
}
