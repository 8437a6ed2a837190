package push

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imqtt/imqtt/internal/outbox"
	"github.com/imqtt/imqtt/store"
)

// Notification is one push to one device: what a provider sends.
type Notification struct {
	Device store.PushDevice // provider, token, topic, sandbox

	Title string // the preview (--push-preview): "alice", "Team"
	Body  string // "alice sent you a message", the text with full preview
	Badge int64  // the user's total_unread (muted conversations excluded)

	Conversation string // "u:{peer}" or "g:{group}", as the recipient sees it
	MessageID    string // the newest message it stands for (decimal)
	Count        int    // how many messages it stands for (a collapsed burst)
	// CollapseID makes a notification replace an earlier one with the
	// same ID on the device (APNs apns-collapse-id, at most 64 bytes;
	// FCM collapse_key).
	CollapseID string
	// Expires is when the provider may stop trying to deliver it (APNs
	// apns-expiration; FCM ttl): the end of --push-ttl.
	Expires time.Time
	// Recalled are messages recalled since a notification may have told
	// of them (decimal IDs): the app removes what it shows of them.
	// Silent, the notification is only that: nothing to show (APNs
	// apns-push-type background with content-available; an FCM data
	// message; the webhook's "silent"), no Title or Body.
	Recalled []string
	Silent   bool
}

// Pusher sends notifications through one provider. Push returns nil once
// the provider has accepted n; otherwise one of:
//   - ErrInvalidToken: the provider says the token is no longer valid (APNs
//     410 or BadDeviceToken; FCM UNREGISTERED or INVALID_ARGUMENT on the
//     token): the registration is removed.
//   - a *RetryError: worth trying again (a 5xx, a timeout, a connection
//     refused, 429 with its Retry-After).
//   - any other error: this notification will never be accepted (a bad
//     payload, bad credentials...): it is dropped, and counted.
//
// Push must honour ctx and be safe for concurrent use.
type Pusher interface {
	Name() string // "apns", "fcm", "webhook": the provider a PushDevice names
	Push(ctx context.Context, n Notification) error
}

// ErrInvalidToken: the provider refuses the device's token for good.
var ErrInvalidToken = errors.New("push: the provider says the device token is invalid")

// RetryError says to try again later, not before After (0: the worker's
// backoff decides).
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("push: retry after %s: %v", e.After, e.Err)
	}
	return fmt.Sprintf("push: retry: %v", e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// Retry wraps err as worth trying again after after (0: the backoff's).
func Retry(err error, after time.Duration) error { return &RetryError{After: after, Err: err} }

// RetryAfter reads an HTTP Retry-After header (RFC 9110 §10.2.3): delay
// seconds or an HTTP date, from now; 0 if absent or unreadable. The
// providers' 429s and 503s carry it.
func RetryAfter(v string, now time.Time) time.Duration { return outbox.RetryAfter(v, now) }
