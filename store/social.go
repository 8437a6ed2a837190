package store

import "context"

// The social graph (docs/http.md#contacts-and-privacy): contacts, blocks
// and when each user was last seen.

// Contact states, from Contact.User's side.
const (
	ContactPendingOut = "pending_out" // User asked Peer
	ContactPendingIn  = "pending_in"  // Peer asked User
	ContactAccepted   = "accepted"
)

// Contact is one side of a contact: a contact between a and b is two rows,
// (a, b) and (b, a), written together, whose states mirror each other
// (pending_out / pending_in, or accepted / accepted).
type Contact struct {
	User  string `json:"user"`
	Peer  string `json:"peer"`
	State string `json:"state"`
	Since int64  `json:"since"` // unix ms of the last change of state
}

// Block is User's block of Peer.
type Block struct {
	User  string `json:"user"`
	Peer  string `json:"peer"`
	Since int64  `json:"since"`
}

// Social is the social graph. A contact's two rows change together: on
// Pebble in one write; on MongoDB each write is idempotent so a change
// interrupted half-way is finished by repeating it.
type Social interface {
	// RequestContact records from's request to to at ts and returns
	// from's row after it: a new request is pending_out; a request to
	// one who asked from already makes both accepted; a request that is
	// pending or accepted already stays as it is (Since unchanged).
	RequestContact(ctx context.Context, from, to string, ts int64) (Contact, error)
	// AcceptContact accepts peer's pending request to user and returns
	// user's row (accepted); ErrNotFound if peer has no pending request
	// to user. Accepting an accepted contact returns it as it is.
	AcceptContact(ctx context.Context, user, peer string, ts int64) (Contact, error)
	// RemoveContact removes both rows (a decline, a withdrawal or a
	// removal) and returns user's row as it was; ErrNotFound if there
	// was none.
	RemoveContact(ctx context.Context, user, peer string) (Contact, error)
	// GetContact returns user's row with peer; ErrNotFound if none.
	GetContact(ctx context.Context, user, peer string) (Contact, error)
	// Contacts lists user's rows by Peer after after ("": from the
	// start), at most limit (0: DefaultLimit, capped at 1000); state ""
	// lists every state, else only that one. One range read: the
	// presence fan-out pages a user's accepted contacts with it.
	Contacts(ctx context.Context, user, state, after string, limit int) ([]Contact, error)
	// CountContacts counts user's rows, stopping at most (0: all).
	CountContacts(ctx context.Context, user string, most int) (int, error)

	// PutBlock records user's block of peer (idempotent: Since stays);
	// DeleteBlock lifts it (idempotent).
	PutBlock(ctx context.Context, b Block) error
	DeleteBlock(ctx context.Context, user, peer string) error
	// Blocks lists user's blocks by Peer after after, at most limit.
	Blocks(ctx context.Context, user, after string, limit int) ([]Block, error)
	// Blockers returns which of users have blocked peer, in one read per
	// few hundred users: the send path asks for a 1:1 batch's recipients
	// and a group message's mentioned members at once.
	Blockers(ctx context.Context, peer string, users []string) (map[string]bool, error)
	// CountBlocks counts user's blocks, stopping at most (0: all).
	CountBlocks(ctx context.Context, user string, most int) (int, error)

	// SetLastSeen records when user's last device went offline (0: it is
	// online now); LastSeen returns it for users, absent if never set.
	SetLastSeen(ctx context.Context, user string, ts int64) error
	LastSeen(ctx context.Context, users []string) (map[string]int64, error)

	// Gates answers, for each pair, what a 1:1 send from Peer to User
	// must know (Gate), in one call for a whole batch of sends: a read of
	// blocks and one of settings per few hundred pairs, and one of
	// contacts for the pairs whose User takes contacts only.
	Gates(ctx context.Context, pairs []Pair) (map[Pair]Gate, error)

	// DeleteUserSocial deletes up to limit of a deleted user's rows: its
	// contacts (both rows of each), the blocks it made, then its last
	// seen; it returns how many it deleted (0: none left). Others' blocks
	// of the user stay (they name a tombstone no one can log in as).
	DeleteUserSocial(ctx context.Context, user string, limit int) (int, error)
}

// Pair names User's relation to Peer.
type Pair struct{ User, Peer string }

// Gate is what the send path knows of a Pair: User blocked Peer; User
// accepts 1:1 sends from accepted contacts only (UserSettings.AcceptFrom);
// Peer is User's accepted contact (asked only when ContactsOnly).
type Gate struct {
	Blocked      bool
	ContactsOnly bool
	Contact      bool
}

// MaxSocialLimit caps the limit of Contacts and Blocks.
const MaxSocialLimit = 1000
