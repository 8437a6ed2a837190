package mongo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/imqtt/imqtt/store"
)

// Claims make a send exactly-once across nodes. Commit writes its rows in
// steps without a transaction and the ack, which LookupAck finds, last; so
// a send resent to another node while the first node is still committing
// it (or after that node died mid-commit) would find no ack and be stored a
// second time. Before any row, Commit therefore inserts one claim per
// send, _id "{from} {cmid}", holding the send's whole part of the batch. A
// claim already there for another message means the send is the first's:
// Commit replays the first's rows from its claim (every step is
// idempotent, so this completes a commit cut short and does nothing to a
// finished one), writes nothing of the second, and reports the first's ack
// in Batch.Existing. Once the acks are written a claim drops its rows and
// keeps {_id, msg} (about the size of the ack), so a late resend still
// meets it. In MongoDB claims are sharded like acks, on _id hashed.
type claimDoc struct {
	ID    string `bson:"_id"`
	Msg   int64  `bson:"msg"`
	Batch []byte `bson:"batch,omitempty"` // the send's rows, a store.Batch as JSON; none once finished
}

func claimID(from, cmid string) string { return from + " " + cmid }

// part is the rows of b that belong to message m.
func part(b *store.Batch, m store.Message) store.Batch {
	p := store.Batch{Messages: []store.Message{m}}
	for _, e := range b.Entries {
		if e.MsgID == m.ID {
			p.Entries = append(p.Entries, e)
		}
	}
	for _, c := range b.Convs {
		if c.MsgID == m.ID {
			p.Convs = append(p.Convs, c)
		}
	}
	for _, a := range b.Acks {
		if a.ID == m.ID {
			p.Acks = append(p.Acks, a)
		}
	}
	for _, g := range b.Grants {
		// A recall's revocation names its target's media, which the record
		// does not hold: a recall's rows hold every revocation of the
		// batch (one more is harmless: it is of a recalled message's media).
		if m.Media != "" && g.Media == m.Media && (g.MsgID == 0 || g.MsgID == m.ID) ||
			g.Principal == store.RevokedGrant && changeOf(m, store.ChangeRecall) != nil {
			p.Grants = append(p.Grants, g)
		}
	}
	for _, h := range b.Heads {
		if h.MsgID == m.ID || h.MsgID == 0 && m.Change != nil && m.Group != "" && h.Group == m.Group && h.Seq == m.Seq {
			p.Heads = append(p.Heads, h)
		}
	}
	for _, r := range b.Reads {
		if m.Group != "" && r.Group == m.Group && r.User == m.From && r.Seq == m.Seq {
			p.Reads = append(p.Reads, r)
		}
	}
	for _, j := range b.PushJobs {
		if j.MsgID == m.ID {
			p.PushJobs = append(p.PushJobs, j)
		}
	}
	for _, e := range b.Webhooks {
		if e.MsgID == m.ID {
			p.Webhooks = append(p.Webhooks, e)
		}
	}
	partChanges(&p, b, m)
	return p
}

// partChanges adds to p what b's lifecycle rows (change.go) of message m
// are: a change record's effect on its target, a message's mentions.
func partChanges(p, b *store.Batch, m store.Message) {
	for _, r := range b.Recalls {
		if ownsRecall(m, r) {
			p.Recalls = append(p.Recalls, r)
		}
	}
	for _, e := range b.Edits {
		if ownsEdit(m, e) {
			p.Edits = append(p.Edits, e)
		}
	}
	for _, r := range b.Reactions {
		if ownsReaction(m, r) {
			p.Reactions = append(p.Reactions, r)
		}
	}
	for _, h := range b.Hides {
		if ownsHide(m, h) {
			p.Hides = append(p.Hides, h)
		}
	}
	for _, c := range b.Clears {
		if ownsClear(m, c) {
			p.Clears = append(p.Clears, c)
		}
	}
	for _, r := range b.Mentioned {
		if ownsMention(m, r) {
			p.Mentioned = append(p.Mentioned, r)
		}
	}
	for _, u := range b.GroupUpdates {
		if u.MsgID == m.ID {
			p.GroupUpdates = append(p.GroupUpdates, u)
		}
	}
	for _, u := range b.MemberUpdates {
		if u.MsgID == m.ID {
			p.MemberUpdates = append(p.MemberUpdates, u)
		}
	}
}

func changeOf(m store.Message, kind string) *store.Change {
	if m.Change != nil && m.Change.Kind == kind {
		return m.Change
	}
	return nil
}

func ownsRecall(m store.Message, r store.Recall) bool {
	c := changeOf(m, store.ChangeRecall)
	return c != nil && c.Target == r.MsgID
}

func ownsEdit(m store.Message, e store.Edit) bool {
	c := changeOf(m, store.ChangeEdit)
	return c != nil && c.Target == e.MsgID
}

func ownsReaction(m store.Message, r store.Reaction) bool {
	c := changeOf(m, store.ChangeReaction)
	return c != nil && c.Target == r.MsgID && c.Emoji == r.Emoji && c.Add == r.Add && m.From == r.User
}

func ownsHide(m store.Message, h store.Hide) bool {
	c := changeOf(m, store.ChangeDelete)
	return c != nil && m.From == h.User && slices.Contains(c.IDs, h.MsgID)
}

func ownsClear(m store.Message, cl store.Clear) bool {
	c := changeOf(m, store.ChangeDelete)
	return c != nil && m.From == cl.User && c.Peer == cl.Peer
}

func ownsMention(m store.Message, r store.GroupRead) bool {
	return m.Change == nil && m.Group != "" && m.Group == r.Group && m.Seq == r.Seq
}

// dropLost removes from w's lifecycle rows those of the lost messages.
func dropLost(w, b *store.Batch, lostMsgs []store.Message) {
	drop := func(owns func(store.Message) bool) bool {
		return slices.ContainsFunc(lostMsgs, owns)
	}
	w.Recalls = slices.DeleteFunc(slices.Clone(b.Recalls), func(r store.Recall) bool {
		return drop(func(m store.Message) bool { return ownsRecall(m, r) })
	})
	w.Edits = slices.DeleteFunc(slices.Clone(b.Edits), func(e store.Edit) bool {
		return drop(func(m store.Message) bool { return ownsEdit(m, e) })
	})
	w.Reactions = slices.DeleteFunc(slices.Clone(b.Reactions), func(r store.Reaction) bool {
		return drop(func(m store.Message) bool { return ownsReaction(m, r) })
	})
	w.Hides = slices.DeleteFunc(slices.Clone(b.Hides), func(h store.Hide) bool {
		return drop(func(m store.Message) bool { return ownsHide(m, h) })
	})
	w.Clears = slices.DeleteFunc(slices.Clone(b.Clears), func(c store.Clear) bool {
		return drop(func(m store.Message) bool { return ownsClear(m, c) })
	})
	w.Mentioned = slices.DeleteFunc(slices.Clone(b.Mentioned), func(r store.GroupRead) bool {
		return drop(func(m store.Message) bool { return ownsMention(m, r) })
	})
}

// claim inserts the claims of b's sends and returns the batch to write:
// b without the sends that another message had claimed, whose first
// message it has replayed, and whose acks it records in b.Existing.
func (s *Store) claim(ctx context.Context, b *store.Batch) (*store.Batch, error) {
	if len(b.Acks) == 0 {
		return b, nil
	}
	byID := make(map[int64]store.Message, len(b.Messages))
	for _, m := range b.Messages {
		byID[m.ID] = m
	}
	docs := make([]any, len(b.Acks))
	for i, a := range b.Acks {
		raw, err := json.Marshal(part(b, byID[a.ID]))
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", claimID(a.From, a.CMID), err)
		}
		docs[i] = claimDoc{ID: claimID(a.From, a.CMID), Msg: a.ID, Batch: raw}
	}
	dups, err := insertMany(ctx, s.c.claims, docs)
	if err != nil {
		return nil, fmt.Errorf("insert claims: %w", err)
	}
	var others []int64 // messages that lost their claim
	for i := range b.Acks {
		if !dups[i] {
			continue
		}
		a := b.Acks[i]
		var c claimDoc
		if err := s.c.claims.FindOne(ctx, bson.D{{Key: "_id", Value: claimID(a.From, a.CMID)}}).Decode(&c); err != nil {
			return nil, fmt.Errorf("read claim %s: %w", claimID(a.From, a.CMID), notFound(err))
		}
		if c.Msg == a.ID {
			continue // this batch again (a retried Commit)
		}
		prev, err := s.completeClaim(ctx, c, a)
		if err != nil {
			return nil, err
		}
		if b.Existing == nil {
			b.Existing = map[int]store.Ack{}
		}
		b.Existing[i] = prev
		others = append(others, a.ID)
	}
	if len(others) == 0 {
		return b, nil
	}
	lost := func(id int64) bool { return slices.Contains(others, id) }
	// A lost send's grant would name a message never stored, which no
	// sweep would take; the first send's, replayed, is the one.
	w := &store.Batch{Grants: slices.DeleteFunc(slices.Clone(b.Grants), func(g store.Grant) bool { return lost(g.MsgID) })}
	var lostMsgs []store.Message
	for _, m := range b.Messages {
		if !lost(m.ID) {
			w.Messages = append(w.Messages, m)
			w.Heads = append(w.Heads, part(b, m).Heads...)
			w.Reads = append(w.Reads, part(b, m).Reads...)
		} else {
			lostMsgs = append(lostMsgs, m)
		}
	}
	dropLost(w, b, lostMsgs)
	w.Entries = slices.DeleteFunc(slices.Clone(b.Entries), func(e store.Entry) bool { return lost(e.MsgID) })
	w.Convs = slices.DeleteFunc(slices.Clone(b.Convs), func(c store.ConvUpdate) bool { return lost(c.MsgID) })
	w.Acks = slices.DeleteFunc(slices.Clone(b.Acks), func(a store.Ack) bool { return lost(a.ID) })
	w.PushJobs = slices.DeleteFunc(slices.Clone(b.PushJobs), func(j store.PushJob) bool { return lost(j.MsgID) })
	w.Webhooks = slices.DeleteFunc(slices.Clone(b.Webhooks), func(e store.WebhookEvent) bool { return e.MsgID != 0 && lost(e.MsgID) })
	return w, nil
}

// completeClaim makes sure the send claimed by c is wholly stored and
// returns its ack: a claim still holding its rows is replayed (its commit
// may have been cut short), a finished one has its ack.
func (s *Store) completeClaim(ctx context.Context, c claimDoc, a store.Ack) (store.Ack, error) {
	id := claimID(a.From, a.CMID)
	if len(c.Batch) == 0 {
		var d ackDoc
		if err := s.c.acks.FindOne(ctx, bson.D{{Key: "from", Value: a.From}, {Key: "cmid", Value: a.CMID}}).Decode(&d); err != nil {
			return store.Ack{}, fmt.Errorf("ack of the finished send %s: %w", id, notFound(err))
		}
		return d.ack(), nil
	}
	var first store.Batch
	if err := json.Unmarshal(c.Batch, &first); err != nil || len(first.Acks) != 1 {
		return store.Ack{}, fmt.Errorf("claim %s: bad rows: %v", id, err)
	}
	if err := s.commit(ctx, &first); err != nil {
		return store.Ack{}, fmt.Errorf("complete the claimed send %s: %w", id, err)
	}
	return first.Acks[0], nil
}

// unclaim marks the claims of a committed batch finished by dropping their
// rows; the small rest stays, so a resend that arrives later still meets
// it. Best effort: a claim left whole is replayed harmlessly.
func (s *Store) unclaim(ctx context.Context, b *store.Batch) {
	if len(b.Acks) == 0 {
		return
	}
	ids := make([]string, len(b.Acks))
	for i, a := range b.Acks {
		ids[i] = claimID(a.From, a.CMID)
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	if _, err := s.c.claims.UpdateMany(ctx, filter, bson.D{{Key: "$unset", Value: bson.D{{Key: "batch", Value: ""}}}}); err != nil {
		s.log.Warn("finish claims", "claims", len(ids), "err", err)
	}
}
