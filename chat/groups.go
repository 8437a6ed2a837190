package chat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Group membership (docs/protocol.md#groups, docs/http.md). The owner and admins add members; the
// owner removes anyone and names admins; admins remove plain members; anyone
// may leave. Changes reach the users concerned as "group" events and keep
// this node's fan-out index right.

func notMember(group string) error {
	return refuse(ErrNotMember, "not a member of group "+group)
}

// normGroup folds a group ID a client gave: group IDs follow the user ID
// rules (wire.NormUser), case-insensitive. An ID no group can have is
// not_member, like a group one is not in (a non-member learns nothing).
//
// Groups created before IDs were folded may have upper case ("G1"): the
// fold ("g1") does not find them, so they are unreachable by ID, though
// their members still see them in GET /v1/groups. Nothing breaks on them.
func normGroup(group string) (string, error) {
	g, ok := wire.NormUser(group)
	if !ok {
		return "", notMember(group)
	}
	return g, nil
}

// member returns user's membership, or not_member for users outside it
// and for groups that do not exist (a non-member learns nothing).
func (s *Service) member(ctx context.Context, group, user string) (store.Member, error) {
	m, err := s.st.GetMember(ctx, group, user)
	if errors.Is(err, store.ErrNotFound) {
		return m, notMember(group)
	}
	if err != nil {
		return m, errStore("member", err)
	}
	return m, nil
}

// CreateGroup makes a group owned by owner with the given members.
func (s *Service) CreateGroup(ctx context.Context, owner string, req wire.GroupCreate) (wire.Group, error) {
	if req.ID == "" {
		req.ID = "g-" + strings.ToLower(rand.Text()[:12])
	}
	id, ok := wire.NormUser(req.ID)
	if !ok || len(req.Name) > 256 {
		return wire.Group{}, refuse(ErrBadRequest, "group id must be 1 to 64 of A-Z a-z 0-9 _ . - not starting with a dot; name at most 256 bytes")
	}
	req.ID = id // "G1" creates "g1": group IDs ignore case, like user IDs
	users, err := s.existingUsers(ctx, append([]string{owner}, req.Members...))
	if err != nil {
		return wire.Group{}, err
	}
	if len(users) > s.opts.MaxGroupMembers {
		return wire.Group{}, refuse(ErrGroupFull, fmt.Sprintf("a group holds at most %d members", s.opts.MaxGroupMembers))
	}
	if err := s.checkGroupCount(ctx, "", users); err != nil {
		return wire.Group{}, err
	}
	now := time.Now().UnixMilli()
	members := make([]store.Member, len(users))
	for i, u := range users {
		members[i] = store.Member{User: u, Role: store.RoleMember, Joined: now}
		if u == owner {
			members[i].Role = store.RoleOwner
		}
	}
	g := store.Group{ID: req.ID, Name: req.Name, Owner: owner, Created: now}
	err = s.st.CreateGroup(ctx, g, members)
	if errors.Is(err, store.ErrExists) {
		return wire.Group{}, refuse(ErrExists, "group "+req.ID+" already exists")
	}
	if err != nil {
		return wire.Group{}, errStore("create group", err)
	}
	for _, m := range members {
		s.membership(g.ID, m.User, true)
		if m.User != owner {
			s.groupEvent(m.User, g.ID, "added", owner)
		}
	}
	s.groupChanged(g.ID, "created", owner, users)
	return s.Group(ctx, owner, g.ID, "", 0)
}

// existingUsers folds users to canonical IDs, dedupes them and checks each
// has an account.
func (s *Service) existingUsers(ctx context.Context, users []string) ([]string, error) {
	out := make([]string, 0, len(users))
	for _, name := range users {
		u, valid := wire.NormUser(name)
		if !valid { // before the store, and not echoed: it may be any size
			return nil, refuse(ErrNoSuchUser, "no such user: members must be user IDs")
		}
		if slices.Contains(out, u) {
			continue
		}
		ok, err := s.userExists(ctx, u)
		if err != nil {
			return nil, errStore("look up user", err)
		}
		if !ok {
			return nil, refuse(ErrNoSuchUser, "no such user: "+u)
		}
		out = append(out, u)
	}
	return out, nil
}

// checkGroupCount refuses users if one of them, not yet a member of group
// ("": a new group), is in MaxGroupsPerUser groups already. Two adds at
// once may each pass it: the limit can be passed by the adds in flight.
func (s *Service) checkGroupCount(ctx context.Context, group string, users []string) error {
	most := s.opts.MaxGroupsPerUser
	for _, u := range users {
		n, err := s.st.CountUserGroups(ctx, u, most)
		if err != nil {
			return errStore("count groups", err)
		}
		if n < most {
			continue
		}
		if group != "" {
			if _, err := s.st.GetMember(ctx, group, u); err == nil {
				continue // a role change, not a join
			} else if !errors.Is(err, store.ErrNotFound) {
				return errStore("get member", err)
			}
		}
		s.m.Refused("groups_per_user")
		return refuse(ErrTooManyGroups, fmt.Sprintf("%s is in %d groups, the most a user may be in", u, most))
	}
	return nil
}

// Group shows a group to a member, with one page of members.
func (s *Service) Group(ctx context.Context, user, group, after string, limit int) (wire.Group, error) {
	group, err := normGroup(group)
	if err != nil {
		return wire.Group{}, err
	}
	if a, ok := wire.NormUser(after); ok {
		after = a
	}
	me, err := s.member(ctx, group, user)
	if err != nil {
		return wire.Group{}, err
	}
	g, err := s.st.GetGroup(ctx, group)
	if err != nil {
		return wire.Group{}, errStore("get group", err)
	}
	h, err := s.st.GroupHead(ctx, group)
	if err != nil {
		return wire.Group{}, errStore("group head", err)
	}
	ms, err := s.st.Members(ctx, group, after, limit)
	if err != nil {
		return wire.Group{}, errStore("members", err)
	}
	out := toWireGroup(g, me.Role, h.Seq)
	for _, m := range ms {
		out.Members = append(out.Members, toWireMember(m))
	}
	return out, nil
}

// Groups lists the groups user is in.
func (s *Service) Groups(ctx context.Context, user string) (wire.Groups, error) {
	ms, heads, err := s.userHeads(ctx, user)
	if err != nil {
		return wire.Groups{}, err
	}
	out := wire.Groups{Groups: make([]wire.Group, 0, len(ms))}
	for i, m := range ms {
		g, err := s.st.GetGroup(ctx, m.Group)
		if err != nil {
			return wire.Groups{}, errStore("get group", err)
		}
		out.Groups = append(out.Groups, toWireGroup(g, m.Role, heads[i].Seq))
	}
	return out, nil
}

// GroupHeads tells a device where each of user's groups is, in two store
// reads whatever their number: its memberships, then their heads.
func (s *Service) GroupHeads(ctx context.Context, user string) (wire.Heads, error) {
	ms, heads, err := s.userHeads(ctx, user)
	if err != nil {
		return wire.Heads{}, err
	}
	out := wire.Heads{Kind: wire.KindHeads, Groups: make([]wire.GroupHead, len(ms))}
	for i, m := range ms {
		out.Groups[i] = wire.GroupHead{Group: m.Group, Seq: heads[i].Seq, Join: m.JoinSeq, Read: m.ReadSeq, Gone: heads[i].Disbanded != 0}
	}
	return out, nil
}

// userHeads returns user's memberships and, in the same order, their
// groups' heads.
func (s *Service) userHeads(ctx context.Context, user string) ([]store.Member, []store.GroupHead, error) {
	ms, err := s.st.UserGroups(ctx, user)
	if err != nil {
		return nil, nil, errStore("user groups", err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.Group
	}
	heads, err := s.st.GroupHeads(ctx, ids)
	if err != nil {
		return nil, nil, errStore("group heads", err)
	}
	return ms, heads, nil
}

func toWireGroup(g store.Group, role string, seq uint64) wire.Group {
	return wire.Group{ID: g.ID, Name: g.Name, Owner: g.Owner, Created: g.Created, Count: g.Members, Role: role, Seq: seq,
		Notice: g.Notice, Avatar: g.Avatar, Muted: g.Muted, Disbanded: g.Disbanded}
}

// AddMembers adds users to group (or, with role "admin", makes them admins).
func (s *Service) AddMembers(ctx context.Context, actor, group string, req wire.GroupMembers) (wire.Group, error) {
	group, err := normGroup(group)
	if err != nil {
		return wire.Group{}, err
	}
	me, err := s.member(ctx, group, actor)
	if err != nil {
		return wire.Group{}, err
	}
	for i, u := range req.Users { // before the owner check below: "ALICE" is alice
		if n, ok := wire.NormUser(u); ok {
			req.Users[i] = n
		}
	}
	switch {
	case req.Role != "" && req.Role != store.RoleAdmin && req.Role != store.RoleMember:
		return wire.Group{}, refuse(ErrBadRequest, "role must be admin or member")
	case req.Role != "" && me.Role != store.RoleOwner:
		return wire.Group{}, refuse(ErrForbidden, "only the owner sets roles")
	case me.Role == store.RoleMember:
		return wire.Group{}, refuse(ErrForbidden, "only the owner and admins add members")
	case len(req.Users) == 0 || len(req.Users) > 1000:
		return wire.Group{}, refuse(ErrBadRequest, "users: 1 to 1000 user IDs")
	case slices.Contains(req.Users, me.User) && req.Role != "":
		return wire.Group{}, refuse(ErrBadRequest, "the owner keeps its role")
	}
	users, err := s.existingUsers(ctx, req.Users)
	if err != nil {
		return wire.Group{}, err
	}
	if err := s.checkGroupCount(ctx, group, users); err != nil {
		return wire.Group{}, err
	}
	ms := make([]store.Member, len(users))
	for i, u := range users {
		ms[i] = store.Member{User: u, Role: req.Role, Joined: time.Now().UnixMilli()}
	}
	added, err := s.st.AddMembers(ctx, group, ms, s.opts.MaxGroupMembers)
	if errors.Is(err, store.ErrGone) {
		return wire.Group{}, groupGone(group)
	}
	if errors.Is(err, store.ErrLimit) {
		return wire.Group{}, refuse(ErrGroupFull, fmt.Sprintf("group %s would pass its limit of %d members", group, s.opts.MaxGroupMembers))
	}
	if err != nil {
		return wire.Group{}, errStore("add members", err)
	}
	for _, m := range added {
		s.membership(group, m.User, true)
		s.groupEvent(m.User, group, "added", actor)
	}
	if len(added) > 0 {
		users := make([]string, len(added))
		for i, m := range added {
			users[i] = m.User
		}
		s.groupChanged(group, "added", actor, users)
	}
	if req.Role != "" && len(added) < len(users) { // the others' role was set
		var others []string
		for _, u := range users {
			if !slices.ContainsFunc(added, func(m store.Member) bool { return m.User == u }) {
				others = append(others, u)
			}
		}
		s.groupChanged(group, "role", actor, others)
	}
	return s.Group(ctx, actor, group, "", 0)
}

// RemoveMember removes user from group, or lets actor leave when user is actor.
func (s *Service) RemoveMember(ctx context.Context, actor, group, user string) error {
	group, err := normGroup(group)
	if err != nil {
		return err
	}
	if u, ok := wire.NormUser(user); ok {
		user = u
	}
	me, err := s.member(ctx, group, actor)
	if err != nil {
		return err
	}
	switch g, err := s.st.GetGroup(ctx, group); {
	case err != nil:
		return errStore("get group", err)
	case g.Disbanded != 0:
		return groupGone(group) // members keep their rows, and the history with them
	}
	if user != actor {
		them, err := s.st.GetMember(ctx, group, user)
		if errors.Is(err, store.ErrNotFound) {
			return refuse(ErrNotFound, user+" is not a member of "+group)
		}
		if err != nil {
			return errStore("member", err)
		}
		allowed := me.Role == store.RoleOwner || (me.Role == store.RoleAdmin && them.Role == store.RoleMember)
		if !allowed {
			return refuse(ErrForbidden, "only the owner removes admins; admins remove members")
		}
	} else if me.Role == store.RoleOwner {
		return refuse(ErrForbidden, "the owner cannot leave its group")
	}
	return s.dropMember(ctx, group, user, actor)
}

// dropMember removes user from group, once actor may do so, and tells
// the user and the webhook: user left if user is actor, else actor
// removed them.
func (s *Service) dropMember(ctx context.Context, group, user, actor string) error {
	err := s.st.RemoveMember(ctx, group, user)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(ErrNotFound, user+" is not a member of "+group)
	}
	if err != nil {
		return errStore("remove member", err)
	}
	s.membership(group, user, false)
	s.groupEvent(user, group, wire.GroupRemoved, actor)
	if user == actor {
		s.groupChanged(group, "left", actor, []string{user})
	} else {
		s.groupChanged(group, "removed", actor, []string{user})
	}
	return nil
}

// groupChanged tells the webhook of a change of group's members
// (group.changed, in the group's lane after the messages before it).
func (s *Service) groupChanged(group, action, by string, users []string) {
	if s.opts.Webhooks != nil {
		s.opts.Webhooks.GroupChanged(group, action, by, users)
	}
}

func (s *Service) groupEvent(user, group, action, by string) {
	s.toUser(user, wire.GroupEvent{Kind: wire.KindGroup, Group: group, Action: action, By: by})
}

// DeviceOnline and DeviceOffline keep this node's group fan-out index:
// the presence hook calls them for every device that connects or leaves.
func (s *Service) DeviceOnline(ctx context.Context, user string) error {
	return s.fan.online(ctx, user)
}

// DeviceOffline is the counterpart of DeviceOnline.
func (s *Service) DeviceOffline(user string) { s.fan.offline(user) }
