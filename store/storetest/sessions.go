package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/store"
)

// Sessions tests the Sessions role: persistent MQTT sessions, whose
// positions never move back.
func Sessions(t *testing.T, open func(t *testing.T) store.Sessions) {
	run(t, open, []testCase{
		{"SessionLoadMissing", testSessionLoadMissing},
		{"SessionRoundTrip", testSessionRoundTrip},
		{"SessionPositionsNeverMoveBack", testSessionPositions},
		{"SessionOverwritten", testSessionOverwritten},
		{"SessionRelease", testSessionRelease},
		{"DeleteSession", testSessionDelete},
		{"DeleteSessions", testSessionDeleteMany},
		{"DeleteUserSessions", testSessionDeleteUser},
		{"CountUserSessions", testSessionCountUser},
		{"SessionSaveMany", testSessionSaveMany},
		{"SessionConcurrent", testSessionConcurrent},
		{"SessionCanceled", testSessionCanceled},
		{"SessionManyGroups", testSessionManyGroups},
	})
}

// fullSession is a session with every field set.
func fullSession(user, device string) store.Session {
	return store.Session{
		User: user, Device: device, Epoch: "e1", Inbox: 42,
		Groups: map[string]uint64{"g1": 7, "friends.2024": 3, "x-y_z": 1 << 40},
		// Not in any sorted order: the order given is the order kept.
		Subs:   []store.SessionSub{{Filter: "im/u/" + user + "/inbox", QoS: 1}, {Filter: "a/+/#", QoS: 0}, {Filter: "im/g/g1", QoS: 2}},
		Expiry: 3600, Holder: "node1/abc", Disconnected: 0,
	}
}

func (f *fixture) saveSessions(ss ...store.Session) {
	f.t.Helper()
	if err := f.sessions.SaveSessions(f.ctx, ss); err != nil {
		f.t.Fatalf("save sessions: %v", err)
	}
}

func (f *fixture) loadSession(user, device string) store.Session {
	f.t.Helper()
	s, err := f.sessions.LoadSession(f.ctx, user, device)
	if err != nil {
		f.t.Fatalf("load session %s/%s: %v", user, device, err)
	}
	return s
}

// equalSession compares sessions, taking a nil and an empty Groups or Subs
// as equal.
func equalSession(t *testing.T, what string, got, want store.Session) {
	t.Helper()
	norm := func(s store.Session) store.Session {
		if len(s.Groups) == 0 {
			s.Groups = nil
		}
		if len(s.Subs) == 0 {
			s.Subs = nil
		}
		return s
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// testSessionLoadMissing: a session never saved, or of another device or
// user (one whose ID has this one's as prefix), is ErrNotFound.
func testSessionLoadMissing(t *testing.T, f *fixture) {
	_, err := f.sessions.LoadSession(f.ctx, "bob", "phone")
	wantErr(t, "load of no session", err, store.ErrNotFound)
	f.saveSessions(fullSession("bobby", "phone"), fullSession("bob", "phones"))
	_, err = f.sessions.LoadSession(f.ctx, "bob", "phone")
	wantErr(t, "load of bob/phone beside bobby/phone and bob/phones", err, store.ErrNotFound)
	_, err = f.sessions.LoadSession(f.ctx, "bo", "phone")
	wantErr(t, "load of bo/phone", err, store.ErrNotFound)
}

// testSessionRoundTrip: every field comes back as saved; Subs keep their
// order.
func testSessionRoundTrip(t *testing.T, f *fixture) {
	want := fullSession("alice", "iot")
	f.saveSessions(want)
	equalSession(t, "round trip", f.loadSession("alice", "iot"), want)

	// A released session, and one with no groups and no subscriptions.
	rel := want
	rel.Disconnected = 1_700_000_000_123
	f.saveSessions(rel)
	equalSession(t, "released", f.loadSession("alice", "iot"), rel)
	bare := store.Session{User: "alice", Device: "bare", Epoch: "e2", Inbox: 1, Expiry: 1}
	f.saveSessions(bare)
	equalSession(t, "bare", f.loadSession("alice", "bare"), bare)

	// Group IDs with what a field path or key layout might take for
	// syntax, each its own stream.
	odd := fullSession("alice", "odd")
	odd.Groups = map[string]uint64{"$lead": 1, "a.b.c": 2, "a": 3, "50%2E": 4, "50.": 5, "a\x00b": 6, "%": 7, "a/b": 8}
	f.saveSessions(odd)
	equalSession(t, "odd group IDs", f.loadSession("alice", "odd"), odd)
	lower := odd
	lower.Groups = map[string]uint64{"$lead": 0, "a.b.c": 1, "a": 2, "50%2E": 3, "50.": 4, "a\x00b": 5, "%": 6, "a/b": 7}
	f.saveSessions(lower)
	equalSession(t, "odd group IDs after a lower save", f.loadSession("alice", "odd"), odd)
}

// testSessionPositions: Inbox and each group's seq keep the higher of the
// stored and the given; a group absent from a save keeps its position; a
// new group is added.
func testSessionPositions(t *testing.T, f *fixture) {
	s := fullSession("alice", "iot")
	s.Inbox, s.Groups = 10, map[string]uint64{"g1": 5, "g2": 7}
	f.saveSessions(s)

	lower := s
	lower.Inbox, lower.Groups = 3, map[string]uint64{"g1": 2, "g3": 4}
	f.saveSessions(lower)
	got := f.loadSession("alice", "iot")
	if want := map[string]uint64{"g1": 5, "g2": 7, "g3": 4}; got.Inbox != 10 || !reflect.DeepEqual(got.Groups, want) {
		t.Errorf("after a lower save: inbox %d groups %v; want 10 %v", got.Inbox, got.Groups, want)
	}

	higher := s
	higher.Inbox, higher.Groups = 11, map[string]uint64{"g2": 8}
	f.saveSessions(higher)
	got = f.loadSession("alice", "iot")
	if want := map[string]uint64{"g1": 5, "g2": 8, "g3": 4}; got.Inbox != 11 || !reflect.DeepEqual(got.Groups, want) {
		t.Errorf("after a higher save: inbox %d groups %v; want 11 %v", got.Inbox, got.Groups, want)
	}

	none := s
	none.Inbox, none.Groups = 0, nil
	f.saveSessions(none)
	if got := f.loadSession("alice", "iot"); got.Inbox != 11 || len(got.Groups) != 3 {
		t.Errorf("after a save of no positions: inbox %d groups %v", got.Inbox, got.Groups)
	}

	// Only DeleteSession starts a session over.
	if err := f.sessions.DeleteSession(f.ctx, "alice", "iot"); err != nil {
		t.Fatal(err)
	}
	f.saveSessions(lower)
	equalSession(t, "saved after a delete", f.loadSession("alice", "iot"), lower)
}

// testSessionOverwritten: Epoch, Subs and Expiry are written as given,
// fewer subscriptions or none included.
func testSessionOverwritten(t *testing.T, f *fixture) {
	s := fullSession("alice", "iot")
	f.saveSessions(s)
	s2 := s
	s2.Epoch, s2.Expiry, s2.Subs = "e2", 60, []store.SessionSub{{Filter: "b", QoS: 1}}
	f.saveSessions(s2)
	equalSession(t, "after a second save", f.loadSession("alice", "iot"), s2)
	s3 := s2
	s3.Epoch, s3.Expiry, s3.Subs = "", 0, nil
	f.saveSessions(s3)
	equalSession(t, "after a save with nothing", f.loadSession("alice", "iot"), s3)
}

// testSessionRelease: a release (Disconnected > 0) by a connection that no
// longer holds the session leaves Holder and Disconnected be (positions,
// Epoch, Subs and Expiry are still written); one by the holder, or a save
// that is no release, writes them.
func testSessionRelease(t *testing.T, f *fixture) {
	held := fullSession("alice", "iot")
	held.Holder = "n2/new"
	f.saveSessions(held)

	late := held // the connection that was taken over lets go, late
	late.Holder, late.Disconnected, late.Inbox, late.Expiry = "n1/old", 1000, 50, 60
	f.saveSessions(late)
	got := f.loadSession("alice", "iot")
	if got.Holder != "n2/new" || got.Disconnected != 0 {
		t.Errorf("a release by another connection moved the holder: %q %d", got.Holder, got.Disconnected)
	}
	if got.Inbox != 50 || got.Expiry != 60 {
		t.Errorf("a release by another connection lost its positions or expiry: inbox %d expiry %d", got.Inbox, got.Expiry)
	}

	own := held
	own.Disconnected = 2000
	f.saveSessions(own)
	if got := f.loadSession("alice", "iot"); got.Holder != "n2/new" || got.Disconnected != 2000 {
		t.Errorf("a release by the holder: %q %d; want n2/new 2000", got.Holder, got.Disconnected)
	}

	again := held // another connection takes the released session
	again.Holder = "n3/x"
	f.saveSessions(again)
	if got := f.loadSession("alice", "iot"); got.Holder != "n3/x" || got.Disconnected != 0 {
		t.Errorf("a save that is no release: %q %d; want n3/x 0", got.Holder, got.Disconnected)
	}
	take := held // and another takes it over while it is held
	take.Holder = "n4/y"
	f.saveSessions(take)
	if got := f.loadSession("alice", "iot"); got.Holder != "n4/y" || got.Disconnected != 0 {
		t.Errorf("a takeover: %q %d; want n4/y 0", got.Holder, got.Disconnected)
	}

	// A release of a session not stored is written as given.
	fresh := fullSession("alice", "other")
	fresh.Holder, fresh.Disconnected = "n1/z", 3000
	f.saveSessions(fresh)
	equalSession(t, "a release of a new session", f.loadSession("alice", "other"), fresh)
}

// testSessionDelete: DeleteSession removes that device's session only, and
// is idempotent.
func testSessionDelete(t *testing.T, f *fixture) {
	f.saveSessions(fullSession("bob", "phone"), fullSession("bob", "tablet"), fullSession("bobby", "phone"))
	for range 2 {
		if err := f.sessions.DeleteSession(f.ctx, "bob", "phone"); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
	if err := f.sessions.DeleteSession(f.ctx, "nobody", "phone"); err != nil {
		t.Fatalf("delete of no session: %v", err)
	}
	_, err := f.sessions.LoadSession(f.ctx, "bob", "phone")
	wantErr(t, "load after delete", err, store.ErrNotFound)
	equalSession(t, "bob/tablet", f.loadSession("bob", "tablet"), fullSession("bob", "tablet"))
	equalSession(t, "bobby/phone", f.loadSession("bobby", "phone"), fullSession("bobby", "phone"))
}

// testSessionDeleteMany: DeleteSessions removes the sessions named, stored
// or not, and only those.
func testSessionDeleteMany(t *testing.T, f *fixture) {
	f.saveSessions(fullSession("bob", "phone"), fullSession("bob", "tablet"), fullSession("carol", "phone"), fullSession("bobby", "phone"))
	ids := []store.SessionID{{User: "bob", Device: "phone"}, {User: "carol", Device: "phone"}, {User: "nobody", Device: "x"}, {User: "bob", Device: "phone"}}
	if err := f.sessions.DeleteSessions(f.ctx, ids); err != nil {
		t.Fatalf("delete sessions: %v", err)
	}
	if err := f.sessions.DeleteSessions(f.ctx, nil); err != nil {
		t.Fatalf("delete no sessions: %v", err)
	}
	for _, id := range ids {
		_, err := f.sessions.LoadSession(f.ctx, id.User, id.Device)
		wantErr(t, "load after delete "+id.User+"/"+id.Device, err, store.ErrNotFound)
	}
	equalSession(t, "bob/tablet", f.loadSession("bob", "tablet"), fullSession("bob", "tablet"))
	equalSession(t, "bobby/phone", f.loadSession("bobby", "phone"), fullSession("bobby", "phone"))
}

// testSessionCountUser: CountUserSessions counts the user's sessions only
// (not those of a user whose ID starts with this one's), up to limit.
func testSessionCountUser(t *testing.T, f *fixture) {
	f.saveSessions(fullSession("bob", "a"), fullSession("bob", "b"), fullSession("bob", "c"), fullSession("bobby", "a"))
	for _, c := range []struct {
		user        string
		limit, want int
	}{{"bob", 10, 3}, {"bob", 2, 2}, {"bobby", 10, 1}, {"nobody", 10, 0}} {
		n, err := f.sessions.CountUserSessions(f.ctx, c.user, c.limit)
		if err != nil || n != c.want {
			t.Errorf("count %s up to %d: %d, %v; want %d", c.user, c.limit, n, err, c.want)
		}
	}
}

// testSessionDeleteUser: DeleteUserSessions removes every session of the
// user and none of another, not even of a user whose ID starts with this
// one's.
func testSessionDeleteUser(t *testing.T, f *fixture) {
	type dev struct{ user, device string }
	gone := []dev{{"bob", "phone"}, {"bob", "tablet"}, {"bob", "a"}}
	kept := []dev{{"bobby", "phone"}, {"bo", "bphone"}, {"bob.x", "phone"}, {"bob-", "phone"}, {"bob_", "phone"}, {"alice", "bob"}}
	var ss []store.Session
	for _, d := range append(append([]dev(nil), gone...), kept...) {
		ss = append(ss, fullSession(d.user, d.device))
	}
	f.saveSessions(ss...)
	for range 2 {
		if err := f.sessions.DeleteUserSessions(f.ctx, "bob"); err != nil {
			t.Fatalf("delete bob's sessions: %v", err)
		}
	}
	if err := f.sessions.DeleteUserSessions(f.ctx, "nobody"); err != nil {
		t.Fatalf("delete of a user with no sessions: %v", err)
	}
	for _, d := range gone {
		_, err := f.sessions.LoadSession(f.ctx, d.user, d.device)
		wantErr(t, "load "+d.user+"/"+d.device, err, store.ErrNotFound)
	}
	for _, d := range kept {
		equalSession(t, d.user+"/"+d.device, f.loadSession(d.user, d.device), fullSession(d.user, d.device))
	}
}

// testSessionSaveMany: one call writes many sessions; a session given
// twice in one call keeps the higher positions and the last one's fields.
func testSessionSaveMany(t *testing.T, f *fixture) {
	var ss []store.Session
	for i := range 300 {
		s := fullSession("u"+strconv.Itoa(i%30), "d"+strconv.Itoa(i/30))
		s.Inbox = uint64(i)
		ss = append(ss, s)
	}
	f.saveSessions(ss...)
	for _, s := range ss {
		equalSession(t, s.User+"/"+s.Device, f.loadSession(s.User, s.Device), s)
	}

	a := fullSession("twice", "d")
	a.Inbox, a.Groups = 9, map[string]uint64{"g1": 1, "g2": 9}
	b := a
	b.Inbox, b.Groups, b.Expiry, b.Subs = 4, map[string]uint64{"g1": 5, "g3": 2}, 7, nil
	f.saveSessions(a, b)
	want := b
	want.Inbox, want.Groups = 9, map[string]uint64{"g1": 5, "g2": 9, "g3": 2}
	equalSession(t, "a session saved twice in one call", f.loadSession("twice", "d"), want)
}

// testSessionConcurrent: several writers saving one session at once, each
// with its own rising positions, end with the highest of every stream.
func testSessionConcurrent(t *testing.T, f *fixture) {
	const writers, rounds = 6, 25
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := 1; i <= rounds; i++ {
				s := fullSession("alice", "iot")
				// Each writer's inbox positions interleave with the others';
				// the shared group g1 rises in every writer; group w(n) is
				// only that writer's.
				s.Inbox = uint64(i*writers + w)
				s.Groups = map[string]uint64{"g1": uint64(i*writers + writers - 1 - w), "w" + strconv.Itoa(w): uint64(i)}
				s.Holder = "n/" + strconv.Itoa(w)
				other := fullSession("other", strconv.Itoa(w)) // and a session nobody else writes
				other.Inbox = uint64(i)
				if err := f.sessions.SaveSessions(f.ctx, []store.Session{s, other}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	got := f.loadSession("alice", "iot")
	want := map[string]uint64{"g1": rounds*writers + writers - 1}
	for w := range writers {
		want["w"+strconv.Itoa(w)] = rounds
	}
	if got.Inbox != rounds*writers+writers-1 || !reflect.DeepEqual(got.Groups, want) {
		t.Errorf("after concurrent saves: inbox %d groups %v; want %d %v", got.Inbox, got.Groups, rounds*writers+writers-1, want)
	}
	for w := range writers {
		if got := f.loadSession("other", strconv.Itoa(w)); got.Inbox != rounds {
			t.Errorf("other/%d: inbox %d, want %d", w, got.Inbox, rounds)
		}
	}
}

// testSessionCanceled: calls with an ended context fail; a save cut short
// by its context leaves every session loadable, and whole once saved
// again.
func testSessionCanceled(t *testing.T, f *fixture) {
	before := fullSession("alice", "iot")
	f.saveSessions(before)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	changed := before
	changed.Inbox, changed.Epoch = 99, "e9"
	wantErr(t, "save", f.sessions.SaveSessions(ctx, []store.Session{changed}), context.Canceled)
	_, err := f.sessions.LoadSession(ctx, "alice", "iot")
	wantErr(t, "load", err, context.Canceled)
	wantErr(t, "delete", f.sessions.DeleteSession(ctx, "alice", "iot"), context.Canceled)
	wantErr(t, "delete user's", f.sessions.DeleteUserSessions(ctx, "alice"), context.Canceled)
	equalSession(t, "after calls with an ended context", f.loadSession("alice", "iot"), before)

	// A big save whose context ends while it runs: whatever of it was
	// written, each session loads (or is absent), and a save afterwards
	// makes each whole.
	var ss []store.Session
	for i := range 50 {
		s := fullSession("big"+strconv.Itoa(i), "d")
		s.Groups = manyGroups(200, uint64(i))
		ss = append(ss, s)
	}
	for _, d := range []time.Duration{time.Microsecond, time.Millisecond, 10 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(f.ctx, d)
		err := f.sessions.SaveSessions(ctx, ss)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("save cut short after %v: %v", d, err) // the driver's words for it
		}
		for _, s := range ss {
			if _, err := f.sessions.LoadSession(f.ctx, s.User, s.Device); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("load %s/%s after a save cut short: %v", s.User, s.Device, err)
			}
		}
	}
	f.saveSessions(ss...)
	for _, s := range ss {
		equalSession(t, s.User+"/"+s.Device, f.loadSession(s.User, s.Device), s)
	}
}

// manyGroups is n groups at positions base+i.
func manyGroups(n int, base uint64) map[string]uint64 {
	g := make(map[string]uint64, n)
	for i := range n {
		g[fmt.Sprintf("group.%05d", i)] = base + uint64(i)
	}
	return g
}

// testSessionManyGroups: a session of 10,000 groups is saved and loaded
// whole, and a second such save keeps the higher position of each.
func testSessionManyGroups(t *testing.T, f *fixture) {
	const n = 10_000
	s := fullSession("alice", "iot")
	s.Groups = manyGroups(n, 1000)
	f.saveSessions(s)
	equalSession(t, "10,000 groups", f.loadSession("alice", "iot"), s)

	s2 := s
	s2.Groups = make(map[string]uint64, n)
	for g, seq := range s.Groups {
		if seq%2 == 0 {
			s2.Groups[g] = seq + 5
		} else {
			s2.Groups[g] = seq - 5
		}
	}
	f.saveSessions(s2)
	got := f.loadSession("alice", "iot")
	if len(got.Groups) != n {
		t.Fatalf("%d groups after a second save, want %d", len(got.Groups), n)
	}
	for g, seq := range s.Groups {
		if want := max(seq, s2.Groups[g]); got.Groups[g] != want {
			t.Fatalf("group %s at %d, want %d", g, got.Groups[g], want)
		}
	}
}
