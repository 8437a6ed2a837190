package chat

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// The message lifecycle (docs/protocol.md#message-lifecycle): recall, edit,
// reactions and delete-for-me are changes of stored messages. Each goes
// the way of a send — checked, queued, deduplicated by (user, cmid), given
// a version in each party's inbox (a seq in a group's log) by the batcher,
// committed as a change record with what it does to the message (store's
// change.go), acked, delivered — so a change is as durable and exactly-once
// as a message, and offline devices get it by sync.

// The defaults of the lifecycle's Options.
const (
	DefaultRecallWindow = 24 * time.Hour
	DefaultEditWindow   = 48 * time.Hour
	// MaxEmojis bounds the different emojis on one message, and
	// MaxUserEmojis one user's emojis on one message: without them one
	// account could hang thousands of reactions on a message that every
	// member's sync then carries.
	MaxEmojis     = 50
	MaxUserEmojis = 10
)

// change is what a change op asks, and what the batcher found.
type change struct {
	kind   string // store.Change…
	target int64  // recall, edit, reaction
	emoji  string // reaction
	add    bool
	ids    []int64     // delete
	peer   string      // delete: clear the conversation with peer
	admin  *groupAdmin // a group's administration (groupadmin.go)
	// to is the other party of the 1:1 message an edit or a reaction
	// changes (set by the batcher's check): its blocks apply (gateChanges).
	to string

	// A reaction's, read on the caller (React) so that a storm of them
	// costs the single batcher no round trip each: the user's emojis on
	// the message and the message's emojis (nil: none, or not read).
	mine, emojis []string

	// Set by the batcher.
	noop  bool         // a reaction that is there (add) or not (remove): acked, nothing stored
	hides []store.Hide // delete
	at    []userVer    // 1:1: each party's version of the change record
}

type userVer struct {
	user string
	ver  uint64
}

// Recall submits a recall (im/recall); done is called once, as for Submit.
func (s *Service) Recall(ctx context.Context, from Sender, req wire.Recall, done func(Result)) {
	id, err := CheckRecall(req)
	if err != nil {
		s.fail(from, done, err)
		return
	}
	s.submitChange(ctx, from, wire.Send{CMID: req.CMID}, &change{kind: store.ChangeRecall, target: id}, done)
}

// Edit submits an edit (im/edit). The edit passes the content filter and
// the before_send webhook as a text send to the message's conversation
// would: the message is read first (on the caller) to know which.
func (s *Service) Edit(ctx context.Context, from Sender, req wire.Edit, done func(Result)) {
	start := time.Now()
	id, err := CheckEdit(&req, s.opts.MaxBody)
	if err != nil {
		s.fail(from, done, err)
		return
	}
	if err := s.limit(ctx, from.User); err != nil { // before the read: a flood costs no I/O
		s.fail(from, done, err)
		return
	}
	msgs, err := s.st.GetMessages(ctx, []int64{id})
	if err != nil {
		s.log.Error("read message to edit", "err", err)
		s.fail(from, done, unavailable())
		return
	}
	if len(msgs) == 0 || msgs[0].Change != nil {
		s.fail(from, done, noMessage())
		return
	}
	t := &msgs[0]
	send := wire.Send{CMID: req.CMID, To: t.To, Group: t.Group, Type: "text", Body: req.Body, Meta: req.Meta, Edit: req.ID}
	if t.Group == "" && t.To == from.User {
		send.To = t.From
	}
	if err := s.mayEdit(from.User, t, time.Now()); err != nil {
		if t.Group == "" && from.User != t.From && from.User != t.To {
			err = noMessage() // not a party: it does not exist for it
		}
		s.fail(from, done, err)
		return
	}
	s.queueChange(ctx, &sendOp{from: from, req: send, done: done, start: start, chg: &change{kind: store.ChangeEdit, target: id}})
}

// React submits a reaction (im/react). What the user and the message
// have of reactions is read here, on the caller: the batcher then decides
// from it and the batch's own reactions without a read of its own.
func (s *Service) React(ctx context.Context, from Sender, req wire.React, done func(Result)) {
	id, err := CheckReact(req)
	if err != nil {
		s.fail(from, done, err)
		return
	}
	if err := s.limit(ctx, from.User); err != nil { // before the reads: a flood costs no I/O
		s.fail(from, done, err)
		return
	}
	c := &change{kind: store.ChangeReaction, target: id, emoji: req.Emoji, add: req.Op == wire.ReactAdd}
	if c.mine, err = s.st.UserReactions(ctx, id, from.User); err == nil && c.add {
		var sums map[int64][]store.ReactionSum
		if sums, err = s.st.ReactionsOf(ctx, []int64{id}); err == nil {
			for _, r := range sums[id] {
				if r.Count > 0 {
					c.emojis = append(c.emojis, r.Emoji)
				}
			}
		}
	}
	if err != nil {
		if !storeLogged(err) {
			s.log.Error("read reactions", "err", err)
		}
		s.fail(from, done, unavailable())
		return
	}
	s.queueChange(ctx, &sendOp{from: from, req: wire.Send{CMID: req.CMID}, done: done, start: time.Now(), chg: c})
}

// Delete submits a delete-for-me (im/delete): messages, or a whole 1:1
// conversation (Peer), hidden from the user's own devices.
func (s *Service) Delete(ctx context.Context, from Sender, req wire.Delete, done func(Result)) {
	ids, err := CheckDelete(&req)
	if err != nil {
		s.fail(from, done, err)
		return
	}
	s.submitChange(ctx, from, wire.Send{CMID: req.CMID}, &change{kind: store.ChangeDelete, ids: ids, peer: req.Peer}, done)
}

// submitChange takes a checked change the way Submit takes a send: the
// sender's rate, then queueChange.
func (s *Service) submitChange(ctx context.Context, from Sender, req wire.Send, c *change, done func(Result)) {
	start := time.Now()
	if err := s.limit(ctx, from.User); err != nil {
		s.fail(from, done, err)
		return
	}
	s.queueChange(ctx, &sendOp{from: from, req: req, done: done, start: start, chg: c})
}

// queueChange queues a change within the sender's rate: an edit through
// the filter and the hook first.
func (s *Service) queueChange(ctx context.Context, op *sendOp) {
	if op.chg.kind != store.ChangeEdit {
		s.enqueue(ctx, op)
		return
	}
	var err error
	if op.req.Body, err = s.filtered(op.from, op.req.Body); err != nil {
		s.fail(op.from, op.done, err)
		return
	}
	s.pass(ctx, op)
}

// Wait runs submit and waits for its result (the HTTP path of a send or
// a change).
func Wait(ctx context.Context, submit func(done func(Result))) (wire.Ack, error) {
	ch := make(chan Result, 1)
	submit(func(r Result) { ch <- r })
	select {
	case r := <-ch:
		if r.Err != nil {
			return wire.Ack{}, r.Err
		}
		return r.Ack, nil
	case <-ctx.Done():
		return wire.Ack{}, ctx.Err()
	}
}

// CheckRecall checks a recall's fields and returns the message's ID.
func CheckRecall(req wire.Recall) (int64, error) {
	if err := checkCMID(req.CMID); err != nil {
		return 0, err
	}
	return parseID("id", req.ID)
}

// CheckEdit checks an edit's fields (the body and meta as a text send's)
// and returns the message's ID.
func CheckEdit(req *wire.Edit, maxBody int) (int64, error) {
	if err := checkCMID(req.CMID); err != nil {
		return 0, err
	}
	id, err := parseID("id", req.ID)
	if err != nil {
		return 0, err
	}
	if req.Body == "" {
		return 0, refuse(ErrBadRequest, "body is required")
	}
	send := wire.Send{CMID: req.CMID, To: "x", Type: "text", Body: req.Body, Meta: req.Meta}
	if err, _ := CheckSend(&send, maxBody); err != nil {
		return 0, err
	}
	req.Meta = send.Meta
	return id, nil
}

// CheckReact checks a reaction's fields and returns the message's ID.
func CheckReact(req wire.React) (int64, error) {
	if err := checkCMID(req.CMID); err != nil {
		return 0, err
	}
	id, err := parseID("id", req.ID)
	switch {
	case err != nil:
		return 0, err
	case !wire.ValidEmoji(req.Emoji):
		return 0, refuse(ErrBadRequest, "emoji must be one emoji (a single grapheme cluster of at most "+
			strconv.Itoa(wire.MaxEmojiBytes)+" bytes)")
	case req.Op != wire.ReactAdd && req.Op != wire.ReactRemove:
		return 0, refuse(ErrBadRequest, `op must be "add" or "remove"`)
	}
	return id, nil
}

// CheckDelete checks a delete's fields, folds its peer, and returns the
// messages' IDs (none for a conversation's clearing).
func CheckDelete(req *wire.Delete) ([]int64, error) {
	if err := checkCMID(req.CMID); err != nil {
		return nil, err
	}
	switch {
	case req.Peer != "" && len(req.IDs) > 0:
		return nil, refuse(ErrBadRequest, "ids and peer are exclusive")
	case req.Peer != "":
		peer, ok := wire.NormUser(req.Peer)
		if !ok {
			return nil, refuse(ErrBadRequest, "peer must be a user ID")
		}
		req.Peer = peer
		return nil, nil
	case len(req.IDs) == 0:
		return nil, refuse(ErrBadRequest, "ids or peer is required")
	case len(req.IDs) > wire.MaxDeleteIDs:
		return nil, refuse(ErrBadRequest, "at most "+strconv.Itoa(wire.MaxDeleteIDs)+" ids")
	}
	ids := make([]int64, 0, len(req.IDs))
	seen := make(map[int64]bool, len(req.IDs))
	for _, s := range req.IDs {
		id, err := parseID("ids", s)
		if err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func checkCMID(cmid string) error {
	switch {
	case cmid == "":
		return refuse(ErrMissingCMID, "cmid is required (1-128 bytes)")
	case len(cmid) > MaxCMID:
		return refuse(ErrMissingCMID, "cmid over "+strconv.Itoa(MaxCMID)+" bytes")
	}
	return nil
}

func parseID(field, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, refuse(ErrBadRequest, field+": not a message id")
	}
	return id, nil
}

// noMessage is not_found for a message the user cannot see, whether or
// not it exists: a stranger learns nothing.
func noMessage() error { return refuse(ErrNotFound, "no such message") }

// window reports whether a change at now of a message sent at ts is past
// w (negative: no limit).
func pastWindow(ts int64, now time.Time, w time.Duration) bool {
	return w >= 0 && now.Sub(time.UnixMilli(ts)) > w
}

// mayEdit checks what an edit of t by user needs beyond seeing it.
func (s *Service) mayEdit(user string, t *store.Message, now time.Time) error {
	switch {
	case t.From != user:
		return refuse(ErrNotAllowed, "only the sender may edit a message")
	case t.Recalled != 0:
		return refuse(ErrNotAllowed, "the message was recalled")
	case t.Type != "text":
		return refuse(ErrNotAllowed, "only text messages can be edited")
	case pastWindow(t.TS, now, s.opts.EditWindow):
		return refuse(ErrTooLate, "past the edit window ("+s.opts.EditWindow.String()+")")
	}
	return nil
}

// batchView is the messages a batch refers to (replies' and changes'
// targets), read once and changed in place as the batch's changes apply,
// so that a later op of the same batch sees the earlier ones.
type batchView struct {
	msgs      map[int64]*store.Message
	members   map[[2]string]*store.Member // (group, user), nil: not a member
	reactions map[reactKey]bool           // reactions the batch added (true) or removed (false)
	emojis    map[int64][]string          // emojis on a message, as read for the batch
	groups    map[string]*store.Group     // groups, read once a batch; nil: none
	// failed says the messages could not be read: ops that refer to one
	// are refused unavailable.
	failed bool
}

type reactKey struct {
	msg         int64
	user, emoji string
}

// view reads every message the batch's ops refer to, in one read.
func (s *Service) view(ctx context.Context, ops []*sendOp) (*batchView, error) {
	v := &batchView{msgs: map[int64]*store.Message{}, members: map[[2]string]*store.Member{}, reactions: map[reactKey]bool{},
		emojis: map[int64][]string{}, groups: map[string]*store.Group{}}
	var ids []int64
	for _, op := range ops {
		switch c := op.chg; {
		case c == nil && op.replyTo != 0:
			ids = append(ids, op.replyTo)
		case c != nil && c.target != 0:
			ids = append(ids, c.target)
		case c != nil:
			ids = append(ids, c.ids...)
		}
	}
	if len(ids) == 0 {
		return v, nil
	}
	msgs, err := s.st.GetMessages(ctx, ids)
	if err != nil {
		v.failed = true
		return v, err
	}
	for i := range msgs {
		v.msgs[msgs[i].ID] = &msgs[i]
	}
	return v, nil
}

// visible returns the message id as user may see it, or not_found.
func (s *Service) visible(ctx context.Context, v *batchView, user string, id int64) (*store.Message, *store.Member, error) {
	t := v.msgs[id]
	if t == nil || t.Change != nil {
		return nil, nil, noMessage()
	}
	if t.Group == "" {
		if user != t.From && user != t.To {
			return nil, nil, noMessage()
		}
		return t, nil, nil
	}
	m, err := s.memberOf(ctx, v, t.Group, user) // a delete of 100 messages of a group asks once
	if err != nil {
		return nil, nil, err
	}
	if m == nil || t.Seq <= m.JoinSeq {
		return nil, nil, noMessage()
	}
	return t, m, nil
}

// checkReply checks a send's reply_to against the batch's view: a message
// of the same conversation that the sender sees, not recalled.
func (s *Service) checkReply(op *sendOp, v *batchView, member *store.Member) error {
	t := v.msgs[op.replyTo]
	bad := refuse(ErrBadRequest, "reply_to must be a message of this conversation")
	if t == nil || t.Change != nil {
		return bad
	}
	from, to, group := op.from.User, op.req.To, op.req.Group
	switch {
	case group != "":
		if t.Group != group || member == nil || t.Seq <= member.JoinSeq {
			return bad
		}
	case t.Group != "":
		return bad
	case !(t.From == from && t.To == to) && !(t.From == to && t.To == from):
		return bad
	}
	if t.Recalled != 0 {
		return refuse(ErrBadRequest, "reply_to was recalled")
	}
	op.quoted = t
	return nil
}

// checkChange decides a change op against the batch's view and applies it
// there. It runs after deduplication: a resent cmid is answered by its
// first ack before its change would be found done already.
func (s *Service) checkChange(ctx context.Context, op *sendOp, v *batchView) error {
	c, user, now := op.chg, op.from.User, time.Now()
	switch c.kind {
	case store.ChangeDelete:
		return s.checkDelete(ctx, op, v)
	case store.ChangeGroup:
		return s.checkAdmin(ctx, op, v)
	}
	if op.from.system() && c.kind == store.ChangeRecall {
		return checkBurn(v, c.target, now)
	}
	t, member, err := s.visible(ctx, v, user, c.target)
	if err != nil {
		return err
	}
	if t.Group == "" && (c.kind == store.ChangeEdit || c.kind == store.ChangeReaction) {
		c.to = t.To
		if t.To == user {
			c.to = t.From
		}
	}
	if t.Group != "" { // nothing changes in a disbanded group; a muted member edits nothing
		g, err := s.groupOf(ctx, v, t.Group)
		if err != nil {
			return err
		}
		switch {
		case g == nil:
		case g.Disbanded != 0:
			return groupGone(t.Group)
		case c.kind == store.ChangeEdit:
			if err := mayPost(g, member, now); err != nil {
				return err
			}
		}
	}
	switch c.kind {
	case store.ChangeRecall:
		admin := member != nil && (member.Role == store.RoleOwner || member.Role == store.RoleAdmin)
		switch {
		case t.From != user && !admin:
			return refuse(ErrNotAllowed, "only the sender (in a group also its owner and admins) may recall a message")
		case t.Recalled != 0:
			return refuse(ErrNotAllowed, "the message was recalled already")
		case pastWindow(t.TS, now, s.opts.RecallWindow):
			return refuse(ErrTooLate, "past the recall window ("+s.opts.RecallWindow.String()+")")
		}
		t.Recalled, t.RecalledBy = now.UnixMilli(), user
	case store.ChangeEdit:
		if err := s.mayEdit(user, t, now); err != nil {
			return err
		}
		t.Body, t.Meta, t.Edited = op.req.Body, op.req.Meta, now.UnixMilli()
	case store.ChangeReaction:
		if t.Recalled != 0 {
			return refuse(ErrNotAllowed, "the message was recalled")
		}
		return s.checkReaction(ctx, op, v, t)
	}
	return nil
}

// checkReaction: one per (user, message, emoji), within MaxUserEmojis and
// MaxEmojis; adding one that is there, or removing one that is not, is
// acked with nothing stored.
func (s *Service) checkReaction(ctx context.Context, op *sendOp, v *batchView, t *store.Message) error {
	c, user, mine := op.chg, op.from.User, op.chg.mine
	has := func(emoji string) bool {
		if added, ok := v.reactions[reactKey{t.ID, user, emoji}]; ok {
			return added
		}
		return slices.Contains(mine, emoji)
	}
	if has(c.emoji) == c.add {
		c.noop = true
		return nil
	}
	if c.add {
		n := 0
		for _, e := range mine {
			if has(e) {
				n++
			}
		}
		for k, added := range v.reactions {
			if added && k.msg == t.ID && k.user == user && !slices.Contains(mine, k.emoji) {
				n++
			}
		}
		if n >= MaxUserEmojis {
			return refuse(ErrBadRequest, "at most "+strconv.Itoa(MaxUserEmojis)+" reactions of one user on a message")
		}
		emojis, ok := v.emojis[t.ID]
		if !ok {
			emojis = c.emojis
		}
		if !slices.Contains(emojis, c.emoji) {
			if len(emojis) >= MaxEmojis {
				return refuse(ErrBadRequest, "at most "+strconv.Itoa(MaxEmojis)+" different emojis on a message")
			}
			emojis = append(emojis, c.emoji)
		}
		v.emojis[t.ID] = emojis
	}
	v.reactions[reactKey{t.ID, user, c.emoji}] = c.add
	return nil
}

// checkDelete: every message named must be one the user sees.
func (s *Service) checkDelete(ctx context.Context, op *sendOp, v *batchView) error {
	c, user := op.chg, op.from.User
	if c.peer != "" {
		return nil // clearing: whatever there is of it
	}
	for _, id := range c.ids {
		t, _, err := s.visible(ctx, v, user, id)
		if err != nil {
			return err
		}
		h := store.Hide{User: user, MsgID: id, Group: t.Group}
		if t.Group == "" {
			h.Peer = t.To
			if t.To == user {
				h.Peer = t.From
			}
		}
		c.hides = append(c.hides, h)
	}
	return nil
}

// parties of a 1:1 message: its two users, without the server's sender
// (which keeps no inbox); one for a note to oneself.
func parties(t *store.Message) []string {
	var out []string
	if t.From != SystemUser {
		out = append(out, t.From)
	}
	if t.To != t.From {
		out = append(out, t.To)
	}
	return out
}

// changeKeys are the version keys a change op takes (allocate).
func changeKeys(op *sendOp, v *batchView) []string {
	c := op.chg
	switch c.kind {
	case store.ChangeDelete:
		return []string{op.from.User}
	case store.ChangeGroup:
		return []string{"g:" + c.admin.group, "gc:" + c.admin.group}
	}
	t := v.msgs[c.target]
	if t.Group != "" {
		return []string{"g:" + t.Group, "gc:" + t.Group}
	}
	return parties(t)
}

// allocateChange adds a change op's record and what it does to b, with
// vers the versions changeKeys asked for.
func (s *Service) allocateChange(op *sendOp, v *batchView, vers []uint64, b *store.Batch) {
	c, user := op.chg, op.from.User
	if c.kind == store.ChangeGroup {
		s.allocateAdmin(op, vers[0], vers[1], b)
		return
	}
	rec := store.Message{ID: s.ids.Load().Generate().Int64(), From: user, CMID: op.req.CMID, TS: time.Now().UnixMilli(),
		Change: &store.Change{Kind: c.kind, Target: c.target, Emoji: c.emoji, Add: c.add, IDs: c.ids, Peer: c.peer}}
	ack := store.Ack{From: user, CMID: rec.CMID, ID: rec.ID, TS: rec.TS}
	if c.kind == store.ChangeDelete {
		peer := user
		switch {
		case c.peer != "":
			peer = c.peer
			b.Clears = append(b.Clears, store.Clear{User: user, Peer: c.peer, Upto: rec.ID})
		case len(c.hides) > 0 && c.hides[0].Peer != "":
			peer = c.hides[0].Peer
		case len(c.hides) > 0:
			peer = c.hides[0].Group
		}
		b.Hides = append(b.Hides, c.hides...)
		ack.Ver = vers[0]
		b.Entries = append(b.Entries, store.Entry{User: user, Ver: vers[0], Peer: peer, Out: true, MsgID: rec.ID, Change: true})
		c.at = []userVer{{user, vers[0]}}
	} else {
		t := v.msgs[c.target]
		if t.Group != "" {
			rec.Group, rec.Seq, rec.Change.Count = t.Group, vers[0], vers[1]
			ack.Group, ack.Seq = t.Group, rec.Seq
			b.Heads = append(b.Heads, store.GroupHead{Group: t.Group, Seq: rec.Seq, Changes: rec.Change.Count})
		} else {
			rec.To = t.To // the conversation, as a 1:1 message names it (push reads it)
			if user == t.To {
				rec.To = t.From
			}
			for i, p := range parties(t) {
				peer := t.To
				if p == t.To {
					peer = t.From
				}
				if p == user {
					ack.Ver = vers[i]
				}
				b.Entries = append(b.Entries, store.Entry{User: p, Ver: vers[i], Peer: peer, Out: p == user, MsgID: rec.ID, Change: true})
				c.at = append(c.at, userVer{p, vers[i]})
			}
		}
		switch c.kind {
		case store.ChangeRecall:
			b.Recalls = append(b.Recalls, store.Recall{MsgID: t.ID, By: user, TS: rec.TS})
			if t.Media != "" {
				b.Grants = append(b.Grants, store.Grant{Media: t.Media, Principal: store.RevokedGrant})
			}
			if s.opts.Webhooks != nil {
				if ev, ok := s.opts.Webhooks.Recalled(*t, user, time.UnixMilli(rec.TS)); ok {
					ev.MsgID = rec.ID // a shared store's claim of the recall covers its event
					b.Webhooks = append(b.Webhooks, ev)
				}
			}
		case store.ChangeEdit:
			b.Edits = append(b.Edits, store.Edit{MsgID: t.ID, Body: op.req.Body, Meta: op.req.Meta, TS: rec.TS})
		case store.ChangeReaction:
			b.Reactions = append(b.Reactions, store.Reaction{MsgID: t.ID, User: user, Emoji: c.emoji, Add: c.add, TS: rec.TS})
		}
	}
	b.Messages = append(b.Messages, rec)
	op.msg = &b.Messages[len(b.Messages)-1]
	op.ack = len(b.Acks)
	b.Acks = append(b.Acks, ack)
}

// deliverChange sends a committed change to every device of both parties
// (a group's: through the fan-out; a delete: the user's own).
func (s *Service) deliverChange(op *sendOp) {
	rec := *op.msg
	if rec.Group != "" {
		s.fan.in <- rec
		if s.opts.Remote != nil {
			s.opts.Remote.Group(rec)
		}
		return
	}
	for _, at := range op.chg.at {
		it := imsync.ToMsg(store.Event{Entry: store.Entry{User: at.user, Ver: at.ver}, Msg: rec})
		if rec.Change.Kind == store.ChangeEdit {
			it.Body, it.Meta = op.req.Body, json.RawMessage(op.req.Meta)
		}
		s.toUser(at.user, it)
	}
}

// changeAck is the ack of a change that stored nothing (a reaction that
// was there already): the message's ID, no version.
func changeAck(op *sendOp) wire.Ack {
	return wire.Ack{Kind: wire.KindAck, CMID: op.req.CMID, ID: strconv.FormatInt(op.chg.target, 10), TS: time.Now().UnixMilli()}
}
