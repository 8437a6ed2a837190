package api

import (
	"context"
	"io"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/media"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// What the API needs of the rest of the server, one small interface per
// role, declared here where they are used: *account.Service implements
// Accounts, *chat.Service Core, *media.Service MediaStore, every
// state.Presence DeviceLister (the pins are in fakes_test.go). Every method
// that takes a context blocks on I/O, bounded by it; the handlers pass the
// request's. The core's errors are its sentinels (chat/errors.go): a
// refusal wraps one and is answered by chat.Describe, its code, message
// and status (wire.HTTPStatus); any other error is a store failure (503).

// Registrar creates accounts (POST /v1/users).
type Registrar interface {
	// RegisterFrom creates the account user (in any case) for a client at
	// from ("ip:port") and returns its canonical ID. Errors: an
	// *account.Throttled past register_ip; account.ErrInvalid (a malformed
	// ID or a password out of 6 to 1024 bytes); account.ErrReserved;
	// account.ErrExists (any case of it is taken); else a store failure.
	RegisterFrom(ctx context.Context, from, user, password string) (string, error)
}

// Sessions issues, checks and revokes login tokens.
type Sessions interface {
	// LoginFrom checks user's password for a client at from and issues a
	// token for device. Errors: an *account.Throttled; account.ErrInvalid
	// (malformed user or device); account.ErrBadCredentials (wrong
	// password, or no such user: the two are not told apart); else a store
	// failure.
	LoginFrom(ctx context.Context, from, user, password, device string) (wire.Session, error)
	// Verify returns the row of a live token: account.ErrBadCredentials if
	// it is unknown, revoked or expired, else a store failure. It may
	// answer from a cache.
	Verify(ctx context.Context, token string) (store.Token, error)
	// Revoke deletes a token, everywhere it is cached. Idempotent; an
	// error is a store failure.
	Revoke(ctx context.Context, token string) error
}

// Accounts is what the API needs of the account service.
type Accounts interface {
	Registrar
	Sessions
}

// Messenger sends messages (POST /v1/messages).
type Messenger interface {
	// Send submits req from the sender and waits for the durable write.
	// It returns the ack; a refusal (any of chat's sentinels,
	// chat.ErrRateLimited among them); ctx's error if the request ended
	// first; else a store failure.
	Send(ctx context.Context, from chat.Sender, req wire.Send) (wire.Ack, error)
}

// Syncer answers sync requests (GET /v1/sync).
type Syncer interface {
	// Sync passes req's batches for user to emit in order; an error of
	// emit ends it and is returned. A refused request is a refusal
	// (chat.ErrNotMember); anything else a store failure.
	Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error
	// GroupHeads returns where each of user's groups is.
	GroupHeads(ctx context.Context, user string) (wire.Heads, error)
}

// Reader reads what a user has and sets what it has read.
type Reader interface {
	// Conversations is user's conversation list, newest first.
	Conversations(ctx context.Context, user string) (wire.Conversations, error)
	// History is user's conversation with peer before the message ID
	// before (0: the newest), newest first; a limit out of range is
	// clamped. A bad peer is chat.ErrBadRequest.
	History(ctx context.Context, user, peer string, before int64, limit int) (wire.History, error)
	// Read sets user's read position and returns the new unread counts;
	// a refused request is a refusal (chat.ErrBadRequest,
	// chat.ErrNotMember, chat.ErrNotFound).
	Read(ctx context.Context, user string, req wire.Read) (wire.Unread, error)
}

// Groups creates groups and manages their members. A refusal wraps one
// of chat's sentinels (ErrBadRequest, ErrNotMember, ErrForbidden,
// ErrNotFound, ErrExists, ErrGroupFull, ErrNoSuchUser); any other error is
// a store failure.
type Groups interface {
	// CreateGroup makes a group owned by owner and returns it.
	CreateGroup(ctx context.Context, owner string, req wire.GroupCreate) (wire.Group, error)
	// Groups lists the groups user is in.
	Groups(ctx context.Context, user string) (wire.Groups, error)
	// Group shows group to its member user, with the page of members
	// after the user ID after (limit 0: a default page).
	Group(ctx context.Context, user, group, after string, limit int) (wire.Group, error)
	// AddMembers adds users to group on actor's behalf (or makes them
	// admins) and returns the group.
	AddMembers(ctx context.Context, actor, group string, req wire.GroupMembers) (wire.Group, error)
	// RemoveMember removes user from group, or lets actor leave when user
	// is actor.
	RemoveMember(ctx context.Context, actor, group, user string) error
}

// Core is what the API needs of the IM core.
type Core interface {
	Messenger
	Syncer
	Reader
	Groups
	GroupAdmin
	ConvSettings
	Lifecycle
}

// MediaStore keeps uploaded media (/v1/media).
type MediaStore interface {
	// MaxLimit is the largest upload any type class allows, in bytes.
	MaxLimit() int64
	// Put streams body into a new object for up.Owner and returns its
	// Info. Errors: media's sentinels (ErrTooLarge, ErrTypeMismatch,
	// ErrEmpty, ErrTruncated, ErrBadName, ErrNotVideo, ErrNoHLS,
	// ErrBadVideo), store.ErrNoSpace or a disk full, else a failure.
	// It blocks while the body arrives; nothing is left of a failed one.
	Put(ctx context.Context, up media.Upload, body io.Reader) (media.Info, error)
	// Open opens one part of media id for user: media.ErrNotFound also
	// when user may not read it. The caller closes the reader.
	Open(ctx context.Context, user, id, part string) (media.Info, io.ReadSeekCloser, error)
}

// DeviceLister says which devices of a user are connected, and where
// (a state.Presence).
type DeviceLister interface {
	// Devices lists user's connected devices, ordered by device ID.
	Devices(ctx context.Context, user string) ([]state.Device, error)
}
