package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// The message lifecycle (store/change.go): what change records do to the
// messages they change, and the Lives role. Every write here is one
// atomic single-document operation ($set under a filter, $max, $inc,
// $push/$pull), so that it is right on MongoDB whatever order the nodes'
// commits land in; FerretDB v1, whose updates are not atomic, gets them
// under lockRMW, and none needs a transaction, arrayFilters or $lookup.

// reactionDoc is one user's emoji on a message, _id reactionID. St marks a
// row whose summary is being moved: stAdd has not yet been counted,
// stRemove is being uncounted (then deleted). A Commit cut short between
// the two leaves the mark, and whoever meets it next (the same batch
// again, or another reaction of that user and emoji) finishes the move.
// As with unread (commit.go), one cut exactly between moving the summary
// and clearing the mark moves it once more when finished: a count one off
// until that emoji's reactions are imported again. Two nodes meeting the
// same mark at once may both finish it, likewise.
type reactionDoc struct {
	ID    string `bson:"_id"`
	Msg   int64  `bson:"msg"`
	User  string `bson:"user"`
	Emoji string `bson:"emoji"`
	TS    int64  `bson:"ts"`
	St    string `bson:"st,omitempty"`
}

const (
	stAdd    = "add"
	stRemove = "rm"
)

// reactionSumDoc is one emoji's summary of a message, _id reactionSumID:
// the emoji is a value, never a field name ('.' and '$' in a key are not
// allowed). Users holds up to store.ReactionUsers reactors and NUsers its
// length, which the cap's filter reads (no $size, no arrayFilters).
type reactionSumDoc struct {
	ID     string   `bson:"_id"`
	Msg    int64    `bson:"msg"`
	Emoji  string   `bson:"emoji"`
	Count  int64    `bson:"count"`
	Users  []string `bson:"users"`
	NUsers int64    `bson:"nusers"`
}

// hiddenDoc is a group message a user hid (store.Hide with Group).
type hiddenDoc struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Msg   int64  `bson:"msg"`
	Group string `bson:"group"`
}

// userSettingsDoc is a user's own settings, _id the user.
type userSettingsDoc struct {
	User           string `bson:"_id"`
	NoReadReceipts bool   `bson:"no_read_receipts,omitempty"`
	AcceptFrom     string `bson:"accept_from,omitempty"`
	Presence       string `bson:"presence,omitempty"`
	Updated        int64  `bson:"updated"`
}

// The _ids: a user ID's length before it keeps them unambiguous whatever
// the IDs and the emoji hold.
func reactionID(msg int64, user, emoji string) string {
	return strconv.FormatInt(msg, 10) + " " + strconv.Itoa(len(user)) + ":" + user + " " + emoji
}

func reactionSumID(msg int64, emoji string) string { return strconv.FormatInt(msg, 10) + " " + emoji }

func hiddenID(user string, msg int64) string {
	return strconv.Itoa(len(user)) + ":" + user + " " + strconv.FormatInt(msg, 10)
}

// validateChanges rejects the lifecycle rows the documents cannot hold.
func validateChanges(b *store.Batch) error {
	for i := range b.Messages {
		if c := b.Messages[i].Change; c != nil && c.Count > math.MaxInt64 {
			return fmt.Errorf("change record %d count %d: %w", b.Messages[i].ID, c.Count, ErrInvalid)
		}
	}
	for _, r := range b.Reactions {
		if r.MsgID < 0 || r.User == "" || r.Emoji == "" {
			return fmt.Errorf("reaction of %q on %d: %w", r.User, r.MsgID, ErrInvalid)
		}
	}
	for _, h := range b.Hides {
		if h.User == "" || h.MsgID < 0 {
			return fmt.Errorf("hide of %d by %q: %w", h.MsgID, h.User, ErrInvalid)
		}
	}
	for _, c := range b.Clears {
		if c.User == "" || c.Peer == "" {
			return fmt.Errorf("clear of %q with %q: %w", c.User, c.Peer, ErrInvalid)
		}
	}
	for _, m := range b.Mentioned {
		if m.Seq > math.MaxInt64 {
			return fmt.Errorf("mention of %s in %s seq %d: %w", m.User, m.Group, m.Seq, ErrInvalid)
		}
	}
	for _, h := range b.Heads {
		if h.Changes > math.MaxInt64 || h.MentionAll > math.MaxInt64 {
			return fmt.Errorf("head of %s: %w", h.Group, ErrInvalid)
		}
	}
	return nil
}

// applyEdits applies the batch's recalls, edits and reactions to the
// messages they change. It runs after the messages are inserted (a target
// may be in the batch) and before the entries and the group index (a
// device that sees a change record finds its target changed already).
func (s *Store) applyEdits(ctx context.Context, b *store.Batch) error {
	if len(b.Recalls)+len(b.Edits)+len(b.Reactions) == 0 {
		return nil
	}
	defer s.lockRMW(ctx)()
	if err := s.applyRecalls(ctx, b.Recalls); err != nil {
		return err
	}
	if err := s.applyMsgEdits(ctx, b.Edits); err != nil {
		return err
	}
	for _, r := range b.Reactions {
		if err := s.react(ctx, r); err != nil {
			return fmt.Errorf("reaction of %s on %d: %w", r.User, r.MsgID, err)
		}
	}
	return nil
}

// notRecalled filters the messages that are not tombstones.
var notRecalled = bson.E{Key: "recalled", Value: bson.D{{Key: "$exists", Value: false}}}

// applyRecalls makes each target a tombstone, once: the filter keeps a
// first recall, and an edit's filter (applyMsgEdits) skips a tombstone, so
// a recall wins over an edit whichever lands first, on any node.
// messageDoc's tag `bson:"inline,omitempty"` makes the driver inline the
// Inline document (the name "inline" is also the driver's option): its
// fields are stored at the top level, as "mime" and "data", which are
// unset with it.
func (s *Store) applyRecalls(ctx context.Context, rs []store.Recall) error {
	if len(rs) == 0 {
		return nil
	}
	ops := make([]mongo.WriteModel, len(rs))
	for i, r := range rs {
		ops[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: r.MsgID}, notRecalled}).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: "recalled", Value: r.TS}, {Key: "recalled_by", Value: r.By}, {Key: "body", Value: ""}}},
				{Key: "$unset", Value: bson.D{{Key: "media", Value: ""}, {Key: "meta", Value: ""}, {Key: "inline", Value: ""},
					{Key: "mime", Value: ""}, {Key: "data", Value: ""}, {Key: "mentions", Value: ""}}},
			})
	}
	if err := s.bulkWrite(ctx, s.c.messages, ops); err != nil {
		return fmt.Errorf("recall messages: %w", err)
	}
	return nil
}

// applyMsgEdits replaces body and meta of each target that is not a
// tombstone and not edited later than the edit (a replayed older batch
// changes nothing).
func (s *Store) applyMsgEdits(ctx context.Context, es []store.Edit) error {
	if len(es) == 0 {
		return nil
	}
	ops := make([]mongo.WriteModel, len(es))
	for i, e := range es {
		filter := bson.D{{Key: "_id", Value: e.MsgID}, notRecalled, {Key: "$or", Value: bson.A{
			bson.D{{Key: "edited", Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: "edited", Value: bson.D{{Key: "$lte", Value: e.TS}}}},
		}}}
		ops[i] = mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(bson.D{{Key: "$set", Value: bson.D{
			{Key: "body", Value: e.Body}, {Key: "meta", Value: string(e.Meta)}, {Key: "edited", Value: e.TS},
		}}})
	}
	if err := s.bulkWrite(ctx, s.c.messages, ops); err != nil {
		return fmt.Errorf("edit messages: %w", err)
	}
	return nil
}

// reactTries bounds how often react meets a row another writer changed.
const reactTries = 4

// react adds or removes one reaction: the reaction row, unique by _id, is
// the truth of whether it is there; the summary moves only with the row
// (insert, or a mark set on an unmarked row), so adding what is there or
// removing what is not changes nothing. O(1) writes, whatever the count.
func (s *Store) react(ctx context.Context, r store.Reaction) error {
	id := reactionID(r.MsgID, r.User, r.Emoji)
	for range reactTries {
		if r.Add {
			_, err := s.c.reactions.InsertOne(ctx, reactionDoc{ID: id, Msg: r.MsgID, User: r.User, Emoji: r.Emoji,
				TS: r.TS, St: stAdd})
			if err == nil {
				return s.countAdd(ctx, r.MsgID, r.User, r.Emoji)
			}
			if !isDup(err) {
				return err
			}
		} else {
			res, err := s.c.reactions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "st", Value: bson.D{{Key: "$exists", Value: false}}}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "st", Value: stRemove}}}})
			if err != nil {
				return err
			}
			if res.MatchedCount > 0 {
				return s.countRemove(ctx, r.MsgID, r.User, r.Emoji)
			}
		}
		// The row is there (add), or not unmarked (remove): look.
		var d reactionDoc
		err := s.c.reactions.FindOne(ctx, byID(id)).Decode(&d)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			if !r.Add {
				return nil // not there: nothing to remove
			}
			continue // removed meanwhile: insert it again
		case err != nil:
			return err
		}
		switch d.St {
		case "":
			if r.Add {
				return nil // there already
			}
		case stAdd: // an add cut short: finish it
			if err := s.countAdd(ctx, r.MsgID, r.User, r.Emoji); err != nil {
				return err
			}
			if r.Add {
				return nil
			}
		case stRemove: // a remove cut short: finish it
			if err := s.countRemove(ctx, r.MsgID, r.User, r.Emoji); err != nil {
				return err
			}
			if !r.Add {
				return nil
			}
		}
	}
	return errors.New("the reaction kept changing")
}

// countAdd counts a new reaction row in its summary, lists its user while
// the list has room, marks the message reacted, and clears the row's mark.
func (s *Store) countAdd(ctx context.Context, msg int64, user, emoji string) error {
	sid := reactionSumID(msg, emoji)
	_, err := s.c.reactionSums.UpdateOne(ctx, byID(sid), bson.D{
		{Key: "$inc", Value: bson.D{{Key: "count", Value: int64(1)}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "msg", Value: msg}, {Key: "emoji", Value: emoji},
			{Key: "users", Value: bson.A{}}, {Key: "nusers", Value: int64(0)}}},
	}, options.UpdateOne().SetUpsert(true))
	if isDup(err) { // another node inserted the summary first
		_, err = s.c.reactionSums.UpdateOne(ctx, byID(sid), bson.D{{Key: "$inc", Value: bson.D{{Key: "count", Value: int64(1)}}}})
	}
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if err := s.listReactor(ctx, sid, user); err != nil {
		return err
	}
	_, err = s.c.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: msg}, {Key: "reacted", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "reacted", Value: true}}}})
	if err != nil {
		return fmt.Errorf("mark the message reacted: %w", err)
	}
	_, err = s.c.reactions.UpdateOne(ctx, bson.D{{Key: "_id", Value: reactionID(msg, user, emoji)}, {Key: "st", Value: stAdd}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "st", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("clear the add mark: %w", err)
	}
	return nil
}

// listReactor adds user to the summary's users if it has room and does
// not list them yet: one guarded $push.
func (s *Store) listReactor(ctx context.Context, sid, user string) error {
	_, err := s.c.reactionSums.UpdateOne(ctx, bson.D{{Key: "_id", Value: sid},
		{Key: "nusers", Value: bson.D{{Key: "$lt", Value: int64(store.ReactionUsers)}}},
		{Key: "users", Value: bson.D{{Key: "$ne", Value: user}}}},
		bson.D{{Key: "$push", Value: bson.D{{Key: "users", Value: user}}}, {Key: "$inc", Value: bson.D{{Key: "nusers", Value: int64(1)}}}})
	if err != nil {
		return fmt.Errorf("list the reactor: %w", err)
	}
	return nil
}

// countRemove uncounts a reaction row marked stRemove, unlists its user
// (and lists the earliest unlisted reactor in their place: a seek of at
// most ReactionUsers+1 index entries, not a read of all the reactions),
// deletes the row, and the summary once its count is 0.
func (s *Store) countRemove(ctx context.Context, msg int64, user, emoji string) error {
	sid := reactionSumID(msg, emoji)
	if _, err := s.c.reactionSums.UpdateOne(ctx, byID(sid), bson.D{{Key: "$inc", Value: bson.D{{Key: "count", Value: int64(-1)}}}}); err != nil {
		return fmt.Errorf("uncount: %w", err)
	}
	res, err := s.c.reactionSums.UpdateOne(ctx, bson.D{{Key: "_id", Value: sid}, {Key: "users", Value: user}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "users", Value: user}}}, {Key: "$inc", Value: bson.D{{Key: "nusers", Value: int64(-1)}}}})
	if err != nil {
		return fmt.Errorf("unlist the reactor: %w", err)
	}
	if _, err := s.c.reactions.DeleteOne(ctx, bson.D{{Key: "_id", Value: reactionID(msg, user, emoji)}, {Key: "st", Value: stRemove}}); err != nil {
		return fmt.Errorf("delete the reaction: %w", err)
	}
	if res.ModifiedCount > 0 {
		if err := s.refillReactors(ctx, msg, emoji); err != nil {
			return err
		}
	}
	if _, err := s.c.reactionSums.DeleteOne(ctx, bson.D{{Key: "_id", Value: sid}, {Key: "count", Value: bson.D{{Key: "$lte", Value: int64(0)}}}}); err != nil {
		return fmt.Errorf("delete the empty summary: %w", err)
	}
	return nil
}

// refillReactors lists the earliest reactor the summary does not list, if
// it has room and more reactors than it lists.
func (s *Store) refillReactors(ctx context.Context, msg int64, emoji string) error {
	sid := reactionSumID(msg, emoji)
	var sum reactionSumDoc
	if err := s.c.reactionSums.FindOne(ctx, byID(sid)).Decode(&sum); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		return fmt.Errorf("read the summary: %w", err)
	}
	if sum.NUsers >= store.ReactionUsers || sum.Count <= sum.NUsers {
		return nil
	}
	users := bson.A{}
	for _, u := range sum.Users {
		users = append(users, u)
	}
	var next reactionDoc
	err := s.c.reactions.FindOne(ctx, bson.D{{Key: "msg", Value: msg}, {Key: "emoji", Value: emoji},
		{Key: "user", Value: bson.D{{Key: "$nin", Value: users}}}, {Key: "st", Value: bson.D{{Key: "$ne", Value: stRemove}}}},
		options.FindOne().SetSort(bson.D{{Key: "msg", Value: 1}, {Key: "emoji", Value: 1}, {Key: "ts", Value: 1}})).Decode(&next)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find a reactor to list: %w", err)
	}
	return s.listReactor(ctx, sid, next.User)
}

// applyHides drops the 1:1 messages users hid from their inbox and
// history (one entry document is both) and recounts their conversation
// rows, writes the hidden rows of group messages, and clears
// conversations. It runs after the conversation rows moved, so that a
// message of the same batch is hidden from its row too.
func (s *Store) applyHides(ctx context.Context, b *store.Batch) error {
	if len(b.Hides)+len(b.Clears) == 0 {
		return nil
	}
	type ids = bson.A
	var rows []convKey
	byConv := map[convKey]ids{}
	var hidden []any
	for _, h := range b.Hides {
		switch {
		case h.Peer != "":
			k := convKey{h.User, h.Peer}
			if _, ok := byConv[k]; !ok {
				rows = append(rows, k)
			}
			byConv[k] = append(byConv[k], h.MsgID)
		case h.Group != "":
			hidden = append(hidden, hiddenDoc{ID: hiddenID(h.User, h.MsgID), User: h.User, Msg: h.MsgID, Group: h.Group})
		}
	}
	if _, err := insertMany(ctx, s.c.hidden, hidden); err != nil {
		return fmt.Errorf("insert hidden rows: %w", err)
	}
	for _, k := range rows {
		filter := bson.D{{Key: "user", Value: k.user}, {Key: "peer", Value: k.peer}, {Key: "msg", Value: bson.D{{Key: "$in", Value: byConv[k]}}}}
		if _, err := s.c.entries.DeleteMany(ctx, filter); err != nil {
			return fmt.Errorf("hide messages of %s/%s: %w", k.user, k.peer, err)
		}
	}
	for _, c := range b.Clears {
		k := convKey{c.User, c.Peer}
		filter := bson.D{{Key: "user", Value: c.User}, {Key: "peer", Value: c.Peer}, {Key: "msg", Value: bson.D{{Key: "$lte", Value: c.Upto}}}}
		if _, err := s.c.entries.DeleteMany(ctx, filter); err != nil {
			return fmt.Errorf("clear %s/%s: %w", c.User, c.Peer, err)
		}
		if _, ok := byConv[k]; !ok {
			byConv[k] = nil
			rows = append(rows, k)
		}
	}
	defer s.lockRMW(ctx)()
	for _, k := range rows {
		if err := s.recountConv(ctx, k.user, k.peer); err != nil {
			return fmt.Errorf("recount %s/%s: %w", k.user, k.peer, err)
		}
	}
	return nil
}

// recountConv makes a conversation row agree with the history left after
// a hide or a clear: Last and LastTS the newest message left, Unread
// recounted, or no row if none is left. The write is a compare-and-set on
// the row as read (as SetRead's), tried again if a Commit moved the row
// meanwhile. The caller holds lockRMW.
func (s *Store) recountConv(ctx context.Context, user, peer string) error {
	const tries = 8
	for range tries {
		var row convDoc
		err := s.c.convs.FindOne(ctx, convFilter(user, peer)).Decode(&row)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return err
		}
		same := append(convFilter(user, peer), bson.E{Key: "ver", Value: row.Ver}, bson.E{Key: "last", Value: row.Last},
			bson.E{Key: "unread", Value: row.Unread}, bson.E{Key: "read_upto", Value: row.ReadUpto})
		var newest entryDoc
		err = s.c.entries.FindOne(ctx, convFilter(user, peer), options.FindOne().
			SetSort(bson.D{{Key: "user", Value: 1}, {Key: "peer", Value: 1}, {Key: "msg", Value: -1}})).Decode(&newest)
		if errors.Is(err, mongo.ErrNoDocuments) {
			res, err := s.c.convs.DeleteOne(ctx, same)
			if err != nil {
				return err
			}
			if res.DeletedCount > 0 {
				return nil
			}
			continue
		}
		if err != nil {
			return err
		}
		lastTS := row.LastTS
		if newest.MsgID != row.Last {
			var m struct {
				TS int64 `bson:"ts"`
			}
			err := s.c.messages.FindOne(ctx, byID(newest.MsgID), options.FindOne().SetProjection(bson.D{{Key: "ts", Value: 1}})).Decode(&m)
			if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
				return err
			}
			lastTS = m.TS
		}
		unread, err := s.c.entries.CountDocuments(ctx, bson.D{{Key: "user", Value: user}, {Key: "peer", Value: peer},
			{Key: "msg", Value: bson.D{{Key: "$gt", Value: row.ReadUpto}}}, {Key: "out", Value: false}})
		if err != nil {
			return err
		}
		res, err := s.c.convs.UpdateOne(ctx, same, bson.D{{Key: "$set", Value: bson.D{{Key: "last", Value: newest.MsgID},
			{Key: "last_ts", Value: lastTS}, {Key: "unread", Value: unread}}}})
		if err != nil {
			return err
		}
		if res.MatchedCount > 0 {
			return nil
		}
	}
	return errors.New("the row kept changing")
}

// applyMentioned moves the mentioned members' MentionSeq up ($max); a
// user who is not a member matches nothing. The caller holds lockRMW.
func (s *Store) applyMentioned(ctx context.Context, ms []store.GroupRead) error {
	if len(ms) == 0 {
		return nil
	}
	ops := make([]mongo.WriteModel, len(ms))
	for i, m := range ms {
		ops[i] = mongo.NewUpdateOneModel().SetFilter(memberFilter(m.Group, m.User)).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "mention_seq", Value: int64(m.Seq)}}}})
	}
	if err := s.bulkWrite(ctx, s.c.members, ops); err != nil {
		return fmt.Errorf("mark mentions: %w", err)
	}
	return nil
}

// insertGroupChanges indexes the batch's group change records by seq.
func (s *Store) insertGroupChanges(ctx context.Context, msgs []store.Message) error {
	var docs []any
	for i := range msgs {
		if m := &msgs[i]; m.Group != "" && m.Change != nil {
			docs = append(docs, groupChangeDoc{Group: m.Group, Seq: int64(m.Seq), Count: int64(m.Change.Count)})
		}
	}
	if _, err := insertMany(ctx, s.c.groupChanges, docs); err != nil {
		return fmt.Errorf("insert group change index: %w", err)
	}
	return nil
}

// changesUpto is the Count of group's newest change record with seq <=
// seq (0 if none): one seek of the {group, seq} index of group_changes.
func (s *Store) changesUpto(ctx context.Context, group string, seq int64) (int64, error) {
	var d groupChangeDoc
	err := s.c.groupChanges.FindOne(ctx, bson.D{{Key: "group", Value: group}, {Key: "seq", Value: bson.D{{Key: "$lte", Value: seq}}}},
		options.FindOne().SetSort(bson.D{{Key: "group", Value: -1}, {Key: "seq", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("changes of %s up to %d: %w", group, seq, err)
	}
	return d.Count, nil
}

// idsChunk bounds the IDs of one $in query of the Lives reads.
const idsChunk = 1000

// ReactionsOf reads the summaries of ids ({msg, emoji} index), each
// message's by emoji (bytewise, as Go compares strings).
func (s *Store) ReactionsOf(ctx context.Context, ids []int64) (map[int64][]store.ReactionSum, error) {
	out := map[int64][]store.ReactionSum{}
	if len(ids) == 0 {
		return out, nil
	}
	if err := s.begin(ctx, "reactions of"); err != nil {
		return nil, err
	}
	defer s.end()
	for chunk := range slices.Chunk(ids, idsChunk) {
		var docs []reactionSumDoc
		filter := bson.D{{Key: "msg", Value: bson.D{{Key: "$in", Value: chunk}}}, {Key: "count", Value: bson.D{{Key: "$gt", Value: int64(0)}}}}
		if err := findAll(ctx, s.c.reactionSums, filter, nil, &docs); err != nil {
			return nil, fmt.Errorf("reactions of %d messages: %w", len(ids), err)
		}
		for _, d := range docs {
			out[d.Msg] = append(out[d.Msg], store.ReactionSum{Emoji: d.Emoji, Count: d.Count, Users: d.Users})
		}
	}
	for _, sums := range out {
		slices.SortFunc(sums, func(a, b store.ReactionSum) int { return cmp.Compare(a.Emoji, b.Emoji) })
	}
	return out, nil
}

// UserReactions reads user's reaction rows of msg ({msg, user} index).
func (s *Store) UserReactions(ctx context.Context, msg int64, user string) ([]string, error) {
	if err := s.begin(ctx, "user reactions"); err != nil {
		return nil, err
	}
	defer s.end()
	var docs []reactionDoc
	filter := bson.D{{Key: "msg", Value: msg}, {Key: "user", Value: user}, {Key: "st", Value: bson.D{{Key: "$ne", Value: stRemove}}}}
	if err := findAll(ctx, s.c.reactions, filter, nil, &docs); err != nil {
		return nil, fmt.Errorf("reactions of %s on %d: %w", user, msg, err)
	}
	var out []string
	for _, d := range docs {
		out = append(out, d.Emoji)
	}
	slices.Sort(out)
	return out, nil
}

// Hidden reads user's hidden rows of ids ({user, msg} index).
func (s *Store) Hidden(ctx context.Context, user string, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	if err := s.begin(ctx, "hidden"); err != nil {
		return nil, err
	}
	defer s.end()
	for chunk := range slices.Chunk(ids, idsChunk) {
		var docs []hiddenDoc
		filter := bson.D{{Key: "user", Value: user}, {Key: "msg", Value: bson.D{{Key: "$in", Value: chunk}}}}
		if err := findAll(ctx, s.c.hidden, filter, nil, &docs); err != nil {
			return nil, fmt.Errorf("hidden of %s: %w", user, err)
		}
		for _, d := range docs {
			out[d.Msg] = true
		}
	}
	return out, nil
}

// SetPeerRead moves the row's peer_read forward by $max.
func (s *Store) SetPeerRead(ctx context.Context, user, peer string, upto int64) error {
	if err := s.begin(ctx, "set peer read"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	res, err := s.c.convs.UpdateOne(ctx, convFilter(user, peer), bson.D{{Key: "$max", Value: bson.D{{Key: "peer_read", Value: upto}}}})
	if err != nil {
		return fmt.Errorf("set peer read %s/%s: %w", user, peer, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set peer read %s/%s: %w", user, peer, store.ErrNotFound)
	}
	return nil
}

// PutUserSettings replaces user's settings document.
func (s *Store) PutUserSettings(ctx context.Context, us store.UserSettings) error {
	if err := s.begin(ctx, "put user settings"); err != nil {
		return err
	}
	defer s.end()
	if us.User == "" {
		return fmt.Errorf("put user settings: no user: %w", ErrInvalid)
	}
	d := userSettingsDoc(us)
	_, err := s.c.userSettings.ReplaceOne(ctx, byID(us.User), d, options.Replace().SetUpsert(true))
	if isDup(err) { // a concurrent first put: ours replaces it
		_, err = s.c.userSettings.ReplaceOne(ctx, byID(us.User), d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("put user settings of %s: %w", us.User, err)
	}
	return nil
}

// GetUserSettings reads user's settings document; none: the zero settings.
func (s *Store) GetUserSettings(ctx context.Context, user string) (store.UserSettings, error) {
	if err := s.begin(ctx, "get user settings"); err != nil {
		return store.UserSettings{}, err
	}
	defer s.end()
	var d userSettingsDoc
	err := s.c.userSettings.FindOne(ctx, byID(user)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.UserSettings{User: user}, nil
	}
	if err != nil {
		return store.UserSettings{}, fmt.Errorf("get user settings of %s: %w", user, err)
	}
	return store.UserSettings(d), nil
}
