package wire

import (
	"encoding/json"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// Message lifecycle (docs/protocol.md#message-lifecycle): uplink topics,
// requests and the events they cause. A recall, an edit and a reaction are
// changes of a stored message, stored themselves: each takes a version in
// both parties' inboxes (a seq in a group's log), so sync replays them. A
// delete hides messages from the deleter's own devices only. Receipts and
// typing are not stored.
const (
	TopicRecall = "im/recall"
	TopicEdit   = "im/edit"
	TopicDelete = "im/delete"
	TopicReact  = "im/react"
	TopicTyping = "im/typing"
)

// Event kinds of the lifecycle. A recall, edit, reaction or delete event
// is a Msg with that Kind (what sync replays is one list of them, in
// version order); a receipt and typing have types of their own.
const (
	KindRecall   = "recall"
	KindEdit     = "edit"
	KindDelete   = "delete"
	KindReaction = "reaction"
	KindReceipt  = "receipt"
	KindTyping   = "typing"
)

// Versioned reports whether events of kind are stored items of a stream
// (a user's inbox by ver, a group's log by seq): a message or a change of
// one. Sync replays them; a device's cursor moves over them.
func Versioned(kind string) bool {
	switch kind {
	case KindMsg, KindRecall, KindEdit, KindReaction, KindDelete, KindGroup:
		return true
	}
	return false
}

// Error codes of the lifecycle.
const (
	CodeNotAllowed = "not_allowed" // recall or edit of someone else's message, or of one that cannot be changed
	CodeTooLate    = "too_late"    // past the recall or edit window
)

// Recall is the payload of im/recall and the body of
// POST /v1/messages/{id}/recall (ID from the path).
type Recall struct {
	CMID string `json:"cmid"`
	ID   string `json:"id"`
}

// Edit is the payload of im/edit and the body of PATCH /v1/messages/{id}.
type Edit struct {
	CMID string          `json:"cmid"`
	ID   string          `json:"id"`
	Body string          `json:"body"`
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Delete is the payload of im/delete and the body of
// POST /v1/messages/delete: hide messages from one's own devices. Peer,
// instead of IDs, clears the whole conversation with Peer
// (DELETE /v1/conversations/{peer}).
type Delete struct {
	CMID string   `json:"cmid"`
	IDs  []string `json:"ids,omitempty"`
	Peer string   `json:"peer,omitempty"`
}

// MaxDeleteIDs bounds Delete.IDs.
const MaxDeleteIDs = 100

// React is the payload of im/react; over HTTP,
// PUT and DELETE /v1/messages/{id}/reactions/{emoji}.
type React struct {
	CMID  string `json:"cmid"`
	ID    string `json:"id"`
	Emoji string `json:"emoji"`
	Op    string `json:"op"` // ReactAdd or ReactRemove
}

// Ops of a React.
const (
	ReactAdd    = "add"
	ReactRemove = "remove"
)

// MaxEmojiBytes bounds a reaction's emoji.
const MaxEmojiBytes = 32

// ValidEmoji reports whether s is one emoji: a single grapheme cluster of
// at most MaxEmojiBytes bytes holding at least one pictographic or symbol
// rune (so "a", "." or "$" is none, "👍🏽" and "👨‍👩‍👧" are).
func ValidEmoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	cluster, rest, _, _ := uniseg.FirstGraphemeClusterInString(s, -1)
	if rest != "" || cluster != s {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 0x1F000, // the emoji planes (pictographs, flags' regional indicators, …)
			unicode.Is(unicode.So, r) && r >= 0x2000: // symbols: ☕ ♥ ✅ ⭐ …
			return true
		}
	}
	return false
}

// Typing is the payload of im/typing and the body of POST /v1/typing.
type Typing struct {
	Peer  string `json:"peer,omitempty"`
	Group string `json:"group,omitempty"`
	State string `json:"state"` // TypingStart or TypingStop
}

// States of a Typing.
const (
	TypingStart = "start"
	TypingStop  = "stop"
)

// TypingEvent tells a user that From is typing to it (Peer is then From's
// peer: the receiver) or in Group. Sent at QoS 0, never stored.
type TypingEvent struct {
	Kind  string `json:"kind"` // "typing"
	From  string `json:"from"`
	Peer  string `json:"peer,omitempty"`
	Group string `json:"group,omitempty"`
	State string `json:"state"`
}

// Receipt tells a user that Peer has read their conversation up to the
// message Upto (docs/protocol.md#read-receipts).
type Receipt struct {
	Kind string `json:"kind"` // "receipt"
	Peer string `json:"peer"`
	Upto string `json:"upto"`
	TS   int64  `json:"ts"`
}

// Quote is what a reply shows of the message it replies to, as that
// message is now: its body cut to QuoteRunes characters, none once it is
// recalled.
type Quote struct {
	From     string `json:"from"`
	Type     string `json:"type,omitempty"`
	Body     string `json:"body,omitempty"`
	Recalled bool   `json:"recalled,omitempty"`
}

// QuoteRunes is how much of a replied message's body a Quote carries.
const QuoteRunes = 200

// ReactionCount is one emoji's reactions on a message: how many, and the
// first users (at most ReactionUsers).
type ReactionCount struct {
	Count int64    `json:"count"`
	Users []string `json:"users"`
}

// ReactionUsers caps ReactionCount.Users.
const ReactionUsers = 20

// UserSettings are a user's own settings: GET and PUT /v1/me/settings. A
// PUT changes the fields it has.
type UserSettings struct {
	// ReadReceipts: reading a 1:1 conversation tells the peer, and the
	// peer's reads are shown. false turns both off, as WhatsApp does.
	ReadReceipts *bool `json:"read_receipts,omitempty"`
	// AcceptFrom: AcceptAnyone (the default) or AcceptContacts (a 1:1
	// send from anyone else is refused not_contact).
	AcceptFrom string `json:"accept_from,omitempty"`
	// Presence: PresenceContacts (the default: contacts see it) or
	// PresenceNobody.
	Presence string `json:"presence,omitempty"`
}

// GroupReads is the reply of GET /v1/groups/{gid}/messages/{seq}/reads:
// how many members have read the message at seq and how many not, and
// who has (a page of them, by user ID).
type GroupReads struct {
	Read   int64    `json:"read"`
	Unread int64    `json:"unread"`
	Users  []string `json:"users"`
}
