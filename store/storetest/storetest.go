// Package storetest is the conformance suite of store.Store, in one part per
// role of the store: Accounts, Versions, Messages, Conversations, Groups,
// Grants, Sessions, Settings, Push, Webhooks, Changes (Lives: the message
// lifecycle), Retention (and Burns), Social (contacts, blocks, last seen), DeleteUser (Erasure)
// and Lifecycle. Every implementation runs
// Run (and RunReopen if it persists to a directory) from its own tests; a
// store of only some roles
// (a fake for a consumer's tests) runs the parts of its roles. The suite
// tests the contract in store.go, not an engine.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"testing"

	"github.com/imqtt/imqtt/store"
)

// Run runs every part. open must return a new, empty store for each call;
// the suite closes it when the subtest ends (Close must be idempotent).
// Each part gets the store narrowed to the roles it names (and Close), so
// Run also proves that a part needs no role beyond those.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	Accounts(t, func(t *testing.T) store.Accounts {
		s := open(t)
		return struct {
			store.Accounts
			io.Closer
		}{s, s}
	})
	Versions(t, func(t *testing.T) store.Versions {
		s := open(t)
		return struct {
			store.Versions
			io.Closer
		}{s, s}
	})
	Messages(t, func(t *testing.T) MessageStore {
		s := open(t)
		return struct {
			MessageStore
			io.Closer
		}{s, s}
	})
	Conversations(t, func(t *testing.T) MessageStore {
		s := open(t)
		return struct {
			MessageStore
			io.Closer
		}{s, s}
	})
	Grants(t, func(t *testing.T) GrantStore {
		s := open(t)
		return struct {
			GrantStore
			io.Closer
		}{s, s}
	})
	Groups(t, func(t *testing.T) GroupStore {
		s := open(t)
		return struct {
			GroupStore
			io.Closer
		}{s, s}
	})
	Sessions(t, func(t *testing.T) store.Sessions {
		s := open(t)
		return struct {
			store.Sessions
			io.Closer
		}{s, s}
	})
	Settings(t, func(t *testing.T) store.Settings {
		s := open(t)
		return struct {
			store.Settings
			io.Closer
		}{s, s}
	})
	Push(t, func(t *testing.T) PushStore {
		s := open(t)
		return struct {
			PushStore
			io.Closer
		}{s, s}
	})
	Webhooks(t, func(t *testing.T) WebhookStore {
		s := open(t)
		return struct {
			WebhookStore
			io.Closer
		}{s, s}
	})
	Changes(t, func(t *testing.T) ChangeStore {
		s := open(t)
		return struct {
			ChangeStore
			io.Closer
		}{s, s}
	})
	Retention(t, func(t *testing.T) RetentionStore {
		s := open(t)
		return struct {
			RetentionStore
			io.Closer
		}{s, s}
	})
	Social(t, func(t *testing.T) SocialStore {
		s := open(t)
		return struct {
			SocialStore
			io.Closer
		}{s, s}
	})
	DeleteUser(t, func(t *testing.T) EraseStore {
		s := open(t)
		return struct {
			EraseStore
			io.Closer
		}{s, s}
	})
	Directory(t, func(t *testing.T) DirectoryStore {
		s := open(t)
		return struct {
			DirectoryStore
			io.Closer
		}{s, s}
	})
	Lifecycle(t, open)
}

// MessageStore is what the Messages and Conversations parts open: a Commit
// writes conversation rows with its messages, and its versions come from
// ReserveVersions.
type MessageStore interface {
	store.Versions
	store.Messages
	store.Conversations
}

// GrantStore is what the Grants part opens: grants are committed with
// their messages.
type GrantStore interface {
	store.Versions
	store.Messages
	store.Grants
}

// GroupStore is what the Groups part opens: group messages, heads and
// reads are committed as messages are.
type GroupStore interface {
	store.Messages
	store.Groups
}

// testCase is one subtest of a part.
type testCase struct {
	name string
	fn   func(t *testing.T, f *fixture)
}

// run runs a part's cases, each on a new store from open.
func run[S any](t *testing.T, open func(t *testing.T) S, cases []testCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newFixture(t, open(t)))
		})
	}
}

// fixture is one subtest's store and helpers that fail the test on error.
// It holds the store once per role the store has; a part's cases use only
// the roles its open type names.
type fixture struct {
	t   *testing.T
	ctx context.Context

	users         store.Users
	tokens        store.Tokens
	versions      store.Versions
	messages      store.Messages
	conversations store.Conversations
	groups        store.Groups
	grants        store.Grants
	sessions      store.Sessions
	settings      store.Settings
	push          store.Push
	webhooks      store.Webhooks
	life          store.Lifecycle
	store         any // the store as opened, for roles asked of it directly
}

// newFixture takes s in the roles it has, and closes it (if it can be
// closed) when the subtest ends.
func newFixture(t *testing.T, s any) *fixture {
	t.Helper()
	if c, ok := s.(io.Closer); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("close: %v", err)
			}
		})
	}
	f := &fixture{t: t, ctx: t.Context(), store: s}
	f.users, _ = s.(store.Users)
	f.tokens, _ = s.(store.Tokens)
	f.versions, _ = s.(store.Versions)
	f.messages, _ = s.(store.Messages)
	f.conversations, _ = s.(store.Conversations)
	f.groups, _ = s.(store.Groups)
	f.grants, _ = s.(store.Grants)
	f.sessions, _ = s.(store.Sessions)
	f.settings, _ = s.(store.Settings)
	f.push, _ = s.(store.Push)
	f.webhooks, _ = s.(store.Webhooks)
	f.life, _ = s.(store.Lifecycle)
	return f
}

// sent is one 1:1 message as a batch carries it.
type sent struct {
	Msg     store.Message
	Ack     store.Ack
	FromVer uint64
	ToVer   uint64 // 0 for a note to oneself
}

// add appends a send of message id from -> to at ts to b, the way the chat
// pipeline builds it: versions from ReserveVersions, one Message, an entry
// and a conversation update per side, one Ack.
func (f *fixture) add(b *store.Batch, from, to string, id, ts int64) sent {
	f.t.Helper()
	s := sent{
		Msg: store.Message{ID: id, From: from, To: to, Type: "text", Body: "m" + strconv.FormatInt(id, 10),
			Meta: json.RawMessage(`{"n":` + strconv.FormatInt(id, 10) + `}`), CMID: "c" + strconv.FormatInt(id, 10), TS: ts},
		FromVer: f.reserve(from, 1),
	}
	s.Ack = store.Ack{From: from, CMID: s.Msg.CMID, ID: id, Ver: s.FromVer, TS: ts}
	b.Messages = append(b.Messages, s.Msg)
	b.Acks = append(b.Acks, s.Ack)
	b.Entries = append(b.Entries, store.Entry{User: from, Ver: s.FromVer, Peer: to, Out: true, MsgID: id})
	b.Convs = append(b.Convs, store.ConvUpdate{User: from, Peer: to, MsgID: id, TS: ts, Ver: s.FromVer})
	if to != from {
		s.ToVer = f.reserve(to, 1)
		b.Entries = append(b.Entries, store.Entry{User: to, Ver: s.ToVer, Peer: from, MsgID: id})
		b.Convs = append(b.Convs, store.ConvUpdate{User: to, Peer: from, MsgID: id, TS: ts, Ver: s.ToVer, Incoming: true})
	}
	return s
}

// send commits one message in its own batch.
func (f *fixture) send(from, to string, id, ts int64) sent {
	f.t.Helper()
	var b store.Batch
	s := f.add(&b, from, to, id, ts)
	f.commit(&b)
	return s
}

func (f *fixture) commit(b *store.Batch) {
	f.t.Helper()
	if err := f.messages.Commit(f.ctx, b); err != nil {
		f.t.Fatalf("commit: %v", err)
	}
}

func (f *fixture) reserve(key string, n uint64) uint64 {
	f.t.Helper()
	first, err := f.versions.ReserveVersions(f.ctx, key, n)
	if err != nil {
		f.t.Fatalf("reserve %d of %s: %v", n, key, err)
	}
	return first
}

func (f *fixture) rangeEvents(user string, since uint64, limit int) []store.Event {
	f.t.Helper()
	evs, err := f.messages.Range(f.ctx, user, since, limit)
	if err != nil {
		f.t.Fatalf("range %s since %d: %v", user, since, err)
	}
	return evs
}

func (f *fixture) history(user, peer string, before int64, limit int) []store.Event {
	f.t.Helper()
	evs, err := f.messages.History(f.ctx, user, peer, before, limit)
	if err != nil {
		f.t.Fatalf("history %s/%s before %d: %v", user, peer, before, err)
	}
	return evs
}

func (f *fixture) convs(user string) []store.Conversation {
	f.t.Helper()
	cs, err := f.conversations.Conversations(f.ctx, user)
	if err != nil {
		f.t.Fatalf("conversations %s: %v", user, err)
	}
	return cs
}

// conv returns user's row with peer, failing if there is none.
func (f *fixture) conv(user, peer string) store.Conversation {
	f.t.Helper()
	for _, c := range f.convs(user) {
		if c.Peer == peer {
			return c
		}
	}
	f.t.Fatalf("no conversation %s/%s", user, peer)
	return store.Conversation{}
}

func (f *fixture) head(user string) uint64 {
	f.t.Helper()
	h, err := f.messages.Head(f.ctx, user)
	if err != nil {
		f.t.Fatalf("head %s: %v", user, err)
	}
	return h
}

// event is what Range or History must return for user's side of s.
func (s sent) event(user string) store.Event {
	e := store.Event{Msg: s.Msg}
	e.User, e.MsgID = user, s.Msg.ID
	if user == s.Msg.From {
		e.Ver, e.Peer, e.Out = s.FromVer, s.Msg.To, true
	} else {
		e.Ver, e.Peer = s.ToVer, s.Msg.From
	}
	return e
}

// events is the expected events of user's side of ss, in the given order.
func events(user string, ss ...sent) []store.Event {
	out := make([]store.Event, len(ss))
	for i, s := range ss {
		out[i] = s.event(user)
	}
	return out
}

func equalEvents(t *testing.T, what string, got, want []store.Event) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func msgIDs(evs []store.Event) []int64 {
	ids := make([]int64, len(evs))
	for i, e := range evs {
		ids[i] = e.MsgID
	}
	return ids
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// LookupAck returns the dedupe row of (from, cmid) in s, or store.ErrNotFound:
// LookupAcks for one key, as tests ask.
func LookupAck(ctx context.Context, s store.Messages, from, cmid string) (store.Ack, error) {
	k := store.AckKey{From: from, CMID: cmid}
	found, err := s.LookupAcks(ctx, []store.AckKey{k})
	if err != nil {
		return store.Ack{}, err
	}
	a, ok := found[k]
	if !ok {
		return store.Ack{}, fmt.Errorf("lookup ack %s/%s: %w", from, cmid, store.ErrNotFound)
	}
	return a, nil
}
