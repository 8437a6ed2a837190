package pebble_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imqtt/imqtt/internal/disktest"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// These tests fill a real (tmpfs) disk. They mount one, so they need root,
// as CI has: a failed mount fails the test rather than skipping it.

// freeBytes is the free space of dir's file system.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fill writes a file in dir until about leave bytes are free (or the disk
// is full), and returns its path.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for freeBytes(t, dir) > leave+int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			break // full
		}
	}
	return path
}

// send commits one message from alice to herself at version ver.
func send(s *pebble.Store, t *testing.T, ver uint64, body string) error {
	b := &store.Batch{
		Messages: []store.Message{{ID: int64(ver), From: "alice", To: "alice", Type: "text", Body: body, TS: int64(ver)}},
		Entries:  []store.Entry{{User: "alice", Ver: ver, Peer: "alice", Out: true, MsgID: int64(ver)}},
		Convs:    []store.ConvUpdate{{User: "alice", Peer: "alice", MsgID: int64(ver), TS: int64(ver), Ver: ver}},
	}
	return s.Commit(t.Context(), b)
}

// checkAll checks that versions 1..n are stored.
func checkAll(t *testing.T, s *pebble.Store, n uint64) {
	t.Helper()
	var got uint64
	for since := uint64(0); ; {
		evs, err := s.Range(t.Context(), "alice", since, pebble.MaxLimit)
		if err != nil {
			t.Fatalf("range after %d: %v", since, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.Ver != got+1 {
				t.Fatalf("version %d after %d: an acked commit is missing", ev.Ver, got)
			}
			got = ev.Ver
		}
		since = got
	}
	if got != n {
		t.Fatalf("%d versions stored, want %d", got, n)
	}
}

// Why 5 (a full disk crashes the server): under the free-space floor,
// writes are refused with store.ErrNoSpace and counted, reads go on, and
// writes come back by themselves once there is room.
func TestDiskSpaceGuard(t *testing.T) {
	disk := disktest.Mount(t, 64)
	var refused atomic.Int64
	s, err := pebble.Open(filepath.Join(disk, "db"), pebble.WithPoll(pebble.Options{MemTableSize: 1 << 20,
		MinFreeDisk: 16 << 20, OnRefused: func() { refused.Add(1) }}, 20*time.Millisecond))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	body := strings.Repeat("x", 1000)
	var n uint64
	for range 100 {
		n++
		if err := send(s, t, n, body); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
	}

	filler := fill(t, disk, 8<<20)
	wait.For(t, "writes refused", 10*time.Second, func() bool { return errors.Is(s.Writable(), store.ErrNoSpace) })
	err = send(s, t, n+1, body)
	if !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("send on a full disk: %v, want ErrNoSpace", err)
	}
	if _, err := s.ReserveVersions(t.Context(), "alice", 1); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("reserve on a full disk: %v, want ErrNoSpace", err)
	}
	if refused.Load() < 2 {
		t.Errorf("%d refusals counted, want 2", refused.Load())
	}
	checkAll(t, s, n) // reads go on
	if _, err := s.Conversations(t.Context(), "alice"); err != nil {
		t.Fatalf("conversations on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "writes back", 10*time.Second, func() bool { return s.Writable() == nil })
	n++
	if err := send(s, t, n, body); err != nil {
		t.Fatalf("send after space came back: %v", err)
	}
	checkAll(t, s, n)
}

// Why 5: with the guard off, the disk really fills and Pebble's WAL write
// fails, which it reports by Fatalf. The store must not panic: it reports
// ErrFailed, serves what is durable, and reopens itself once there is room,
// with every acked commit intact.
func TestDiskFullWALFailure(t *testing.T) {
	disk := disktest.Mount(t, 64)
	dir := filepath.Join(disk, "db")
	s, err := pebble.Open(dir, pebble.WithPoll(pebble.Options{MemTableSize: 8 << 20, MinFreeDisk: -1}, 20*time.Millisecond))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	body := strings.Repeat("x", 4000)
	var n uint64
	for range 100 {
		n++
		if err := send(s, t, n, body); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
	}
	filler := fill(t, disk, 1<<20)
	// A reservation is written without sync, counting on the next commit's:
	// the one that fails. Once reopened, no later block may overlap it.
	var reserved []uint64
	for {
		if first, err := s.ReserveVersions(t.Context(), "bob", 1000); err == nil {
			reserved = append(reserved, first)
		}
		err := send(s, t, n+1, body)
		if err == nil {
			n++
			if n > 10_000 {
				t.Fatal("the disk never filled")
			}
			continue
		}
		if !errors.Is(err, store.ErrFailed) {
			t.Fatalf("send on a full disk: %v, want ErrFailed", err)
		}
		break
	}
	if err := send(s, t, n+1, body); !errors.Is(err, store.ErrFailed) {
		t.Fatalf("send after a failed one: %v, want ErrFailed", err)
	}
	if !errors.Is(s.Writable(), store.ErrFailed) {
		t.Fatalf("writable after a failure: %v", s.Writable())
	}
	// Reopened read-only, the store serves exactly what was acked.
	wait.For(t, "reads of durable data", 10*time.Second, func() bool {
		evs, err := s.Range(t.Context(), "alice", n, 10)
		return err == nil && len(evs) == 0
	})
	checkAll(t, s, n)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "writes back", 10*time.Second, func() bool { return send(s, t, n+1, body) == nil })
	n++
	checkAll(t, s, n)
	next, err := s.ReserveVersions(t.Context(), "bob", 1)
	if err != nil {
		t.Fatalf("reserve after reopening: %v", err)
	}
	if last := reserved[len(reserved)-1]; next < last+1000 {
		t.Fatalf("reserved %d after reopening, inside the block [%d,+1000) handed out before", next, last)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	again, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatalf("open again: %v", err)
	}
	defer again.Close()
	checkAll(t, again, n)
}

// Why 5: a restart on the still-full disk spun forever in Pebble's open.
// Open now refuses at once, saying why.
func TestOpenFullDisk(t *testing.T) {
	disk := disktest.Mount(t, 32)
	fill(t, disk, 4<<20)
	start := time.Now()
	s, err := pebble.Open(filepath.Join(disk, "db"), pebble.Options{MinFreeDisk: 16 << 20})
	if err == nil {
		s.Close()
		t.Fatal("opened on a full disk")
	}
	if !errors.Is(err, store.ErrNoSpace) || !strings.Contains(err.Error(), "MiB free") {
		t.Fatalf("open on a full disk: %v, want ErrNoSpace saying how much is free", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("open took %v to refuse", d)
	}
}
