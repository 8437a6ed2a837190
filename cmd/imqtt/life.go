package main

import (
	"context"
	"flag"
	"strconv"
	"strings"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// The message lifecycle (docs/protocol.md#message-lifecycle): each change
// goes over HTTP and, until acked, is made again with the same cmid on
// errors worth retrying, as send is: exit 0 only once acked, the ack
// printed.

// msgIDRule says what a message ID is.
const msgIDRule = "want a message ID (decimal digits, as an ack or an event shows it)"

// isMsgID reports whether s looks like a message ID (a snowflake in decimal).
func isMsgID(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// changeFlags are the flags every change takes.
type changeFlags struct {
	cmid    *string
	timeout *time.Duration
}

func addChangeFlags(fs *flag.FlagSet) changeFlags {
	return changeFlags{
		cmid:    fs.String("cmid", "", "the request's client ID (default: random); making it again with the same one changes nothing more"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up if not acked within this time"),
	}
}

// apply makes a change with the saved session until acked and prints the
// ack.
func (f changeFlags) apply(ctx context.Context, c *cli, what string, do func(h *client.HTTP, cmid string) (wire.Ack, error)) error {
	h, _, err := c.api()
	if err != nil {
		return err
	}
	cmid := *f.cmid
	if cmid == "" {
		cmid = client.NewCMID()
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	ack, err := untilAcked(ctx, c, what, cmid, func() (wire.Ack, error) { return do(h, cmid) })
	if err != nil {
		return err
	}
	return c.printJSON(ack)
}

// cmdRecall: imqtt recall ID
func cmdRecall(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("recall")
	cf := addChangeFlags(fs)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id := pos[0]
	if !isMsgID(id) {
		return usagef("bad ID %q: %s", id, msgIDRule)
	}
	return cf.apply(ctx, c, "recall", func(h *client.HTTP, cmid string) (wire.Ack, error) {
		return h.Recall(ctx, wire.Recall{CMID: cmid, ID: id})
	})
}

// cmdEdit: imqtt edit ID TEXT...
func cmdEdit(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("edit")
	cf := addChangeFlags(fs)
	pos, err := c.parse(fs, args, 2, -1)
	if err != nil {
		return err
	}
	id, body := pos[0], strings.Join(pos[1:], " ")
	if !isMsgID(id) {
		return usagef("bad ID %q: %s", id, msgIDRule)
	}
	return cf.apply(ctx, c, "edit", func(h *client.HTTP, cmid string) (wire.Ack, error) {
		return h.Edit(ctx, wire.Edit{CMID: cmid, ID: id, Body: body})
	})
}

// cmdReact: imqtt react ID EMOJI [--remove]
func cmdReact(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("react")
	cf := addChangeFlags(fs)
	remove := fs.Bool("remove", false, "remove the reaction instead of adding it")
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	id, emoji := pos[0], pos[1]
	switch {
	case !isMsgID(id):
		return usagef("bad ID %q: %s", id, msgIDRule)
	case !wire.ValidEmoji(emoji):
		return usagef("%q is not one emoji", emoji)
	}
	op := wire.ReactAdd
	if *remove {
		op = wire.ReactRemove
	}
	return cf.apply(ctx, c, "react", func(h *client.HTTP, cmid string) (wire.Ack, error) {
		return h.React(ctx, wire.React{CMID: cmid, ID: id, Emoji: emoji, Op: op})
	})
}

// cmdDelete: imqtt delete (ID... | --peer PEER)
// It hides the messages (or the whole conversation with PEER) from the
// user's own devices; the other side keeps them.
func cmdDelete(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("delete")
	cf := addChangeFlags(fs)
	peer := fs.String("peer", "", "clear the whole conversation with PEER instead")
	pos, err := c.parse(fs, args, 0, wire.MaxDeleteIDs)
	if err != nil {
		return err
	}
	switch {
	case (len(pos) == 0) == (*peer == ""):
		return usagef("give message IDs or --peer PEER")
	case *peer != "" && !wire.ValidUser(*peer):
		return usagef("bad user ID %q: %s", *peer, userIDRule)
	}
	for _, id := range pos {
		if !isMsgID(id) {
			return usagef("bad ID %q: %s", id, msgIDRule)
		}
	}
	return cf.apply(ctx, c, "delete", func(h *client.HTTP, cmid string) (wire.Ack, error) {
		return h.Delete(ctx, wire.Delete{CMID: cmid, IDs: pos, Peer: *peer})
	})
}

// cmdTyping: imqtt typing (PEER | --group G) [--stop]
// One notice, never stored; the server relays at most one a second per
// conversation. It prints what it sent.
func cmdTyping(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("typing")
	group := fs.String("group", "", "the group ID (instead of PEER)")
	stop := fs.Bool("stop", false, "say the typing stopped")
	pos, err := c.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	peer, err := convArgs(pos, *group)
	if err != nil {
		return err
	}
	t := wire.Typing{Peer: peer, Group: *group, State: wire.TypingStart}
	if *stop {
		t.State = wire.TypingStop
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	if err := h.Typing(ctx, t); err != nil {
		return err
	}
	return c.printJSON(t)
}

// cmdReceipts: imqtt receipts [on | off]
// It prints the user's settings, after changing them if asked.
func cmdReceipts(ctx context.Context, c *cli, args []string) error {
	pos, err := c.parse(c.flags("receipts"), args, 0, 1)
	if err != nil {
		return err
	}
	var set *bool
	if len(pos) == 1 {
		switch pos[0] {
		case "on", "off":
			on := pos[0] == "on"
			set = &on
		default:
			return usagef("receipts on or off, not %q", pos[0])
		}
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	var s wire.UserSettings
	if set == nil {
		s, err = h.UserSettings(ctx)
	} else {
		s, err = h.SetUserSettings(ctx, wire.UserSettings{ReadReceipts: set})
	}
	if err != nil {
		return err
	}
	return c.printJSON(s)
}

// cmdReads: imqtt reads G SEQ [--after USER] [--limit N]
func cmdReads(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reads")
	after := fs.String("after", "", "the page of readers after this user ID")
	limit := fs.Int("limit", 0, "at most this many readers listed (default: the server's)")
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	seq, err := strconv.ParseUint(pos[1], 10, 64)
	switch {
	case !wire.ValidUser(pos[0]):
		return usagef("bad group ID %q: %s", pos[0], userIDRule)
	case err != nil || seq == 0:
		return usagef("SEQ wants a message's seq in the group, not %q", pos[1])
	case *limit < 0:
		return usagef("--limit must not be negative")
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	r, err := h.GroupReads(ctx, pos[0], seq, *after, *limit)
	if err != nil {
		return err
	}
	if r.Users == nil {
		r.Users = []string{}
	}
	return c.printJSON(r)
}
