package chat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/deliver"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// events is a subscriber of the delivery path that keeps what was sent.
type events struct {
	mu  sync.Mutex
	got []sentEvent
}

type sentEvent struct {
	to deliver.To
	ev wire.Event
}

func (e *events) Sent(to deliver.To, ev wire.Event) {
	e.mu.Lock()
	e.got = append(e.got, sentEvent{to, ev})
	e.mu.Unlock()
}

// settings returns the settings events sent so far.
func (e *events) settings() []sentEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sentEvent
	for _, s := range e.got {
		if s.ev.EventKind() == wire.KindSettings {
			out = append(out, s)
		}
	}
	return out
}

func addUsers(t *testing.T, st store.Store, users ...string) {
	t.Helper()
	for _, u := range users {
		if err := st.CreateUser(t.Context(), store.User{ID: u, PasswordHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSetConvSettings: settings of a 1:1 conversation and of a group are
// stored, read back and sent to all the user's devices; an unknown peer, a
// group the user is not in, a bad peer and a bad mute_until are refused,
// with nothing stored or sent.
func TestSetConvSettings(t *testing.T) {
	st := openStore(t)
	addUsers(t, st, "carol")
	evs := &events{}
	svc := newService(t, st, evs)
	ctx := t.Context()
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "team", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}

	until := time.Now().Add(time.Hour).UnixMilli()
	got, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "Bob", Mute: true, MuteUntil: until})
	want := wire.ConvSettings{Peer: "bob", Mute: true, MuteUntil: until}
	if err != nil || got != want {
		t.Fatalf("set bob: %+v %v; want %+v", got, err, want)
	}
	if got, err := svc.GetConvSettings(ctx, "alice", "bob", ""); err != nil || got != want {
		t.Fatalf("get bob: %+v %v; want %+v", got, err, want)
	}
	row, err := st.GetConvSettings(ctx, "alice", "u:bob")
	if err != nil || !row.Mute || row.MuteUntil != until || row.Updated == 0 {
		t.Fatalf("stored row %+v %v", row, err)
	}
	if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Group: "TEAM", Pin: true}); err != nil {
		t.Fatalf("set team: %v", err)
	}
	sent := evs.settings()
	wantEvs := []wire.ConvSettings{
		{Kind: wire.KindSettings, Peer: "bob", Mute: true, MuteUntil: until},
		{Kind: wire.KindSettings, Group: "team", Pin: true},
	}
	if len(sent) != len(wantEvs) {
		t.Fatalf("settings events %+v, want %+v", sent, wantEvs)
	}
	for i, s := range sent {
		if s.to != deliver.User("alice") || s.ev != wantEvs[i] {
			t.Errorf("event %d: to %+v %+v, want to all of alice's devices %+v", i, s.to, s.ev, wantEvs[i])
		}
	}
	// A get of a conversation never set: all false.
	if got, err := svc.GetConvSettings(ctx, "alice", "carol", ""); err != nil || got != (wire.ConvSettings{Peer: "carol"}) {
		t.Fatalf("get carol: %+v %v", got, err)
	}
	// A PUT replaces: all false deletes the row.
	if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetConvSettings(ctx, "alice", "u:bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("row after an all-false put: %v", err)
	}

	before := len(evs.settings())
	for _, c := range []struct {
		name string
		user string
		cs   wire.ConvSettings
		want error
	}{
		{"unknown peer", "alice", wire.ConvSettings{Peer: "nobody", Mute: true}, chat.ErrNoSuchUser},
		{"bad peer", "alice", wire.ConvSettings{Peer: "../x", Mute: true}, chat.ErrBadRequest},
		{"no conversation", "alice", wire.ConvSettings{Mute: true}, chat.ErrBadRequest},
		{"peer and group", "alice", wire.ConvSettings{Peer: "bob", Group: "team"}, chat.ErrBadRequest},
		{"not a member", "carol", wire.ConvSettings{Group: "team", Mute: true}, chat.ErrNotMember},
		{"no such group", "alice", wire.ConvSettings{Group: "nope", Mute: true}, chat.ErrNotMember},
		{"negative mute_until", "alice", wire.ConvSettings{Peer: "bob", MuteUntil: -1}, chat.ErrBadRequest},
		{"mute_until in seconds' place far ahead", "alice",
			wire.ConvSettings{Peer: "bob", MuteUntil: time.Now().Add(11 * 366 * 24 * time.Hour).UnixMilli()}, chat.ErrBadRequest},
	} {
		if _, err := svc.SetConvSettings(ctx, c.user, c.cs); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := svc.GetConvSettings(ctx, "carol", "", "team"); !errors.Is(err, chat.ErrNotMember) {
		t.Errorf("get of a group carol is not in: %v", err)
	}
	if rows, _ := st.UserConvSettings(ctx, "carol"); len(rows) != 0 {
		t.Errorf("carol's rows after refusals: %+v", rows)
	}
	if n := len(evs.settings()); n != before {
		t.Errorf("%d settings events for refused puts", n-before)
	}
}

// TestConversationsMutedPinned: the list marks muted and pinned rows and
// puts pinned first; a muted conversation keeps its own unread but leaves
// total_unread, the unread event's total and the badge; a mute_until
// passed is no mute.
func TestConversationsMutedPinned(t *testing.T) {
	st := openStore(t)
	addUsers(t, st, "carol", "dave")
	svc := newService(t, st, &events{})
	ctx := t.Context()
	if _, err := svc.CreateGroup(ctx, "bob", wire.GroupCreate{ID: "team", Members: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	send := func(from string, req wire.Send) {
		t.Helper()
		req.CMID, req.Type, req.Body = fmt.Sprintf("c%d", time.Now().UnixNano()), "text", "hi"
		if _, err := svc.Send(ctx, chat.Sender{User: from, Device: "d"}, req); err != nil {
			t.Fatal(err)
		}
	}
	// Oldest first: carol (1), team (2), bob (3), dave (1).
	send("carol", wire.Send{To: "alice"})
	send("bob", wire.Send{Group: "team"})
	send("bob", wire.Send{Group: "team"})
	for range 3 {
		send("bob", wire.Send{To: "alice"})
	}
	send("dave", wire.Send{To: "alice"})
	names := func(c wire.Conversations) []string {
		var out []string
		for _, r := range c.Conversations {
			name := r.Peer + r.Group
			if r.Muted {
				name += " muted"
			}
			if r.Pinned {
				name += " pinned"
			}
			out = append(out, name+" "+strconv.FormatInt(r.Unread, 10))
		}
		return out
	}
	list, err := svc.Conversations(ctx, "alice")
	if err != nil || list.TotalUnread != 7 {
		t.Fatalf("before settings: total %d %v", list.TotalUnread, err)
	}

	set := func(cs wire.ConvSettings) {
		t.Helper()
		if _, err := svc.SetConvSettings(ctx, "alice", cs); err != nil {
			t.Fatal(err)
		}
	}
	set(wire.ConvSettings{Peer: "bob", Mute: true})
	set(wire.ConvSettings{Group: "team", MuteUntil: time.Now().Add(time.Hour).UnixMilli(), Pin: true})
	set(wire.ConvSettings{Peer: "carol", Pin: true})
	set(wire.ConvSettings{Peer: "dave", MuteUntil: time.Now().Add(-time.Minute).UnixMilli()}) // passed
	list, err = svc.Conversations(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"team muted pinned 2", "carol pinned 1", "dave 1", "bob muted 3"}
	if got := names(list); !slices.Equal(got, want) {
		t.Fatalf("list %q, want %q", got, want)
	}
	if list.TotalUnread != 2 {
		t.Fatalf("total_unread %d, want 2 (carol and dave; bob and team muted)", list.TotalUnread)
	}
	if badge, err := svc.Badge(ctx, "alice"); err != nil || badge != 2 {
		t.Fatalf("badge %d %v, want 2", badge, err)
	}
	// The unread event after a read: its own count, the total without muted.
	u, err := svc.Read(ctx, "alice", wire.Read{Peer: "dave"})
	if err != nil || u.Total != 1 || u.Count != 0 {
		t.Fatalf("read dave: %+v %v; want total 1", u, err)
	}
	u, err = svc.Read(ctx, "alice", wire.Read{Peer: "carol"})
	if err != nil || u.Total != 0 {
		t.Fatalf("read carol: %+v %v; want total 0", u, err)
	}
	// Unmuted, bob counts again.
	set(wire.ConvSettings{Peer: "bob"})
	if badge, err := svc.Badge(ctx, "alice"); err != nil || badge != 3 {
		t.Fatalf("badge after unmute %d %v, want 3", badge, err)
	}
}

// TestMentions: mentions are checked (a group's only, at most 50, user
// IDs or @all, @all by the owner and admins only), folded to canonical
// IDs, stored with the message and carried in the group's sync.
func TestMentions(t *testing.T) {
	st := openStore(t)
	addUsers(t, st, "carol")
	svc := newService(t, st, &events{})
	ctx := t.Context()
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "team", Members: []string{"bob", "carol"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddMembers(ctx, "alice", "team", wire.GroupMembers{Users: []string{"carol"}, Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	many := make([]string, wire.MaxMentions+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	n := 0
	send := func(from string, req wire.Send) (wire.Ack, error) {
		n++
		req.CMID, req.Type, req.Body = fmt.Sprintf("m%d", n), "text", "hey"
		return svc.Send(ctx, chat.Sender{User: from, Device: "d"}, req)
	}
	for _, c := range []struct {
		name string
		from string
		req  wire.Send
		want error
	}{
		{"in a 1:1", "alice", wire.Send{To: "bob", Mentions: []string{"bob"}}, chat.ErrBadRequest},
		{"too many", "alice", wire.Send{Group: "team", Mentions: many}, chat.ErrBadRequest},
		{"not an ID", "alice", wire.Send{Group: "team", Mentions: []string{"@bob"}}, chat.ErrBadRequest},
		{"empty", "alice", wire.Send{Group: "team", Mentions: []string{""}}, chat.ErrBadRequest},
		{"@all by a member", "bob", wire.Send{Group: "team", Mentions: []string{"carol", wire.MentionAll}}, chat.ErrForbidden},
	} {
		if _, err := send(c.from, c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := send("alice", wire.Send{Group: "team", Mentions: many[:wire.MaxMentions]}); err != nil {
		t.Errorf("%d mentions: %v", wire.MaxMentions, err)
	}
	if _, err := send("carol", wire.Send{Group: "team", Mentions: []string{wire.MentionAll}}); err != nil {
		t.Errorf("@all by an admin: %v", err)
	}
	ack, err := send("bob", wire.Send{Group: "team", Mentions: []string{"Carol", "alice", "carol"}})
	if err != nil {
		t.Fatalf("mentions by a member: %v", err)
	}
	id, _ := strconv.ParseInt(ack.ID, 10, 64)
	ms, err := st.GetMessages(ctx, []int64{id})
	if err != nil || len(ms) != 1 || !slices.Equal(ms[0].Mentions, []string{"carol", "alice"}) {
		t.Fatalf("stored message %+v %v; want mentions [carol alice]", ms, err)
	}
	var items []wire.Msg
	err = svc.Sync(ctx, "alice", wire.SyncRequest{Group: "team"}, func(b wire.Sync) error {
		items = append(items, b.Items...)
		return nil
	})
	if err != nil || len(items) != 3 {
		t.Fatalf("group sync: %d items, %v", len(items), err)
	}
	if !slices.Equal(items[1].Mentions, []string{wire.MentionAll}) || !slices.Equal(items[2].Mentions, []string{"carol", "alice"}) {
		t.Fatalf("synced mentions %q, %q", items[1].Mentions, items[2].Mentions)
	}
}

// TestConvSettingsCap: past MaxConvSettings a conversation not set yet is
// refused (too_many_settings); one already set still changes, and one
// cleared makes room. Any user is a peer, so without the cap one account
// could write a row per account.
func TestConvSettingsCap(t *testing.T) {
	st := openStore(t)
	addUsers(t, st, "carol", "dave")
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&events{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(), MaxConvSettings: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	ctx := t.Context()
	for _, p := range []string{"bob", "carol"} {
		if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: p, Mute: true}); err != nil {
			t.Fatalf("set %s: %v", p, err)
		}
	}
	_, err = svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "dave", Pin: true})
	var ce *chat.Error
	if !errors.As(err, &ce) || !errors.Is(ce.Err, chat.ErrTooManySettings) {
		t.Fatalf("a third conversation: %v, want too_many_settings", err)
	}
	if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "bob", Pin: true}); err != nil {
		t.Fatalf("a change of one already set: %v", err)
	}
	if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "carol"}); err != nil {
		t.Fatalf("clearing one: %v", err)
	}
	if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "dave", Pin: true}); err != nil {
		t.Fatalf("after clearing one: %v", err)
	}
}

// TestConvSettingsRate: settings changes count against the user's send
// rate (each is a synced write and an event to every device).
func TestConvSettingsRate(t *testing.T) {
	st := openStore(t)
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&events{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(), SendRate: 1, SendBurst: 2,
		Limiter: memory.New(st.ReserveVersions, memory.Options{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	ctx := t.Context()
	for i := range 2 {
		if _, err := svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "bob", Mute: i == 0}); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	_, err = svc.SetConvSettings(ctx, "alice", wire.ConvSettings{Peer: "bob", Pin: true})
	var ce *chat.Error
	if !errors.As(err, &ce) || !errors.Is(ce.Err, chat.ErrRateLimited) {
		t.Fatalf("a third change at once: %v, want rate_limited", err)
	}
}
