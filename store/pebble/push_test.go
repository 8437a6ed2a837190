package pebble_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// TestPushRestart: the outbox is durable and a restart releases the
// claims (they are in memory): after a reopen, the jobs, the pending and
// done items and the registrations are there, and a job and a device
// held before are claimable at once.
func TestPushRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, MinFreeDisk: -1}
	s, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	dev := store.PushDevice{User: "bob", Device: "phone", Provider: "apns", Token: "t1", Created: 1}
	if err := s.PutPushDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	b := &store.Batch{Messages: []store.Message{{ID: 7, From: "alice", To: "bob", Type: "text"}},
		PushJobs: []store.PushJob{{MsgID: 7, Created: 5}}}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	items := []store.PushItem{{User: "bob", Device: "phone", MsgID: 7, Created: 5, Due: 6}, {User: "bob", Device: "phone", MsgID: 8, Due: 6}}
	if err := s.AddPushItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := s.DonePushItems(ctx, "bob", "phone", []int64{8}, 9); err != nil {
		t.Fatal(err)
	}
	if js, err := s.ClaimPushJobs(ctx, "n1", 10, 1e12, 10); err != nil || len(js) != 1 {
		t.Fatalf("claim jobs: %v %v", js, err)
	}
	if ok, err := s.ClaimPushDevice(ctx, "bob", "phone", "n1", 10, 1e12); err != nil || !ok {
		t.Fatalf("claim device: %v %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.GetPushDevice(ctx, "bob", "phone"); err != nil || got != dev {
		t.Errorf("registration after restart: %+v %v", got, err)
	}
	if js, err := s.ClaimPushJobs(ctx, "n2", 10, 1e12, 10); err != nil || !reflect.DeepEqual(js, b.PushJobs) {
		t.Errorf("jobs claimable after restart: %+v %v", js, err)
	}
	if ok, err := s.ClaimPushDevice(ctx, "bob", "phone", "n2", 10, 1e12); err != nil || !ok {
		t.Errorf("device claimable after restart: %v %v", ok, err)
	}
	if got, err := s.PendingPushItems(ctx, "bob", "phone"); err != nil || !reflect.DeepEqual(got, items[:1]) {
		t.Errorf("pending after restart: %+v %v", got, err)
	}
	if err := s.AddPushItems(ctx, items[1:]); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PendingPushItems(ctx, "bob", "phone"); len(got) != 1 {
		t.Errorf("the done item is pending again after restart: %+v", got)
	}
}

// TestPushCheckpointExport: a checkpoint (a backup) holds the push rows,
// and Export reads them back as migrate copies them.
func TestPushCheckpointExport(t *testing.T) {
	ctx := t.Context()
	s, err := pebble.Open(t.TempDir(), pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	devs := []store.PushDevice{{User: "bob", Device: "phone", Provider: "fcm", Token: "t1", Created: 1, LastPush: 3},
		{User: "bobby", Device: "a", Provider: "apns", Token: "t2", Topic: "x", Sandbox: true, Login: "h"}}
	for _, d := range devs {
		if err := s.PutPushDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	jobs := []store.PushJob{{MsgID: 3, Created: 30}, {MsgID: 4, Created: 40}}
	if err := s.Commit(ctx, &store.Batch{PushJobs: jobs}); err != nil {
		t.Fatal(err)
	}
	items := []store.PushItem{{User: "bob", Device: "phone", MsgID: 3, Created: 30, Due: -5, Attempts: 3, Mention: true},
		{User: "bob", Device: "phone", MsgID: 4, Created: 40, Due: 41}}
	if err := s.AddPushItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := s.DonePushItems(ctx, "bob", "phone", []int64{4}, 50); err != nil {
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
	gotDevs := exportAll(t, c, pebble.PushDevices)
	if !reflect.DeepEqual(gotDevs, devs) {
		t.Errorf("push devices: %+v, want %+v", gotDevs, devs)
	}
	if got := exportAll(t, c, pebble.PushJobs); !reflect.DeepEqual(got, jobs) {
		t.Errorf("push jobs: %+v, want %+v", got, jobs)
	}
	want := []pebble.PushItemRow{{PushItem: items[0]}, {PushItem: items[1], Done: true, DoneAt: 50}}
	if got := exportAll(t, c, pebble.PushItems); !reflect.DeepEqual(got, want) {
		t.Errorf("push items: %+v, want %+v", got, want)
	}
}

func exportAll[T any](t *testing.T, s *pebble.Store, k pebble.Kind[T]) []T {
	t.Helper()
	var rows []T
	if err := pebble.Export(t.Context(), s, k, nil, func(_ []byte, row T) error {
		rows = append(rows, row)
		return nil
	}); err != nil {
		t.Fatalf("export %s: %v", k.Name, err)
	}
	return rows
}

// TestHasPushDevices: the in-memory count of registrations follows every
// write of them, and is loaded again when the store opens.
func TestHasPushDevices(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	opts := pebble.Options{CacheSize: 8 << 20, MemTableSize: 4 << 20, MinFreeDisk: -1}
	s, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	has := func(user string, want bool) {
		t.Helper()
		if got := s.HasPushDevices(user); got != want {
			t.Errorf("HasPushDevices(%s) = %v, want %v", user, got, want)
		}
	}
	has("bob", false)
	for _, d := range []store.PushDevice{
		{User: "bob", Device: "phone", Provider: "apns", Token: "t1", Created: 1},
		{User: "bob", Device: "tablet", Provider: "apns", Token: "t2", Created: 1},
		{User: "carol", Device: "phone", Provider: "fcm", Token: "t3", Created: 1},
	} {
		if err := s.PutPushDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	has("bob", true)
	has("carol", true)
	if err := s.DeletePushDevice(ctx, "bob", "phone", ""); err != nil {
		t.Fatal(err)
	}
	has("bob", true) // the tablet
	// The tablet's token moves to a new device of bob's: still one.
	if err := s.PutPushDevice(ctx, store.PushDevice{User: "bob", Device: "new", Provider: "apns", Token: "t2", Created: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePushDevice(ctx, "bob", "new", ""); err != nil {
		t.Fatal(err)
	}
	has("bob", false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = pebble.Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	has("carol", true)
	has("bob", false)
	if err := s.DeleteUserPushDevices(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	has("carol", false)
}
