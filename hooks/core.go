package hooks

import (
	"context"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/wire"
)

// What the hooks need of the rest of the server, one small interface per
// role, declared here where they are used. *chat.Service implements
// Submitter, Syncer and Reader (so Core) and LocalIndex; *account.Service
// Authenticator (auth.go); bans.List BanChecker (ban.go); every
// state.Presence PresenceRecorder; *mqtt.Server ConnackSender. The pins are
// in fakes_test.go. Tests give the hooks fakes of them.

// The errors of the core are its sentinels (chat/errors.go): a refusal
// wraps one and is told to the device by chat.Describe, its code and
// message; any other error is a failure (the store), told as unavailable.

// Submitter takes the sends of im/send to the core.
type Submitter interface {
	// Submit validates req, sent by from, and queues it for the durable
	// write. done is called exactly once, with a refusal in Result.Err or
	// the Ack: at once if req is invalid (chat.ErrBadRequest and the
	// others of CheckSend), over the sender's rate (chat.ErrRateLimited)
	// or not taken (the server is closing: chat.ErrUnavailable; the queue
	// stayed full: chat.ErrBusy); else later, from another goroutine, once
	// the message is stored, or with its failure (chat.ErrNoSuchUser,
	// chat.ErrNotMember, chat.ErrUnavailable). It runs on the client's
	// read goroutine and blocks on the rate limiter, the media check and a
	// full queue, each bounded, all bounded by ctx; ctx is not kept.
	Submit(ctx context.Context, from chat.Sender, req wire.Send, done func(chat.Result))
}

// Syncer answers im/sync requests (docs/protocol.md#versions-and-offline-sync).
type Syncer interface {
	// Sync answers req for user with one or more batches, each passed to
	// emit in order; an error of emit ends it and is returned. It returns
	// chat.ErrNotMember for a group sync of a non-member, and any other
	// error for a store failure. It blocks on the store; ctx bounds
	// it.
	Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error
	// GroupHeads returns where each of user's groups is (wire.Heads), or a
	// store failure. It blocks on the store; ctx bounds it.
	GroupHeads(ctx context.Context, user string) (wire.Heads, error)
}

// Reader takes im/read requests (docs/protocol.md#unread-counts-and-conversations).
type Reader interface {
	// Read sets user's read position and tells user's devices the new
	// unread counts, which it also returns. It returns a refusal
	// (chat.ErrBadRequest, chat.ErrNotMember, chat.ErrNotFound: no such
	// conversation) and any other error for a store failure. It blocks on the store; ctx bounds it.
	Read(ctx context.Context, user string, req wire.Read) (wire.Unread, error)
}

// Changer takes the changes of stored messages: im/recall, im/edit,
// im/react and im/delete (docs/protocol.md#message-lifecycle). Each is
// taken as Submit takes a send: done is called exactly once, with the ack
// (the change is stored) or a refusal (chat.ErrNotFound, chat.ErrNotAllowed,
// chat.ErrTooLate, chat.ErrBadRequest and Submit's), from another
// goroutine or at once. Edit reads the message first, bounded by ctx.
type Changer interface {
	Recall(ctx context.Context, from chat.Sender, req wire.Recall, done func(chat.Result))
	Edit(ctx context.Context, from chat.Sender, req wire.Edit, done func(chat.Result))
	React(ctx context.Context, from chat.Sender, req wire.React, done func(chat.Result))
	Delete(ctx context.Context, from chat.Sender, req wire.Delete, done func(chat.Result))
}

// Typer relays im/typing (never stored): it returns a refusal
// (chat.ErrBadRequest, chat.ErrNotMember, chat.ErrNoSuchUser) or a store
// failure; one over the rate is dropped (false), not refused.
//
// AdmitTyping runs on the client's read goroutine and must not block: it
// checks the fields and the per-conversation gate. RelayTyping, which
// reads the store and the send rate, runs on a worker.
type Typer interface {
	AdmitTyping(user string, req *wire.Typing) (bool, error)
	RelayTyping(ctx context.Context, user string, req wire.Typing) (bool, error)
}

// Core is what the Uplink hook needs of the IM core: the uplink topics.
type Core interface {
	Submitter
	Syncer
	Reader
	Changer
	Typer
}

// LocalIndex keeps per-connection state on this node (chat's group fan-out
// index): one DeviceOnline per established connection, one DeviceOffline
// per ended one, takeovers included.
type LocalIndex interface {
	// DeviceOnline counts a connection of user and, at its first, loads
	// user's groups into the index. It blocks on the store, bounded by
	// ctx; an error means the load failed and is retried in the background
	// (the connection is counted all the same).
	DeviceOnline(ctx context.Context, user string) error
	// DeviceOffline uncounts a connection of user; the last one drops user
	// from the index. It does no I/O.
	DeviceOffline(user string)
}

// PresenceRecorder records which node each device is connected to: the
// writes of state.Presence, whose doc states the full contract.
type PresenceRecorder interface {
	// Online records d as connected to d.Node and returns the node it was
	// recorded on before ("" if none). Idempotent. It may block on the
	// hot state (Redis in scale-out); ctx bounds it.
	Online(ctx context.Context, d state.Device) (prevNode string, err error)
	// Offline removes user's device if it is still recorded on node, so a
	// takeover by another node is not undone. Idempotent; ctx bounds it.
	Offline(ctx context.Context, user, device, node string) error
}

// ConnackSender sends a CONNACK with a refusal code before the hook's
// error ends the connection (mochi's hook results cannot say every code).
// *mqtt.Server implements it.
type ConnackSender interface {
	// SendConnack writes the CONNACK to cl's connection; its error is that
	// of the write. It does not block past the connection's write deadline.
	SendConnack(cl *mqtt.Client, reason packets.Code, present bool, properties *packets.Properties) error
}
