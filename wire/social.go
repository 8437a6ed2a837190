package wire

// Contacts, blocks, privacy, presence and group administration
// (docs/protocol.md#contacts-and-privacy, docs/http.md#contacts-and-privacy).
// Contact requests, blocks and settings are made over HTTP; what they
// cause reaches every device of the users concerned as events on their
// inbox topics.

// Event kinds of the social graph.
const (
	// KindContact: a contact request, its acceptance, or a removal
	// (ContactEvent), to both sides.
	KindContact = "contact"
	// KindPresence: a contact came online or went offline (PresenceEvent),
	// debounced: a reconnect within PresenceDebounce is no change.
	KindPresence = "presence"
	// KindBlock: the user blocked or unblocked someone (BlockEvent), to
	// the user's own devices only.
	KindBlock = "block"
)

// Error codes of the social graph and of group administration.
const (
	CodeBlocked    = "blocked"     // the recipient blocked the sender (403)
	CodeNotContact = "not_contact" // the recipient accepts messages from its contacts only (403)
	CodeMuted      = "muted"       // the sender is muted in the group, or the group is muted (403)
	CodeGroupGone  = "group_gone"  // the group was disbanded (410)
	CodeNoRequest  = "no_request"  // accepting a contact request that was never made (404)
	CodeSelf       = "self"        // a contact or block on oneself (400)
	// A user's contacts (any state) or blocks are at the server's limit (409).
	CodeTooManyContacts = "too_many_contacts"
	CodeTooManyBlocks   = "too_many_blocks"
)

// Contact states, as the user sees its side.
const (
	ContactPendingIn  = "pending_in"  // the other asked; the user may accept or decline
	ContactPendingOut = "pending_out" // the user asked; the other has not answered
	ContactAccepted   = "accepted"
)

// Contact actions (ContactEvent.Action); "accepted" is ContactAccepted.
const (
	ContactRequested = "request"
	ContactRemoved   = "removed"
)

// ContactAsk is the body of POST /v1/contacts: a request to User.
type ContactAsk struct {
	User string `json:"user"`
}

// Contact is one row of GET /v1/contacts: the other user, the state of
// the contact from the caller's side, and since when (unix ms).
type Contact struct {
	User  string `json:"user"`
	State string `json:"state"`
	Since int64  `json:"since"`
}

// Contacts is the reply of GET /v1/contacts.
type Contacts struct {
	Contacts []Contact `json:"contacts"`
}

// ContactEvent tells both sides of a contact what happened to it: User is
// the other side (to the requester of a request, the one asked).
type ContactEvent struct {
	Kind   string `json:"kind"`   // "contact"
	Action string `json:"action"` // ContactRequested, ContactAccepted, ContactRemoved
	User   string `json:"user"`
	Since  int64  `json:"since,omitempty"`
}

// Block is one row of GET /v1/blocks.
type Block struct {
	User  string `json:"user"`
	Since int64  `json:"since"`
}

// Blocks is the reply of GET /v1/blocks.
type Blocks struct {
	Blocks []Block `json:"blocks"`
}

// BlockEvent tells the user's own devices of a block it made or lifted.
type BlockEvent struct {
	Kind    string `json:"kind"` // "block"
	User    string `json:"user"`
	Blocked bool   `json:"blocked"`
}

// Who a user accepts 1:1 messages from (UserSettings.AcceptFrom), and
// whom it shows its presence to (UserSettings.Presence).
const (
	AcceptAnyone     = "anyone"
	AcceptContacts   = "contacts"
	PresenceContacts = "contacts"
	PresenceNobody   = "nobody"
)

// PresenceDebounceSeconds: a user whose devices all went offline and one
// came back within it did not go offline.
const PresenceDebounceSeconds = 10

// Presence is one user's presence as another user may see it: LastSeen
// (unix ms) is when its last device went offline, 0 while online or if
// never seen.
type Presence struct {
	User     string `json:"user"`
	Online   bool   `json:"online"`
	LastSeen int64  `json:"last_seen"`
}

// PresenceList is the reply of GET /v1/presence?users=a,b: only the users
// who share their presence with the caller, in the order asked.
type PresenceList struct {
	Presence []Presence `json:"presence"`
}

// MaxPresenceUsers bounds the users of one GET /v1/presence.
const MaxPresenceUsers = 200

// PresenceEvent tells a user that a contact came online or went offline.
type PresenceEvent struct {
	Kind     string `json:"kind"` // "presence"
	User     string `json:"user"`
	Online   bool   `json:"online"`
	LastSeen int64  `json:"last_seen,omitempty"`
}

// EventKind is KindPresence.
func (PresenceEvent) EventKind() string { return KindPresence }

// Group administration (docs/http.md#group-administration). Each change is
// stored in the group's log as an item of kind "group" (Msg with Action
// and the fields it changed), which members receive live and sync replays.
const (
	GroupAdded      = "added"     // User joined (By added them)
	GroupRemoved    = "removed"   // User left or was removed
	GroupUpdated    = "updated"   // Name, Notice and/or Avatar changed (those set)
	GroupDisbanded  = "disbanded" // the owner disbanded the group: nothing more can be sent
	GroupOwner      = "owner"     // User is the new owner (By was)
	GroupMuteMember = "mute"      // User is muted until Until (0: unmuted)
	GroupMuteAll    = "mute_all"  // Muted: only the owner and admins may send
)

// GroupPatch is the body of PATCH /v1/groups/{gid} (owner and admins):
// the fields set change, an absent one stays. Muted mutes everyone but
// the owner and admins.
type GroupPatch struct {
	Name   *string `json:"name,omitempty"`
	Notice *string `json:"notice,omitempty"`
	Avatar *string `json:"avatar,omitempty"` // a media ID, or a URL
	Muted  *bool   `json:"muted,omitempty"`
}

// Limits of group fields.
const (
	MaxGroupName   = 256
	MaxGroupNotice = 4096
	MaxGroupAvatar = 512
)

// GroupTransfer is the body of POST /v1/groups/{gid}/owner (owner only):
// User, a member, becomes the owner and the owner an admin.
type GroupTransfer struct {
	User string `json:"user"`
}

// MemberMute is the body of PUT /v1/groups/{gid}/members/{user} (owner
// and admins; an admin cannot mute the owner or another admin): the
// member may not send until MuteUntil (unix ms; 0 unmutes).
type MemberMute struct {
	MuteUntil int64 `json:"mute_until"`
}
