package store

import (
	"context"
	"encoding/json"
)

// Changes of stored messages (docs/protocol.md#message-lifecycle). A
// recall, an edit, a reaction and a delete-for-me are each committed as a
// change record: a Message of its own with Change set, from the user who
// made it, with its own ID, and
//   - 1:1: an Entry (Change set) in each party's inbox at a new version (a
//     delete: in the deleter's only), never in the history index, moving no
//     conversation row and no unread count;
//   - group: a new seq in the group's log and a GroupHead that moves Seq and
//     Changes but not the last message (read diffusion holds: one write per
//     change, not per member).
//
// The same Batch carries what the change does to the message itself
// (Recalls, Edits, Reactions, Hides, Clears), which each store applies
// idempotently: a batch committed twice changes nothing more.
// Range, History and GroupRange return change records like messages, and
// every message as it is now (a tombstone, the edited body).

// Kinds of Change.
const (
	ChangeRecall   = "recall"
	ChangeEdit     = "edit"
	ChangeReaction = "reaction"
	ChangeDelete   = "delete"
	// ChangeGroup is a group's administration (Change.Admin): a record in
	// the group's log committed with the GroupUpdates and MemberUpdates
	// it made, which moves no unread and no last message.
	ChangeGroup = "group"
)

// Change is what a change record (Message.Change) records.
type Change struct {
	Kind   string  `json:"kind"`
	Target int64   `json:"target,omitempty"` // the message changed (recall, edit, reaction)
	Emoji  string  `json:"emoji,omitempty"`  // reaction
	Add    bool    `json:"add,omitempty"`    // reaction: added; else removed
	IDs    []int64 `json:"ids,omitempty"`    // delete: the messages hidden
	Peer   string  `json:"peer,omitempty"`   // delete: the conversation with Peer cleared (no IDs)
	// Count, in a group, is the change's ordinal among the group's change
	// records (1, 2, …): GroupHead.Changes once it is committed.
	Count uint64 `json:"count,omitempty"`
	// Admin is what a ChangeGroup record did.
	Admin *GroupChange `json:"admin,omitempty"`
}

// GroupChange is what a group administration record records
// (docs/protocol.md#group-administration): Action is one of the wire
// Group… actions ("updated", "disbanded", "owner", "mute", "mute_all"),
// the fields what it set.
type GroupChange struct {
	Action string  `json:"action"`
	User   string  `json:"user,omitempty"` // owner: the new owner; mute: the member
	Name   *string `json:"name,omitempty"`
	Notice *string `json:"notice,omitempty"`
	Avatar *string `json:"avatar,omitempty"`
	Muted  *bool   `json:"muted,omitempty"`
	Until  int64   `json:"until,omitempty"` // mute: until (unix ms), 0 unmuted
}

// GroupUpdate changes a group's row, committed with the change record
// MsgID at Seq in the group's log. Set fields change; Owner "" keeps it;
// Disbanded 0 keeps it. Applied only if Seq is above the row's Changed,
// so a batch committed twice, or an older one after a newer, changes
// nothing more.
type GroupUpdate struct {
	MsgID     int64
	Group     string
	Seq       uint64
	Name      *string
	Notice    *string
	Avatar    *string
	Muted     *bool
	Owner     string
	Disbanded int64
}

// MemberUpdate changes a member's row with record MsgID at Seq, as
// GroupUpdate a group's: Role "" keeps it, MuteUntil nil keeps it. A user
// who is not a member is skipped.
type MemberUpdate struct {
	MsgID     int64
	Group     string
	User      string
	Seq       uint64
	Role      string
	MuteUntil *int64
}

// Recall makes MsgID a tombstone: Recalled and RecalledBy set; Body,
// Media, Meta, Inline and Mentions cleared. A message recalled already
// keeps its first recall.
type Recall struct {
	MsgID int64
	By    string
	TS    int64
}

// Edit replaces MsgID's Body and Meta and sets Edited to TS, unless the
// message is recalled: a recall always wins, whichever commits first.
type Edit struct {
	MsgID int64
	Body  string
	Meta  json.RawMessage
	TS    int64
}

// Reaction adds (Add) or removes one user's Emoji on MsgID. There is at
// most one per (MsgID, User, Emoji): adding one that is there, or removing
// one that is not, changes nothing. The store keeps per (MsgID, Emoji) the
// count and the first users (ReactionUsers of them), and sets the
// message's Reacted once it has had one.
type Reaction struct {
	MsgID int64
	User  string
	Emoji string
	Add   bool
	TS    int64
}

// ReactionUsers caps ReactionSum.Users.
const ReactionUsers = 20

// ReactionSum is one emoji's reactions to a message.
type ReactionSum struct {
	Emoji string
	Count int64
	Users []string // the first ReactionUsers who reacted, in no set order
}

// Hide removes MsgID from User's own view ("delete for me"). A 1:1 message
// (Peer set: the other party): its entries in User's inbox and history go,
// and User's conversation row with Peer follows (Last becomes the newest
// message left, or the row goes with the last one; Unread is recounted).
// A group message (Group set): a hidden row, which Hidden reports.
type Hide struct {
	User  string
	MsgID int64
	Peer  string
	Group string
}

// Clear removes User's whole conversation with Peer from User's view: every
// entry in its history index with message ID <= Upto, their inbox entries,
// and the conversation row (a message after Upto starts it anew).
type Clear struct {
	User string
	Peer string
	Upto int64
}

// RevokedGrant is the principal of a grant that takes a media object from
// everyone: a recalled message's media is no longer served (the media
// service checks for it first).
const RevokedGrant = "-"

// UserSettings are a user's own settings (docs/http.md#user-settings).
type UserSettings struct {
	User string `json:"user"`
	// NoReadReceipts turns read receipts off both ways.
	NoReadReceipts bool `json:"no_read_receipts,omitempty"`
	// AcceptFrom is "" (anyone, the default) or AcceptContacts: a 1:1
	// send from anyone but an accepted contact is refused.
	AcceptFrom string `json:"accept_from,omitempty"`
	// Presence is "" (contacts see it, the default) or PresenceNobody.
	Presence string `json:"presence,omitempty"`
	Updated  int64  `json:"updated"`
}

// The non-default values of UserSettings.AcceptFrom and Presence.
const (
	AcceptContacts = "contacts"
	PresenceNobody = "nobody"
)

// Lives are the reads and writes of message changes outside Commit.
type Lives interface {
	// ReactionsOf returns the reactions of the messages ids that have any,
	// each message's by Emoji ascending.
	ReactionsOf(ctx context.Context, ids []int64) (map[int64][]ReactionSum, error)
	// UserReactions returns the emojis user has on msg, ascending.
	UserReactions(ctx context.Context, msg int64, user string) ([]string, error)
	// Hidden returns which of ids user has hidden (Batch.Hides of group
	// messages).
	Hidden(ctx context.Context, user string, ids []int64) (map[int64]bool, error)
	// SetPeerRead moves PeerRead of user's conversation row with peer
	// forward to upto (never back); ErrNotFound if there is no row.
	SetPeerRead(ctx context.Context, user, peer string, upto int64) error
	// PutUserSettings replaces user's settings; GetUserSettings returns
	// the zero settings (with User set) if there are none.
	PutUserSettings(ctx context.Context, s UserSettings) error
	GetUserSettings(ctx context.Context, user string) (UserSettings, error)
}
