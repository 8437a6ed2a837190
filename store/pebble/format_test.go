package pebble_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// go test -run TestFormatFixture ./store/pebble -write-format-fixture
// writes testdata/format1 anew from this build (only when the format it
// stands for is today's).
var writeFixture = flag.Bool("write-format-fixture", false, "write testdata/format1 from this build")

// fixtureFacts is what the fixture holds, written next to it.
type fixtureFacts struct {
	Epoch   string `json:"epoch"`
	BobHead uint64 `json:"bob_head"`
}

// writeFormat1 fills dir with a small store of today's format: two users,
// three 1:1 messages, a group with one message.
func writeFormat1(t *testing.T, dir string) fixtureFacts {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20, MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, store.User{ID: u, PasswordHash: "$argon2id$fixture", Created: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var bobHead uint64
	for i := int64(1); i <= 3; i++ {
		from, err := s.ReserveVersions(ctx, "alice", 1)
		if err != nil {
			t.Fatal(err)
		}
		to, err := s.ReserveVersions(ctx, "bob", 1)
		if err != nil {
			t.Fatal(err)
		}
		bobHead = to
		m := store.Message{ID: 100 + i, From: "alice", To: "bob", Type: "text", Body: fmt.Sprint("m", i), CMID: fmt.Sprint("c", i), TS: 1000 * i}
		b := &store.Batch{Messages: []store.Message{m},
			Acks:    []store.Ack{{From: "alice", CMID: m.CMID, ID: m.ID, Ver: from, TS: m.TS}},
			Entries: []store.Entry{{User: "alice", Ver: from, Peer: "bob", Out: true, MsgID: m.ID}, {User: "bob", Ver: to, Peer: "alice", MsgID: m.ID}},
			Convs: []store.ConvUpdate{{User: "alice", Peer: "bob", MsgID: m.ID, TS: m.TS, Ver: from},
				{User: "bob", Peer: "alice", MsgID: m.ID, TS: m.TS, Ver: to, Incoming: true}}}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateGroup(ctx, store.Group{ID: "g1", Name: "friends", Owner: "alice", Created: 1},
		[]store.Member{{User: "alice", Role: store.RoleOwner}, {User: "bob", Role: store.RoleMember}}); err != nil {
		t.Fatal(err)
	}
	g := store.Message{ID: 200, From: "alice", Group: "g1", Seq: 1, Type: "text", Body: "hi all", CMID: "g1", TS: 5000}
	if err := s.Commit(ctx, &store.Batch{Messages: []store.Message{g},
		Acks:  []store.Ack{{From: "alice", CMID: g.CMID, ID: g.ID, TS: g.TS, Group: "g1", Seq: 1}},
		Heads: []store.GroupHead{{Group: "g1", Seq: 1, MsgID: g.ID, TS: g.TS}},
		Reads: []store.GroupRead{{Group: "g1", User: "alice", Seq: 1}}}); err != nil {
		t.Fatal(err)
	}
	return fixtureFacts{Epoch: s.Epoch(), BobHead: bobHead}
}

// copyDir copies the files of src (flat, as a Pebble directory is) to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFormatFixture opens a store written by the release that introduced
// format 1 (testdata/format1, committed) and reads it whole: an upgrade
// must never lose data or change an epoch (devices' cursors would reset).
func TestFormatFixture(t *testing.T) {
	const fixture, facts = "testdata/format1", "testdata/format1.json"
	if *writeFixture {
		if err := os.RemoveAll(fixture); err != nil {
			t.Fatal(err)
		}
		f := writeFormat1(t, fixture)
		b, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(facts, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := fixtureWant(t)
	dir := t.TempDir() // Open writes (a stamp, a WAL): never into testdata
	copyDir(t, fixture, dir)
	s, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkFixture(t, s, want)
}

// fixtureWant reads what testdata/format1 holds.
func fixtureWant(t *testing.T) fixtureFacts {
	t.Helper()
	var want fixtureFacts
	b, err := os.ReadFile("testdata/format1.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// checkFixture reads the store opened from testdata/format1 whole, and
// reserves a version past the fixture's.
func checkFixture(t *testing.T, s *pebble.Store, want fixtureFacts) {
	t.Helper()
	ctx := t.Context()
	if s.Epoch() != want.Epoch {
		t.Errorf("epoch %q, want the fixture's %q", s.Epoch(), want.Epoch)
	}
	if _, err := s.GetUser(ctx, "bob"); err != nil {
		t.Errorf("bob: %v", err)
	}
	evs, err := s.Range(ctx, "bob", 0, 0)
	if err != nil || len(evs) != 3 || evs[0].Msg.Body != "m1" || evs[2].Msg.Body != "m3" || evs[2].Ver != want.BobHead {
		t.Errorf("bob's inbox: %+v, %v", evs, err)
	}
	if h, err := s.Head(ctx, "bob"); err != nil || h != want.BobHead {
		t.Errorf("bob's head %d, %v; want %d", h, err, want.BobHead)
	}
	convs, err := s.Conversations(ctx, "bob")
	if err != nil || len(convs) != 1 || convs[0].Peer != "alice" || convs[0].Unread != 3 {
		t.Errorf("bob's conversations: %+v, %v", convs, err)
	}
	if h, err := s.GroupHead(ctx, "g1"); err != nil || h.Seq != 1 {
		t.Errorf("g1's head %+v, %v", h, err)
	}
	if ms, err := s.GroupRange(ctx, "g1", 0, 0); err != nil || len(ms) != 1 || ms[0].Body != "hi all" {
		t.Errorf("g1's messages %+v, %v", ms, err)
	}
	// The next version continues past what devices saw.
	if v, err := s.ReserveVersions(ctx, "bob", 1); err != nil || v <= want.BobHead {
		t.Errorf("the next version of bob %d, %v: not past %d", v, err, want.BobHead)
	}
}

// setFormat writes meta/format (or deletes it, with "") in a closed store,
// as another release would have left it.
func setFormat(t *testing.T, dir, val string) {
	t.Helper()
	db, err := cpebble.Open(dir, &cpebble.Options{FormatMajorVersion: cpebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	if val == "" {
		err = db.Delete([]byte("meta/format"), cpebble.Sync)
	} else {
		err = db.Set([]byte("meta/format"), []byte(val), cpebble.Sync)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFormatNewerRefused: a store a later release wrote is refused with a
// message that says what to do, and is left as it was; one written before
// stamps existed opens and is stamped.
func TestFormatNewerRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatal(err)
	}
	epoch := s.Epoch()
	s.Close()

	setFormat(t, dir, "3")
	_, err = pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if !errors.Is(err, store.ErrFormat) || !strings.Contains(err.Error(), "format 3, newer than this imqttd's 2") {
		t.Fatalf("open of a format-3 store: %v", err)
	}
	setFormat(t, dir, "x")
	if _, err := pebble.Open(dir, pebble.Options{MinFreeDisk: -1}); !errors.Is(err, store.ErrFormat) {
		t.Fatalf("open of a store with a garbled format: %v", err)
	}

	setFormat(t, dir, "") // as before stamps
	s, err = pebble.Open(dir, pebble.Options{MinFreeDisk: -1})
	if err != nil {
		t.Fatalf("open of an unstamped store: %v", err)
	}
	if s.Epoch() != epoch {
		t.Errorf("epoch %q after the stamp, want %q", s.Epoch(), epoch)
	}
	s.Close()
	db, err := cpebble.Open(dir, &cpebble.Options{FormatMajorVersion: cpebble.FormatNewest, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	val, closer, err := db.Get([]byte("meta/format"))
	// Stamped 1 (data from before stamps), then upgraded to 2.
	if err != nil || string(val) != "2" {
		t.Fatalf("the stamp after opening an unstamped store: %q, %v", val, err)
	}
	closer.Close()
}
