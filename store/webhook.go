package store

import (
	"context"
	"encoding/json"
)

// WebhookEvent is one asynchronous webhook event in the durable outbox
// (SPEC §14, docs/integration.md#events). Commit writes a message's
// message.after_send with the message (Batch.Webhooks), so a message stored
// is an event not lost; other events are added by AddWebhookEvents.
//
// Events go out in lanes: a lane's events are delivered one at a time, in
// ID order, and only its head is ever attempted, so a failing head holds
// its lane (a conversation's order) while the other lanes go on.
type WebhookEvent struct {
	ID   int64           `json:"id"`   // unique across nodes (a snowflake); its order in its lane
	Lane string          `json:"lane"` // "c:{a}:{b}" (a 1:1 pair, sorted), "g:{group}", "u:{user}"
	Type string          `json:"type"` // the event's name (internal/webhook's constants)
	TS   int64           `json:"ts"`   // unix ms when it happened: the TTL counts from it
	Data json.RawMessage `json:"data"`
	// MsgID is the message a message.after_send is of, in a Batch (a
	// store that sets a send's rows aside keeps its event with them); it
	// is not stored.
	MsgID int64 `json:"msg,omitempty"`
}

// WebhookLane is a lane with events and the retry state of its head.
type WebhookLane struct {
	Lane     string
	Due      int64 // unix ms: its head is not attempted before
	Attempts int   // failed attempts of its head
}

// Webhooks is the webhook outbox. Work is claimed, never broadcast: a
// lane is held by one holder (a node's webhook worker) at a time, for a
// lease, so that several nodes deliver each event once (at least once:
// a holder that dies before deleting what it delivered leaves it to the
// next holder).
type Webhooks interface {
	// AddWebhookEvents writes events; one already there (same Lane and
	// ID) is left as it is. A lane without events gets them due at once;
	// a lane whose head is waiting for a retry keeps its Due.
	AddWebhookEvents(ctx context.Context, evs []WebhookEvent) error
	// DueWebhookLanes returns up to n lanes with events whose Due is at
	// most now and that no holder holds at now, earliest Due first.
	DueWebhookLanes(ctx context.Context, now int64, n int) ([]WebhookLane, error)
	// ClaimWebhookLane holds lane for holder until until, if no other
	// holder holds it at now; it reports whether it does. A holder may
	// claim a lane it holds again (to extend the lease).
	ClaimWebhookLane(ctx context.Context, lane, holder string, now, until int64) (bool, error)
	// WebhookEvents returns the first n events of lane, in ID order.
	WebhookEvents(ctx context.Context, lane string, n int) ([]WebhookEvent, error)
	// DeleteWebhookEvents removes events of lane (delivered, dropped or
	// expired) and sets the lane due at once with no attempts (its next
	// head is new); idempotent. The delete may be made durable lazily
	// (with the store's next synced write): a crash may bring back events
	// delivered just before it.
	DeleteWebhookEvents(ctx context.Context, lane string, ids []int64) error
	// RetryWebhookLane sets when lane's head is next attempted and how
	// often it failed, and ends holder's claim.
	RetryWebhookLane(ctx context.Context, lane, holder string, due int64, attempts int) error
	// ReleaseWebhookLane ends holder's claim of lane (none: nothing); a
	// lane left without events is forgotten.
	ReleaseWebhookLane(ctx context.Context, lane, holder string) error
	// SweepWebhooks deletes the events whose TS is before before (past
	// the TTL) and returns how many.
	SweepWebhooks(ctx context.Context, before int64) (int, error)
	// WebhookDepth counts the events in the outbox.
	WebhookDepth(ctx context.Context) (int64, error)
}
