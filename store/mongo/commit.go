package mongo

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// dupRetries is how often an upsert that met a duplicate key (another
// node inserted the same new document first) is tried again.
const dupRetries = 3

// ReserveVersions reserves [first, first+n) of key with one atomic
// findOneAndUpdate ($inc, upsert) of the key's counter: the counter is the
// last version reserved, so blocks never overlap, across nodes and
// restarts. Versions start at 1.
func (s *Store) ReserveVersions(ctx context.Context, key string, n uint64) (uint64, error) {
	if err := s.begin(ctx, "reserve versions"); err != nil {
		return 0, err
	}
	defer s.end()
	if n == 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("reserve %d versions of %s: %w", n, key, ErrInvalid)
	}
	defer s.lockRMW(ctx)()
	upd := bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(n)}}}}
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	var d struct {
		N int64 `bson:"n"`
	}
	for try := 0; ; try++ {
		err := s.c.counters.FindOneAndUpdate(ctx, byID(key), upd, opts).Decode(&d)
		if err == nil {
			break
		}
		if !isDup(err) || try == dupRetries {
			return 0, fmt.Errorf("reserve versions of %s: %w", key, err)
		}
	}
	if d.N < int64(n) {
		return 0, fmt.Errorf("reserve versions of %s: corrupt counter %d", key, d.N)
	}
	return uint64(d.N) - n + 1, nil
}

// verKey names an entry: a user's version.
type verKey struct {
	user string
	ver  int64
}

// convKey names a conversation row.
type convKey struct{ user, peer string }

// Commit writes the batch in steps, each idempotent, in an order that
// makes any prefix of them safe to repeat (MongoDB transactions would
// need a replica set and FerretDB has none):
//
//  1. messages, by _id (the snowflake ID), and their push jobs, by _id
//     (the message's);
//  2. entries, unique by (user, ver); an incoming entry whose
//     conversation update is in the batch is inserted pending;
//  3. the group message index, unique by (group, seq), and media grants,
//     unique by (media, principal), whose msg only rises;
//  4. group heads (forward only) and read positions (forward only, capped
//     at the head);
//  5. conversation rows: created if missing, Ver by $max, Last and LastTS
//     only by a newer message, and one unread per pending entry whose
//     message is above the read position; then the entries' pending mark
//     is cleared;
//  6. acks, unique by (from, cmid), last: an ack found by LookupAck means
//     the whole send is stored.
//
// A duplicate key on insert means the row is already there. So replaying
// a batch, or committing an older batch after a newer one, changes
// nothing, and unread counts each message once however the conversation
// updates of several nodes interleave: an entry's insert is where it is
// counted, not the update's Ver. The one exception is a Commit that fails
// between counting an entry and clearing its mark (step 5): its replay
// counts that message again, until SetRead recounts. A conversation
// update whose entry (User, Ver) is not in the batch never counts unread.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	if err := s.begin(ctx, "commit batch"); err != nil {
		return err
	}
	defer s.end()
	if err := validate(b); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	w, err := s.claim(ctx, b)
	if err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	if err := s.commit(ctx, w); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	s.unclaim(ctx, w)
	return nil
}

func (s *Store) commit(ctx context.Context, b *store.Batch) error {
	if len(b.Messages) > 0 {
		docs := make([]any, len(b.Messages))
		for i := range b.Messages {
			docs[i] = toMessageDoc(&b.Messages[i])
		}
		if _, err := insertMany(ctx, s.c.messages, docs); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
	}
	// Jobs before the acks: a send whose ack is found is not committed
	// again, so its job must be there by then.
	if err := s.insertPushJobs(ctx, b.PushJobs); err != nil {
		return err
	}
	if err := s.insertWebhookEvents(ctx, b.Webhooks); err != nil {
		return err
	}
	if err := s.insertBurns(ctx, b.Burns); err != nil {
		return err
	}
	// Before the entries and the group index: a change record is seen
	// only once its target has changed.
	if err := s.applyEdits(ctx, b); err != nil {
		return err
	}
	fresh, err := s.insertEntries(ctx, b)
	if err != nil {
		return err
	}
	if err := s.insertGroupChanges(ctx, b.Messages); err != nil { // before the index: ReadChanges counts them
		return err
	}
	if err := s.insertGroupMsgs(ctx, b.Messages); err != nil {
		return err
	}
	if len(b.Grants) > 0 {
		// One row per (media, principal), holding the newest message that
		// granted it ($max: a replay or another node's older batch never
		// lowers it), which the retention sweep compares.
		models := make([]mongo.WriteModel, len(b.Grants))
		for i, g := range b.Grants {
			models[i] = mongo.NewUpdateOneModel().SetUpsert(true).
				SetFilter(bson.D{{Key: "media", Value: g.Media}, {Key: "principal", Value: g.Principal}}).
				SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "msg", Value: g.MsgID}}}})
		}
		if err := s.bulkUpsert(ctx, s.c.grants, models); err != nil {
			return fmt.Errorf("write grants: %w", err)
		}
	}
	if len(b.Heads)+len(b.Reads)+len(b.Mentioned)+len(b.GroupUpdates)+len(b.MemberUpdates) > 0 {
		unlock := s.lockRMW(ctx)
		// The rows before the head: once the head shows the record, what
		// it did is there to read.
		err := s.applyAdmin(ctx, b.GroupUpdates, b.MemberUpdates)
		if err == nil {
			err = s.moveHeads(ctx, b.Heads)
		}
		if err == nil {
			err = s.applyReads(ctx, b.Reads)
		}
		if err == nil {
			err = s.applyMentioned(ctx, b.Mentioned)
		}
		unlock()
		if err != nil {
			return err
		}
	}
	if err := s.applyConvs(ctx, b.Convs, fresh); err != nil {
		return err
	}
	if err := s.applyHides(ctx, b); err != nil {
		return err
	}
	if len(b.Acks) > 0 {
		docs := make([]any, len(b.Acks))
		for i, a := range b.Acks {
			docs[i] = ackDoc{From: a.From, CMID: a.CMID, ID: a.ID, Ver: int64(a.Ver), TS: a.TS, Group: a.Group, Seq: int64(a.Seq)}
		}
		if _, err := insertMany(ctx, s.c.acks, docs); err != nil {
			return fmt.Errorf("insert acks: %w", err)
		}
	}
	return nil
}

// insertEntries inserts the batch's entries and returns the pending ones:
// the incoming entries, by (user, ver), whose conversation update still
// has to count them (new now, or pending since a commit that failed
// half-way), with their _id.
func (s *Store) insertEntries(ctx context.Context, b *store.Batch) (map[verKey]bson.ObjectID, error) {
	if len(b.Entries) == 0 {
		return nil, nil
	}
	incoming := make(map[verKey]bool, len(b.Convs))
	for i := range b.Convs {
		if u := &b.Convs[i]; u.Incoming {
			incoming[verKey{u.User, int64(u.Ver)}] = true
		}
	}
	docs := make([]any, len(b.Entries))
	for i := range b.Entries {
		e := &b.Entries[i]
		d := toEntryDoc(e)
		d.Pending = !e.Out && !e.Change && incoming[verKey{e.User, int64(e.Ver)}]
		docs[i] = d
	}
	dups, err := insertMany(ctx, s.c.entries, docs)
	if err != nil {
		return nil, fmt.Errorf("insert entries: %w", err)
	}
	fresh := make(map[verKey]bson.ObjectID)
	var again bson.A // entries already there: still pending?
	for i, d := range docs {
		d := d.(entryDoc)
		switch {
		case !d.Pending:
		case dups[i]:
			again = append(again, bson.D{{Key: "user", Value: d.User}, {Key: "ver", Value: d.Ver}})
		default:
			fresh[verKey{d.User, d.Ver}] = d.ID
		}
	}
	if len(again) > 0 {
		filter := bson.D{{Key: "$or", Value: again}, {Key: "pending", Value: true}}
		var pending []entryDoc
		if err := findAll(ctx, s.c.entries, filter, nil, &pending); err != nil {
			return nil, fmt.Errorf("find pending entries: %w", err)
		}
		for _, d := range pending {
			fresh[verKey{d.User, d.Ver}] = d.ID
		}
	}
	return fresh, nil
}

// convMove is what one batch does to one conversation row.
type convMove struct {
	user, peer   string
	ver          int64
	last, lastTS int64
	count        []int64 // message IDs of newly counted incoming entries
}

// applyConvs moves the conversation rows (step 5 of Commit).
func (s *Store) applyConvs(ctx context.Context, us []store.ConvUpdate, fresh map[verKey]bson.ObjectID) error {
	if len(us) == 0 {
		return nil
	}
	moves := make(map[convKey]*convMove, len(us))
	var order []*convMove
	var counted []any // _ids of the entries counted
	for i := range us {
		u := &us[i]
		mv := moves[convKey{u.User, u.Peer}]
		if mv == nil {
			mv = &convMove{user: u.User, peer: u.Peer}
			moves[convKey{u.User, u.Peer}] = mv
			order = append(order, mv)
		}
		mv.ver = max(mv.ver, int64(u.Ver))
		if u.MsgID > mv.last {
			mv.last, mv.lastTS = u.MsgID, u.TS
		}
		if id, ok := fresh[verKey{u.User, int64(u.Ver)}]; ok && u.Incoming {
			mv.count = append(mv.count, u.MsgID)
			counted = append(counted, id)
			delete(fresh, verKey{u.User, int64(u.Ver)}) // one update counts an entry once
		}
	}

	defer s.lockRMW(ctx)()
	// Rows first: an upsert by (user, peer) creates a missing row with
	// nothing read and nothing counted, and moves Ver.
	rows := make([]mongo.WriteModel, len(order))
	for i, mv := range order {
		rows[i] = mongo.NewUpdateOneModel().SetFilter(convFilter(mv.user, mv.peer)).SetUpsert(true).
			SetUpdate(bson.D{
				{Key: "$setOnInsert", Value: bson.D{{Key: "last", Value: int64(0)}, {Key: "last_ts", Value: int64(0)},
					{Key: "unread", Value: int64(0)}, {Key: "read_upto", Value: int64(0)}}},
				{Key: "$max", Value: bson.D{{Key: "ver", Value: mv.ver}}},
			})
	}
	if err := s.bulkUpsert(ctx, s.c.convs, rows); err != nil {
		return fmt.Errorf("conversation rows: %w", err)
	}
	// Then the guarded moves: Last only to a newer message, unread only
	// for a message above the read position.
	var moveOps []mongo.WriteModel
	for _, mv := range order {
		moveOps = append(moveOps, mongo.NewUpdateOneModel().
			SetFilter(append(convFilter(mv.user, mv.peer), bson.E{Key: "last", Value: bson.D{{Key: "$lt", Value: mv.last}}})).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "last", Value: mv.last}, {Key: "last_ts", Value: mv.lastTS}}}}))
		for _, id := range mv.count {
			moveOps = append(moveOps, mongo.NewUpdateOneModel().
				SetFilter(append(convFilter(mv.user, mv.peer), bson.E{Key: "read_upto", Value: bson.D{{Key: "$lt", Value: id}}})).
				SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "unread", Value: int64(1)}}}}))
		}
	}
	if err := s.bulkWrite(ctx, s.c.convs, moveOps); err != nil {
		return fmt.Errorf("move conversation rows: %w", err)
	}
	if len(counted) > 0 {
		_, err := s.c.entries.UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: counted}}}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}})
		if err != nil {
			return fmt.Errorf("clear pending entries: %w", err)
		}
	}
	return nil
}

func convFilter(user, peer string) bson.D {
	return bson.D{{Key: "user", Value: user}, {Key: "peer", Value: peer}}
}

// bulkUpsert runs idempotent upserts unordered, again if one met a
// duplicate key: two nodes upserting the same new row race to insert it,
// and MongoDB retries that itself only in some cases (FerretDB never).
func (s *Store) bulkUpsert(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel) error {
	for try := 0; ; try++ {
		err := s.bulkWrite(ctx, c, models)
		if err == nil {
			return nil
		}
		var bwe mongo.BulkWriteException
		if try == dupRetries || !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
			return err
		}
		for _, we := range bwe.WriteErrors {
			if !isDup(we) {
				return err
			}
		}
	}
}

// SetRead moves the read position and recounts unread from the entries
// (incoming, message ID above the position), then writes both only if the
// row is as it was read (compare-and-set on Ver, Last, Unread and
// ReadUpto), trying again otherwise. So a Commit's update that lands
// between the read and the write is never lost. What remains is a Commit
// whose entry was inserted before the count but whose row update comes
// after the write: that message is counted twice, and unread is one too
// high until the next SetRead. Unread is never too low.
func (s *Store) SetRead(ctx context.Context, user, peer string, upto int64) (store.Conversation, error) {
	if err := s.begin(ctx, "set read"); err != nil {
		return store.Conversation{}, err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	const tries = 8
	for try := 1; ; try++ {
		var row convDoc
		if err := s.c.convs.FindOne(ctx, convFilter(user, peer)).Decode(&row); err != nil {
			return store.Conversation{}, fmt.Errorf("set read %s/%s: %w", user, peer, notFound(err))
		}
		pos := upto
		if pos == 0 || pos > row.Last {
			pos = row.Last // a position past the last message would hide later ones
		}
		pos = max(pos, row.ReadUpto)
		unread, err := s.c.entries.CountDocuments(ctx, bson.D{{Key: "user", Value: user}, {Key: "peer", Value: peer},
			{Key: "msg", Value: bson.D{{Key: "$gt", Value: pos}}}, {Key: "out", Value: false}})
		if err != nil {
			return store.Conversation{}, fmt.Errorf("set read %s/%s: count unread: %w", user, peer, err)
		}
		filter := append(convFilter(user, peer), bson.E{Key: "read_upto", Value: row.ReadUpto})
		if try < tries { // the last try only keeps the position from moving back
			filter = append(filter, bson.E{Key: "ver", Value: row.Ver}, bson.E{Key: "last", Value: row.Last},
				bson.E{Key: "unread", Value: row.Unread})
		}
		upd := bson.D{{Key: "$set", Value: bson.D{{Key: "read_upto", Value: pos}, {Key: "unread", Value: unread}}}}
		var after convDoc
		err = s.c.convs.FindOneAndUpdate(ctx, filter, upd, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&after)
		switch {
		case err == nil:
			return after.conversation(), nil
		case !errors.Is(err, mongo.ErrNoDocuments):
			return store.Conversation{}, fmt.Errorf("set read %s/%s: %w", user, peer, err)
		case try == tries:
			return store.Conversation{}, fmt.Errorf("set read %s/%s: the row kept changing", user, peer)
		}
	}
}

// validate rejects what the documents cannot hold.
func validate(b *store.Batch) error {
	for i := range b.Messages {
		m := &b.Messages[i]
		if m.ID < 0 || m.Seq > math.MaxInt64 {
			return fmt.Errorf("message %d seq %d: %w", m.ID, m.Seq, ErrInvalid)
		}
	}
	for _, j := range b.PushJobs {
		if j.MsgID < 0 {
			return fmt.Errorf("push job %d: %w", j.MsgID, ErrInvalid)
		}
	}
	if err := checkWebhookEvents(b.Webhooks); err != nil {
		return err
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Ver == 0 || e.Ver > math.MaxInt64 || e.MsgID < 0 {
			return fmt.Errorf("entry of %s ver %d msg %d: %w", e.User, e.Ver, e.MsgID, ErrInvalid)
		}
	}
	for i := range b.Convs {
		if b.Convs[i].Ver > math.MaxInt64 {
			return fmt.Errorf("conversation update of %s ver %d: %w", b.Convs[i].User, b.Convs[i].Ver, ErrInvalid)
		}
	}
	for i := range b.Acks {
		if b.Acks[i].Ver > math.MaxInt64 || b.Acks[i].Seq > math.MaxInt64 {
			return fmt.Errorf("ack of %s: %w", b.Acks[i].From, ErrInvalid)
		}
	}
	for _, h := range b.Heads {
		if h.Seq > math.MaxInt64 {
			return fmt.Errorf("head of %s seq %d: %w", h.Group, h.Seq, ErrInvalid)
		}
	}
	return validateChanges(b)
}
