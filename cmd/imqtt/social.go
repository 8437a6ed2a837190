package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// Contacts, blocks, privacy settings, presence and pins
// (docs/http.md#contacts-and-privacy). Each prints the server's reply as
// one line of JSON, or nothing when there is none; exit 1 on a refusal,
// with its code.

// userArg checks a user ID given on the command line.
func userArg(u string) error {
	if !wire.ValidUser(u) {
		return usagef("bad user ID %q: %s", u, userIDRule)
	}
	return nil
}

// cmdContacts: imqtt contacts [add|accept|remove USER] [--after USER] [--limit N]
func cmdContacts(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("contacts")
	after := fs.String("after", "", "list: the page after this user ID")
	limit := fs.Int("limit", 0, "list: at most this many (default: the server's)")
	pos, err := c.parse(fs, args, 0, 2)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return printUserPage(ctx, c, *after, *limit, func(h *client.HTTP, ctx context.Context, after string, limit int) (wire.Contacts, error) {
			cs, err := h.Contacts(ctx, after, limit)
			if cs.Contacts == nil {
				cs.Contacts = []wire.Contact{}
			}
			return cs, err
		})
	}
	verb := pos[0]
	if len(pos) != 2 || (verb != "add" && verb != "accept" && verb != "remove") {
		return usagef("contacts [add USER | accept USER | remove USER]")
	}
	if err := userArg(pos[1]); err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	var ct wire.Contact
	switch verb {
	case "add":
		ct, err = h.RequestContact(ctx, pos[1])
	case "accept":
		ct, err = h.AcceptContact(ctx, pos[1])
	default:
		return h.RemoveContact(ctx, pos[1])
	}
	if err != nil {
		return err
	}
	if ct.User == "" {
		return nil // a server that answers with no body
	}
	return c.printJSON(ct)
}

// cmdBlock: imqtt block USER
func cmdBlock(ctx context.Context, c *cli, args []string) error {
	return setBlock(ctx, c, "block", args, true)
}

// cmdUnblock: imqtt unblock USER
func cmdUnblock(ctx context.Context, c *cli, args []string) error {
	return setBlock(ctx, c, "unblock", args, false)
}

func setBlock(ctx context.Context, c *cli, name string, args []string, block bool) error {
	pos, err := c.parse(c.flags(name), args, 1, 1)
	if err != nil {
		return err
	}
	if err := userArg(pos[0]); err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	if block {
		return h.Block(ctx, pos[0])
	}
	return h.Unblock(ctx, pos[0])
}

// cmdBlocks: imqtt blocks [--after USER] [--limit N]
func cmdBlocks(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("blocks")
	after := fs.String("after", "", "the page after this user ID")
	limit := fs.Int("limit", 0, "at most this many (default: the server's)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	return printUserPage(ctx, c, *after, *limit, func(h *client.HTTP, ctx context.Context, after string, limit int) (wire.Blocks, error) {
		bs, err := h.Blocks(ctx, after, limit)
		if bs.Blocks == nil {
			bs.Blocks = []wire.Block{}
		}
		return bs, err
	})
}

// printUserPage prints one page of a list keyed by user ID (contacts,
// blocks): --after is checked as a user ID first; fetch asks the server
// (and gives an empty list as [], not null).
func printUserPage[T any](ctx context.Context, c *cli, after string, limit int,
	fetch func(h *client.HTTP, ctx context.Context, after string, limit int) (T, error)) error {
	if after != "" {
		if err := userArg(after); err != nil {
			return err
		}
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	page, err := fetch(h, ctx, after, limit)
	if err != nil {
		return err
	}
	return c.printJSON(page)
}

// cmdPresence: imqtt presence USER...
// Only the users who share their presence with the caller are printed.
func cmdPresence(ctx context.Context, c *cli, args []string) error {
	pos, err := c.parse(c.flags("presence"), args, 1, wire.MaxPresenceUsers)
	if err != nil {
		return err
	}
	for _, u := range pos {
		if err := userArg(u); err != nil {
			return err
		}
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	pl, err := h.Presence(ctx, pos...)
	if err != nil {
		return err
	}
	if pl.Presence == nil {
		pl.Presence = []wire.Presence{}
	}
	return c.printJSON(pl)
}

// cmdSettings: imqtt settings [--accept-from anyone|contacts] [--presence contacts|nobody] [--read-receipts on|off]
// Without flags it prints the settings; with some it changes those and
// prints the settings as stored.
func cmdSettings(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("settings")
	acceptFrom := fs.String("accept-from", "", "whose 1:1 messages to accept: anyone or contacts")
	presence := fs.String("presence", "", "who sees when you are online: contacts or nobody")
	receipts := fs.String("read-receipts", "", "on or off (off: neither side gets them)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var s wire.UserSettings
	switch *acceptFrom {
	case "", wire.AcceptAnyone, wire.AcceptContacts:
		s.AcceptFrom = *acceptFrom
	default:
		return usagef("--accept-from wants %s or %s, not %q", wire.AcceptAnyone, wire.AcceptContacts, *acceptFrom)
	}
	switch *presence {
	case "", wire.PresenceContacts, wire.PresenceNobody:
		s.Presence = *presence
	default:
		return usagef("--presence wants %s or %s, not %q", wire.PresenceContacts, wire.PresenceNobody, *presence)
	}
	switch *receipts {
	case "":
	case "on", "off":
		on := *receipts == "on"
		s.ReadReceipts = &on
	default:
		return usagef("--read-receipts wants on or off, not %q", *receipts)
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	if s == (wire.UserSettings{}) {
		s, err = h.UserSettings(ctx)
	} else {
		s, err = h.SetUserSettings(ctx, s)
	}
	if err != nil {
		return err
	}
	return c.printJSON(s)
}

// cmdPin: imqtt pin (PEER | --group G)
func cmdPin(ctx context.Context, c *cli, args []string) error {
	return setPin(ctx, c, "pin", args, true)
}

// cmdUnpin: imqtt unpin (PEER | --group G)
func cmdUnpin(ctx context.Context, c *cli, args []string) error {
	return setPin(ctx, c, "unpin", args, false)
}

// setPin reads the conversation's settings and writes them back with the
// pin changed (a PUT replaces all of them), then prints them.
func setPin(ctx context.Context, c *cli, name string, args []string, pin bool) error {
	fs := c.flags(name)
	group := fs.String("group", "", "the group ID (instead of PEER)")
	pos, err := c.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	peer, err := convArgs(pos, *group)
	if err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	return updateConvSettings(ctx, h, c, peer, *group, func(s *client.ConvSettings) { s.Pin = pin })
}

// updateConvSettings reads the settings of the conversation with peer (or
// of group), changes them with change, writes them back and prints them.
func updateConvSettings(ctx context.Context, h *client.HTTP, c *cli, peer, group string, change func(*client.ConvSettings)) error {
	var cur wire.ConvSettings
	var err error
	if peer != "" {
		cur, err = h.ConversationSettings(ctx, peer)
	} else {
		cur, err = h.GroupSettings(ctx, group)
	}
	if err != nil {
		return err
	}
	s := client.ConvSettings{Mute: cur.Mute, MuteUntil: cur.MuteUntil, Pin: cur.Pin}
	change(&s)
	var got wire.ConvSettings
	if peer != "" {
		got, err = h.SetConversationSettings(ctx, peer, s)
	} else {
		got, err = h.SetGroupSettings(ctx, group, s)
	}
	if err != nil {
		return err
	}
	return c.printJSON(got)
}

// parseTTL reads send --ttl: whole seconds ("30") or a duration ("5m"),
// from 1s to wire.MaxTTL.
func parseTTL(s string) (int, error) {
	secs, err := strconv.Atoi(s)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil || d%time.Second != 0 {
			return 0, usagef("bad --ttl %q: seconds (30) or a duration of whole seconds (5m)", s)
		}
		secs = int(d / time.Second)
	}
	if secs < 1 || secs > wire.MaxTTL {
		return 0, usagef("--ttl %s: from 1s to %s", s, time.Duration(wire.MaxTTL)*time.Second)
	}
	return secs, nil
}

// groupAdmin runs the group administration verbs of imqtt groups:
// rename G NAME, update G [--name N] [--notice T] [--avatar A] [--muted on|off],
// disband G, transfer G USER, mute G (USER --until D | --all), unmute G (USER | --all).
// It checks the arguments before any request, and reports false for
// another verb.
func groupAdmin(ctx context.Context, c *cli, verb string, rest []string, f groupFlags) (bool, error) {
	syn, ok := adminVerbs[verb]
	if !ok {
		return false, nil
	}
	if len(rest) < syn.min || len(rest) > syn.max {
		return true, usagef("groups %s wants %s", verb, syn.args)
	}
	gid := rest[0]
	if !wire.ValidUser(gid) {
		return true, usagef("bad group ID %q: %s", gid, userIDRule)
	}
	var user string
	if len(rest) == 2 && verb != "rename" {
		user = rest[1]
		if err := userArg(user); err != nil {
			return true, err
		}
	}
	var patch *wire.GroupPatch // for rename, update, and mute/unmute --all
	var until time.Time        // for mute USER
	switch verb {
	case "rename":
		patch = &wire.GroupPatch{Name: &rest[1]}
	case "update":
		p, err := f.patch()
		if err != nil {
			return true, err
		}
		patch = &p
	case "mute", "unmute":
		mute := verb == "mute"
		switch {
		case (user != "") == *f.all:
			return true, usagef("%s G wants USER or --all, not both", verb)
		case *f.all && f.until.set:
			return true, usagef("--until is for one member; --all lasts until unmute --all")
		case *f.all:
			patch = &wire.GroupPatch{Muted: &mute}
		case mute && !f.until.set:
			return true, usagef("mute G USER wants --until DURATION|TIME (e.g. 1h)")
		case !mute && f.until.set:
			return true, usagef("--until is for mute")
		case mute && !f.until.at(time.Now()).After(time.Now()):
			return true, usagef("--until must be ahead, not negative or past")
		case mute:
			until = f.until.at(time.Now())
		}
	}
	h, _, err := c.api()
	if err != nil {
		return true, err
	}
	switch {
	case patch != nil:
		g, err := h.UpdateGroup(ctx, gid, *patch)
		if err != nil {
			return true, err
		}
		return true, printGroup(c, g)
	case verb == "disband":
		return true, h.DisbandGroup(ctx, gid)
	case verb == "transfer":
		g, err := h.TransferGroup(ctx, gid, user)
		if err != nil {
			return true, err
		}
		return true, printGroup(c, g)
	}
	return true, h.MuteMember(ctx, gid, user, until) // mute or unmute USER
}

// adminVerbs are the group administration verbs of imqtt groups: their
// arguments, and how many.
var adminVerbs = map[string]struct {
	args     string
	min, max int
}{
	"rename":   {"G NAME", 2, 2},
	"update":   {"G [--name N] [--notice T] [--avatar A] [--muted on|off]", 1, 1},
	"disband":  {"G", 1, 1},
	"transfer": {"G USER", 2, 2},
	"mute":     {"G (USER --until DURATION|TIME | --all)", 1, 2},
	"unmute":   {"G (USER | --all)", 1, 2},
}

// patch is the update the flags of groups update ask for.
func (f groupFlags) patch() (wire.GroupPatch, error) {
	var p wire.GroupPatch
	if f.name.set {
		p.Name = &f.name.v
	}
	if f.notice.set {
		p.Notice = &f.notice.v
	}
	if f.avatar.set {
		p.Avatar = &f.avatar.v
	}
	switch *f.muted {
	case "":
	case "on", "off":
		m := *f.muted == "on"
		p.Muted = &m
	default:
		return p, usagef("--muted wants on or off, not %q", *f.muted)
	}
	if p == (wire.GroupPatch{}) {
		return p, usagef("update changes nothing: give --name, --notice, --avatar or --muted")
	}
	return p, nil
}

// groupFlags are the flags of imqtt groups' administration verbs.
type groupFlags struct {
	name, notice, avatar optString
	muted                *string
	until                untilValue
	all                  *bool
}

// untilValue is --until: a duration from now ("8h") or a time (RFC 3339).
type untilValue struct {
	d   time.Duration
	t   time.Time // the zero time: d from now
	set bool
}

func (u *untilValue) String() string {
	switch {
	case u == nil || !u.set:
		return ""
	case !u.t.IsZero():
		return u.t.Format(time.RFC3339)
	}
	return u.d.String()
}

func (u *untilValue) Set(s string) error {
	if d, err := time.ParseDuration(s); err == nil {
		*u = untilValue{d: d, set: true}
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("want a duration (8h) or a time (2026-12-24T18:00:00Z), not %q", s)
	}
	*u = untilValue{t: t, set: true}
	return nil
}

// at is the time u names, from now.
func (u *untilValue) at(now time.Time) time.Time {
	if !u.t.IsZero() {
		return u.t
	}
	return now.Add(u.d)
}

// optString is a string flag that tells "not given" from "given empty"
// (--notice "" clears the notice).
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(s string) error { o.v, o.set = s, true; return nil }

// printGroup prints a group the server returned, or nothing if it
// returned none.
func printGroup(c *cli, g wire.Group) error {
	if g.ID == "" {
		return nil
	}
	return c.printJSON(g)
}

// groupsUsage is the synopsis of imqtt groups.
var groupsUsage = strings.Join([]string{
	"[create NAME [--id G] [--members a,b] | show G | add G USER... [--admin] | remove G USER | leave G",
	"rename G NAME | update G [--name N] [--notice T] [--avatar A] [--muted on|off] | disband G",
	"transfer G USER | mute G (USER --until DURATION|TIME | --all) | unmute G (USER | --all)]",
}, " | ")
