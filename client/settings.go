package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/imqtt/imqtt/wire"
)

// ConvSettings are the settings of one conversation as the caller sets
// them: a PUT replaces all three. MuteUntil is unix milliseconds (muted
// until then, with Mute false); 0 for none.
type ConvSettings struct {
	Mute      bool  `json:"mute"`
	MuteUntil int64 `json:"mute_until"`
	Pin       bool  `json:"pin"`
}

// SetConversationSettings replaces the caller's settings of its
// conversation with peer (PUT /v1/conversations/{peer}/settings) and
// returns them as stored. Every device of the caller gets a settings event.
func (h *HTTP) SetConversationSettings(ctx context.Context, peer string, s ConvSettings) (wire.ConvSettings, error) {
	seg, err := pathID("peer", peer)
	if err != nil {
		return wire.ConvSettings{}, err
	}
	return h.putSettings(ctx, "/v1/conversations/"+seg+"/settings", "conversation "+peer, s)
}

// SetGroupSettings replaces the caller's settings of group
// (PUT /v1/groups/{gid}/settings), as SetConversationSettings does.
func (h *HTTP) SetGroupSettings(ctx context.Context, group string, s ConvSettings) (wire.ConvSettings, error) {
	seg, err := pathID("group", group)
	if err != nil {
		return wire.ConvSettings{}, err
	}
	return h.putSettings(ctx, "/v1/groups/"+seg+"/settings", "group "+group, s)
}

// ConversationSettings reads the caller's settings of its conversation
// with peer: all false where it set none.
func (h *HTTP) ConversationSettings(ctx context.Context, peer string) (wire.ConvSettings, error) {
	seg, err := pathID("peer", peer)
	if err != nil {
		return wire.ConvSettings{}, err
	}
	return h.getSettings(ctx, "/v1/conversations/"+seg+"/settings", "conversation "+peer)
}

// GroupSettings reads the caller's settings of group.
func (h *HTTP) GroupSettings(ctx context.Context, group string) (wire.ConvSettings, error) {
	seg, err := pathID("group", group)
	if err != nil {
		return wire.ConvSettings{}, err
	}
	return h.getSettings(ctx, "/v1/groups/"+seg+"/settings", "group "+group)
}

func (h *HTTP) putSettings(ctx context.Context, path, what string, s ConvSettings) (wire.ConvSettings, error) {
	var out wire.ConvSettings
	if err := h.do(ctx, http.MethodPut, path, nil, s, &out); err != nil {
		return wire.ConvSettings{}, fmt.Errorf("set settings of %s: %w", what, err)
	}
	return out, nil
}

func (h *HTTP) getSettings(ctx context.Context, path, what string) (wire.ConvSettings, error) {
	var out wire.ConvSettings
	if err := h.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return wire.ConvSettings{}, fmt.Errorf("settings of %s: %w", what, err)
	}
	return out, nil
}
