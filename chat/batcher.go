package chat

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// sendOp is one send on its way through the pipeline.
type sendOp struct {
	from  Sender
	req   wire.Send
	done  func(Result)
	start time.Time

	inline  *store.Inline // small media to carry in the message (from Media.Attach)
	res     Result
	dupOf   *sendOp // a send of the same (from, cmid) earlier in the same batch
	msg     *store.Message
	fromVer uint64 // the sender's version of msg
	toVer   uint64 // the recipient's version (0 for a note to oneself)
	ack     int    // index of its row in the batch's Acks

	replyTo int64          // a send's reply_to
	quoted  *store.Message // the message it replies to, as the batch read it
	chg     *change        // a change of a message (life.go) instead of a send
}

// runBatcher is the single writer: it takes whatever sends are queued (up to
// MaxBatch), gives them ids and versions in queue order, commits them in one
// store write, and hands them to the dispatcher in the same order. Versions
// are allocated here and committed before the next batch starts, so a user's
// versions become visible in order and sync never skips one that lands later.
func (s *Service) runBatcher() {
	defer close(s.dispatch)
	for op := range s.queue {
		ops := []*sendOp{op}
	fill:
		// A group's administration ends its batch: what comes after it is
		// checked against the group as it made it (groupadmin.go).
		for len(ops) < s.opts.MaxBatch && !isAdminOp(ops[len(ops)-1]) {
			select {
			case op, ok := <-s.queue:
				if !ok {
					break fill
				}
				ops = append(ops, op)
			default:
				break fill
			}
		}
		s.process(ops)
		s.dispatch <- ops
	}
}

// process decides every op's result; only ops with res.Err == nil and a msg
// were newly stored.
func (s *Service) process(ops []*sendOp) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitWait)
	defer cancel()
	n := len(ops)
	b := store.Batch{Messages: make([]store.Message, 0, n), Entries: make([]store.Entry, 0, 2*n),
		Acks: make([]store.Ack, 0, n), Convs: make([]store.ConvUpdate, 0, 2*n)}
	seen := make(map[store.AckKey]*sendOp, len(ops))
	valid := make([]*sendOp, 0, len(ops))
	v, err := s.view(ctx, ops)
	if err != nil && !storeLogged(err) {
		s.log.Error("read messages a batch refers to", "err", err)
	}
	for _, op := range ops {
		key := store.AckKey{From: op.from.User, CMID: op.req.CMID}
		if first, ok := seen[key]; ok {
			op.dupOf = first
			continue
		}
		seen[key] = op
		if v.failed && (op.chg != nil && op.chg.kind != store.ChangeGroup || op.replyTo != 0) {
			op.res.Err = unavailable()
			continue
		}
		if op.chg == nil { // a change is checked after dedupe
			if err := s.check(ctx, op, v); err != nil {
				op.res.Err = err
				continue
			}
		}
		valid = append(valid, op)
	}
	fresh := s.gate(ctx, s.dedupe(ctx, valid))
	checked := fresh[:0]
	for _, op := range fresh {
		if op.chg != nil {
			if err := s.checkChange(ctx, op, v); err != nil {
				op.res.Err = refusal(err)
				if _, _, ok := Describe(err); !ok {
					s.log.Error("check change", "err", err)
				}
				continue
			}
			if op.chg.noop {
				op.res.Ack = changeAck(op)
				continue
			}
		}
		checked = append(checked, op)
	}
	checked = s.gateChanges(ctx, checked)
	s.allocate(ctx, checked, v, &b)
	if s.opts.Pushed != nil {
		s.addPushJobs(&b)
	}
	if s.opts.Webhooks != nil {
		// With the messages: a message stored is an event not lost. Appended:
		// allocate has put a recall's message.recalled there already.
		b.Webhooks = append(b.Webhooks, s.opts.Webhooks.AfterSend(b.Messages)...)
	}
	if b.Len() > 0 {
		start := time.Now()
		err := s.st.Commit(ctx, &b)
		if err == nil && len(b.PushJobs) > 0 {
			s.opts.Pushed()
		}
		if err == nil && len(b.Webhooks) > 0 {
			s.opts.Webhooks.Committed()
		}
		s.m.CommitSeconds.Observe(time.Since(start).Seconds())
		s.m.BatchSize.Observe(float64(b.Len()))
		if err != nil {
			if !storeLogged(err) {
				s.log.Error("commit batch", "messages", b.Len(), "err", err)
			}
			for _, op := range ops {
				if op.msg != nil {
					op.msg = nil
					op.res.Err = refuse(ErrUnavailable, "message not stored; resend with the same cmid")
				}
			}
		}
	}
	for _, op := range ops {
		switch {
		case op.dupOf != nil:
			op.res = op.dupOf.res
			if op.res.Err == nil {
				s.m.Messages.WithLabelValues("duplicate").Inc()
			}
		case op.msg != nil:
			if prev, ok := b.Existing[op.ack]; ok {
				// Another node was storing this send already (a resend
				// that went there too): answer with its ack, deliver nothing.
				op.msg, op.res.Ack = nil, ackOf(prev)
				s.m.Messages.WithLabelValues("duplicate").Inc()
				continue
			}
			if op.chg != nil {
				op.res.Ack = ackOf(b.Acks[op.ack])
				s.m.Messages.WithLabelValues("changed").Inc()
				continue
			}
			op.res.Ack = wire.Ack{Kind: wire.KindAck, CMID: op.req.CMID, ID: strconv.FormatInt(op.msg.ID, 10),
				Ver: op.fromVer, TS: op.msg.TS, Group: op.msg.Group, Seq: op.msg.Seq}
			s.m.Messages.WithLabelValues("stored").Inc()
		}
	}
}

// check resolves what one op needs before versions: the recipient exists
// or the sender is a member (its owner or an admin to mention all), and a
// reply's message is one of the conversation's (v: the batch's view).
func (s *Service) check(ctx context.Context, op *sendOp, v *batchView) error {
	from, to, group := op.from.User, op.req.To, op.req.Group
	if group != "" && op.from.system() {
		g, err := s.groupOf(ctx, v, group) // system is no member, and may mention all
		switch {
		case err != nil:
			return s.lookupFailed("look up group", group, err)
		case g == nil:
			return refuse(ErrNotFound, "no such group: "+group)
		case g.Disbanded != 0:
			return groupGone(group)
		}
		if op.replyTo != 0 {
			return s.checkReply(op, v, &store.Member{})
		}
		return nil
	}
	if group != "" {
		// The member's row and the group's, read once a batch however
		// many of its sends are to the group.
		m, err := s.memberOf(ctx, v, group, from)
		if err != nil {
			return s.lookupFailed("look up member", group, err)
		}
		if m == nil {
			return notMember(group)
		}
		g, err := s.groupOf(ctx, v, group)
		if err != nil {
			return s.lookupFailed("look up group", group, err)
		}
		if g == nil {
			return notMember(group)
		}
		if err := mayPost(g, m, time.Now()); err != nil {
			return err
		}
		if mentionsAll(op.req.Mentions) && m.Role != store.RoleOwner && m.Role != store.RoleAdmin {
			return refuse(ErrForbidden, "only the group's owner and admins may mention "+wire.MentionAll)
		}
		if op.replyTo != 0 {
			return s.checkReply(op, v, m)
		}
		return nil
	}
	if op.replyTo != 0 {
		if err := s.checkReply(op, v, nil); err != nil {
			return err
		}
	}
	if ok, err := s.userExists(ctx, to); err != nil {
		s.log.Error("look up recipient", "user", to, "err", err)
		return unavailable()
	} else if !ok {
		return refuse(ErrNoSuchUser, "no such user: "+to)
	}
	return nil
}

// dedupe gives the sends whose (sender, cmid) is stored already their old
// ack, and returns the others, in order: one store lookup for the batch.
func (s *Service) dedupe(ctx context.Context, ops []*sendOp) []*sendOp {
	if len(ops) == 0 {
		return nil
	}
	keys := make([]store.AckKey, len(ops))
	for i, op := range ops {
		keys[i] = store.AckKey{From: op.from.User, CMID: op.req.CMID}
	}
	found, err := s.st.LookupAcks(ctx, keys)
	if err != nil {
		if !storeLogged(err) {
			s.log.Error("look up cmids", "sends", len(ops), "err", err)
		}
		for _, op := range ops {
			op.res.Err = unavailable()
		}
		return nil
	}
	fresh := make([]*sendOp, 0, len(ops))
	for i, op := range ops {
		if prev, ok := found[keys[i]]; ok {
			op.res.Ack = ackOf(prev)
			s.m.Messages.WithLabelValues("duplicate").Inc()
			continue
		}
		fresh = append(fresh, op)
	}
	return fresh
}

// allocate gives the new ops of a batch their ids and versions (a group
// message its seq) in one call, in queue order, and adds them to b (whose
// Messages never grow past their capacity, so op.msg stays valid).
func (s *Service) allocate(ctx context.Context, ops []*sendOp, v *batchView, b *store.Batch) {
	if len(ops) == 0 {
		return
	}
	keys := make([]string, 0, 2*len(ops))
	for _, op := range ops {
		switch {
		case op.chg != nil:
			keys = append(keys, changeKeys(op, v)...)
		case op.req.Group != "":
			keys = append(keys, "g:"+op.req.Group)
		case op.req.To == op.from.User:
			keys = append(keys, op.from.User)
		case op.from.system(): // no inbox of its own
			keys = append(keys, op.req.To)
		default:
			keys = append(keys, op.from.User, op.req.To)
		}
	}
	vers, err := state.NextEach(ctx, s.versions, keys)
	if err != nil {
		if !storeLogged(err) {
			s.log.Error("allocate versions", "messages", len(ops), "err", err)
		}
		for _, op := range ops {
			op.res.Err = unavailable()
		}
		return
	}
	for _, op := range ops {
		if op.chg != nil {
			n := len(changeKeys(op, v))
			s.allocateChange(op, v, vers[:n], b)
			vers = vers[n:]
			continue
		}
		from, to, group := op.from.User, op.req.To, op.req.Group
		m := store.Message{ID: s.ids.Load().Generate().Int64(), From: from, To: to, Group: group, Type: op.req.Type, Body: op.req.Body,
			Media: op.req.Media, Meta: op.req.Meta, CMID: op.req.CMID, TS: time.Now().UnixMilli(), Inline: op.inline,
			Mentions: op.req.Mentions, ReplyTo: op.replyTo, TTL: op.req.TTL}
		if group != "" {
			// Read diffusion: one message row, one seq, one head, whatever the member count.
			m.Seq, vers = vers[0], vers[1:]
			b.Messages = append(b.Messages, m)
			op.ack = len(b.Acks)
			b.Acks = append(b.Acks, store.Ack{From: from, CMID: m.CMID, ID: m.ID, TS: m.TS, Group: group, Seq: m.Seq})
			head := store.GroupHead{Group: group, Seq: m.Seq, MsgID: m.ID, TS: m.TS}
			for _, u := range m.Mentions {
				switch {
				case u == wire.MentionAll:
					head.MentionAll = m.Seq
				case u != from:
					b.Mentioned = append(b.Mentioned, store.GroupRead{Group: group, User: u, Seq: m.Seq})
				}
			}
			b.Heads = append(b.Heads, head)
			b.Reads = append(b.Reads, store.GroupRead{Group: group, User: from, Seq: m.Seq}) // one has read one's own
			if m.Media != "" {
				b.Grants = append(b.Grants, store.Grant{Media: m.Media, Principal: "g:" + group, MsgID: m.ID})
			}
			op.msg = &b.Messages[len(b.Messages)-1]
			continue
		}
		system := op.from.system()
		if !system {
			op.fromVer, vers = vers[0], vers[1:]
		}
		if to != from {
			op.toVer, vers = vers[0], vers[1:]
		}
		b.Messages = append(b.Messages, m)
		op.msg = &b.Messages[len(b.Messages)-1]
		op.ack = len(b.Acks)
		b.Acks = append(b.Acks, store.Ack{From: from, CMID: m.CMID, ID: m.ID, Ver: op.fromVer, TS: m.TS})
		if m.Media != "" {
			b.Grants = append(b.Grants, store.Grant{Media: m.Media, Principal: "u:" + to, MsgID: m.ID})
		}
		if !system { // system keeps no inbox: its ack's ver is 0
			b.Entries = append(b.Entries, store.Entry{User: from, Ver: op.fromVer, Peer: to, Out: true, MsgID: m.ID})
			b.Convs = append(b.Convs, store.ConvUpdate{User: from, Peer: to, MsgID: m.ID, TS: m.TS, Ver: op.fromVer})
		}
		if m.TTL > 0 && to != from { // burns once to has read it (retention.go)
			b.Burns = append(b.Burns, store.Burn{MsgID: m.ID, User: to, Peer: from, TTL: m.TTL})
		}
		if to != from {
			b.Entries = append(b.Entries, store.Entry{User: to, Ver: op.toVer, Peer: from, MsgID: m.ID})
			b.Convs = append(b.Convs, store.ConvUpdate{User: to, Peer: from, MsgID: m.ID, TS: m.TS, Ver: op.toVer, Incoming: true})
		}
	}
}

// ackOf is the ack event of a stored send.
func ackOf(a store.Ack) wire.Ack {
	return wire.Ack{Kind: wire.KindAck, CMID: a.CMID, ID: strconv.FormatInt(a.ID, 10), Ver: a.Ver, TS: a.TS,
		Group: a.Group, Seq: a.Seq}
}

// storeLogged reports whether err is a state the store logs once when it
// begins (a full disk, a failed database): not worth a line per batch.
func storeLogged(err error) bool {
	return errors.Is(err, store.ErrNoSpace) || errors.Is(err, store.ErrFailed)
}

func unavailable() error {
	return refuse(ErrUnavailable, "store unavailable; resend with the same cmid")
}

// refusal passes a refusal on and turns anything else (a store failure,
// already logged by the caller's path) into unavailable.
func refusal(err error) error {
	if _, _, ok := Describe(err); ok {
		return err
	}
	return unavailable()
}

// runDispatcher acks and delivers in commit order.
func (s *Service) runDispatcher() {
	defer close(s.done)
	defer close(s.fan.in)
	for ops := range s.dispatch {
		for _, op := range ops {
			if op.res.Err != nil {
				s.fail(op.from, op.done, op.res.Err)
				continue
			}
			s.m.AckSeconds.Observe(time.Since(op.start).Seconds())
			op.done(op.res)
			if op.msg == nil || op.dupOf != nil {
				continue // a duplicate: its events went out the first time
			}
			if op.chg != nil {
				s.deliverChange(op)
				continue
			}
			if op.msg.Group != "" {
				s.fan.in <- *op.msg
				if s.opts.Remote != nil {
					s.opts.Remote.Group(*op.msg)
				}
				continue
			}
			if op.fromVer != 0 { // 0: system, which has no inbox
				s.deliver(op, op.from.User, op.fromVer)
			}
			if op.toVer != 0 {
				s.deliver(op, op.req.To, op.toVer)
			}
		}
	}
}

// deliver sends op's message to user's inbox as that user's event at
// version ver, a reply with its quote.
func (s *Service) deliver(op *sendOp, user string, ver uint64) {
	it := imsync.ToMsg(store.Event{Entry: store.Entry{User: user, Ver: ver}, Msg: *op.msg})
	if op.quoted != nil {
		it.Quote = imsync.QuoteOf(op.quoted)
	}
	s.toUser(user, it)
}

// addPushJobs has the batch write a push job with each message that has
// someone to push to (not a note to oneself): offline push is as durable
// as the message.
// With Options.PushTo, a 1:1 message to a user it says has no push
// registration gets none.
func (s *Service) addPushJobs(b *store.Batch) {
	for _, m := range b.Messages {
		if m.Change != nil && m.Change.Kind != store.ChangeRecall {
			continue // only a recall pushes: to take its message's notification back
		}
		if m.Group == "" && (m.To == m.From || (s.opts.PushTo != nil && !s.opts.PushTo(m.To))) {
			continue
		}
		b.PushJobs = append(b.PushJobs, store.PushJob{MsgID: m.ID, Created: m.TS})
	}
}

// Webhooks is the webhook outbox's side of the pipeline
// (internal/webhook.Emitter; docs/integration.md#events).
type Webhooks interface {
	// AfterSend returns the message.after_send events of ms, committed
	// with them; nil when that event is off.
	AfterSend(ms []store.Message) []store.WebhookEvent
	// Committed says a commit wrote events (it must not block).
	Committed()
	// GroupChanged tells of a change of group's members by by; its event
	// is written when it returns (before a message to the group can be).
	GroupChanged(group, action, by string, users []string)
	// Recalled returns the message.recalled event of m, recalled by by at
	// at, committed with the recall, and whether that event is on.
	Recalled(m store.Message, by string, at time.Time) (store.WebhookEvent, bool)
}

// lookupFailed logs a failed read of a send's check (unless the store
// logs its state itself) and refuses the send unavailable.
func (s *Service) lookupFailed(what, group string, err error) error {
	if !storeLogged(err) {
		s.log.Error(what, "group", group, "err", err)
	}
	return unavailable()
}

// isAdminOp reports whether op is a group's administration.
func isAdminOp(op *sendOp) bool { return op.chg != nil && op.chg.kind == store.ChangeGroup }
