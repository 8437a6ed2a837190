package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/imqtt/imqtt/client"
	"github.com/imqtt/imqtt/wire"
)

// cmdSend: imqtt send (--to PEER | --group G [--mention U,@all]) [--reply-to ID] TEXT...
// It exits 0 only once the server has acked: until then it resends the same
// cmid on errors worth retrying, so the message is stored once (docs/protocol.md#events, docs/protocol.md#versions-and-offline-sync).
func cmdSend(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("send")
	to := fs.String("to", "", "the recipient's user ID")
	group := fs.String("group", "", "the group ID (instead of --to)")
	typ := fs.String("type", "text", "message type: text, image, audio, video, file, custom")
	cmid := fs.String("cmid", "", "the client message ID (default: random); resending one stores it once")
	media := fs.String("media", "", "a media ID from POST /v1/media")
	meta := fs.String("meta", "", "extra JSON metadata")
	mention := fs.String("mention", "", "with --group: comma-separated user IDs to mention, or @all (owner and admins)")
	replyTo := fs.String("reply-to", "", "the ID of the message of this conversation this one replies to (it then carries a quote of it)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up if not acked within this time")
	ttl := fs.String("ttl", "", "with --to: burn after reading, this long (seconds, or e.g. 5m) after the peer reads it")
	pos, err := c.parse(fs, args, 0, -1)
	if err != nil {
		return err
	}
	var ttlSecs int
	if *ttl != "" {
		if *group != "" {
			return usagef("--ttl is for a 1:1 message (--to PEER)")
		}
		if ttlSecs, err = parseTTL(*ttl); err != nil {
			return err
		}
	}
	switch {
	case (*to == "") == (*group == ""):
		return usagef("give exactly one of --to PEER or --group G")
	case *to != "" && !wire.ValidUser(*to):
		return usagef("bad user ID %q: %s", *to, userIDRule)
	case *group != "" && !wire.ValidUser(*group):
		return usagef("bad group ID %q: %s", *group, userIDRule)
	case !wire.MessageTypes[*typ]:
		return usagef("bad --type %q", *typ)
	case len(pos) == 0 && *media == "":
		return usagef("missing the text")
	case *meta != "" && !json.Valid([]byte(*meta)):
		return usagef("--meta is not JSON")
	case *mention != "" && *group == "":
		return usagef("--mention is for a group message (--group G)")
	case *replyTo != "" && !isMsgID(*replyTo):
		return usagef("bad --reply-to %q: %s", *replyTo, msgIDRule)
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	m := wire.Send{CMID: *cmid, To: *to, Group: *group, Type: *typ, Body: strings.Join(pos, " "), Media: *media, ReplyTo: *replyTo, TTL: ttlSecs}
	if m.CMID == "" {
		m.CMID = client.NewCMID()
	}
	if *meta != "" {
		m.Meta = json.RawMessage(*meta)
	}
	if *mention != "" {
		m.Mentions = strings.Split(*mention, ",")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ack, err := sendUntilAcked(ctx, h, m, c)
	if err != nil {
		return err
	}
	return c.printJSON(ack)
}

// sendUntilAcked sends m, and again with the same cmid after a retryable
// error or a network failure, with backoff, until acked or ctx ends.
func sendUntilAcked(ctx context.Context, h *client.HTTP, m wire.Send, c *cli) (wire.Ack, error) {
	return untilAcked(ctx, c, "send", m.CMID, func() (wire.Ack, error) { return h.Send(ctx, m) })
}

// untilAcked makes a request that the server acks (a send, or a change of
// a message) and makes it again, with the same cmid, after a retryable
// error or a network failure, with backoff, until acked or ctx ends: the
// server does what it asks once however often it arrives.
func untilAcked(ctx context.Context, c *cli, what, cmid string, do func() (wire.Ack, error)) (wire.Ack, error) {
	delay := 250 * time.Millisecond
	for {
		ack, err := do()
		if err == nil {
			return ack, nil
		}
		if !client.Retryable(err) && !isNetError(err) {
			return wire.Ack{}, err
		}
		c.log.Warn(what+" not acked; resending", "cmid", cmid, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return wire.Ack{}, fmt.Errorf("%s %s: not acked: %w (last error: %v)", what, cmid, ctx.Err(), err)
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// isNetError reports a failure to reach the server (as opposed to an answer).
func isNetError(err error) bool {
	var ne net.Error
	var we *wire.Error
	return errors.As(err, &ne) && !errors.As(err, &we)
}

// cmdConversations: imqtt conversations
func cmdConversations(ctx context.Context, c *cli, args []string) error {
	if _, err := c.parse(c.flags("conversations"), args, 0, 0); err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	convs, err := h.Conversations(ctx)
	if err != nil {
		return err
	}
	if convs.Conversations == nil {
		convs.Conversations = []wire.Conversation{}
	}
	return c.printJSON(convs)
}

// cmdHistory: imqtt history PEER [--before ID] [--limit N]
func cmdHistory(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("history")
	before := fs.String("before", "", "only messages older than this message ID")
	limit := fs.Int("limit", 0, "at most this many messages (default: the server's)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	peer, ok := wire.NormUser(pos[0]) // "..": no request at all, not another route
	if !ok {
		return usagef("bad user ID %q: %s", pos[0], userIDRule)
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	hist, err := h.History(ctx, peer, *before, *limit)
	if err != nil {
		return err
	}
	if hist.Messages == nil {
		hist.Messages = []wire.Msg{}
	}
	return c.printJSON(hist)
}

// cmdRead: imqtt read PEER [--upto ID]
func cmdRead(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("read")
	upto := fs.String("upto", "", "the last message ID read (default: everything so far)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	peer, ok := wire.NormUser(pos[0])
	if !ok {
		return usagef("bad user ID %q: %s", pos[0], userIDRule)
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	u, err := h.Read(ctx, wire.Read{Peer: peer, Upto: *upto})
	if err != nil {
		return err
	}
	return c.printJSON(u)
}
