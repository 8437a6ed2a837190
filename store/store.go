// Package store is the durable source of truth of imqtt: accounts, tokens,
// messages, each user's version-ordered inbox index, per-conversation history
// index, recent-contact rows with unread counts, and the (sender, cmid) dedupe
// table. Everything in package state can be rebuilt from a Store.
//
// The table layout follows the design notes: a message table (stored once), an
// index table (user, peer, direction, message id, version) and a contact table
// (user, peer, last message, unread).
//
// The Store is split into roles; each consumer takes only those it calls,
// and store/storetest has one part per role:
//
//	Role           Methods                                     Taken by
//	Users          CreateUser, GetUser                         account; chat (does a recipient exist)
//	Tokens         PutToken, GetToken, DeleteToken             account
//	Accounts       Users + Tokens                              account.New
//	Versions       ReserveVersions                             state (memory, redis), wired in daemon
//	Messages       Commit, LookupAcks, Range, Head, History,   chat; sync (Range, Head, Epoch); api (Head)
//	               GetMessages, Epoch
//	Conversations  Conversations, SetRead                      chat
//	Groups         CreateGroup, GetGroup, AddMembers,          chat; sync (GroupRange, GroupHead);
//	               RemoveMember, GetMember, Members,           media (GetMember)
//	               UserGroups, GroupHead, GroupHeads,
//	               GroupRange, SetGroupReads
//	Grants         MediaGrants                                 media
//	Sessions       LoadSession, SaveSessions, DeleteSession,   session (persistent MQTT sessions)
//	               DeleteUserSessions
//	Push           PutPushDevice, GetPushDevice, PushDevices,  push (offline push: registrations and
//	               DeletePushDevice, ..., ClaimPushJobs,       the outbox); api (registrations)
//	               AddPushItems, ClaimPushDevice, ...
//	Webhooks       AddWebhookEvents, DueWebhookLanes,          webhook (the outbox of asynchronous
//	               ClaimWebhookLane, WebhookEvents, ...        events); chat (Batch.Webhooks)
//	Settings       PutConvSettings, GetConvSettings,           chat (mute, pin, total_unread); push (mute)
//	               UserConvSettings, ConvSettingsFor
//	Lives          ReactionsOf, UserReactions, Hidden,         chat; sync (ReactionsOf, Hidden)
//	               SetPeerRead, Put/GetUserSettings
//	Social         RequestContact, AcceptContact,              chat (contacts, blocks, accept_from);
//	               RemoveContact, Contacts, PutBlock,          presence (Contacts, LastSeen)
//	               Blockers, SetLastSeen, LastSeen, ...
//	Erasure        TombstoneUser, UserTombstone,               api (DELETE /v1/server/users/{user})
//	               DeleteUserTokens, EraseSentMessages,
//	               DeleteUserInbox
//	Retention      SweepMessages, SweepCursor, InboxFloor,     retention (the sweeper); sync (floors)
//	               GroupFloor
//	Burns          ReadBurns, DueBurns, DeleteBurns            chat (read); retention (the burner)
//	Directory      SearchUsers, SearchGroups                   api (the admin API's user and group search)
//	Lifecycle      Ping, Close                                 daemon
//
// Commit is the one write path of messages: a Batch carries the conversation
// updates, group heads and reads, and grants that the other roles read back.
//
// Implementations: store/pebble (embedded default), store/mongo (scale-out).
// Both implement the whole Store and pass the whole of store/storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
)

// Sentinel errors. Implementations wrap driver errors with what was being done
// and translate "not found" and "duplicate" into these.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrClosed   = errors.New("store closed")
	// ErrNoSpace refuses a write because the store's disk is (nearly) full.
	// Reads still work, and writes resume by themselves once there is room.
	ErrNoSpace = errors.New("no space left for the store")
	// ErrFailed refuses a write because an earlier one failed in a way the
	// store cannot continue from (the database said so). Reads may still
	// work; writes resume only once the store has reopened its database.
	ErrFailed = errors.New("store failed")
	// ErrFormat refuses to open data written in a store format this
	// build does not know (a newer release's).
	ErrFormat = errors.New("unknown store format")
)

// User is an account. PasswordHash is a PHC-formatted argon2id hash; the
// password itself is never stored.
//
// User IDs are case-insensitive: ID is canonical, ASCII lower case.
// CreateUser and GetUser fold the ID they are given (FoldID) before
// anything else, so "Alice" and "alice" are one account and creating
// either when the other exists is ErrExists. Display keeps the case the user
// registered with ("Alice"); empty in rows written before it existed.
// Every other method takes IDs already canonical.
//
// Rows written before IDs were folded may hold upper case ("Alice"): nothing
// reads them by that key any more, so such an account can no longer log in
// and its fold ("alice") can be registered anew. Nothing breaks on them.
type User struct {
	ID           string `json:"id"`
	Display      string `json:"display,omitempty"`
	PasswordHash string `json:"password_hash"`
	Created      int64  `json:"created"` // unix ms
	// Deleted is when the account was deleted (Erasure.TombstoneUser):
	// a tombstone, which GetUser does not return. 0: a live account.
	Deleted int64 `json:"deleted,omitempty"`
}

// FoldID is the canonical form of a user ID: ASCII letters in lower case,
// every other byte as it is (callers validate IDs as ASCII first; folding
// stays ASCII so no Unicode letter folds onto an ASCII one).
func FoldID(id string) string {
	for i := 0; i < len(id); i++ {
		if 'A' <= id[i] && id[i] <= 'Z' {
			b := []byte(id)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return id
}

// Token is a login session. Only the SHA-256 of the bearer token is stored
// (Hash, hex), so a leaked store leaks no usable token.
type Token struct {
	Hash    string `json:"hash"`
	User    string `json:"user"`
	Device  string `json:"device"`
	Expires int64  `json:"expires"` // unix ms
	Created int64  `json:"created"` // unix ms
}

// Message is stored once however many users index it.
type Message struct {
	ID    int64           `json:"id"` // snowflake
	From  string          `json:"from"`
	To    string          `json:"to,omitempty"`
	Group string          `json:"group,omitempty"`
	Seq   uint64          `json:"seq,omitempty"`
	Type  string          `json:"type"`
	Body  string          `json:"body"`
	Media string          `json:"media,omitempty"`
	Meta  json.RawMessage `json:"meta,omitempty"`
	CMID  string          `json:"cmid,omitempty"`
	TS    int64           `json:"ts"` // unix ms
	// Inline carries small media (a thumbnail, a short voice note) with the
	// message so a receiver shows or plays it without a second request.
	Inline *Inline `json:"inline,omitempty"`
	// Mentions are the user IDs a group message mentions, or "@all"
	// (docs/protocol.md#mentions); push reaches them where the group is muted.
	Mentions []string `json:"mentions,omitempty"`

	// ReplyTo is the message this one replies to (same conversation).
	ReplyTo int64 `json:"reply_to,omitempty"`
	// Recalled is when the message was recalled, by RecalledBy: it is a
	// tombstone (Batch.Recalls).
	Recalled   int64  `json:"recalled,omitempty"`
	RecalledBy string `json:"recalled_by,omitempty"`
	// Edited is when its body was last edited (Batch.Edits).
	Edited int64 `json:"edited,omitempty"`
	// Reacted says it has had a reaction (Lives.ReactionsOf has its own).
	Reacted bool `json:"reacted,omitempty"`
	// Change makes the message a change record of another (change.go).
	Change *Change `json:"change,omitempty"`
	// TTL (seconds) makes a 1:1 message burn after reading (retention.go).
	TTL int `json:"ttl,omitempty"`
}

// MentionAll in Message.Mentions mentions every member of the group.
const MentionAll = "@all"

// Inline is media bytes carried in a message.
type Inline struct {
	Type string `json:"type"` // MIME type
	Data []byte `json:"data"`
}

// Grant lets Principal ("u:{user}" or "g:{group}") read a media object: a
// message that refers to media grants it to the message's recipients.
// There is one row per (Media, Principal): a store keeps the highest MsgID
// committed for it, the newest message that granted it, and the retention
// sweep deletes the row only with that message (0: a row from before
// MsgID, deleted with any message of its media and principal).
type Grant struct {
	Media     string `json:"media"`
	Principal string `json:"principal"`
	MsgID     int64  `json:"msg,omitempty"`
}

// Entry is one row of a user's index: message MsgID is in User's inbox at
// version Ver, in the conversation with Peer; Out says User sent it.
type Entry struct {
	User  string `json:"user"`
	Ver   uint64 `json:"ver"`
	Peer  string `json:"peer"`
	Out   bool   `json:"out"`
	MsgID int64  `json:"msg"`
	// Change says MsgID is a change record (change.go): the entry is in
	// the inbox only, not in the history index, and moves no conversation.
	Change bool `json:"change,omitempty"`
}

// Event is an Entry with its message, as Range and History return them.
type Event struct {
	Entry
	Msg Message
}

// AckKey names a send: its sender and the client's cmid.
type AckKey struct{ From, CMID string }

// Ack is the dedupe row of a send: the same (From, CMID) always answers with
// the same ID, Ver (the sender's version) and TS.
type Ack struct {
	From  string `json:"from"`
	CMID  string `json:"cmid"`
	ID    int64  `json:"id"`
	Ver   uint64 `json:"ver"`
	TS    int64  `json:"ts"`
	Group string `json:"group,omitempty"` // for a group message, its group
	Seq   uint64 `json:"seq,omitempty"`   // and its seq (Ver is 0)
}

// ConvUpdate moves one user's conversation row forward for one new entry:
// Last becomes MsgID (at TS), and Unread grows by one when Incoming.
// Ver is the user's version of the entry: an implementation applies an update
// only if Ver is above the row's version, so replaying a batch is harmless.
type ConvUpdate struct {
	User     string
	Peer     string
	MsgID    int64
	TS       int64
	Ver      uint64
	Incoming bool
}

// Conversation is one recent-contact row.
type Conversation struct {
	User     string `json:"user"`
	Peer     string `json:"peer"`
	Last     int64  `json:"last"`      // last message ID
	LastTS   int64  `json:"last_ts"`   // its time, unix ms
	Ver      uint64 `json:"ver"`       // the user's version of the last update
	Unread   int64  `json:"unread"`    // incoming messages with ID > ReadUpto
	ReadUpto int64  `json:"read_upto"` // highest message ID read
	PeerRead int64  `json:"peer_read"` // the peer's ReadUpto, as SetPeerRead told it
}

// Batch is what one group commit writes.
type Batch struct {
	Messages []Message
	Entries  []Entry
	Acks     []Ack
	Convs    []ConvUpdate
	Grants   []Grant
	// Heads move group heads forward (a head only grows); Reads are group
	// read positions written with the messages (a sender has read its own).
	Heads []GroupHead
	Reads []GroupRead
	// PushJobs are the batch's messages to push (when push is on): one
	// per message, written with it (an existing one is left as it is).
	PushJobs []PushJob
	// Webhooks are the batch's webhook events (message.after_send, when
	// the webhook is on): written with the messages (an existing one is
	// left as it is).
	Webhooks []WebhookEvent
	// What change records (change.go) do to the messages they change, and
	// group members mentioned (Member.MentionSeq moves up to Seq).
	Recalls   []Recall
	Edits     []Edit
	Reactions []Reaction
	Hides     []Hide
	Clears    []Clear
	Mentioned []GroupRead
	// Burns are the batch's burn-after-reading messages, unread (Due 0):
	// an existing one is left as it is (retention.go).
	Burns []Burn
	// What group administration records (Change.Kind ChangeGroup) do to
	// the group's and its members' rows.
	GroupUpdates  []GroupUpdate
	MemberUpdates []MemberUpdate

	// Existing is filled by Commit in a store shared by several nodes: an
	// entry i means that Acks[i]'s (From, CMID) was already being stored
	// for another message (the same send resent to another node while the
	// first was committing, or after that node died mid-commit). Commit
	// then made sure that first message is wholly stored, wrote nothing of
	// the second, and Existing[i] is the first's ack, to answer with.
	Existing map[int]Ack
}

// Len is the number of messages in the batch.
func (b *Batch) Len() int { return len(b.Messages) }

// Store is the durable store: every role below, which pebble and mongo
// implement whole. Consumers take only the roles they call (the package doc
// lists who takes what). All methods are safe for concurrent use.
// A limit of 0 or less means the implementation's default (DefaultLimit).
type Store interface {
	Accounts
	Versions
	Messages
	Conversations
	Groups
	Grants
	Sessions
	Push
	Webhooks
	Settings
	Lives
	Social
	Erasure
	Retention
	Burns
	Lifecycle
	Directory
}

// Users are the accounts. CreateUser and GetUser fold the ID they are given
// (see User).
type Users interface {
	// CreateUser adds an account; ErrExists if the ID is taken (by an
	// account or a tombstone, Erasure).
	CreateUser(ctx context.Context, u User) error
	// GetUser returns ErrNotFound for an unknown ID and for a tombstone.
	GetUser(ctx context.Context, id string) (User, error)
}

// Tokens are the login sessions, by the SHA-256 of their bearer token.
type Tokens interface {
	// PutToken stores a session, replacing one with the same hash; GetToken
	// returns ErrNotFound for an unknown or deleted hash (expiry is the
	// caller's check); DeleteToken is idempotent.
	PutToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, hash string) (Token, error)
	DeleteToken(ctx context.Context, hash string) error
}

// Accounts are users and their sessions: what the account service needs.
type Accounts interface {
	Users
	Tokens
}

// Versions hands out blocks of inbox versions; the hot versions cache
// (package state) draws on it.
type Versions interface {
	// ReserveVersions durably reserves n versions of key (a user ID) and
	// returns the first: the block is [first, first+n). Blocks never overlap and
	// only grow, across restarts and crashes; a block that is not used to its end
	// leaves a hole, which sync's upto covers. The reservation may be made
	// durable lazily, but before any later Commit returns.
	ReserveVersions(ctx context.Context, key string, n uint64) (first uint64, err error)
}

// Messages is the message log: Commit, the one write path of messages, and
// the reads of messages, inboxes and 1:1 histories. A Batch also carries the
// conversation updates, group heads and reads, and grants of its messages,
// which the Conversations, Groups and Grants roles read back.
type Messages interface {
	// Commit writes a batch. The caller dedupes: a batch holds at most one Ack
	// per (From, CMID), and none for a pair LookupAcks already finds. When it returns nil the whole batch is durable;
	// when it returns an error nothing of it may be relied on, and the same
	// batch may be committed again without harm (keys are IDs and versions,
	// conversation updates are guarded by Ver). Pebble commits atomically.
	// A store shared by nodes also dedupes (From, CMID) across them and
	// reports what it found in b.Existing.
	Commit(ctx context.Context, b *Batch) error

	// LookupAcks returns the dedupe rows of the sends that have one, by key;
	// a key without one is absent from the map. The batcher asks once per
	// batch, so an implementation answers all keys in one pass (Pebble: one
	// iterator; MongoDB: one query per few hundred keys).
	LookupAcks(ctx context.Context, keys []AckKey) (map[AckKey]Ack, error)

	// Range returns user's events with ver > since, ascending by ver, at most
	// limit of them.
	Range(ctx context.Context, user string, since uint64, limit int) ([]Event, error)
	// Head returns user's highest committed version (0 if none).
	Head(ctx context.Context, user string) (uint64, error)

	// History returns the events of user's conversation with peer whose message
	// ID is below before (0: no bound), newest first, at most limit.
	History(ctx context.Context, user, peer string, before int64, limit int) ([]Event, error)

	// GetMessages returns the messages with these IDs, in the same order;
	// missing ones are skipped.
	GetMessages(ctx context.Context, ids []int64) ([]Message, error)

	// Epoch identifies this store's history. It changes only if the history is
	// lost (a new store), so a device whose cursor has another epoch resyncs.
	Epoch() string
}

// Conversations are the recent-contact rows: each user's conversations with
// their last message, unread count and read position. Commit moves them
// forward (Batch.Convs); SetRead moves the read position.
type Conversations interface {
	// Conversations returns user's conversation rows, newest LastTS first
	// (ties by Last descending).
	Conversations(ctx context.Context, user string) ([]Conversation, error)
	// SetRead moves user's read position with peer to upto (a message ID; 0,
	// or an ID past the conversation's last message, means the last message).
	// The position never moves back.
	// It recounts the conversation's unread (incoming entries with ID above the
	// position) atomically with respect to Commit, and returns the row.
	// ErrNotFound if there is no such conversation.
	SetRead(ctx context.Context, user, peer string, upto int64) (Conversation, error)
}

// Grants say who may read a media object; Commit writes them (Batch.Grants).
type Grants interface {
	// MediaGrants returns the principals granted media, in no set order.
	MediaGrants(ctx context.Context, media string) ([]string, error)
}

// Session is a device's persistent MQTT session (docs/protocol.md#persistent-sessions):
// what it has acknowledged of its inbox and of each of its groups, the
// subscriptions to restore when it comes back, and how long it is kept.
// The device is ClientID {User}/{Device}.
type Session struct {
	User, Device string
	Epoch        string            // the store's epoch the positions belong to
	Inbox        uint64            // highest inbox ver acknowledged, every one below it too
	Groups       map[string]uint64 // group → highest seq acknowledged, every one below it too
	Subs         []SessionSub      // the device's subscriptions, restored on resume
	Expiry       uint32            // seconds kept after a disconnect
	Holder       string            // the connection holding it ("node/nonce"), "" when none
	Disconnected int64             // unix ms of the holder's disconnect; 0 while held
}

// SessionID names a session: the device {User}/{Device}.
type SessionID struct{ User, Device string }

// SessionSub is one subscription of a session.
type SessionSub struct {
	Filter string
	QoS    byte
}

// Expired reports whether s, disconnected, has outlived its expiry at now
// (unix ms).
func (s Session) Expired(now int64) bool {
	return s.Disconnected > 0 && now > s.Disconnected+int64(s.Expiry)*1000
}

// Sessions are the persistent MQTT sessions, one per client ID. Positions
// never move back: SaveSessions keeps the higher of the stored and the
// given position of each stream, so a late write from a connection that
// was taken over cannot undo a newer one's acknowledgements (only
// DeleteSession starts a session over).
type Sessions interface {
	// LoadSession returns the session of user's device, ErrNotFound if
	// there is none (expiry is the caller's check).
	LoadSession(ctx context.Context, user, device string) (Session, error)
	// SaveSessions writes each session: Inbox and each Groups entry as the
	// higher of stored and given; Epoch, Subs, Expiry as given; Holder and
	// Disconnected as given unless the given session is a release
	// (Disconnected > 0) and the stored Holder is another connection's:
	// a release by a connection that was taken over leaves the holder be.
	// A group absent from the given Groups keeps its stored position.
	SaveSessions(ctx context.Context, ss []Session) error
	// DeleteSession removes the session of user's device; idempotent.
	DeleteSession(ctx context.Context, user, device string) error
	// DeleteSessions removes the sessions of the devices given, stored or
	// not, in one write: what every clean CONNECT asks [MQTT-3.1.2-6],
	// gathered (one write a second, however many devices connect).
	DeleteSessions(ctx context.Context, ids []SessionID) error
	// CountUserSessions returns how many sessions user has, counting no
	// further than limit (a cap's check need not read them all).
	CountUserSessions(ctx context.Context, user string, limit int) (int, error)
	// DeleteUserSessions removes every session of user (a ban, a deleted
	// account); idempotent.
	DeleteUserSessions(ctx context.Context, user string) error
}

// Lifecycle is the store as a running thing: whether it answers, and its end.
type Lifecycle interface {
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close flushes and closes; further calls return ErrClosed.
	Close() error
}

// DefaultLimit is what a limit of 0 means.
const DefaultLimit = 100
