package pebble_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
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

// BenchmarkSaveSessions: one SaveSessions of a batch of sessions (the
// acked positions a node writes in one go), each in groups=N groups,
// every position moving up; and a LoadSession of one such session.
func BenchmarkSaveSessions(b *testing.B) {
	for _, c := range []struct{ batch, groups int }{{1, 0}, {100, 0}, {100, 10}, {1, 1000}} {
		b.Run(fmt.Sprintf("batch=%d/groups=%d", c.batch, c.groups), func(b *testing.B) {
			st := openBench(b)
			ss := make([]store.Session, c.batch)
			for i := range ss {
				ss[i] = store.Session{User: "user" + strconv.Itoa(i), Device: "iot", Epoch: st.Epoch(), Expiry: 3600,
					Subs: []store.SessionSub{{Filter: "im/u/user" + strconv.Itoa(i) + "/inbox", QoS: 1}}, Holder: "node/abc",
					Groups: map[string]uint64{}}
				for g := range c.groups {
					ss[i].Groups["group-"+strconv.Itoa(g)] = 0
				}
			}
			b.ReportAllocs()
			for n := 0; b.Loop(); n++ {
				for i := range ss {
					ss[i].Inbox = uint64(n)
					for g := range ss[i].Groups {
						ss[i].Groups[g] = uint64(n)
					}
				}
				if err := st.SaveSessions(b.Context(), ss); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "sessions/s")
		})
	}
	b.Run("load/groups=1000", func(b *testing.B) {
		st := openBench(b)
		s := store.Session{User: "alice", Device: "iot", Groups: map[string]uint64{}}
		for g := range 1000 {
			s.Groups["group-"+strconv.Itoa(g)] = uint64(g)
		}
		if err := st.SaveSessions(b.Context(), []store.Session{s}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.LoadSession(b.Context(), "alice", "iot"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
