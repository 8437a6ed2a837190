package store

import "context"

// PushDevice is a device's offline-push registration
// (docs/http.md#offline-push): the provider and token a notification for
// the device goes to while it has no live connection. One per device.
type PushDevice struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	Provider string `json:"provider"` // "apns", "fcm" or "webhook"
	Token    string `json:"token"`
	Topic    string `json:"topic,omitempty"`   // APNs: the app's bundle ID, when not the server's default
	Sandbox  bool   `json:"sandbox,omitempty"` // APNs: the development environment
	// Login is the SHA-256 (hex) of the login token the device registered
	// with: when that token is gone (logout, expiry, a ban), so is the
	// registration.
	Login    string `json:"login,omitempty"`
	Created  int64  `json:"created"`             // unix ms
	LastPush int64  `json:"last_push,omitempty"` // unix ms of the last notification sent: the collapse window
}

// PushJob is a committed message whose recipients' devices may need a
// push. Commit writes it with the message (Batch.PushJobs), so a message
// stored is a push not lost; the push worker expands it into PushItems.
type PushJob struct {
	MsgID   int64 `json:"msg"`
	Created int64 `json:"created"` // unix ms of the commit
}

// PushItem is one message to push to one device. A device's pending items
// go out together, as one notification (a burst collapses).
type PushItem struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	MsgID    int64  `json:"msg"`
	Created  int64  `json:"created"` // unix ms of the message's commit: the TTL counts from it
	Due      int64  `json:"due"`     // unix ms: not before
	Attempts int    `json:"attempts,omitempty"`
	Mention  bool   `json:"mention,omitempty"` // the recipient was mentioned (pushed even where muted)
}

// Push holds the push registrations and the durable push outbox: jobs
// (one per committed message, written by Commit) and items (one per
// message and device). Work is claimed, never broadcast: a job or a
// device is held by one holder (a node's push worker) at a time, for a
// lease, so that several nodes push each message to each device once.
// An item, once done, stays (done) until swept, so that a job expanded a
// second time (its holder died before deleting it) adds nothing it had
// added: the pair (device, message) is pushed at most once.
type Push interface {
	// PutPushDevice registers d, replacing the device's registration
	// (keeping its LastPush). ErrExists, with nothing written, if another
	// user's device holds d.Token with d.Provider; a device of the same
	// user that holds it loses it (the app's device ID changed).
	PutPushDevice(ctx context.Context, d PushDevice) error
	// GetPushDevice returns ErrNotFound if the device has no registration.
	GetPushDevice(ctx context.Context, user, device string) (PushDevice, error)
	// PushDevices returns the registrations of users' devices, ordered by
	// user then device; users without one are absent.
	PushDevices(ctx context.Context, users []string) ([]PushDevice, error)
	// DeletePushDevice removes a registration and its pending items;
	// ErrNotFound if there was none. With token non-empty it removes it
	// only if it still holds that token (ErrNotFound otherwise): a
	// provider's "invalid token" must not remove one registered since.
	DeletePushDevice(ctx context.Context, user, device, token string) error
	// DeleteUserPushDevices removes every registration of user and their
	// items (a ban, a deleted account); idempotent.
	DeleteUserPushDevices(ctx context.Context, user string) error
	// SetLastPush records when the device's last notification went out;
	// nothing if it has no registration.
	SetLastPush(ctx context.Context, user, device string, at int64) error

	// ClaimPushJobs holds, until until (unix ms), up to n jobs that no
	// holder holds at now (never claimed, released, or whose lease has
	// passed), oldest message first, and returns them. Two holders never
	// hold one job at once, also in a store shared by nodes.
	ClaimPushJobs(ctx context.Context, holder string, now, until int64, n int) ([]PushJob, error)
	// DeletePushJobs removes jobs (expanded, or too old); idempotent.
	DeletePushJobs(ctx context.Context, ids []int64) error

	// ExpandPushJobs writes items, the expansion of the jobs ids that
	// holder claimed, and deletes those jobs: as one write where the
	// store can (the embedded store: then a job is never gone without its
	// items, nor there with them). A job holder does not hold at now (its
	// lease passed and another holder took it, or it is gone) adds none of
	// its items (those whose MsgID is its ID) and is not deleted. An item
	// already there for its (user, device, MsgID), pending or done, is
	// left as it is.
	ExpandPushJobs(ctx context.Context, holder string, now int64, ids []int64, items []PushItem) error
	// AddPushItems writes items; one already there for its (user, device,
	// MsgID), pending or done, is left as it is.
	AddPushItems(ctx context.Context, items []PushItem) error
	// DuePushDevices returns up to n devices with a pending item whose Due
	// is at most now and that no holder holds at now, earliest Due first.
	DuePushDevices(ctx context.Context, now int64, n int) ([]SessionID, error)
	// ClaimPushDevice holds the device for holder until until, if no
	// other holder holds it at now; it reports whether it does. A holder
	// may claim a device it holds again (to extend the lease).
	ClaimPushDevice(ctx context.Context, user, device, holder string, now, until int64) (bool, error)
	// ReleasePushDevice ends holder's claim of the device (none: nothing).
	ReleasePushDevice(ctx context.Context, user, device, holder string) error
	// PendingPushItems returns the device's pending items, by MsgID, due
	// or not.
	PendingPushItems(ctx context.Context, user, device string) ([]PushItem, error)
	// DonePushItems marks the device's items done at at: never pending
	// again, and kept until swept.
	DonePushItems(ctx context.Context, user, device string, ids []int64, at int64) error
	// RetryPushItems sets the Due and Attempts of the device's pending items.
	RetryPushItems(ctx context.Context, user, device string, ids []int64, due int64, attempts int) error
	// SweepPush deletes the items done before doneBefore and the claims
	// whose lease ended before it; it returns how many items it deleted.
	SweepPush(ctx context.Context, doneBefore int64) (int, error)
	// PushDepth counts the jobs and the pending items.
	PushDepth(ctx context.Context) (jobs, items int64, err error)
}
