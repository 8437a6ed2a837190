package statetest

import (
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/state"
)

func (f *fixture) online(s state.Presence, user, device, node string, since int64) state.Device {
	f.t.Helper()
	d := state.Device{User: user, Device: device, Node: node, Since: since}
	if _, err := s.Online(f.ctx, d); err != nil {
		f.t.Fatalf("online %s/%s: %v", user, device, err)
	}
	return d
}

func (f *fixture) offline(s state.Presence, user, device, node string) {
	f.t.Helper()
	if err := s.Offline(f.ctx, user, device, node); err != nil {
		f.t.Fatalf("offline %s/%s on %s: %v", user, device, node, err)
	}
}

func (f *fixture) devices(s state.Presence, user string) []state.Device {
	f.t.Helper()
	ds, err := s.Devices(f.ctx, user)
	if err != nil {
		f.t.Fatalf("devices %s: %v", user, err)
	}
	return ds
}

func (f *fixture) count(s state.Presence) int64 {
	f.t.Helper()
	n, err := s.Count(f.ctx)
	if err != nil {
		f.t.Fatalf("count: %v", err)
	}
	return n
}

func equalDevices(t *testing.T, what string, got, want []state.Device) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testPresence(t *testing.T, f *fixture) {
	s := f.open()
	if n := f.count(s); n != 0 {
		t.Fatalf("count of a new state: %d", n)
	}
	equalDevices(t, "unknown user", f.devices(s, "alice"), nil)
	c := f.online(s, "alice", "c-laptop", "n1", 3)
	a := f.online(s, "alice", "a-phone", "n1", 1)
	b := f.online(s, "alice", "b-tablet", "n2", 2)
	f.online(s, "bob", "phone", "n1", 4)
	equalDevices(t, "alice, by device ID", f.devices(s, "alice"), []state.Device{a, b, c})
	if n := f.count(s); n != 4 {
		t.Errorf("count: %d, want 4", n)
	}
	f.online(s, "alice", "a-phone", "n1", 1) // idempotent
	if n := f.count(s); n != 4 {
		t.Errorf("count after a repeated online: %d, want 4", n)
	}
	f.offline(s, "alice", "b-tablet", "n2")
	equalDevices(t, "after offline", f.devices(s, "alice"), []state.Device{a, c})
	f.offline(s, "alice", "b-tablet", "n2") // already gone
	f.offline(s, "zoe", "x", "n1")          // never there
	if n := f.count(s); n != 3 {
		t.Errorf("count after offline: %d, want 3", n)
	}
	f.offline(s, "alice", "a-phone", "n1")
	f.offline(s, "alice", "c-laptop", "n1")
	equalDevices(t, "all offline", f.devices(s, "alice"), nil)
	equalDevices(t, "bob untouched", f.devices(s, "bob"), []state.Device{{User: "bob", Device: "phone", Node: "n1", Since: 4}})
	if n := f.count(s); n != 1 {
		t.Errorf("count: %d, want 1", n)
	}
}

func testPresenceTakeover(t *testing.T, f *fixture) {
	s := f.open()
	f.online(s, "alice", "phone", "n1", 1)
	// It reconnects to another node, which learns where it was.
	moved := state.Device{User: "alice", Device: "phone", Node: "n2", Since: 2}
	if prev, err := s.Online(f.ctx, moved); err != nil || prev != "n1" {
		t.Fatalf("takeover: previous node %q (%v), want n1", prev, err)
	}
	if prev, err := s.Online(f.ctx, moved); err != nil || prev != "n2" {
		t.Fatalf("again on the same node: previous node %q (%v), want n2", prev, err)
	}
	equalDevices(t, "after takeover", f.devices(s, "alice"), []state.Device{moved})
	if n := f.count(s); n != 1 {
		t.Errorf("count after takeover: %d, want 1", n)
	}
	f.offline(s, "alice", "phone", "n1") // the old node's late disconnect
	equalDevices(t, "old node's offline", f.devices(s, "alice"), []state.Device{moved})
	if n := f.count(s); n != 1 {
		t.Errorf("count after the old node's offline: %d, want 1", n)
	}
	f.offline(s, "alice", "phone", "n2")
	equalDevices(t, "new node's offline", f.devices(s, "alice"), nil)
	if n := f.count(s); n != 0 {
		t.Errorf("count: %d, want 0", n)
	}
}

func testPresenceConcurrent(t *testing.T, f *fixture) {
	s := f.open()
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			user := "u" + strconv.Itoa(w%3)
			for i := range each {
				dev := "w" + strconv.Itoa(w) + "-d" + strconv.Itoa(i)
				if _, err := s.Online(f.ctx, state.Device{User: user, Device: dev, Node: "n1"}); err != nil {
					t.Errorf("online: %v", err)
					return
				}
				if _, err := s.Devices(f.ctx, user); err != nil {
					t.Errorf("devices: %v", err)
					return
				}
				if i%2 == 0 {
					if err := s.Offline(f.ctx, user, dev, "n1"); err != nil {
						t.Errorf("offline: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if n := f.count(s); n != workers*each/2 {
		t.Errorf("count: %d, want %d", n, workers*each/2)
	}
	total := 0
	for u := range 3 {
		total += len(f.devices(s, "u"+strconv.Itoa(u)))
	}
	if total != workers*each/2 {
		t.Errorf("devices listed: %d, want %d", total, workers*each/2)
	}
}
