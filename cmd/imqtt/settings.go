package main

import (
	"context"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// cmdMute: imqtt mute (PEER | --group G) [--until DURATION|TIME]
// A conversation muted leaves total_unread and pushes nothing but
// mentions; with --until, only for that long, or until that time. The
// pin is kept.
func cmdMute(ctx context.Context, c *cli, args []string) error {
	return setMute(ctx, c, "mute", args, true)
}

// cmdUnmute: imqtt unmute (PEER | --group G)
func cmdUnmute(ctx context.Context, c *cli, args []string) error {
	return setMute(ctx, c, "unmute", args, false)
}

// setMute reads the conversation's settings and writes them back with the
// mute changed (a PUT replaces all of them), then prints them.
func setMute(ctx context.Context, c *cli, name string, args []string, mute bool) error {
	fs := c.flags(name)
	group := fs.String("group", "", "the group ID (instead of PEER)")
	var until *untilValue
	if mute {
		until = new(untilValue)
		fs.Var(until, "until", "mute for this long only (e.g. 8h), or until this time (RFC 3339, e.g. 2026-12-24T18:00:00Z); default: until unmuted")
	}
	pos, err := c.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	peer, err := convArgs(pos, *group)
	if err != nil {
		return err
	}
	switch {
	case until != nil && until.set && !until.at(time.Now()).After(time.Now()):
		return usagef("--until must be ahead, not negative or past")
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	var cur wire.ConvSettings
	if peer != "" {
		cur, err = h.ConversationSettings(ctx, peer)
	} else {
		cur, err = h.GroupSettings(ctx, *group)
	}
	if err != nil {
		return err
	}
	s := client.ConvSettings{Pin: cur.Pin}
	switch {
	case !mute:
	case until.set:
		s.MuteUntil = until.at(time.Now()).UnixMilli()
	default:
		s.Mute = true
	}
	var got wire.ConvSettings
	if peer != "" {
		got, err = h.SetConversationSettings(ctx, peer, s)
	} else {
		got, err = h.SetGroupSettings(ctx, *group, s)
	}
	if err != nil {
		return err
	}
	return c.printJSON(got)
}

// convArgs is the conversation a command names: PEER (its one optional
// argument) or --group G, exactly one, each a well-formed ID.
func convArgs(pos []string, group string) (peer string, err error) {
	if len(pos) == 1 {
		peer = pos[0]
	}
	switch {
	case (peer == "") == (group == ""):
		return "", usagef("give exactly one of PEER or --group G")
	case peer != "" && !wire.ValidUser(peer):
		return "", usagef("bad user ID %q: %s", peer, userIDRule)
	case group != "" && !wire.ValidUser(group):
		return "", usagef("bad group ID %q: %s", group, userIDRule)
	}
	return peer, nil
}
