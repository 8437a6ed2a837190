package api_test

import (
	"context"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/wire"
)

func (c *fakeCore) PatchGroup(ctx context.Context, from chat.Sender, group string, p wire.GroupPatch) (wire.Group, error) {
	c.called("patch " + from.User + " " + group)
	if err := outcome(group); err != nil {
		return wire.Group{}, err
	}
	return wire.Group{ID: group}, nil
}

func (c *fakeCore) DisbandGroup(ctx context.Context, from chat.Sender, group string) error {
	c.called("disband " + from.User + " " + group)
	return outcome(group)
}

func (c *fakeCore) TransferGroup(ctx context.Context, from chat.Sender, group string, req wire.GroupTransfer) (wire.Group, error) {
	c.called("transfer " + from.User + " " + group + " " + req.User)
	if err := outcome(group); err != nil {
		return wire.Group{}, err
	}
	return wire.Group{ID: group, Owner: req.User}, nil
}

func (c *fakeCore) MuteMember(ctx context.Context, from chat.Sender, group, user string, req wire.MemberMute) (wire.Member, error) {
	c.called("mute " + from.User + " " + group + " " + user)
	if err := outcome(group); err != nil {
		return wire.Member{}, err
	}
	return wire.Member{User: user, MuteUntil: req.MuteUntil}, nil
}
