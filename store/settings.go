package store

import "context"

// ConvSettings are one user's settings of one conversation
// (docs/http.md#conversation-settings): a muted conversation keeps its own
// unread count but leaves the user's total and pushes nothing but
// mentions; a pinned one heads the conversation list.
type ConvSettings struct {
	User      string `json:"user"`
	Conv      string `json:"conv"` // "u:{peer}" or "g:{group}"
	Mute      bool   `json:"mute,omitempty"`
	MuteUntil int64  `json:"mute_until,omitempty"` // unix ms: muted until then (with Mute false)
	Pin       bool   `json:"pin,omitempty"`
	Updated   int64  `json:"updated"` // unix ms
}

// ConvUser and ConvGroup name a conversation in ConvSettings.Conv.
func ConvUser(peer string) string   { return "u:" + peer }
func ConvGroup(group string) string { return "g:" + group }

// Muted reports whether the conversation is muted at now (unix ms).
func (c ConvSettings) Muted(now int64) bool { return c.Mute || c.MuteUntil > now }

// Zero reports whether c sets nothing (a row that need not be kept).
func (c ConvSettings) Zero() bool { return !c.Mute && c.MuteUntil == 0 && !c.Pin }

// Settings are users' conversation settings.
type Settings interface {
	// PutConvSettings writes c, replacing the row of (c.User, c.Conv); a
	// c that sets nothing (Zero) deletes it.
	PutConvSettings(ctx context.Context, c ConvSettings) error
	// GetConvSettings returns ErrNotFound if the user set nothing on conv.
	GetConvSettings(ctx context.Context, user, conv string) (ConvSettings, error)
	// UserConvSettings returns user's rows, ordered by Conv.
	UserConvSettings(ctx context.Context, user string) ([]ConvSettings, error)
	// ConvSettingsFor returns every user's row of conv (a group's members
	// who set something on it), ordered by User.
	ConvSettingsFor(ctx context.Context, conv string) ([]ConvSettings, error)
	// DeleteUserConvSettings removes every row of user; idempotent.
	DeleteUserConvSettings(ctx context.Context, user string) error
}
