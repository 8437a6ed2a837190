package store

import (
	"context"
	"errors"
)

// ErrLimit is returned when a group would pass its member limit.
var ErrLimit = errors.New("member limit reached")

// ErrGone refuses a membership change of a disbanded group.
var ErrGone = errors.New("group disbanded")

// Member roles.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Group is a group chat. Its messages are stored once, numbered by a per-group
// seq (read diffusion); members read them from their join onward.
type Group struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Owner   string `json:"owner"`
	Created int64  `json:"created"` // unix ms
	Members int    `json:"members"` // current member count
	// Administration (Batch.GroupUpdates): what the owner and admins set.
	Notice string `json:"notice,omitempty"`
	Avatar string `json:"avatar,omitempty"`
	Muted  bool   `json:"muted,omitempty"` // only the owner and admins may send
	// Disbanded is when the owner disbanded the group (unix ms; 0: it is
	// not): nothing more is stored in its log, members keep their rows.
	Disbanded int64 `json:"disbanded,omitempty"`
	// Changed is the seq of the newest group change record applied to the
	// row: an update at or below it is a replay and changes nothing.
	Changed uint64 `json:"changed,omitempty"`
}

// Member is one user's membership. The member sees messages with
// seq > JoinSeq; ReadSeq is its read position. JoinChanges and ReadChanges
// are how many change records (change.go) the group's log held up to
// JoinSeq and ReadSeq: a member's unread is the messages, not the changes,
// after its position (Unread). MentionSeq is the newest message that
// mentioned the member by name (Batch.Mentioned).
type Member struct {
	Group       string `json:"group"`
	User        string `json:"user"`
	Role        string `json:"role"`
	JoinSeq     uint64 `json:"join_seq"`
	ReadSeq     uint64 `json:"read_seq"`
	Joined      int64  `json:"joined"` // unix ms
	JoinChanges uint64 `json:"join_changes,omitempty"`
	ReadChanges uint64 `json:"read_changes,omitempty"`
	MentionSeq  uint64 `json:"mention_seq,omitempty"`
	// MuteUntil: the member may not send until then (unix ms).
	MuteUntil int64 `json:"mute_until,omitempty"`
	// Changed is the seq of the newest group change record applied to the
	// row (Batch.MemberUpdates), as Group.Changed.
	Changed uint64 `json:"changed,omitempty"`
}

// Unread is how many messages of the group's log up to h the member has
// not read: seqs after its position (read or join, the later, or the
// head's floor) that are not change records.
func (m Member) Unread(h GroupHead) int64 {
	pos, changes := m.JoinSeq, m.JoinChanges
	if m.ReadSeq > pos {
		pos, changes = m.ReadSeq, m.ReadChanges
	}
	if h.Floor > pos { // a retention sweep deleted those (retention.go)
		pos, changes = h.Floor, h.FloorChanges
	}
	if h.Seq <= pos {
		return 0
	}
	n := int64(h.Seq-pos) - int64(h.Changes-min(changes, h.Changes))
	return max(n, 0)
}

// Mentioned reports whether a message after the member's position
// mentioned it, by name or all.
func (m Member) Mentioned(h GroupHead) bool {
	pos := max(m.JoinSeq, m.ReadSeq)
	return m.MentionSeq > pos || h.MentionAll > pos
}

// GroupHead is where a group's log is: Seq its newest seq, MsgID and TS
// its newest message (not a change record), Changes how many change
// records the log holds, MentionAll the seq of the newest message that
// mentioned all. Commit moves each forward only; a head of a change record
// has MsgID 0 and leaves MsgID and TS as they are.
type GroupHead struct {
	Group      string `json:"group"`
	Seq        uint64 `json:"seq"`
	MsgID      int64  `json:"msg"`
	TS         int64  `json:"ts"`
	Changes    uint64 `json:"changes,omitempty"`
	MentionAll uint64 `json:"mention_all,omitempty"`
	// Floor is the highest seq a retention sweep deleted (store.Retention),
	// FloorChanges the change records up to it: unread never counts below
	// it. Only the sweep moves them, forward only; Commit leaves them.
	Floor        uint64 `json:"floor,omitempty"`
	FloorChanges uint64 `json:"floor_changes,omitempty"`
	// Disbanded is set (unix ms) by the head of a disband's record, the
	// last of the log: sync and heads tell a group is gone without
	// reading its row. Only grows, as the counters.
	Disbanded int64 `json:"disbanded,omitempty"`
}

// GroupRead moves a member's read position to Seq (never back). The store
// sets the member's ReadChanges from the change records up to Seq.
type GroupRead struct {
	Group string
	User  string
	Seq   uint64
}

// Groups are the group chats: groups, their members and read positions, and
// each group's message log by seq. A group message is a Message with Group
// and Seq set, committed (Messages.Commit) in a Batch with its GroupHead (and
// the sender's GroupRead): writes per message do not grow with the member count.
type Groups interface {
	// CreateGroup writes g and its first members (JoinSeq 0) atomically;
	// ErrExists if the ID is taken. Members is set from len(members).
	CreateGroup(ctx context.Context, g Group, members []Member) error
	// GetGroup returns ErrNotFound for an unknown group.
	GetGroup(ctx context.Context, id string) (Group, error)
	// AddMembers adds members, each joining at the group's current head seq
	// (JoinChanges: the head's Changes),
	// and returns those that were new; for users already members it only
	// changes the role when Role is set. ErrLimit, with nothing written, if
	// the group would pass limit members (0: no limit). ErrNotFound if the
	// group does not exist, ErrGone if it was disbanded.
	AddMembers(ctx context.Context, group string, ms []Member, limit int) (added []Member, err error)
	// RemoveMember ends a membership; ErrNotFound if there is none. It
	// removes from a disbanded group too (an erased account leaves every
	// group): refusing a member's own leave there is the caller's.
	RemoveMember(ctx context.Context, group, user string) error
	// GetMember returns ErrNotFound unless user is a member of group.
	GetMember(ctx context.Context, group, user string) (Member, error)
	// Members lists a group's members ordered by user ID, after the given
	// user ID ("" from the start), at most limit (0: DefaultLimit, capped 1000).
	Members(ctx context.Context, group, after string, limit int) ([]Member, error)
	// UserGroups lists user's memberships ordered by group ID.
	UserGroups(ctx context.Context, user string) ([]Member, error)
	// CountUserGroups counts user's memberships, stopping at most (0: all):
	// what the per-user group limit checks before an add, without reading
	// the memberships themselves.
	CountUserGroups(ctx context.Context, user string, most int) (int, error)
	// GroupHead returns the group's newest committed message (zero if none).
	GroupHead(ctx context.Context, group string) (GroupHead, error)
	// GroupHeads returns the heads of groups, in their order, in one read
	// (a device catching up its 500 groups asks once): a group with no
	// message, or none at all, has a zero head with its Group set.
	GroupHeads(ctx context.Context, groups []string) ([]GroupHead, error)
	// GroupRange returns the group's messages with seq > since, ascending, at most limit.
	GroupRange(ctx context.Context, group string, since uint64, limit int) ([]Message, error)
	// SetGroupReads moves read positions forward (never back), skipping
	// users who are not members; positions past the head are capped at it.
	SetGroupReads(ctx context.Context, reads []GroupRead) error
}
