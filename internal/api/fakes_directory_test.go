package api_test

import (
	"context"
	"strings"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
)

// fakeDirectory is the store as the admin API's user and group management
// reads it: users alice and bob, groups g1 (owned by alice, bob a member)
// and gone (disbanded). Searches ignore after.
type fakeDirectory struct{}

var (
	dirUsers  = []store.User{{ID: "alice", Display: "Alice", Created: 1}, {ID: "bob", Created: 2}}
	dirGroups = []store.Group{{ID: "g1", Name: "friends", Owner: "alice", Created: 3, Members: 2, Notice: "hi"},
		{ID: "gone", Name: "old", Owner: "bob", Created: 4, Members: 1, Disbanded: 5}}
	dirMembers = []store.Member{{Group: "g1", User: "alice", Role: "owner", Joined: 3}, {Group: "g1", User: "bob", Role: "member", Joined: 4}}
)

func (fakeDirectory) SearchUsers(_ context.Context, prefix, _ string, limit int) ([]store.User, error) {
	var out []store.User
	for _, u := range dirUsers {
		if strings.HasPrefix(u.ID, prefix) && len(out) < limit {
			out = append(out, u)
		}
	}
	return out, nil
}

func (fakeDirectory) SearchGroups(_ context.Context, prefix, _ string, limit int) ([]store.Group, error) {
	var out []store.Group
	for _, g := range dirGroups {
		if strings.HasPrefix(g.ID, prefix) && len(out) < limit {
			out = append(out, g)
		}
	}
	return out, nil
}

func (fakeDirectory) GetUser(_ context.Context, id string) (store.User, error) {
	for _, u := range dirUsers {
		if u.ID == id {
			return u, nil
		}
	}
	return store.User{}, store.ErrNotFound
}

func (fakeDirectory) GetGroup(_ context.Context, id string) (store.Group, error) {
	for _, g := range dirGroups {
		if g.ID == id {
			return g, nil
		}
	}
	return store.Group{}, store.ErrNotFound
}

func (fakeDirectory) Members(_ context.Context, group, _ string, limit int) ([]store.Member, error) {
	var out []store.Member
	for _, m := range dirMembers {
		if m.Group == group && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (fakeDirectory) UserGroups(_ context.Context, user string) ([]store.Member, error) {
	var out []store.Member
	for _, m := range dirMembers {
		if m.User == user {
			out = append(out, m)
		}
	}
	return out, nil
}

// fakeGroupOps acts on fakeDirectory's groups as chat.Service's operator
// methods refuse: no such group, a disbanded one, the owner, a non-member.
type fakeGroupOps struct{}

func (fakeGroupOps) check(group, user string) error {
	g, err := fakeDirectory{}.GetGroup(context.Background(), group)
	switch {
	case err != nil:
		return &chat.Error{Err: chat.ErrNotFound, Msg: "no such group: " + group}
	case g.Disbanded != 0:
		return &chat.Error{Err: chat.ErrGroupGone, Msg: "group " + group + " was disbanded"}
	case user != "" && user == g.Owner:
		return &chat.Error{Err: chat.ErrForbidden, Msg: user + " owns " + group}
	}
	return nil
}

func (o fakeGroupOps) DisbandAsOperator(_ context.Context, group string) error {
	return o.check(group, "")
}

func (o fakeGroupOps) RemoveAsOperator(_ context.Context, group, user string) error {
	return o.check(group, user)
}

// fakeDevices says bob's phone is connected on n1.
type fakeDevices struct{}

func (fakeDevices) Devices(_ context.Context, user string) ([]state.Device, error) {
	if user == "bob" {
		return []state.Device{{User: "bob", Device: "phone", Node: "n1", Since: 6}}, nil
	}
	return nil, nil
}
