package main

import (
	"context"
	"strings"

	"github.com/imqtt/imqtt/wire"
)

// cmdGroups: imqtt groups [create NAME [--id G] [--members a,b] | show G | add G USER... [--admin] | remove G USER | leave G]
func cmdGroups(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("groups")
	id := fs.String("id", "", "create: the group ID (default: generated)")
	members := fs.String("members", "", "create: comma-separated user IDs")
	admin := fs.Bool("admin", false, "add: make the users admins (owner only)")
	pos, err := c.parse(fs, args, 0, 64)
	if err != nil {
		return err
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
		return usagef("groups [create NAME | show G | add G USER... | remove G USER | leave G]")
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
