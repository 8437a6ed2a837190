package chat

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Group administration (docs/http.md#group-administration): renaming,
// the notice and avatar, muting everyone or one member, transferring and
// disbanding. Each goes the way of a change (life.go): queued, checked by
// the batcher against the group as the batch sees it, given a seq in the
// group's log and committed as a record (store.ChangeGroup) in the same
// write as the rows it changes (Batch.GroupUpdates, MemberUpdates), then
// fanned out to the members like a message. Sync replays the records.
//
// An administration op ends its batch (runBatcher): the sends queued
// after it are checked in the next batch, against the group as it made
// it, so nothing is stored after a disband and no plain member's send
// after a mute.

// MaxMuteUntil bounds a member's mute_until (unix ms, the year 9999).
const MaxMuteUntil = 253402300799999

// groupAdmin is what an administration op asks (change.admin).
type groupAdmin struct {
	group  string
	action string // wire.Group…
	patch  wire.GroupPatch
	user   string // owner: the new owner; mute: the member
	until  int64  // mute
	// media: the avatar is a media object the actor may read, which the
	// record grants to the group's members (as a message's media is).
	media string

	// Set by the batcher: the owner who hands over (owner).
	oldOwner string
}

// PatchGroup changes a group's name, notice, avatar or muted (the owner
// and admins) and returns the group as it is then.
func (s *Service) PatchGroup(ctx context.Context, from Sender, group string, p wire.GroupPatch) (wire.Group, error) {
	if err := checkPatch(p); err != nil {
		return wire.Group{}, err
	}
	action := wire.GroupUpdated
	if p.Name == nil && p.Notice == nil && p.Avatar == nil {
		action = wire.GroupMuteAll
	}
	a := &groupAdmin{action: action, patch: p}
	if p.Avatar != nil && isMediaID(*p.Avatar) {
		// Members read the avatar as they read a message's media: by a
		// grant to the group, which only media the actor may read gets.
		if _, err := s.attach(ctx, from.User, *p.Avatar); err != nil {
			return wire.Group{}, err
		}
		a.media = *p.Avatar
	}
	group, err := s.administer(ctx, from, group, a)
	if err != nil {
		return wire.Group{}, err
	}
	return s.Group(ctx, from.User, group, "", 0)
}

// DisbandGroup disbands a group (the owner): nothing more can be sent to
// it or changed in it; its members keep their rows and read its history
// up to the disband, the last item of its log. Every member is told
// (a "disbanded" group event).
func (s *Service) DisbandGroup(ctx context.Context, from Sender, group string) error {
	group, err := s.administer(ctx, from, group, &groupAdmin{action: wire.GroupDisbanded})
	if err != nil {
		return err
	}
	// Told after the commit, past the caller's deadline: a client that
	// went away does not leave members untold.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
	defer cancel()
	for after := ""; ; {
		ms, err := s.st.Members(ctx, group, after, 1000)
		if err != nil {
			s.log.Warn("tell members of a disband; they learn it by sync", "group", group, "err", err)
			return nil
		}
		for _, m := range ms {
			s.groupEvent(m.User, group, wire.GroupDisbanded, from.User)
		}
		if len(ms) < 1000 {
			return nil
		}
		after = ms[len(ms)-1].User
	}
}

// TransferGroup makes a member the owner (the owner only); the old owner
// becomes an admin.
func (s *Service) TransferGroup(ctx context.Context, from Sender, group string, req wire.GroupTransfer) (wire.Group, error) {
	user, ok := wire.NormUser(req.User)
	if !ok {
		return wire.Group{}, refuse(ErrNotMember, "user: not a member of the group")
	}
	group, err := s.administer(ctx, from, group, &groupAdmin{action: wire.GroupOwner, user: user})
	if err != nil {
		return wire.Group{}, err
	}
	return s.Group(ctx, from.User, group, "", 0)
}

// MuteMember mutes a member until a time (0 unmutes): the owner and
// admins; an admin mutes plain members only.
func (s *Service) MuteMember(ctx context.Context, from Sender, group, user string, req wire.MemberMute) (wire.Member, error) {
	if req.MuteUntil < 0 || req.MuteUntil > MaxMuteUntil {
		return wire.Member{}, refuse(ErrBadRequest, "mute_until: unix ms, 0 to unmute")
	}
	u, ok := wire.NormUser(user)
	if !ok {
		return wire.Member{}, refuse(ErrNotMember, "user: not a member of the group")
	}
	group, err := s.administer(ctx, from, group, &groupAdmin{action: wire.GroupMuteMember, user: u, until: req.MuteUntil})
	if err != nil {
		return wire.Member{}, err
	}
	m, err := s.st.GetMember(ctx, group, u)
	if err != nil {
		return wire.Member{}, errStore("member", err)
	}
	return toWireMember(m), nil
}

// isMediaID reports whether an avatar names a media object (an ID of
// POST /v1/media, "m-" and 26 base32 letters) rather than a URL.
func isMediaID(s string) bool {
	if len(s) != 28 || !strings.HasPrefix(s, "m-") {
		return false
	}
	for _, c := range s[2:] {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// checkPatch: at least one field, each within its size, text valid UTF-8.
func checkPatch(p wire.GroupPatch) error {
	if p.Name == nil && p.Notice == nil && p.Avatar == nil && p.Muted == nil {
		return refuse(ErrBadRequest, "nothing to change: name, notice, avatar or muted")
	}
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{{"name", p.Name, wire.MaxGroupName}, {"notice", p.Notice, wire.MaxGroupNotice}, {"avatar", p.Avatar, wire.MaxGroupAvatar}} {
		switch {
		case f.v == nil:
		case len(*f.v) > f.max:
			return refuse(ErrTooLarge, f.name+" over "+strconv.Itoa(f.max)+" bytes")
		case !utf8.ValidString(*f.v):
			return refuse(ErrBadRequest, f.name+" is not valid UTF-8")
		}
	}
	return nil
}

// administer queues an administration op within the actor's send rate
// and waits for it; it returns the group's canonical ID.
func (s *Service) administer(ctx context.Context, from Sender, group string, a *groupAdmin) (string, error) {
	group, err := normGroup(group)
	if err != nil {
		return "", err
	}
	a.group = group
	if !from.Server { // an operator's action (operator.go) is not a user's send
		if err := s.limit(ctx, from.User); err != nil {
			return "", err
		}
	}
	// The op's own cmid: nothing resends it, and no user's cmid can be it.
	cmid := "admin-" + rand.Text()
	op := &sendOp{from: from, req: wire.Send{CMID: cmid, Group: group}, start: time.Now(),
		chg: &change{kind: store.ChangeGroup, admin: a}}
	if _, err = Wait(ctx, func(done func(Result)) {
		op.done = done
		s.enqueue(ctx, op)
	}); err != nil {
		return group, err
	}
	var users []string
	if a.user != "" {
		users = []string{a.user}
	}
	s.groupChanged(group, a.action, from.User, users)
	return group, nil
}

// groupOf returns the group as the batch sees it (read once a batch),
// nil if there is none.
func (s *Service) groupOf(ctx context.Context, v *batchView, group string) (*store.Group, error) {
	if g, ok := v.groups[group]; ok {
		return g, nil
	}
	var g *store.Group
	switch got, err := s.st.GetGroup(ctx, group); {
	case err == nil:
		g = &got
	case !errors.Is(err, store.ErrNotFound):
		return nil, errStore("group", err)
	}
	v.groups[group] = g
	return g, nil
}

// memberOf returns user's membership as the batch sees it (read once a
// batch), nil if it is none.
// otherMember is the member a acts on (a.user), who must be a member and
// not the actor (self: the refusal's message then).
func (s *Service) otherMember(ctx context.Context, v *batchView, a *groupAdmin, actor, self string) (*store.Member, error) {
	them, err := s.memberOf(ctx, v, a.group, a.user)
	switch {
	case err != nil:
		return nil, err
	case them == nil:
		return nil, refuse(ErrNotMember, a.user+" is not a member of "+a.group)
	case a.user == actor:
		return nil, refuse(ErrBadRequest, self)
	}
	return them, nil
}

func (s *Service) memberOf(ctx context.Context, v *batchView, group, user string) (*store.Member, error) {
	key := [2]string{group, user}
	if m, ok := v.members[key]; ok {
		return m, nil
	}
	var m *store.Member
	switch got, err := s.st.GetMember(ctx, group, user); {
	case err == nil:
		m = &got
	case !errors.Is(err, store.ErrNotFound):
		return nil, errStore("member", err)
	}
	v.members[key] = m
	return m, nil
}

func groupGone(group string) error {
	return refuse(ErrGroupGone, "group "+group+" was disbanded")
}

func isAdmin(m *store.Member) bool {
	return m.Role == store.RoleOwner || m.Role == store.RoleAdmin
}

// mayPost checks a member's send to a group as the batch sees it: not
// disbanded, the member not muted, the group not muted unless the member
// is its owner or an admin.
func mayPost(g *store.Group, m *store.Member, now time.Time) error {
	switch {
	case g.Disbanded != 0:
		return groupGone(g.ID)
	case m.MuteUntil > now.UnixMilli():
		return refuse(ErrMuted, "you are muted in group "+g.ID+" until "+time.UnixMilli(m.MuteUntil).UTC().Format(time.RFC3339))
	case g.Muted && !isAdmin(m):
		return refuse(ErrMuted, "group "+g.ID+" is muted: only its owner and admins may send")
	}
	return nil
}

// checkAdmin decides an administration op against the batch's view and
// applies it there.
func (s *Service) checkAdmin(ctx context.Context, op *sendOp, v *batchView) error {
	a, actor := op.chg.admin, op.from.User
	me, err := s.memberOf(ctx, v, a.group, actor)
	if err != nil {
		return err
	}
	g, err := s.groupOf(ctx, v, a.group)
	if err != nil {
		return err
	}
	if op.from.Server && a.action == wire.GroupDisbanded { // an operator's disband (operator.go)
		if g == nil {
			return refuse(ErrNotFound, "no such group: "+a.group)
		}
		if g.Disbanded != 0 {
			return groupGone(a.group)
		}
		g.Disbanded = time.Now().UnixMilli()
		return nil
	}
	if me == nil || g == nil {
		return notMember(a.group)
	}
	if g.Disbanded != 0 {
		return groupGone(a.group)
	}
	switch a.action {
	case wire.GroupUpdated, wire.GroupMuteAll:
		if !isAdmin(me) {
			return refuse(ErrNotAllowed, "only the owner and admins change the group")
		}
		p := a.patch
		if p.Name != nil {
			g.Name = *p.Name
		}
		if p.Notice != nil {
			g.Notice = *p.Notice
		}
		if p.Avatar != nil {
			g.Avatar = *p.Avatar
		}
		if p.Muted != nil {
			g.Muted = *p.Muted
		}
	case wire.GroupDisbanded:
		if me.Role != store.RoleOwner {
			return refuse(ErrNotAllowed, "only the owner disbands the group")
		}
		g.Disbanded = time.Now().UnixMilli()
	case wire.GroupOwner:
		if me.Role != store.RoleOwner {
			return refuse(ErrNotAllowed, "only the owner hands the group over")
		}
		them, err := s.otherMember(ctx, v, a, actor, "you are the owner already")
		switch {
		case err != nil:
			return err
		}
		a.oldOwner = actor
		g.Owner, me.Role, them.Role = a.user, store.RoleAdmin, store.RoleOwner
		them.MuteUntil = 0 // nobody mutes the owner, and it could not unmute itself
	case wire.GroupMuteMember:
		if !isAdmin(me) {
			return refuse(ErrNotAllowed, "only the owner and admins mute members")
		}
		them, err := s.otherMember(ctx, v, a, actor, "you cannot mute yourself")
		switch {
		case err != nil:
			return err
		case them.Role == store.RoleOwner || them.Role == store.RoleAdmin && me.Role != store.RoleOwner:
			return refuse(ErrNotAllowed, "the owner mutes admins; admins mute members; nobody mutes the owner")
		}
		them.MuteUntil = a.until
	}
	return nil
}

// allocateAdmin adds an administration op's record, at seq (the group's
// count-th change), and the rows it changes to b.
func (s *Service) allocateAdmin(op *sendOp, seq, count uint64, b *store.Batch) {
	a, user := op.chg.admin, op.from.User
	rec := store.Message{ID: s.ids.Load().Generate().Int64(), From: user, Group: a.group, Seq: seq, CMID: op.req.CMID,
		TS: time.Now().UnixMilli(), Change: &store.Change{Kind: store.ChangeGroup, Count: count}}
	gc := &store.GroupChange{Action: a.action}
	head := store.GroupHead{Group: a.group, Seq: seq, Changes: count}
	switch a.action {
	case wire.GroupUpdated, wire.GroupMuteAll:
		p := a.patch
		gc.Name, gc.Notice, gc.Avatar, gc.Muted = p.Name, p.Notice, p.Avatar, p.Muted
		b.GroupUpdates = append(b.GroupUpdates, store.GroupUpdate{MsgID: rec.ID, Group: a.group, Seq: seq,
			Name: p.Name, Notice: p.Notice, Avatar: p.Avatar, Muted: p.Muted})
		if a.media != "" {
			b.Grants = append(b.Grants, store.Grant{Media: a.media, Principal: "g:" + a.group})
		}
	case wire.GroupDisbanded:
		head.Disbanded = rec.TS
		b.GroupUpdates = append(b.GroupUpdates, store.GroupUpdate{MsgID: rec.ID, Group: a.group, Seq: seq, Disbanded: rec.TS})
	case wire.GroupOwner:
		gc.User = a.user
		b.GroupUpdates = append(b.GroupUpdates, store.GroupUpdate{MsgID: rec.ID, Group: a.group, Seq: seq, Owner: a.user})
		b.MemberUpdates = append(b.MemberUpdates,
			store.MemberUpdate{MsgID: rec.ID, Group: a.group, User: a.user, Seq: seq, Role: store.RoleOwner, MuteUntil: new(int64)},
			store.MemberUpdate{MsgID: rec.ID, Group: a.group, User: a.oldOwner, Seq: seq, Role: store.RoleAdmin})
	case wire.GroupMuteMember:
		gc.User, gc.Until = a.user, a.until
		until := a.until
		b.MemberUpdates = append(b.MemberUpdates, store.MemberUpdate{MsgID: rec.ID, Group: a.group, User: a.user, Seq: seq, MuteUntil: &until})
	}
	rec.Change.Admin = gc
	b.Heads = append(b.Heads, head)
	b.Messages = append(b.Messages, rec)
	op.msg = &b.Messages[len(b.Messages)-1]
	op.ack = len(b.Acks)
	b.Acks = append(b.Acks, store.Ack{From: user, CMID: rec.CMID, ID: rec.ID, TS: rec.TS, Group: a.group, Seq: seq})
}

// toWireMember shows a member, its mute_until while it lasts.
func toWireMember(m store.Member) wire.Member {
	out := wire.Member{User: m.User, Role: m.Role, JoinSeq: m.JoinSeq}
	if m.MuteUntil > time.Now().UnixMilli() {
		out.MuteUntil = m.MuteUntil
	}
	return out
}
