package mongo_test

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/mongo"
)

// TestSessionsInvalid: what the collection cannot hold is ErrInvalid, and
// nothing of the call is written.
func TestSessionsInvalid(t *testing.T) {
	s := open(t, newDB(t))
	defer s.Close()
	ctx := t.Context()
	ok := store.Session{User: "alice", Device: "iot", Inbox: 1}
	for name, bad := range map[string]store.Session{
		"device with a slash": {User: "alice", Device: "a/b", Inbox: 1},
		"inbox past MaxInt64": {User: "alice", Device: "iot", Inbox: math.MaxInt64 + 1},
		"seq past MaxInt64":   {User: "alice", Device: "iot", Groups: map[string]uint64{"g": math.MaxUint64}},
		"empty group ID":      {User: "alice", Device: "iot", Groups: map[string]uint64{"": 1}},
	} {
		if err := s.SaveSessions(ctx, []store.Session{ok, bad}); !errors.Is(err, mongo.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := s.LoadSession(ctx, "alice", "iot"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused save wrote: %v", err)
	}
	if _, err := s.LoadSession(ctx, "alice", "a/b"); !errors.Is(err, mongo.ErrInvalid) {
		t.Errorf("load of a device with a slash: %v", err)
	}
	if err := s.DeleteSession(ctx, "alice", "a/b"); !errors.Is(err, mongo.ErrInvalid) {
		t.Errorf("delete of a device with a slash: %v", err)
	}
}

// TestSessionsTwoNodes: two nodes saving one session at once, one of them
// releasing it late, end with the higher positions and the holder that
// took it last.
func TestSessionsTwoNodes(t *testing.T) {
	db := newDB(t)
	a, b := open(t, db), open(t, db)
	defer a.Close()
	defer b.Close()
	const rounds = 20
	var wg sync.WaitGroup
	for n, node := range []*mongo.Store{a, b} {
		wg.Go(func() {
			for i := 1; i <= rounds; i++ {
				ss := store.Session{User: "alice", Device: "iot", Inbox: uint64(2*i + n),
					Groups: map[string]uint64{"g.1": uint64(2*i + 1 - n)}, Holder: "n" + strconv.Itoa(n) + "/c"}
				if err := node.SaveSessions(t.Context(), []store.Session{ss}); err != nil {
					t.Errorf("node %d: %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := a.SaveSessions(t.Context(), []store.Session{{User: "alice", Device: "iot", Holder: "n9/new"}}); err != nil {
		t.Fatal(err)
	}
	late := store.Session{User: "alice", Device: "iot", Holder: "n0/c", Disconnected: 5}
	if err := b.SaveSessions(t.Context(), []store.Session{late}); err != nil {
		t.Fatal(err)
	}
	got, err := a.LoadSession(t.Context(), "alice", "iot")
	if err != nil {
		t.Fatal(err)
	}
	if got.Inbox != 2*rounds+1 || got.Groups["g.1"] != 2*rounds+1 || got.Holder != "n9/new" || got.Disconnected != 0 {
		t.Fatalf("after two nodes: %+v", got)
	}
	// The document is as doc.go says: the user field DeleteUserSessions
	// finds it by, the group's field escaped.
	var doc struct {
		ID     string           `bson:"_id"`
		Groups map[string]int64 `bson:"groups"`
	}
	if err := a.Database().Collection("sessions").FindOne(t.Context(), bson.D{{Key: "user", Value: "alice"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.ID != "alice/iot" || doc.Groups["g%2E1"] != 2*rounds+1 {
		t.Fatalf("stored document %v", doc)
	}
}
