package pebble

import (
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

func testSession() store.Session {
	return store.Session{User: "alice", Device: "iot", Epoch: "E", Inbox: 1 << 50,
		Groups: map[string]uint64{"g1": 7, "": 0, "x.y": math.MaxUint64},
		Subs:   []store.SessionSub{{Filter: "b", QoS: 1}, {Filter: "a/#", QoS: 0}},
		Expiry: math.MaxUint32, Holder: "n/1", Disconnected: -3}
}

// TestSessionCodecCorrupt: a session value round-trips; every truncation,
// a trailing byte, an unknown form, counts larger than the value could
// hold and a key without its separator are errors, never a panic nor an
// allocation sized by the corrupt count.
func TestSessionCodecCorrupt(t *testing.T) {
	s := testSession()
	key := sessionKey(nil, s.User, s.Device)
	val := appendSession(nil, &s)
	if got, err := decodeSession(key, val); err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for n := range len(val) {
		if got, err := decodeSession(key, val[:n]); err == nil {
			t.Errorf("value cut to %d bytes decoded: %+v", n, got)
		}
	}
	if _, err := decodeSession(key, append(val, 0)); err == nil {
		t.Error("value with a trailing byte decoded")
	}
	if _, err := decodeSession(key, []byte{0x7f}); err == nil {
		t.Error("value of an unknown form decoded")
	}
	if _, err := decodeSession([]byte("s/nosep"), val); err == nil {
		t.Error("key without a separator decoded")
	}
	// A count of 2^62 subscriptions, then of groups, in a short value.
	huge := binary.AppendUvarint(nil, 1<<62)
	empty := store.Session{}
	head := appendSession(nil, &empty)
	head = head[:len(head)-2] // without its two counts of 0
	for _, bad := range [][]byte{
		append(append(append([]byte{}, head...), huge...), 0),
		append(append(append([]byte{}, head...), 0), huge...),
		append(append([]byte{}, head[:1]...), huge...), // an epoch of 2^62 bytes
	} {
		if got, err := decodeSession(key, bad); err == nil {
			t.Errorf("value with a huge count decoded: %+v", got)
		}
	}
	// An expiry past 32 bits.
	bad := []byte{sessBinary, 0, 0}
	bad = binary.AppendUvarint(bad, 1<<32)
	bad = append(bad, 0, 0, 0, 0)
	if got, err := decodeSession(key, bad); err == nil {
		t.Errorf("value with a 33-bit expiry decoded: %+v", got)
	}
}

// FuzzDecodeSession: no value makes the decoder panic, and what it
// accepts encodes back to a value it decodes the same.
func FuzzDecodeSession(f *testing.F) {
	s := testSession()
	f.Add(appendSession(nil, &s))
	f.Add([]byte{sessBinary})
	f.Add([]byte{sessBinary, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, val []byte) {
		key := sessionKey(nil, "u", "d")
		got, err := decodeSession(key, val)
		if err != nil {
			return
		}
		again, err := decodeSession(key, appendSession(nil, &got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoded %+v decoded as %+v, %v", got, again, err)
		}
	})
}

// TestSessionCorruptRow: a corrupt stored session is an error of Load and
// of a Save over it, not a panic, and a delete clears it.
func TestSessionCorruptRow(t *testing.T) {
	s, err := Open(t.TempDir(), Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.set(sessionKey(nil, "alice", "iot"), []byte{sessBinary, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.LoadSession(ctx, "alice", "iot"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("load of a corrupt row: %v", err)
	}
	if err := s.SaveSessions(ctx, []store.Session{{User: "alice", Device: "iot", Inbox: 1}}); err == nil {
		t.Error("save over a corrupt row: no error")
	}
	if err := s.DeleteSession(ctx, "alice", "iot"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSessions(ctx, []store.Session{{User: "alice", Device: "iot", Inbox: 1}}); err != nil {
		t.Errorf("save after the delete: %v", err)
	}
	if err := s.SaveSessions(ctx, []store.Session{{User: "a\x00b", Device: "iot"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("save of a user with a NUL: %v", err)
	}
}
