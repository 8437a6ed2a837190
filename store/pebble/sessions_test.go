package pebble_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestSessionsCheckpointExport: a checkpoint (a backup) holds the
// sessions, and Export reads them back, as migrate copies them.
func TestSessionsCheckpointExport(t *testing.T) {
	ctx := t.Context()
	s, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := []store.Session{
		{User: "bob", Device: "iot", Epoch: s.Epoch(), Inbox: 5, Groups: map[string]uint64{"g": 2},
			Subs: []store.SessionSub{{Filter: "im/u/bob/inbox", QoS: 1}}, Expiry: 60, Holder: "n/1"},
		{User: "bobby", Device: "a", Inbox: 1, Disconnected: 99, Holder: "n/2"},
	}
	if err := s.SaveSessions(ctx, want); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp")
	if err := s.Checkpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	c, err := pebble.OpenReadOnly(cp, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []store.Session
	err = pebble.Export(ctx, c, pebble.Sessions, nil, func(_ []byte, s store.Session) error {
		got = append(got, s)
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("sessions of the checkpoint: %+v %v; want %+v", got, err, want)
	}
	if n, err := pebble.Count(ctx, c, pebble.Sessions); err != nil || n != 2 {
		t.Fatalf("count %d %v", n, err)
	}
}
