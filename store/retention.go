package store

import "context"

// Retention (docs/operations.md#retention): messages older than a period
// are deleted in the background, in chunks, with every row that points at
// them. Burn after reading (docs/protocol.md#burn-after-reading): a 1:1
// message with a TTL is recalled for both sides TTL seconds after its
// recipient reads it.

// BurnedBy is the recaller (Recall.By, Message.RecalledBy, a change
// record's From) of a message burnt after reading: the server's reserved
// sender, which recalls nothing else.
const BurnedBy = "system"

// Sweep is what one SweepMessages call did.
type Sweep struct {
	// Messages is how many messages (and change records) it deleted.
	Messages int
	// Cursor is the stored progress after it: every message with an ID
	// below Cursor is gone. It never moves back.
	Cursor int64
	// Done says no message below the call's before is left.
	Done bool
}

// Retention deletes old messages. Message IDs are snowflakes, so "older
// than" is "ID below" a bound the caller computes from a time.
type Retention interface {
	// SweepMessages deletes at most limit messages (0: DefaultLimit) with
	// ID below before, starting at the stored cursor, oldest first, and
	// moves the cursor past them. With each message go, in the same
	// atomic write on Pebble (idempotent deletes on MongoDB, so a sweep
	// interrupted anywhere is finished by the next): its history entries,
	// its parties' inbox entries (an inbox is swept from its oldest entry
	// while the entries point at swept messages, and the user's floor
	// becomes the highest version swept), a group message's log row (the
	// group's floor becomes its seq), its reactions, its media grant, its
	// dedupe row; a conversation row left with no message goes, one left
	// with some has Last and Unread recounted. Several sweepers (nodes)
	// may run at once: they delete the same rows, which is harmless.
	SweepMessages(ctx context.Context, before int64, limit int) (Sweep, error)
	// SweepCursor returns the stored cursor (0 if none).
	SweepCursor(ctx context.Context) (int64, error)
	// InboxFloor returns the highest inbox version of user that a sweep
	// deleted (0: none): a sync cursor below it points into deleted
	// history. GroupFloor is the same for a group's seqs.
	InboxFloor(ctx context.Context, user string) (uint64, error)
	GroupFloor(ctx context.Context, group string) (uint64, error)
}

// Burn is a burn-after-reading message: MsgID, sent by Peer to User
// with TTL seconds. Due is when it is to be recalled (unix ms), set when
// User reads it; 0 until then.
type Burn struct {
	MsgID int64  `json:"msg"`
	User  string `json:"user"`
	Peer  string `json:"peer"`
	TTL   int    `json:"ttl"`
	Due   int64  `json:"due,omitempty"`
}

// Burns are the pending burns: Commit writes one unread per message with a
// TTL (Batch.Burns), a read makes them due, the burner recalls them when
// due and then deletes them. A restart loses none: they are stored.
type Burns interface {
	// ReadBurns makes due, at now plus its TTL, every unread burn of
	// user's conversation with peer whose message ID is at most upto, and
	// returns them. A burn due already keeps its time.
	ReadBurns(ctx context.Context, user, peer string, upto, now int64) ([]Burn, error)
	// DueBurns returns burns due at or before now, soonest first, at most
	// limit (0: DefaultLimit). Several nodes may get the same: the recall
	// is deduplicated (system, cmid) like any change, so it is stored once.
	DueBurns(ctx context.Context, now int64, limit int) ([]Burn, error)
	// DeleteBurns deletes the burns of these messages; idempotent.
	DeleteBurns(ctx context.Context, ids []int64) error
}
