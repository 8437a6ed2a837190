package main

import (
	"context"
	"strings"

	"github.com/imqtt/imqtt/wire"
)

// cmdGroups: imqtt groups [create NAME [--id G] [--members a,b] | show G | add G USER... [--admin] | remove G USER | leave G
// | rename G NAME | update G [--name N] [--notice T] [--avatar A] [--muted on|off] | disband G
// | transfer G USER | mute G (USER --until D | --all) | unmute G (USER | --all)]
func cmdGroups(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("groups")
	id := fs.String("id", "", "create: the group ID (default: generated)")
	members := fs.String("members", "", "create: comma-separated user IDs")
	admin := fs.Bool("admin", false, "add: make the users admins (owner only)")
	var gf groupFlags
	fs.Var(&gf.name, "name", "update: the group's new name")
	fs.Var(&gf.notice, "notice", "update: the group's notice (\"\" clears it)")
	fs.Var(&gf.avatar, "avatar", "update: the group's avatar, a media ID or a URL (\"\" clears it)")
	gf.muted = fs.String("muted", "", "update: on (only the owner and admins may send) or off")
	fs.Var(&gf.until, "until", "mute: how long the member may not send (e.g. 1h), or until when (RFC 3339)")
	gf.all = fs.Bool("all", false, "mute, unmute: everyone but the owner and admins")
	pos, err := c.parse(fs, args, 0, 64)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if ok, err := groupAdmin(ctx, c, pos[0], pos[1:], gf); ok {
			return err
		}
	}
	h, sess, err := c.api()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		gs, err := h.Groups(ctx)
		if err != nil {
			return err
		}
		if gs.Groups == nil {
			gs.Groups = []wire.Group{}
		}
		return c.printJSON(gs)
	}
	verb, rest := pos[0], pos[1:]
	need := map[string]int{"create": 1, "show": 1, "add": 2, "remove": 2, "leave": 1}
	n, ok := need[verb]
	if !ok || len(rest) < n || (verb != "add" && len(rest) > n) {
		return usagef("groups %s", groupsUsage)
	}
	switch verb {
	case "create":
		req := wire.GroupCreate{ID: *id, Name: rest[0]}
		if *members != "" {
			req.Members = strings.Split(*members, ",")
		}
		g, err := h.CreateGroup(ctx, req)
		if err != nil {
			return err
		}
		return c.printJSON(g)
	case "show":
		g, err := h.Group(ctx, rest[0], "", 1000)
		if err != nil {
			return err
		}
		return c.printJSON(g)
	case "add":
		role := ""
		if *admin {
			role = "admin"
		}
		g, err := h.AddMembers(ctx, rest[0], rest[1:], role)
		if err != nil {
			return err
		}
		return c.printJSON(g)
	case "remove":
		return h.RemoveMember(ctx, rest[0], rest[1])
	default: // leave
		return h.RemoveMember(ctx, rest[0], sess.User)
	}
}
