package sync

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Lookup is what rendering reads besides the events themselves: the
// messages that replies and edits refer to, reactions, and a user's hidden
// group messages. store.Store has it.
type Lookup interface {
	GetMessages(ctx context.Context, ids []int64) ([]store.Message, error)
	ReactionsOf(ctx context.Context, ids []int64) (map[int64][]store.ReactionSum, error)
	Hidden(ctx context.Context, user string, ids []int64) (map[int64]bool, error)
}

// Render turns stored events into the items user sees (ToMsg), with what
// they refer to as it is now: a reply's quote, a message's reactions, an
// edit's body (an edit of a message recalled since renders as the recall,
// so no body ever comes back once a recall is stored). It reads each of
// those once for all the events. A group message user has hidden comes
// back as an item with an empty Kind, which callers drop (Visible) once
// they have taken its position; one whose sender user blocked is marked
// Blocked (when lk has Blocks). user "" hides and marks nothing.
func Render(ctx context.Context, lk Lookup, user string, evs []store.Event) ([]wire.Msg, error) {
	items := make([]wire.Msg, len(evs))
	var refs, reacted, grouped []int64
	for i := range evs {
		m := &evs[i].Msg
		items[i] = ToMsg(evs[i])
		switch {
		case m.Change != nil && m.Change.Kind == store.ChangeEdit:
			refs = append(refs, m.Change.Target)
		case m.Change != nil:
		default:
			if m.ReplyTo != 0 && m.Recalled == 0 {
				refs = append(refs, m.ReplyTo)
			}
			if m.Reacted && m.Recalled == 0 {
				reacted = append(reacted, m.ID)
			}
			if m.Group != "" && user != "" {
				grouped = append(grouped, m.ID)
			}
		}
	}
	var byID map[int64]*store.Message
	if len(refs) > 0 {
		slices.Sort(refs)
		msgs, err := lk.GetMessages(ctx, slices.Compact(refs))
		if err != nil {
			return nil, fmt.Errorf("render: referred messages: %w", err)
		}
		byID = make(map[int64]*store.Message, len(msgs))
		for i := range msgs {
			byID[msgs[i].ID] = &msgs[i]
		}
	}
	var sums map[int64][]store.ReactionSum
	if len(reacted) > 0 {
		var err error
		if sums, err = lk.ReactionsOf(ctx, reacted); err != nil {
			return nil, fmt.Errorf("render: reactions: %w", err)
		}
	}
	var hidden map[int64]bool
	var blocked map[string]bool
	if len(grouped) > 0 {
		var err error
		if hidden, err = lk.Hidden(ctx, user, grouped); err != nil {
			return nil, fmt.Errorf("render: hidden: %w", err)
		}
		if blocked, err = blockedSenders(ctx, lk, user, evs); err != nil {
			return nil, fmt.Errorf("render: blocks: %w", err)
		}
	}
	for i := range evs {
		m, it := &evs[i].Msg, &items[i]
		if m.Change != nil {
			if m.Change.Kind == store.ChangeEdit {
				renderEdit(it, byID[m.Change.Target])
			}
			continue
		}
		if hidden[m.ID] {
			*it = wire.Msg{Ver: it.Ver, Seq: it.Seq} // dropped, position kept
			continue
		}
		if m.Group != "" && blocked[m.From] {
			it.Blocked = true
		}
		if m.ReplyTo != 0 && m.Recalled == 0 {
			it.Quote = QuoteOf(byID[m.ReplyTo])
		}
		if s := sums[m.ID]; len(s) > 0 {
			it.Reactions = ReactionCounts(s)
		}
	}
	return items, nil
}

// Blocks is what Render asks, when its Lookup has it (store.Social
// does), to mark the group messages of senders the reader blocked.
type Blocks interface {
	Gates(ctx context.Context, pairs []store.Pair) (map[store.Pair]store.Gate, error)
}

// blockedSenders returns which senders of evs' group messages user
// blocked: one read for all of them.
func blockedSenders(ctx context.Context, lk Lookup, user string, evs []store.Event) (map[string]bool, error) {
	bl, ok := lk.(Blocks)
	if !ok {
		return nil, nil
	}
	var pairs []store.Pair
	seen := map[string]bool{user: true}
	for i := range evs {
		m := &evs[i].Msg
		if m.Group != "" && m.Change == nil && !seen[m.From] {
			seen[m.From] = true
			pairs = append(pairs, store.Pair{User: user, Peer: m.From})
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	gates, err := bl.Gates(ctx, pairs)
	if err != nil {
		return nil, err
	}
	var out map[string]bool
	for p, g := range gates {
		if g.Blocked {
			if out == nil {
				out = map[string]bool{}
			}
			out[p.Peer] = true
		}
	}
	return out, nil
}

// Visible reports whether an item from Render is to be shown (not a
// hidden message's placeholder).
func Visible(m *wire.Msg) bool { return m.Kind != "" }

// renderEdit fills an edit item from its message as it is now; gone or
// recalled, the item becomes the recall.
func renderEdit(it *wire.Msg, target *store.Message) {
	switch {
	case target == nil:
		it.Body, it.Meta = "", nil
	case target.Recalled != 0:
		it.Kind, it.Body, it.Meta, it.Edited = wire.KindRecall, "", nil, 0
		it.By, it.TS = target.RecalledBy, target.Recalled
		if it.By == store.BurnedBy {
			it.By, it.Expired = "", true
		}
	default:
		it.Body, it.Meta, it.Edited = target.Body, metaOf(target.Meta), target.Edited
	}
}

// QuoteOf is what a reply shows of m as it is now (nil if it is gone).
func QuoteOf(m *store.Message) *wire.Quote {
	if m == nil {
		return nil
	}
	if m.Recalled != 0 {
		return &wire.Quote{From: m.From, Type: m.Type, Recalled: true}
	}
	body := m.Body
	if utf8.RuneCountInString(body) > wire.QuoteRunes {
		n := 0
		for i := range body {
			if n == wire.QuoteRunes {
				body = body[:i]
				break
			}
			n++
		}
	}
	return &wire.Quote{From: m.From, Type: m.Type, Body: body}
}

// ReactionCounts is the wire form of a message's reactions.
func ReactionCounts(sums []store.ReactionSum) map[string]wire.ReactionCount {
	out := make(map[string]wire.ReactionCount, len(sums))
	for _, s := range sums {
		if s.Count <= 0 {
			continue
		}
		users := s.Users
		if users == nil {
			users = []string{}
		}
		out[s.Emoji] = wire.ReactionCount{Count: s.Count, Users: users}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// metaOf is stored meta as it may be sent: none if it nests deeper than
// clients are promised (stored before sends were bounded).
func metaOf(meta []byte) []byte {
	if len(meta) > 0 && wire.CheckDepth(meta, wire.MaxMetaDepth) != nil {
		return nil
	}
	return meta
}

// toChange renders a change record as its item.
func toChange(ev store.Event) wire.Msg {
	m, c := &ev.Msg, ev.Msg.Change
	if c.Kind == store.ChangeGroup {
		return toGroupChange(ev)
	}
	out := wire.Msg{Kind: c.Kind, Ver: ev.Ver, Group: m.Group, Seq: m.Seq}
	if c.Target != 0 {
		out.ID = strconv.FormatInt(c.Target, 10)
	}
	switch c.Kind {
	case store.ChangeRecall:
		out.By, out.TS = m.From, m.TS
		if m.From == store.BurnedBy { // burnt after reading (docs/protocol.md#burn-after-reading)
			out.By, out.Expired = "", true
		}
	case store.ChangeEdit:
		out.Body, out.Meta, out.Edited = m.Body, metaOf(m.Meta), m.TS
	case store.ChangeReaction:
		out.From, out.Emoji, out.Op = m.From, c.Emoji, wire.ReactRemove
		if c.Add {
			out.Op = wire.ReactAdd
		}
	case store.ChangeDelete:
		out.Peer = c.Peer
		if len(c.IDs) > 0 {
			out.IDs = make([]string, len(c.IDs))
			for i, id := range c.IDs {
				out.IDs[i] = strconv.FormatInt(id, 10)
			}
		}
	}
	return out
}

// toGroupChange renders a group's administration record: a "group" item
// with its action, who made it (From) and what it set.
func toGroupChange(ev store.Event) wire.Msg {
	m, c := &ev.Msg, ev.Msg.Change
	out := wire.Msg{Kind: wire.KindGroup, ID: strconv.FormatInt(m.ID, 10), Ver: ev.Ver, From: m.From, Group: m.Group,
		Seq: m.Seq, TS: m.TS}
	if a := c.Admin; a != nil {
		out.Action, out.User, out.Until = a.Action, a.User, a.Until
		out.Name, out.Notice, out.Avatar, out.Muted = a.Name, a.Notice, a.Avatar, a.Muted
	}
	return out
}
