package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// Retention and burn after reading (store/retention.go). Collections:
//
//	floors  {_id: "u:{user}", v}: the highest inbox ver a sweep deleted;
//	        raised by $max (a group's is its head's floor and floor_changes)
//	burns   {_id: msgid, user, peer, ttl, due (0: unread)}
//	        {user: 1, peer: 1, due: 1, _id: 1}: ReadBurns; {due: 1}: DueBurns
//
// and meta {_id: "sweep", cursor}. Both came without a new Format (new
// collections, which an older release never reads).
//
// A sweep chunk is idempotent steps in an order that leaves nothing
// half-deleted visible at any point: first the rows that make a message
// visible (inbox and history entries, the group log), then the
// conversation rows recounted, then what only those reach (reactions,
// grants, acks, burns), then the messages, then the cursor. A crash between
// steps leaves the messages, so the next sweep (of any node) finds them
// again from the cursor and repeats every step; several nodes sweeping at
// once delete the same rows, which is harmless.
//
// No TTL index: MongoDB's TTL monitor would delete a message without its
// index rows and leave conversation rows counting it, and FerretDB has
// none; the sweeper deletes by _id range on both.

func (s *Store) floors() *mongo.Collection { return s.db.Collection("floors") }
func (s *Store) burns() *mongo.Collection  { return s.db.Collection("burns") }

// sweepInboxBatch bounds the inbox entries one look at a user's inbox reads.
const sweepInboxBatch = 1000

// SweepCursor returns the stored cursor of the sweep.
func (s *Store) SweepCursor(ctx context.Context) (int64, error) {
	if err := s.begin(ctx, "sweep cursor"); err != nil {
		return 0, err
	}
	defer s.end()
	return s.sweepCursor(ctx)
}

func (s *Store) sweepCursor(ctx context.Context) (int64, error) {
	var d struct {
		Cursor int64 `bson:"cursor"`
	}
	err := s.c.meta.FindOne(ctx, byID("sweep")).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("sweep cursor: %w", err)
	}
	return d.Cursor, nil
}

// InboxFloor returns user's highest swept inbox version.
func (s *Store) InboxFloor(ctx context.Context, user string) (uint64, error) {
	return s.floor(ctx, "u:"+user)
}

// GroupFloor returns group's highest swept seq: its head's floor.
func (s *Store) GroupFloor(ctx context.Context, group string) (uint64, error) {
	h, err := s.GroupHead(ctx, group)
	return h.Floor, err
}

// raiseGroupFloor moves group's head's floor up to seq, with the change
// records up to it: one update that only a lower floor matches, so a
// repeat, or another node's sweep, changes nothing.
func (s *Store) raiseGroupFloor(ctx context.Context, group string, seq int64) error {
	n, err := s.changesUpto(ctx, group, seq)
	if err != nil {
		return err
	}
	filter := append(byID(group), bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "floor", Value: bson.D{{Key: "$lt", Value: seq}}}},
		bson.D{{Key: "floor", Value: bson.D{{Key: "$exists", Value: false}}}},
	}})
	_, err = s.c.heads.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "floor", Value: seq},
		{Key: "floor_changes", Value: n}}}})
	return err
}

func (s *Store) floor(ctx context.Context, id string) (uint64, error) {
	if err := s.begin(ctx, "floor"); err != nil {
		return 0, err
	}
	defer s.end()
	var d struct {
		V int64 `bson:"v"`
	}
	err := s.floors().FindOne(ctx, byID(id)).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("floor of %s: %w", id, err)
	}
	return uint64(d.V), nil
}

func (s *Store) raiseFloor(ctx context.Context, id string, v uint64) error {
	_, err := s.floors().UpdateOne(ctx, byID(id), bson.D{{Key: "$max", Value: bson.D{{Key: "v", Value: int64(v)}}}},
		options.UpdateOne().SetUpsert(true))
	if isDup(err) { // two upserts at once: the other inserted it
		_, err = s.floors().UpdateOne(ctx, byID(id), bson.D{{Key: "$max", Value: bson.D{{Key: "v", Value: int64(v)}}}})
	}
	return err
}

// SweepMessages deletes up to limit messages below before from the cursor
// on, in the steps above.
func (s *Store) SweepMessages(ctx context.Context, before int64, limit int) (store.Sweep, error) {
	var out store.Sweep
	if err := s.begin(ctx, "sweep"); err != nil {
		return out, err
	}
	defer s.end()
	limit = store.ClampLimit(limit, 1000)
	cur, err := s.sweepCursor(ctx)
	if err != nil {
		return out, err
	}
	out.Cursor = cur
	if before <= cur {
		out.Done = true
		return out, nil
	}
	var docs []messageDoc
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: cur}, {Key: "$lt", Value: before}}}}
	if err := findAll(ctx, s.c.messages, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(limit)), &docs); err != nil {
		return out, fmt.Errorf("sweep: read messages: %w", err)
	}
	next := before
	if len(docs) == limit {
		next = docs[len(docs)-1].ID + 1
	} else {
		out.Done = true
	}
	if err := s.sweep(ctx, docs, cur, next); err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	if _, err := s.c.meta.UpdateOne(ctx, byID("sweep"), bson.D{{Key: "$max", Value: bson.D{{Key: "cursor", Value: next}}}},
		options.UpdateOne().SetUpsert(true)); err != nil && !isDup(err) {
		return out, fmt.Errorf("sweep: move cursor: %w", err)
	}
	out.Messages, out.Cursor = len(docs), next
	return out, nil
}

func (s *Store) sweep(ctx context.Context, docs []messageDoc, from, next int64) error {
	ids := make(bson.A, 0, len(docs))
	users := map[string]bool{}
	convs := map[convKey]bool{}
	groups := map[string]uint64{}
	var groupSeqs bson.A
	var acks, grants bson.A
	var burnIDs []int64
	for i := range docs {
		m := &docs[i]
		ids = append(ids, m.ID)
		if m.CMID != "" {
			acks = append(acks, bson.D{{Key: "from", Value: m.From}, {Key: "cmid", Value: m.CMID}, {Key: "msg", Value: m.ID}})
		}
		if m.Group != "" {
			groupSeqs = append(groupSeqs, bson.D{{Key: "group", Value: m.Group}, {Key: "seq", Value: m.Seq}})
			groups[m.Group] = max(groups[m.Group], uint64(m.Seq))
			if m.Media != "" {
				grants = append(grants, grantOf(m.Media, "g:"+m.Group, m.ID))
			}
			continue
		}
		if m.Media != "" {
			grants = append(grants, grantOf(m.Media, "u:"+m.To, m.ID))
		}
		if m.TTL != 0 {
			burnIDs = append(burnIDs, m.ID)
		}
		for _, p := range [][2]string{{m.From, m.To}, {m.To, m.From}} {
			if p[0] == "" || p[1] == "" {
				continue
			}
			users[p[0]] = true
			if m.Change == nil {
				convs[convKey{p[0], p[1]}] = true
			}
		}
		if m.Change != nil && m.Change.Kind == store.ChangeDelete {
			users[m.From] = true
		}
	}
	// What makes them visible: history entries, inbox entries, the group log.
	for u := range users {
		if err := s.sweepInbox(ctx, u, next); err != nil {
			return fmt.Errorf("inbox of %s: %w", u, err)
		}
	}
	// Entries left behind a younger one in an inbox (each is both):
	// their messages go, so they go from the history too.
	for c := range convs {
		if _, err := s.c.entries.DeleteMany(ctx, bson.D{{Key: "user", Value: c.user}, {Key: "peer", Value: c.peer},
			{Key: "msg", Value: bson.D{{Key: "$lt", Value: next}}}}); err != nil {
			return fmt.Errorf("history %s/%s: %w", c.user, c.peer, err)
		}
	}
	if len(groupSeqs) > 0 {
		if _, err := s.c.groupMsgs.DeleteMany(ctx, bson.D{{Key: "$or", Value: groupSeqs}}); err != nil {
			return fmt.Errorf("group log: %w", err)
		}
		for g, seq := range groups {
			if err := s.raiseGroupFloor(ctx, g, int64(seq)); err != nil {
				return fmt.Errorf("floor of %s: %w", g, err)
			}
		}
	}
	if len(convs) > 0 {
		unlock := s.lockRMW(ctx)
		for c := range convs {
			if err := s.recountConv(ctx, c.user, c.peer); err != nil {
				unlock()
				return fmt.Errorf("recount %s/%s: %w", c.user, c.peer, err)
			}
		}
		unlock()
	}
	// What only they reach.
	inRange := bson.D{{Key: "$gte", Value: from}, {Key: "$lt", Value: next}}
	for _, c := range []*mongo.Collection{s.c.reactions, s.c.reactionSums} {
		if _, err := c.DeleteMany(ctx, bson.D{{Key: "msg", Value: inRange}}); err != nil {
			return fmt.Errorf("reactions: %w", err)
		}
	}
	if len(grants) > 0 {
		if _, err := s.c.grants.DeleteMany(ctx, bson.D{{Key: "$or", Value: grants}}); err != nil {
			return fmt.Errorf("grants: %w", err)
		}
	}
	if len(acks) > 0 {
		if _, err := s.c.acks.DeleteMany(ctx, bson.D{{Key: "$or", Value: acks}}); err != nil {
			return fmt.Errorf("acks: %w", err)
		}
	}
	if len(burnIDs) > 0 {
		if _, err := s.burns().DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: burnIDs}}}}); err != nil {
			return fmt.Errorf("burns: %w", err)
		}
	}
	if len(ids) > 0 {
		if _, err := s.c.messages.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
			return fmt.Errorf("messages: %w", err)
		}
	}
	return nil
}

// grantOf matches the grant of media to principal if message id is the
// newest that granted it: a younger one (a forward of the same media to
// the same principal) keeps it. A row from before msg goes with any.
func grantOf(media, principal string, id int64) bson.D {
	return bson.D{{Key: "media", Value: media}, {Key: "principal", Value: principal}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "msg", Value: bson.D{{Key: "$lte", Value: id}}}},
		bson.D{{Key: "msg", Value: bson.D{{Key: "$exists", Value: false}}}},
	}}}
}

// sweepInbox deletes user's inbox entries from the oldest while they
// point at messages below next, and raises the user's floor to the last.
func (s *Store) sweepInbox(ctx context.Context, user string, next int64) error {
	for {
		var es []entryDoc
		if err := findAll(ctx, s.c.entries, bson.D{{Key: "user", Value: user}}, options.Find().
			SetSort(bson.D{{Key: "user", Value: 1}, {Key: "ver", Value: 1}}).SetLimit(sweepInboxBatch), &es); err != nil {
			return err
		}
		var upto int64
		n := 0
		for _, e := range es {
			if e.MsgID >= next {
				break
			}
			upto, n = e.Ver, n+1
		}
		if n == 0 {
			return nil
		}
		if err := s.raiseFloor(ctx, "u:"+user, uint64(upto)); err != nil { // before: a crash leaves no hole below the floor
			return err
		}
		if _, err := s.c.entries.DeleteMany(ctx, bson.D{{Key: "user", Value: user},
			{Key: "ver", Value: bson.D{{Key: "$lte", Value: upto}}}}); err != nil {
			return err
		}
		if n < len(es) || len(es) < sweepInboxBatch {
			return nil
		}
	}
}

type burnDoc struct {
	ID   int64  `bson:"_id"`
	User string `bson:"user"`
	Peer string `bson:"peer"`
	TTL  int    `bson:"ttl"`
	Due  int64  `bson:"due"`
}

func (d *burnDoc) burn() store.Burn {
	return store.Burn{MsgID: d.ID, User: d.User, Peer: d.Peer, TTL: d.TTL, Due: d.Due}
}

// insertBurns is Commit's part: the batch's burns, unread; one there is
// left as it is.
func (s *Store) insertBurns(ctx context.Context, burns []store.Burn) error {
	if len(burns) == 0 {
		return nil
	}
	docs := make([]any, len(burns))
	for i, b := range burns {
		docs[i] = burnDoc{ID: b.MsgID, User: b.User, Peer: b.Peer, TTL: b.TTL}
	}
	if _, err := insertMany(ctx, s.burns(), docs); err != nil {
		return fmt.Errorf("insert burns: %w", err)
	}
	return nil
}

// ReadBurns makes user's unread burns with peer up to upto due: each by
// an update of an unread row, so a burn is made due once.
func (s *Store) ReadBurns(ctx context.Context, user, peer string, upto, now int64) ([]store.Burn, error) {
	if err := s.begin(ctx, "read burns"); err != nil {
		return nil, err
	}
	defer s.end()
	var docs []burnDoc
	if err := findAll(ctx, s.burns(), bson.D{{Key: "user", Value: user}, {Key: "peer", Value: peer}, {Key: "due", Value: 0},
		{Key: "_id", Value: bson.D{{Key: "$lte", Value: upto}}}}, nil, &docs); err != nil {
		return nil, fmt.Errorf("read burns %s/%s: %w", user, peer, err)
	}
	var out []store.Burn
	for _, d := range docs {
		d.Due = now + int64(d.TTL)*1000
		res, err := s.burns().UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "due", Value: 0}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "due", Value: d.Due}}}})
		if err != nil {
			return nil, fmt.Errorf("read burns %s/%s: %w", user, peer, err)
		}
		if res.MatchedCount > 0 {
			out = append(out, d.burn())
		}
	}
	return out, nil
}

// DueBurns returns the burns due at or before now, soonest first.
func (s *Store) DueBurns(ctx context.Context, now int64, limit int) ([]store.Burn, error) {
	if err := s.begin(ctx, "due burns"); err != nil {
		return nil, err
	}
	defer s.end()
	var docs []burnDoc
	if err := findAll(ctx, s.burns(), bson.D{{Key: "due", Value: bson.D{{Key: "$gt", Value: 0}, {Key: "$lte", Value: now}}}},
		options.Find().SetSort(bson.D{{Key: "due", Value: 1}}).SetLimit(int64(store.ClampLimit(limit, 1000))), &docs); err != nil {
		return nil, fmt.Errorf("due burns: %w", err)
	}
	out := make([]store.Burn, len(docs))
	for i := range docs {
		out[i] = docs[i].burn()
	}
	return out, nil
}

// DeleteBurns deletes the burns of ids.
func (s *Store) DeleteBurns(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.begin(ctx, "delete burns"); err != nil {
		return err
	}
	defer s.end()
	if _, err := s.burns().DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
		return fmt.Errorf("delete burns: %w", err)
	}
	return nil
}
