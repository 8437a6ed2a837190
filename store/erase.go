package store

import "context"

// DeletedSender is what the From of a deleted user's messages becomes
// (Erasure.EraseSentMessages): a reserved ID (wire.ReservedUser) no one
// can register, so an anonymised message is never taken for anyone's.
const DeletedSender = "deleted"

// Erasure deletes a user's data (DELETE /v1/server/users/{user}, GDPR-style:
// docs/integration.md#server-api). The deletion is a sequence of steps the
// caller runs in order, each idempotent and bounded by its limit (0 or less:
// DefaultLimit), so a large history is erased in batches and a deletion
// cut short (a crash, a deadline) finishes when it is run again.
//
//	TombstoneUser        the account becomes a tombstone: no login, ID kept
//	DeleteUserTokens     every login token, in batches
//	EraseSentMessages    the messages the user sent, anonymised in place
//	DeleteUserInbox      the user's inbox and history index and conversations
type Erasure interface {
	// TombstoneUser replaces user's account with a tombstone dated at (unix
	// ms): from then on GetUser answers ErrNotFound and CreateUser
	// ErrExists, so the ID can never be registered again (no one inherits
	// the deleted user's conversations); the display name and password hash
	// are dropped. Tombstoning a tombstone keeps its first date.
	// ErrNotFound if user has neither an account nor a tombstone.
	TombstoneUser(ctx context.Context, user string, at int64) error
	// UserTombstone returns when user was tombstoned; ErrNotFound if user
	// is not a tombstone (an account, or nothing).
	UserTombstone(ctx context.Context, user string) (int64, error)
	// DeleteUserTokens deletes up to limit of user's login tokens and
	// returns their hashes (so caches can forget them); none: none left.
	DeleteUserTokens(ctx context.Context, user string, limit int) ([]string, error)
	// EraseSentMessages anonymises up to limit of the messages user sent,
	// 1:1 and group, found by their dedupe rows (Ack): From becomes
	// DeletedSender; Body, Meta, Media, Inline, Mentions and CMID are
	// erased; ID, To, Group, Seq, Type and TS stay, so every other
	// participant's history, versions and seqs are unchanged, and so does
	// the state of a message (ReplyTo, Recalled, Edited, Reacted) and a
	// change record's Change, so sync still replays a recall as a recall
	// (a RecalledBy naming the user becomes DeletedSender). The dedupe
	// rows go with them. It returns how many messages it did (0: none
	// left) and the media IDs they referred to.
	EraseSentMessages(ctx context.Context, user string, limit int) (n int, media []string, err error)
	// DeleteUserInbox deletes up to limit of user's inbox entries with their
	// history entries, and once none is left the user's conversation rows;
	// it returns how many rows it deleted (0: none left). Messages stay:
	// they belong to their senders' histories too.
	DeleteUserInbox(ctx context.Context, user string, limit int) (int, error)
}
