package chat

import (
	"errors"

	"github.com/imqtt/imqtt/wire"
)

// The core's refusals. Each is told to clients as the wire code that is its
// text (docs/protocol.md#errors). The core returns them wrapped in an
// *Error, which carries the message the client sees; errors.Is tells them
// apart. Any other error of the core is a failure (the store, the hot
// state, an ended context): the caller logs it and answers unavailable.
var (
	ErrBadRequest      = errors.New(wire.CodeBadRequest)      // a field malformed or out of range
	ErrBadType         = errors.New(wire.CodeBadType)         // a send's type is not one of wire.MessageTypes
	ErrMissingTo       = errors.New(wire.CodeMissingTo)       // a send names neither to nor group
	ErrMissingCMID     = errors.New(wire.CodeMissingCMID)     // a send's cmid is empty or too long
	ErrTooLarge        = errors.New(wire.CodeTooLarge)        // body or meta over its limit
	ErrNoSuchUser      = errors.New(wire.CodeNoSuchUser)      // the recipient or a new member has no account
	ErrNotMember       = errors.New(wire.CodeNotMember)       // not a member of the group, or no such group
	ErrForbidden       = errors.New(wire.CodeForbidden)       // a member whose role does not allow it
	ErrNotFound        = errors.New(wire.CodeNotFound)        // no such conversation, member or media
	ErrExists          = errors.New(wire.CodeExists)          // the group exists already
	ErrGroupFull       = errors.New(wire.CodeGroupFull)       // the group's member limit
	ErrTooManyGroups   = errors.New(wire.CodeTooManyGroups)   // a user to be added is in MaxGroupsPerUser groups
	ErrTooManySettings = errors.New(wire.CodeTooManySettings) // the user has MaxConvSettings conversations set
	ErrRateLimited     = errors.New(wire.CodeRateLimited)     // over the sender's rate; resend later, same cmid
	ErrBusy            = errors.New(wire.CodeBusy)            // the send queue stayed full; resend later, same cmid
	ErrUnavailable     = errors.New(wire.CodeUnavailable)     // not stored (store failed, server closing); resend, same cmid
	ErrRejected        = errors.New(wire.CodeRejected)        // the content filter or the before_send webhook refused it; not stored
	ErrNotAllowed      = errors.New(wire.CodeNotAllowed)      // a change of a message the user may not change (someone else's, recalled, not text)
	ErrTooLate         = errors.New(wire.CodeTooLate)         // a recall or edit past its window

	// The social graph's (contacts.go).
	ErrBlocked         = errors.New(wire.CodeBlocked)         // the recipient blocked the sender
	ErrNotContact      = errors.New(wire.CodeNotContact)      // the recipient takes 1:1 sends from its contacts only
	ErrNoRequest       = errors.New(wire.CodeNoRequest)       // accepting a contact request never made
	ErrSelf            = errors.New(wire.CodeSelf)            // a contact or block of oneself
	ErrTooManyContacts = errors.New(wire.CodeTooManyContacts) // the user has MaxContacts contacts
	ErrTooManyBlocks   = errors.New(wire.CodeTooManyBlocks)   // the user has MaxBlocks blocks
	ErrMuted           = errors.New(wire.CodeMuted)           // the sender is muted in the group, or the group is muted
	ErrGroupGone       = errors.New(wire.CodeGroupGone)       // the group was disbanded
)

// sentinels is the one table from the core's refusals to wire codes: each
// sentinel's text is its code. The HTTP status of a code is wire.HTTPStatus's.
var sentinels = []error{ErrBadRequest, ErrBadType, ErrMissingTo, ErrMissingCMID, ErrTooLarge,
	ErrNoSuchUser, ErrNotMember, ErrForbidden, ErrNotFound, ErrExists, ErrGroupFull, ErrTooManyGroups,
	ErrTooManySettings, ErrRateLimited, ErrBusy, ErrUnavailable, ErrRejected, ErrNotAllowed, ErrTooLate,
	ErrBlocked, ErrNotContact, ErrNoRequest, ErrSelf, ErrTooManyContacts, ErrTooManyBlocks,
	ErrMuted, ErrGroupGone}

// Error is a refusal of the core: Err, one of the sentinels, and the
// message for the client.
type Error struct {
	Err error
	Msg string
}

func (e *Error) Error() string { return e.Err.Error() + ": " + e.Msg }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// refuse returns a refusal: sentinel, told to the client with msg.
func refuse(sentinel error, msg string) error { return &Error{Err: sentinel, Msg: msg} }

// Describe tells err to a client. For a refusal (err wraps a sentinel) it
// returns its code and message and ok true: an *Error's Msg, or else the
// error's text. For anything else it returns unavailable, "" and ok false:
// a failure, which the caller logs and words itself. The HTTP status is
// wire.HTTPStatus(code): 503 for a failure.
func Describe(err error) (code, msg string, ok bool) {
	for _, sentinel := range sentinels {
		if errors.Is(err, sentinel) {
			var e *Error
			if errors.As(err, &e) {
				return sentinel.Error(), e.Msg, true
			}
			return sentinel.Error(), err.Error(), true
		}
	}
	return wire.CodeUnavailable, "", false
}

// WireError is err as a client sees it (Describe), with failMsg the message
// of a failure.
func WireError(err error, failMsg string) *wire.Error {
	code, msg, ok := Describe(err)
	if !ok {
		msg = failMsg
	}
	return wire.NewError(code, msg)
}

// fromWire turns a refusal told in wire form (by a Media policy) into the
// core's: the sentinel of its code, with its message. A code outside the
// table is a bad request.
func fromWire(we *wire.Error) error {
	for _, sentinel := range sentinels {
		if sentinel.Error() == we.Code {
			return refuse(sentinel, we.Message)
		}
	}
	return refuse(ErrBadRequest, we.Message)
}
