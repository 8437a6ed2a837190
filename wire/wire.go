// Package wire defines what travels between imqtt clients and the server:
// topic names, the JSON payloads of docs/protocol.md, identifier rules and error
// codes. The server, the Go SDK and the CLI all speak through these types.
package wire

import (
	"encoding/json"
	"strings"
)

// Uplink topics (client to server). Identity always comes from the connection.
const (
	TopicSend = "im/send"
	TopicSync = "im/sync"
	TopicRead = "im/read"
)

// InboxTopic is where every device of user receives new events.
func InboxTopic(user string) string { return userTopics + user + "/inbox" }

// DeviceTopic carries replies for one device: acks, errors, sync batches.
func DeviceTopic(user, device string) string { return userTopics + user + "/d/" + device }

// UserPrefix is the topic subtree a client of user may subscribe to.
func UserPrefix(user string) string { return userTopics + user + "/" }

// User and group IDs (docs/protocol.md#identity). An ID is 1 to 64 of A-Z a-z 0-9 _ . - and
// does not begin with a dot: ".", ".." and ".x" are refused, so an ID is
// always one plain path segment (GET /v1/conversations/{peer}/messages never
// becomes another route) and one plain topic level.
//
// IDs are case-insensitive. The canonical ID is the ASCII lower-case form:
// it is what topics, storage keys, tokens and every API use. A client may
// write "Alice" where it names a user (register, login, to, peer, members)
// and the server folds it to "alice"; registering "Alice" creates "alice"
// with display name "Alice", and "ALICE" is then taken. MQTT CONNECT is the
// exception: its username and client ID name topics, so they must already
// be canonical (CanonicalUser). Group IDs follow the same rules.

// ValidUser reports whether s is a well-formed user or group ID in any case
// (checked on every publish: a loop, not a regexp).
func ValidUser(s string) bool { return validID(s, true) }

// NormUser returns the canonical form of the user or group ID s (ASCII
// lower case) and whether s is well-formed. It allocates only when s has
// upper-case letters.
func NormUser(s string) (string, bool) {
	if !ValidUser(s) {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s), true // ASCII only: ValidUser said so
		}
	}
	return s, true
}

// CanonicalUser reports whether s is a well-formed ID already in canonical
// (lower-case) form.
func CanonicalUser(s string) bool {
	n, ok := NormUser(s)
	return ok && n == s
}

// ReservedUser reports whether the canonical ID id is kept from
// registration: names an operator's or the server's own messages could be
// taken for (the server's own messages come from "system": docs/protocol.md#identity).
func ReservedUser(id string) bool {
	switch id {
	case "system", "admin", "root", "deleted": // deleted: a deleted user's messages (store.DeletedSender)
		return true
	}
	return false
}

// ValidDevice reports whether s is a well-formed device ID (docs/protocol.md#identity): 1 to
// 64 of A-Z a-z 0-9 _ -.
func ValidDevice(s string) bool { return validID(s, false) }

func validID(s string, dot bool) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		case c == '.' && dot:
		default:
			return false
		}
	}
	return true
}

// ClientID is the MQTT client ID of user's device: "{user}/{device}".
func ClientID(user, device string) string { return user + "/" + device }

// SplitClientID splits an MQTT client ID "{user}/{device}".
func SplitClientID(id string) (user, device string, ok bool) {
	user, device, ok = strings.Cut(id, "/")
	return user, device, ok && ValidUser(user) && ValidDevice(device)
}

// Message types accepted in a send (docs/protocol.md#events).
var MessageTypes = map[string]bool{
	"text": true, "image": true, "audio": true, "video": true, "file": true, "custom": true,
}

// Event kinds.
const (
	KindAck    = "ack"
	KindError  = "error"
	KindMsg    = "msg"
	KindSync   = "sync"
	KindUnread = "unread"
	KindGroup  = "group"  // a membership change: {"kind":"group","group":"g1","action":"added","by":"alice"}
	KindHeads  = "heads"  // where each of the user's groups is: the answer to a sync request with heads set
	KindResync = "resync" // to a persistent session: sync this range yourself (docs/protocol.md#persistent-sessions)
	// KindSettings: the user changed a conversation's settings (ConvSettings).
	KindSettings = "settings"
)

// Resync tells a device with a persistent session that the server will not
// replay Since < ver (seq, with Group) <= Upto to it: more was missed than
// one reconnect replays (Reason "backlog"), or the store's history was
// replaced (Reason "epoch"). The device fetches the range with im/sync;
// the session goes on after Upto.
type Resync struct {
	Kind   string `json:"kind"` // "resync"
	Group  string `json:"group,omitempty"`
	Since  uint64 `json:"since"`
	Upto   uint64 `json:"upto"`
	Reason string `json:"reason"`
}

// Reasons of a Resync.
const (
	ResyncBacklog = "backlog"
	ResyncEpoch   = "epoch"
)

// Error codes carried in error events and HTTP error bodies.
const (
	CodeBadRequest   = "bad_request"   // malformed JSON or a field out of range
	CodeBadType      = "bad_type"      // type is not one of MessageTypes
	CodeMissingTo    = "missing_to"    // neither to nor group
	CodeMissingCMID  = "missing_cmid"  // cmid empty or too long
	CodeTooLarge     = "too_large"     // body or payload over the limit
	CodeNoSuchUser   = "no_such_user"  // the recipient does not exist
	CodeNotMember    = "not_member"    // group: not a member
	CodeUnauthorized = "unauthorized"  // no or bad credentials
	CodeForbidden    = "forbidden"     // authenticated but not allowed
	CodeExists       = "exists"        // the user already exists
	CodeUnavailable  = "unavailable"   // the store failed; nothing was stored, resend the same cmid
	CodeBusy         = "busy"          // the server is overloaded; resend later with the same cmid
	CodeRateLimited  = "rate_limited"  // more sends than the server allows a user; resend later with the same cmid
	CodeUnknownTopic = "unknown_topic" // publish to an uplink topic that does not exist
	CodeInternal     = "internal"
	CodeNotFound     = "not_found"
	CodeGroupFull    = "group_full" // the group's member limit is reached
	// CodeTooManyGroups: a user to be added is in as many groups as a user may be.
	CodeTooManyGroups = "too_many_groups"
	// CodeTooManySettings: the user has set as many conversations as a user may.
	CodeTooManySettings = "too_many_settings"

	CodeTypeMismatch   = "type_mismatch"   // media: the declared Content-Type is not what the bytes are
	CodeHLSUnavailable = "hls_unavailable" // media: private video needs ffmpeg on the server
	CodeBadMedia       = "bad_media"       // media: a video ffmpeg cannot read

	CodeTimeout = "request_timeout" // HTTP: the request body did not arrive in time (408)

	// CodeRejected: the content filter or the before_send webhook refused
	// the send; nothing was stored, and the same send will be refused again.
	CodeRejected = "rejected"
	// CodeSignupClosed: the server takes no public sign-up (--signup closed).
	CodeSignupClosed = "signup_closed"
)

// Send is the payload of im/send and POST /v1/messages.
type Send struct {
	CMID  string          `json:"cmid"`
	To    string          `json:"to,omitempty"`
	Group string          `json:"group,omitempty"`
	Type  string          `json:"type"`
	Body  string          `json:"body"`
	Media string          `json:"media,omitempty"`
	Meta  json.RawMessage `json:"meta,omitempty"`
	// ReplyTo is the ID of a message of the same conversation the sender
	// can see; the message then carries a Quote of it.
	ReplyTo string `json:"reply_to,omitempty"`
	// Edit is the server's, never a client's (a send carrying it is
	// refused): in a message.before_send request it names the message an
	// edit changes, since an edit passes through the hook as a send.
	Edit string `json:"edit,omitempty"`
	// Mentions names members of the group (a send to a group only): user
	// IDs, or MentionAll (the group's owner and admins only). At most
	// MaxMentions.
	Mentions []string `json:"mentions,omitempty"`
	// TTL, in seconds, makes a 1:1 message burn after reading: it is
	// recalled for both sides (a recall with expired set) TTL seconds
	// after the recipient reads it. 0: kept (up to the retention).
	TTL int `json:"ttl,omitempty"`
}

// MaxTTL bounds Send.TTL: a week.
const MaxTTL = 7 * 24 * 3600

// MentionAll in Send.Mentions mentions every member of the group.
const MentionAll = "@all"

// MaxMentions bounds Send.Mentions.
const MaxMentions = 50

// Ack confirms a durably stored send. The same cmid always gets the same ID and Ver.
type Ack struct {
	Kind  string `json:"kind"` // "ack"
	CMID  string `json:"cmid"`
	ID    string `json:"id"`
	Ver   uint64 `json:"ver"` // the sender's version of this message (0 for a group message)
	TS    int64  `json:"ts"`
	Group string `json:"group,omitempty"` // a group message's group
	Seq   uint64 `json:"seq,omitempty"`   // and its seq in the group
}

// Error is an error event on the device topic and the HTTP error body.
type Error struct {
	Kind string `json:"kind,omitempty"` // "error" on MQTT, empty over HTTP
	CMID string `json:"cmid,omitempty"`
	// Group names the group of the group sync this error answers, so a
	// device syncing several groups at once knows which one failed.
	Group   string `json:"group,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an Error with a code.
func NewError(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Msg is a message event as one user sees it: Ver is that user's version
// (Seq, in a group, the group's). It is also each stored change of a
// message (Kind KindRecall, KindEdit, KindReaction, KindDelete), so that
// the live events and what sync replays are one list in version order:
//
//	msg       id, from, to/group, type, body, media, meta, ts, [reply_to, quote,
//	          recalled, edited, reactions] — as the message is now
//	recall    id, by, ts
//	edit      id, body, [meta], edited
//	reaction  id, from, emoji, op
//	delete    ids or peer (one's own devices only)
//
// each with ver (or group and seq). A recalled message is a tombstone:
// Recalled, no body, media, meta or inline.
type Msg struct {
	Kind  string          `json:"kind"` // "msg", or the change's kind
	ID    string          `json:"id,omitempty"`
	Ver   uint64          `json:"ver,omitempty"`
	From  string          `json:"from,omitempty"`
	To    string          `json:"to,omitempty"`
	Group string          `json:"group,omitempty"`
	Seq   uint64          `json:"seq,omitempty"`
	Type  string          `json:"type,omitempty"`
	Body  string          `json:"body,omitempty"`
	Media string          `json:"media,omitempty"`
	Meta  json.RawMessage `json:"meta,omitempty"`
	TS    int64           `json:"ts"`
	CMID  string          `json:"cmid,omitempty"`
	// Inline carries small media (a thumbnail, a short voice note) so the
	// receiver shows or plays it without a second request.
	Inline *Inline `json:"inline,omitempty"`
	// Mentions are the send's mentions (a group message).
	Mentions []string `json:"mentions,omitempty"`

	// A message's state.
	ReplyTo   string                   `json:"reply_to,omitempty"`
	Quote     *Quote                   `json:"quote,omitempty"`
	Recalled  bool                     `json:"recalled,omitempty"`
	Edited    int64                    `json:"edited,omitempty"` // unix ms of the last edit
	Reactions map[string]ReactionCount `json:"reactions,omitempty"`

	// A change's.
	By    string   `json:"by,omitempty"`    // recall: who recalled it
	Emoji string   `json:"emoji,omitempty"` // reaction
	Op    string   `json:"op,omitempty"`    // reaction: ReactAdd, ReactRemove
	IDs   []string `json:"ids,omitempty"`   // delete: the messages hidden
	Peer  string   `json:"peer,omitempty"`  // delete: the conversation cleared

	// Expired: a recall made by the server when a burn-after-reading
	// message's TTL ran out after it was read (By is empty).
	Expired bool `json:"expired,omitempty"`
	// TTL (seconds) makes a message burn after reading: it is recalled
	// for both sides TTL seconds after the recipient reads it.
	TTL int `json:"ttl,omitempty"`
	// Blocked marks, for a reader who blocked the sender, a group
	// message of the sender's: the group log is shared, so the server
	// marks it and the reader's clients hide it.
	Blocked bool `json:"blocked,omitempty"`

	// A group event's (Kind "group": group administration, stored in the
	// group's log; From is who made the change): Action is one of the
	// Group… actions and the fields below what it set.
	Action string  `json:"action,omitempty"`
	User   string  `json:"user,omitempty"`   // added, removed, owner, mute: the member
	Name   *string `json:"name,omitempty"`   // updated
	Notice *string `json:"notice,omitempty"` // updated
	Avatar *string `json:"avatar,omitempty"` // updated
	Until  int64   `json:"until,omitempty"`  // mute: muted until (unix ms), 0 unmuted
	Muted  *bool   `json:"muted,omitempty"`  // mute_all
}

// Change reports whether m is a change of a message rather than a message.
func (m *Msg) Change() bool { return m.Kind != KindMsg && m.Kind != "" }

// Inline is media bytes carried in a message event; Data is base64 in JSON.
type Inline struct {
	Type string `json:"type"`
	Data []byte `json:"data"`
}

// SyncRequest asks for everything with since < ver (docs/protocol.md#versions-and-offline-sync).
type SyncRequest struct {
	Since    uint64 `json:"since"`
	Limit    int    `json:"limit,omitempty"`
	Compress string `json:"compress,omitempty"` // "gzip" compresses each reply payload
	Epoch    string `json:"epoch,omitempty"`    // the epoch the device's cursor belongs to
	Group    string `json:"group,omitempty"`
	// Heads asks instead for where each of the user's groups is (a Heads
	// event): one request tells a device which groups moved while it was
	// away, however many it is in. The other fields are ignored.
	Heads bool `json:"heads,omitempty"`
}

// GroupHead is where one group is for a member: its newest message (Seq),
// the seq the member joined at (Join: it sees the messages after it) and
// its read position (Read). A device whose cursor for the group is below
// Seq syncs the group from its cursor.
type GroupHead struct {
	Group string `json:"group"`
	Seq   uint64 `json:"seq"`
	Join  uint64 `json:"join"`
	Read  uint64 `json:"read"`
	// Gone: the group was disbanded; Seq is its last item, the disband.
	Gone bool `json:"gone,omitempty"`
}

// Heads is the answer to a heads request: every group the user is in,
// ordered by group ID. A group the device has a cursor for and that is not
// listed is one the user has left, or that is gone.
type Heads struct {
	Kind   string      `json:"kind"` // "heads"
	Groups []GroupHead `json:"groups"`
}

// Sync is one batch of a sync reply. Items hold since < ver <= Upto in order; the
// device is complete through Upto. More says another batch or request follows.
// Reset says the cursor the device sent belonged to history that is gone
// (another epoch, or a version past the server's): drop it and use these items.
type Sync struct {
	Kind  string `json:"kind"`            // "sync"
	Group string `json:"group,omitempty"` // a group sync: Since and Upto are seqs
	Since uint64 `json:"since"`
	Upto  uint64 `json:"upto"`
	More  bool   `json:"more"`
	Epoch string `json:"epoch"`
	Reset bool   `json:"reset,omitempty"`
	// Gone, in a group sync: the group was disbanded; its log ends with
	// the disband, and nothing more will come.
	Gone  bool  `json:"gone,omitempty"`
	Items []Msg `json:"items"`
}

// Read sets a read position (docs/protocol.md#unread-counts-and-conversations).
type Read struct {
	Peer  string `json:"peer,omitempty"`
	Upto  string `json:"upto,omitempty"` // a message ID; empty means everything so far
	Group string `json:"group,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
}

// Unread tells every device of a user its new counts after a read.
type Unread struct {
	Kind  string `json:"kind"` // "unread"
	Total int64  `json:"total"`
	Peer  string `json:"peer,omitempty"`
	Group string `json:"group,omitempty"`
	Count int64  `json:"count"`
}

// Conversation is one row of the conversation list. A muted one's unread
// is not in the total; pinned ones come first.
type Conversation struct {
	Peer   string `json:"peer,omitempty"`
	Group  string `json:"group,omitempty"`
	Last   *Msg   `json:"last,omitempty"`
	Unread int64  `json:"unread"`
	// Mentioned: a group message mentioned the user since it last read.
	Mentioned bool `json:"mentioned,omitempty"`
	// PeerRead is the peer's read position (a message ID) in a 1:1
	// conversation, when both have read receipts on.
	PeerRead string `json:"peer_read,omitempty"`
	Muted    bool   `json:"muted,omitempty"`  // muted now (mute, or mute_until ahead)
	Pinned   bool   `json:"pinned,omitempty"` // pin
}

// ConvSettings are one user's settings of one conversation (Peer or Group):
// the body of PUT /v1/conversations/{peer}/settings and
// PUT /v1/groups/{gid}/settings (which name the conversation in the path;
// a PUT replaces, so an absent field is false or 0), their reply and GET's,
// and, with Kind "settings", the event to every device of the user.
// MuteUntil is unix ms: muted until then, with Mute false.
type ConvSettings struct {
	Kind      string `json:"kind,omitempty"` // "settings" in an event
	Peer      string `json:"peer,omitempty"`
	Group     string `json:"group,omitempty"`
	Mute      bool   `json:"mute"`
	MuteUntil int64  `json:"mute_until"`
	Pin       bool   `json:"pin"`
}

// Conversations is the reply of GET /v1/conversations.
type Conversations struct {
	TotalUnread   int64          `json:"total_unread"`
	Conversations []Conversation `json:"conversations"`
}

// History is the reply of GET /v1/conversations/{peer}/messages, newest first.
type History struct {
	Messages []Msg `json:"messages"`
}

// Register and Login bodies, and the login reply.
type Register struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type Login struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Device   string `json:"device"`
}

// Session is the login reply. User is the canonical (lower-case) ID to use
// everywhere; Display is the ID in the case the user registered it with,
// for showing.
type Session struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"` // unix milliseconds
	User      string `json:"user"`
	Display   string `json:"display,omitempty"`
	Device    string `json:"device"`
}

// Registered is the reply of POST /v1/users.
type Registered struct {
	User    string `json:"user"`    // canonical
	Display string `json:"display"` // as registered
}

// Endpoint is one row of GET /v1/endpoints.
type Endpoint struct {
	Node string  `json:"node"`
	MQTT string  `json:"mqtt"`
	WS   string  `json:"ws"`
	Load float64 `json:"load"`
}

type Endpoints struct {
	Endpoints []Endpoint `json:"endpoints"`
}
