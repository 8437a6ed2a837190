package chat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
	"github.com/imqtt/imqtt/internal/oplog"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/state/memory"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// TestDescribe: every sentinel is told as its wire code and that code's
// HTTP status (the contract of docs/), with the refusal's own message;
// anything else is a failure, told as unavailable (503).
func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   string
		status int
	}{
		{chat.ErrBadRequest, wire.CodeBadRequest, http.StatusBadRequest},
		{chat.ErrBadType, wire.CodeBadType, http.StatusBadRequest},
		{chat.ErrMissingTo, wire.CodeMissingTo, http.StatusBadRequest},
		{chat.ErrMissingCMID, wire.CodeMissingCMID, http.StatusBadRequest},
		{chat.ErrTooLarge, wire.CodeTooLarge, http.StatusRequestEntityTooLarge},
		{chat.ErrNoSuchUser, wire.CodeNoSuchUser, http.StatusNotFound},
		{chat.ErrNotMember, wire.CodeNotMember, http.StatusForbidden},
		{chat.ErrForbidden, wire.CodeForbidden, http.StatusForbidden},
		{chat.ErrNotFound, wire.CodeNotFound, http.StatusNotFound},
		{chat.ErrExists, wire.CodeExists, http.StatusConflict},
		{chat.ErrGroupFull, wire.CodeGroupFull, http.StatusConflict},
		{chat.ErrRateLimited, wire.CodeRateLimited, http.StatusTooManyRequests},
		{chat.ErrBusy, wire.CodeBusy, http.StatusServiceUnavailable},
		{chat.ErrUnavailable, wire.CodeUnavailable, http.StatusServiceUnavailable},
		{chat.ErrBlocked, wire.CodeBlocked, http.StatusForbidden},
		{chat.ErrNotContact, wire.CodeNotContact, http.StatusForbidden},
		{chat.ErrNoRequest, wire.CodeNoRequest, http.StatusNotFound},
		{chat.ErrSelf, wire.CodeSelf, http.StatusBadRequest},
		{chat.ErrTooManyContacts, wire.CodeTooManyContacts, http.StatusConflict},
		{chat.ErrTooManyBlocks, wire.CodeTooManyBlocks, http.StatusConflict},
	} {
		refusal := &chat.Error{Err: tc.err, Msg: "why"}
		for _, err := range []error{refusal, fmt.Errorf("create group: %w", refusal)} {
			code, msg, ok := chat.Describe(err)
			if !ok || code != tc.code || msg != "why" || wire.HTTPStatus(code) != tc.status {
				t.Errorf("Describe(%v) = %q %q %v (status %d), want %q \"why\" true (%d)",
					err, code, msg, ok, wire.HTTPStatus(code), tc.code, tc.status)
			}
		}
		if !errors.Is(refusal, tc.err) || refusal.Error() != tc.code+": why" {
			t.Errorf("refusal %q does not wrap %v", refusal, tc.err)
		}
		bare := fmt.Errorf("%w: bob is not here", tc.err)
		if code, msg, ok := chat.Describe(bare); !ok || code != tc.code || msg != bare.Error() {
			t.Errorf("Describe(%v) = %q %q %v", bare, code, msg, ok)
		}
		if e := chat.WireError(refusal, "failed"); e.Code != tc.code || e.Message != "why" {
			t.Errorf("WireError(%v) = %+v", refusal, e)
		}
	}
	for _, err := range []error{errors.New("disk on fire"), fmt.Errorf("group head: %w", store.ErrFailed),
		context.DeadlineExceeded, wire.NewError(wire.CodeNotMember, "a wire error is not the core's")} {
		code, msg, ok := chat.Describe(err)
		if ok || code != wire.CodeUnavailable || msg != "" || wire.HTTPStatus(code) != http.StatusServiceUnavailable {
			t.Errorf("Describe(%v) = %q %q %v, want unavailable, a failure", err, code, msg, ok)
		}
		if e := chat.WireError(err, "store unavailable"); e.Code != wire.CodeUnavailable || e.Message != "store unavailable" {
			t.Errorf("WireError(%v) = %+v", err, e)
		}
	}
}

// TestRefusals: each refusal of the core, on the real store, is its
// sentinel, with the message clients have always seen.
func TestRefusals(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if err := st.CreateUser(ctx, store.User{ID: "carol", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(), MaxGroupMembers: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g1", Members: []string{"bob"}}); err != nil {
		t.Fatal(err)
	}
	alice := chat.Sender{User: "alice", Device: "phone"}
	for _, tc := range []struct {
		name string
		call func() error
		want error
		msg  string
	}{
		{"send to nobody", func() error { return errOf(svc.Send(ctx, alice, wire.Send{CMID: "c1", To: "nobody", Type: "text"})) },
			chat.ErrNoSuchUser, "no such user: nobody"},
		{"send to a group one is not in", func() error {
			return errOf(svc.Send(ctx, chat.Sender{User: "carol"}, wire.Send{CMID: "c1", Group: "g1", Type: "text"}))
		},
			chat.ErrNotMember, "not a member of group g1"},
		{"send media, none enabled", func() error {
			return errOf(svc.Send(ctx, alice, wire.Send{CMID: "c2", To: "bob", Type: "image", Media: "m-1"}))
		},
			chat.ErrBadRequest, "media is not enabled on this server"},
		{"create an existing group", func() error { return errOf(svc.CreateGroup(ctx, "bob", wire.GroupCreate{ID: "G1"})) },
			chat.ErrExists, "group g1 already exists"},
		{"create with a bad id", func() error { return errOf(svc.CreateGroup(ctx, "bob", wire.GroupCreate{ID: "g/1"})) },
			chat.ErrBadRequest, ""},
		{"create with a stranger", func() error { return errOf(svc.CreateGroup(ctx, "bob", wire.GroupCreate{Members: []string{"nobody"}})) },
			chat.ErrNoSuchUser, "no such user: nobody"},
		{"show a group to a stranger", func() error { return errOf(svc.Group(ctx, "carol", "g1", "", 0)) },
			chat.ErrNotMember, "not a member of group g1"},
		{"a member adds", func() error {
			return errOf(svc.AddMembers(ctx, "bob", "g1", wire.GroupMembers{Users: []string{"carol"}}))
		},
			chat.ErrForbidden, "only the owner and admins add members"},
		{"add a bad role", func() error {
			return errOf(svc.AddMembers(ctx, "alice", "g1", wire.GroupMembers{Users: []string{"carol"}, Role: "king"}))
		},
			chat.ErrBadRequest, "role must be admin or member"},
		{"remove a non-member", func() error { return svc.RemoveMember(ctx, "alice", "g1", "carol") },
			chat.ErrNotFound, "carol is not a member of g1"},
		{"a member removes the owner", func() error { return svc.RemoveMember(ctx, "bob", "g1", "alice") },
			chat.ErrForbidden, "only the owner removes admins; admins remove members"},
		{"the owner leaves", func() error { return svc.RemoveMember(ctx, "alice", "g1", "alice") },
			chat.ErrForbidden, "the owner cannot leave its group"},
		{"read a conversation never had", func() error { return errOf(svc.Read(ctx, "carol", wire.Read{Peer: "bob"})) },
			chat.ErrNotFound, "no conversation with bob"},
		{"read a group one is not in", func() error { return errOf(svc.Read(ctx, "carol", wire.Read{Group: "g1"})) },
			chat.ErrNotMember, "not a member of group g1"},
		{"sync a group one is not in", func() error {
			return svc.Sync(ctx, "carol", wire.SyncRequest{Group: "g1"}, func(wire.Sync) error { return nil })
		}, chat.ErrNotMember, "not a member of group g1"},
		{"history with a bad peer", func() error { return errOf(svc.History(ctx, "alice", "a/b", 0, 10)) },
			chat.ErrBadRequest, "peer must be a user ID"},
	} {
		err := tc.call()
		_, msg, ok := chat.Describe(err)
		if !errors.Is(err, tc.want) || !ok || (tc.msg != "" && msg != tc.msg) {
			t.Errorf("%s: %v (message %q), want %v %q", tc.name, err, msg, tc.want, tc.msg)
		}
	}
	if _, err := svc.AddMembers(ctx, "alice", "g1", wire.GroupMembers{Users: []string{"carol"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, store.User{ID: "dave", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.AddMembers(ctx, "alice", "g1", wire.GroupMembers{Users: []string{"dave"}})
	if !errors.Is(err, chat.ErrGroupFull) || !strings.Contains(err.Error(), "limit of 3 members") {
		t.Errorf("add past the limit: %v, want %v", err, chat.ErrGroupFull)
	}
}

// errOf is the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }

// deny is a Limiter that refuses every send.
type deny struct{}

func (deny) Allow(context.Context, string, state.Limit) (state.Decision, error) {
	return state.Decision{RetryAfter: 250 * time.Millisecond}, nil
}

func (d deny) Peek(ctx context.Context, key string, l state.Limit) (state.Decision, error) {
	return d.Allow(ctx, key, l)
}

// TestSubmitRefusals: a send over the rate is ErrRateLimited; one that
// finds the queue full until ctx ends is ErrBusy; both answered at once.
func TestSubmitRefusals(t *testing.T) {
	st := openStore(t)
	m := metrics.New()
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
		SendRate: 1, Limiter: deny{}, QueueLen: 1, QueueWait: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: the queue holds one send and nothing takes it.
	ctx := context.Background()
	submit := func(ctx context.Context, req wire.Send) chat.Result {
		var res chat.Result
		n := 0
		svc.Submit(ctx, chat.Sender{User: "alice", Device: "phone"}, req, func(r chat.Result) { res = r; n++ })
		if n != 1 {
			t.Fatalf("done called %d times before Submit returned", n)
		}
		return res
	}
	r := submit(ctx, wire.Send{CMID: "c1", To: "bob", Type: "text"})
	if _, msg, _ := chat.Describe(r.Err); !errors.Is(r.Err, chat.ErrRateLimited) ||
		msg != "more than 1 sends a second; resend in 250ms with the same cmid" {
		t.Fatalf("over the rate: %v", r.Err)
	}
	// The operator log names the client a refusal went to.
	if got := m.Recent.Recent(oplog.Error, 0, 10); len(got) != 1 || got[0].Client != "alice/phone" || got[0].Code != wire.CodeRateLimited {
		t.Fatalf("operator log: %+v", got)
	}

	svc, err = chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(), QueueLen: 1, QueueWait: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Submit(ctx, chat.Sender{User: "alice"}, wire.Send{CMID: "c1", To: "bob", Type: "text"}, func(chat.Result) {})
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if r := submit(short, wire.Send{CMID: "c2", To: "bob", Type: "text"}); !errors.Is(r.Err, chat.ErrBusy) {
		t.Fatalf("queue full until ctx ended: %v, want %v", r.Err, chat.ErrBusy)
	}
}

// TestGroupsPerUser: nobody can be put in more than MaxGroupsPerUser groups,
// by a new group or an add; a role change of a member at the limit is not
// a join, and a user who leaves one may be added again.
func TestGroupsPerUser(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	m := metrics.New()
	svc, err := chat.New(st, memory.New(st.ReserveVersions, memory.Options{}), pathTo(&recorder{}), chat.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, MaxGroupsPerUser: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	for _, g := range []string{"g1", "g2"} {
		if _, err := svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: g, Members: []string{"bob"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = svc.CreateGroup(ctx, "alice", wire.GroupCreate{ID: "g3", Members: []string{"bob"}})
	if _, msg, _ := chat.Describe(err); !errors.Is(err, chat.ErrTooManyGroups) || msg != "alice is in 2 groups, the most a user may be in" {
		t.Fatalf("a third group: %v", err)
	}
	if _, err := st.GetGroup(ctx, "g3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused group made anyway: %v", err)
	}
	if err := st.CreateUser(ctx, store.User{ID: "carol", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateGroup(ctx, "carol", wire.GroupCreate{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	_, err = svc.AddMembers(ctx, "carol", "c1", wire.GroupMembers{Users: []string{"bob"}})
	if !errors.Is(err, chat.ErrTooManyGroups) || wire.HTTPStatus(wire.CodeTooManyGroups) != 409 {
		t.Fatalf("add bob to a third group: %v", err)
	}
	if _, err := svc.AddMembers(ctx, "alice", "g1", wire.GroupMembers{Users: []string{"bob"}, Role: "admin"}); err != nil {
		t.Fatalf("role change at the limit: %v", err)
	}
	if err := svc.RemoveMember(ctx, "bob", "g2", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddMembers(ctx, "carol", "c1", wire.GroupMembers{Users: []string{"bob"}}); err != nil {
		t.Fatalf("add after a leave: %v", err)
	}
	if n := testutil.ToFloat64(m.Refusals.WithLabelValues("groups_per_user")); n != 2 {
		t.Errorf("%v refusals counted, want 2", n)
	}
}
