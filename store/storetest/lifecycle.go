package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Lifecycle tests the store as a whole running thing: Ping, calls with an
// ended context, and every role's calls after and during Close.
func Lifecycle(t *testing.T, open func(t *testing.T) store.Store) {
	run(t, open, []testCase{
		{"Ping", testPing},
		{"Canceled", testCanceled},
		{"Closed", testClosed},
		{"CloseConcurrent", testCloseConcurrent},
	})
}

func testPing(t *testing.T, f *fixture) {
	if err := f.life.Ping(f.ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	f.send("alice", "bob", 1, 1)
	if err := f.life.Ping(f.ctx); err != nil {
		t.Errorf("ping after a commit: %v", err)
	}
}

func testCanceled(t *testing.T, f *fixture) {
	f.send("alice", "bob", 1, 1)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	_, err := f.messages.Range(ctx, "alice", 0, 0)
	wantErr(t, "range", err, context.Canceled)
	_, err = f.messages.History(ctx, "alice", "bob", 0, 0)
	wantErr(t, "history", err, context.Canceled)
	_, err = f.conversations.Conversations(ctx, "alice")
	wantErr(t, "conversations", err, context.Canceled)
}

func testClosed(t *testing.T, f *fixture) {
	f.send("alice", "bob", 1, 1)
	if err := f.life.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := f.life.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	ctx := f.ctx
	var b store.Batch
	calls := map[string]func() error{
		"CreateUser":  func() error { return f.users.CreateUser(ctx, store.User{ID: "carol"}) },
		"GetUser":     func() error { _, err := f.users.GetUser(ctx, "alice"); return err },
		"PutToken":    func() error { return f.tokens.PutToken(ctx, store.Token{Hash: "h"}) },
		"GetToken":    func() error { _, err := f.tokens.GetToken(ctx, "h"); return err },
		"DeleteToken": func() error { return f.tokens.DeleteToken(ctx, "h") },
		"ReserveVersions": func() error {
			_, err := f.versions.ReserveVersions(ctx, "alice", 1)
			return err
		},
		"Commit":        func() error { return f.messages.Commit(ctx, &b) },
		"LookupAck":     func() error { _, err := LookupAck(ctx, f.messages, "alice", "c1"); return err },
		"Range":         func() error { _, err := f.messages.Range(ctx, "alice", 0, 0); return err },
		"Head":          func() error { _, err := f.messages.Head(ctx, "alice"); return err },
		"History":       func() error { _, err := f.messages.History(ctx, "alice", "bob", 0, 0); return err },
		"Conversations": func() error { _, err := f.conversations.Conversations(ctx, "alice"); return err },
		"SetRead":       func() error { _, err := f.conversations.SetRead(ctx, "bob", "alice", 0); return err },
		"GetMessages":   func() error { _, err := f.messages.GetMessages(ctx, []int64{1}); return err },
		"MediaGrants":   func() error { _, err := f.grants.MediaGrants(ctx, "m-1"); return err },
		"CreateGroup":   func() error { return f.groups.CreateGroup(ctx, store.Group{ID: "g1", Owner: "alice"}, nil) },
		"GetGroup":      func() error { _, err := f.groups.GetGroup(ctx, "g1"); return err },
		"AddMembers": func() error {
			_, err := f.groups.AddMembers(ctx, "g1", []store.Member{{User: "bob"}}, 0)
			return err
		},
		"RemoveMember":    func() error { return f.groups.RemoveMember(ctx, "g1", "bob") },
		"GetMember":       func() error { _, err := f.groups.GetMember(ctx, "g1", "alice"); return err },
		"Members":         func() error { _, err := f.groups.Members(ctx, "g1", "", 0); return err },
		"UserGroups":      func() error { _, err := f.groups.UserGroups(ctx, "alice"); return err },
		"CountUserGroups": func() error { _, err := f.groups.CountUserGroups(ctx, "alice", 0); return err },
		"GroupHead":       func() error { _, err := f.groups.GroupHead(ctx, "g1"); return err },
		"GroupHeads":      func() error { _, err := f.groups.GroupHeads(ctx, []string{"g1"}); return err },
		"GroupRange":      func() error { _, err := f.groups.GroupRange(ctx, "g1", 0, 0); return err },
		"SetGroupReads": func() error {
			return f.groups.SetGroupReads(ctx, []store.GroupRead{{Group: "g1", User: "alice", Seq: 1}})
		},
		"Ping": func() error { return f.life.Ping(ctx) },
		"SaveSessions": func() error {
			return f.sessions.SaveSessions(ctx, []store.Session{{User: "alice", Device: "d", Inbox: 1}})
		},
		"LoadSession":        func() error { _, err := f.sessions.LoadSession(ctx, "alice", "d"); return err },
		"DeleteSession":      func() error { return f.sessions.DeleteSession(ctx, "alice", "d") },
		"DeleteUserSessions": func() error { return f.sessions.DeleteUserSessions(ctx, "alice") },
	}
	for name, call := range calls {
		wantErr(t, name+" after close", call(), store.ErrClosed)
	}
}

// testCloseConcurrent closes the store while calls are running: each call
// either completes or returns ErrClosed, and none crashes.
func testCloseConcurrent(t *testing.T, f *fixture) {
	f.send("alice", "bob", 1, 1)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			<-start
			for i := range 50 {
				var err error
				switch i % 3 {
				case 0:
					_, err = f.messages.Range(f.ctx, "alice", 0, 0)
				case 1:
					_, err = f.versions.ReserveVersions(f.ctx, "alice", 1)
				default:
					id := int64(1000 + w*100 + i)
					m := store.Message{ID: id, From: "bob", To: "bob", Type: "text", TS: id}
					err = f.messages.Commit(f.ctx, &store.Batch{Messages: []store.Message{m}})
				}
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("call during close: %v", err)
					return
				}
			}
		})
	}
	close(start)
	if err := f.life.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	wg.Wait()
}

// RunReopen checks a store that persists to a directory: open must open
// (or create) the store in dir. Data, version reservations and the epoch
// survive Close and a new open; a new directory is a new epoch.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	f := newFixture(t, open(t, dir))
	alice := store.User{ID: "alice", PasswordHash: "x", Created: 1}
	if err := f.users.CreateUser(f.ctx, alice); err != nil {
		t.Fatalf("create user: %v", err)
	}
	tok := store.Token{Hash: "h1", User: "alice", Device: "d", Expires: 9, Created: 1}
	if err := f.tokens.PutToken(f.ctx, tok); err != nil {
		t.Fatalf("put token: %v", err)
	}
	m1 := f.send("alice", "bob", 101, 1000)
	m2 := f.send("bob", "alice", 102, 2000)
	f.setRead("alice", "bob", 0)
	sess := fullSession("alice", "iot")
	sess.Groups = manyGroups(100, 1)
	f.saveSessions(sess)
	// A reservation that no commit follows must survive Close as well.
	end := f.reserve("alice", 50) + 50
	epoch := f.messages.Epoch()
	want := f.snapshot()
	if err := f.life.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	for round := 1; round <= 2; round++ {
		f = newFixture(t, open(t, dir))
		if got := f.messages.Epoch(); got != epoch {
			t.Errorf("reopen %d: epoch %q, want %q", round, got, epoch)
		}
		if got := f.snapshot(); !reflect.DeepEqual(got, want) {
			t.Errorf("reopen %d: data changed:\n got %+v\nwant %+v", round, got, want)
		}
		if got, err := f.users.GetUser(f.ctx, "alice"); err != nil || got != alice {
			t.Errorf("reopen %d: user %+v, %v", round, got, err)
		}
		if got, err := f.tokens.GetToken(f.ctx, "h1"); err != nil || got != tok {
			t.Errorf("reopen %d: token %+v, %v", round, got, err)
		}
		if ack, err := LookupAck(f.ctx, f.messages, "bob", m2.Msg.CMID); err != nil || ack != m2.Ack {
			t.Errorf("reopen %d: ack %+v, %v", round, ack, err)
		}
		if c := f.conv("alice", "bob"); c.ReadUpto != m2.Msg.ID || c.Unread != 0 {
			t.Errorf("reopen %d: read position lost: %+v", round, c)
		}
		equalSession(t, fmt.Sprintf("reopen %d: session", round), f.loadSession("alice", "iot"), sess)
		first := f.reserve("alice", 1)
		if first < end {
			t.Fatalf("reopen %d: reserved %d, below the end %d of an earlier block", round, first, end)
		}
		end = first + 1
		if got := f.rangeEvents("bob", 0, 0); len(got) != 2 || got[0].MsgID != m1.Msg.ID {
			t.Errorf("reopen %d: bob's events %v", round, msgIDs(got))
		}
		if err := f.life.Close(); err != nil {
			t.Fatalf("close %d: %v", round, err)
		}
	}

	other := newFixture(t, open(t, t.TempDir()))
	if e := other.messages.Epoch(); e == "" || e == epoch {
		t.Errorf("a new store has epoch %q; want a new one (old %q)", e, epoch)
	}
}
