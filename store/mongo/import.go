package mongo

import (
	"context"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

// Importing rows copied from another store (store/migrate). Each Import
// method writes one kind of row in bulk, unordered, keyed by the row's
// natural key: an insert that meets a duplicate key finds the row already
// there, an upsert rewrites it with the same values. So an import that
// died half-way is repeated without duplicates. The rows are the source's
// truth: no unread is counted (entries are never pending), and rows that
// are state (conversations, members, groups) replace what is there.

// Counter is a version counter to import: Last is the last version
// reserved of Key (what ReserveVersions' counter holds).
type Counter struct {
	Key  string
	Last uint64
}

// GroupMsg is one entry of a group's message index to import.
type GroupMsg struct {
	Group string
	Seq   uint64
	MsgID int64
}

// Collections names the collections Import writes, each with the
// collection a count of the source's rows is compared with (CountRows).
var Collections = []string{"users", "tokens", "messages", "entries", "convs", "acks", "counters", "grants",
	"groups", "members", "group_heads", "group_msgs", "sessions", "conv_settings", "push_devices", "push_jobs", "push_items",
	"reactions", "hidden", "user_settings", "contacts", "blocks", "last_seen"}

func (s *Store) importInsert(ctx context.Context, op string, c *mongo.Collection, docs []any) error {
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	defer s.end()
	if _, err := insertMany(ctx, c, docs); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (s *Store) importUpsert(ctx context.Context, op string, c *mongo.Collection, models []mongo.WriteModel) error {
	if len(models) == 0 {
		return nil
	}
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	if err := s.bulkUpsert(ctx, c, models); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// ImportUsers inserts accounts under their folded IDs.
func (s *Store) ImportUsers(ctx context.Context, us []store.User) error {
	docs := make([]any, len(us))
	for i, u := range us {
		docs[i] = userDoc{ID: store.FoldID(u.ID), Display: u.Display, PasswordHash: u.PasswordHash, Created: u.Created, Deleted: u.Deleted}
	}
	return s.importInsert(ctx, "import users", s.c.users, docs)
}

// ImportTokens inserts sessions.
func (s *Store) ImportTokens(ctx context.Context, ts []store.Token) error {
	docs := make([]any, len(ts))
	for i, t := range ts {
		docs[i] = tokenDoc(t)
	}
	return s.importInsert(ctx, "import tokens", s.c.tokens, docs)
}

// ImportMessages inserts messages by ID, with their current state
// (recalled, edited, reacted). It does not index group messages
// (ImportGroupMsgs does), except the group change records' index by seq
// (group_changes), which it writes from their Change.Count.
func (s *Store) ImportMessages(ctx context.Context, ms []store.Message) error {
	docs := make([]any, len(ms))
	var changes []any
	for i := range ms {
		m := &ms[i]
		if m.ID < 0 || m.Seq > math.MaxInt64 || m.Change != nil && m.Change.Count > math.MaxInt64 {
			return fmt.Errorf("import message %d: %w", m.ID, ErrInvalid)
		}
		docs[i] = toMessageDoc(m)
		if m.Group != "" && m.Change != nil {
			changes = append(changes, groupChangeDoc{Group: m.Group, Seq: int64(m.Seq), Count: int64(m.Change.Count)})
		}
	}
	if err := s.importInsert(ctx, "import messages", s.c.messages, docs); err != nil {
		return err
	}
	return s.importInsert(ctx, "import group change index", s.c.groupChanges, changes)
}

// ImportEntries inserts inbox entries, unique by (user, ver), none
// pending: the conversation rows imported with them already count them.
func (s *Store) ImportEntries(ctx context.Context, es []store.Entry) error {
	docs := make([]any, len(es))
	for i, e := range es {
		if e.Ver == 0 || e.Ver > math.MaxInt64 || e.MsgID < 0 {
			return fmt.Errorf("import entry of %s ver %d: %w", e.User, e.Ver, ErrInvalid)
		}
		docs[i] = toEntryDoc(&e)
	}
	return s.importInsert(ctx, "import entries", s.c.entries, docs)
}

// ImportConversations writes conversation rows whole, by (user, peer).
func (s *Store) ImportConversations(ctx context.Context, cs []store.Conversation) error {
	models := make([]mongo.WriteModel, len(cs))
	for i, c := range cs {
		d := convDoc{User: c.User, Peer: c.Peer, Last: c.Last, LastTS: c.LastTS, Ver: int64(c.Ver),
			Unread: c.Unread, ReadUpto: c.ReadUpto, PeerRead: c.PeerRead}
		models[i] = mongo.NewReplaceOneModel().SetFilter(convFilter(c.User, c.Peer)).SetReplacement(d).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import conversations", s.c.convs, models)
}

// ImportAcks inserts dedupe rows, unique by (from, cmid).
func (s *Store) ImportAcks(ctx context.Context, as []store.Ack) error {
	docs := make([]any, len(as))
	for i, a := range as {
		docs[i] = ackDoc{From: a.From, CMID: a.CMID, ID: a.ID, Ver: int64(a.Ver), TS: a.TS, Group: a.Group, Seq: int64(a.Seq)}
	}
	return s.importInsert(ctx, "import acks", s.c.acks, docs)
}

// ImportCounters moves version counters up to at least Last ($max): a
// counter never moves back, so versions handed out are never handed out
// again.
func (s *Store) ImportCounters(ctx context.Context, cs []Counter) error {
	models := make([]mongo.WriteModel, len(cs))
	for i, c := range cs {
		if c.Last > math.MaxInt64 {
			return fmt.Errorf("import counter %s: %w", c.Key, ErrInvalid)
		}
		models[i] = mongo.NewUpdateOneModel().SetFilter(byID(c.Key)).SetUpsert(true).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "n", Value: int64(c.Last)}}}})
	}
	return s.importUpsert(ctx, "import counters", s.c.counters, models)
}

// ImportGrants inserts media grants, unique by (media, principal), with
// the newest message that granted each.
func (s *Store) ImportGrants(ctx context.Context, gs []store.Grant) error {
	docs := make([]any, len(gs))
	for i, g := range gs {
		docs[i] = grantDoc(g)
	}
	return s.importInsert(ctx, "import grants", s.c.grants, docs)
}

// ImportGroups writes group documents whole, by ID.
func (s *Store) ImportGroups(ctx context.Context, gs []store.Group) error {
	models := make([]mongo.WriteModel, len(gs))
	for i, g := range gs {
		if g.Changed > math.MaxInt64 {
			return fmt.Errorf("import group %s: %w", g.ID, ErrInvalid)
		}
		d := groupDoc{ID: g.ID, Name: g.Name, Owner: g.Owner, Created: g.Created, Members: int64(g.Members),
			Notice: g.Notice, Avatar: g.Avatar, Muted: g.Muted, Disbanded: g.Disbanded, Changed: int64(g.Changed)}
		models[i] = mongo.NewReplaceOneModel().SetFilter(byID(g.ID)).SetReplacement(d).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import groups", s.c.groups, models)
}

// ImportMembers writes memberships whole, by (group, user), with their
// change counts and MentionSeq.
func (s *Store) ImportMembers(ctx context.Context, ms []store.Member) error {
	models := make([]mongo.WriteModel, len(ms))
	for i, m := range ms {
		if m.JoinSeq > math.MaxInt64 || m.ReadSeq > math.MaxInt64 || m.JoinChanges > math.MaxInt64 ||
			m.ReadChanges > math.MaxInt64 || m.MentionSeq > math.MaxInt64 || m.Changed > math.MaxInt64 {
			return fmt.Errorf("import member %s of %s: %w", m.User, m.Group, ErrInvalid)
		}
		models[i] = mongo.NewReplaceOneModel().SetFilter(memberFilter(m.Group, m.User)).SetReplacement(toMemberDoc(m)).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import members", s.c.members, models)
}

// ImportHeads moves group heads forward, as Commit does.
func (s *Store) ImportHeads(ctx context.Context, hs []store.GroupHead) error {
	if err := s.begin(ctx, "import heads"); err != nil {
		return err
	}
	defer s.end()
	for _, h := range hs {
		if h.Seq > math.MaxInt64 || h.Changes > math.MaxInt64 || h.MentionAll > math.MaxInt64 {
			return fmt.Errorf("import head of %s: %w", h.Group, ErrInvalid)
		}
	}
	defer s.lockRMW(ctx)()
	if err := s.moveHeads(ctx, hs); err != nil {
		return fmt.Errorf("import heads: %w", err)
	}
	return nil
}

// ImportGroupMsgs inserts group message index entries, unique by (group, seq).
func (s *Store) ImportGroupMsgs(ctx context.Context, gs []GroupMsg) error {
	docs := make([]any, len(gs))
	for i, g := range gs {
		if g.Seq > math.MaxInt64 {
			return fmt.Errorf("import group message %s/%d: %w", g.Group, g.Seq, ErrInvalid)
		}
		docs[i] = groupMsgDoc{Group: g.Group, Seq: int64(g.Seq), MsgID: g.MsgID}
	}
	return s.importInsert(ctx, "import group messages", s.c.groupMsgs, docs)
}

// ImportSessions writes persistent sessions as SaveSessions does: each
// position the higher of the target's and the row's, so a repeated
// import changes nothing.
func (s *Store) ImportSessions(ctx context.Context, ss []store.Session) error {
	if err := s.SaveSessions(ctx, ss); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// PushItemRow is a push item to import: pending, or done at DoneAt.
type PushItemRow struct {
	store.PushItem
	Done   bool
	DoneAt int64
}

// ImportPushDevices writes push registrations, each replacing the one of
// its device.
func (s *Store) ImportPushDevices(ctx context.Context, ds []store.PushDevice) error {
	models := make([]mongo.WriteModel, len(ds))
	for i, d := range ds {
		if err := checkPushDevice(&d); err != nil {
			return fmt.Errorf("import push devices: %w", err)
		}
		id := sessionID(d.User, d.Device)
		models[i] = mongo.NewReplaceOneModel().SetFilter(byID(id)).SetUpsert(true).SetReplacement(pushDeviceDoc{
			ID: id, User: d.User, Device: d.Device, Provider: d.Provider, Token: d.Token, Topic: d.Topic,
			Sandbox: d.Sandbox, Login: d.Login, Created: d.Created, LastPush: d.LastPush})
	}
	err := s.importUpsert(ctx, "import push devices", s.c.pushDevices, models)
	if isDup(err) { // the driver's message would name the token
		return fmt.Errorf("import push devices: a token is another device's in the target: %w", store.ErrExists)
	}
	return err
}

// ImportPushJobs inserts push jobs, unclaimed.
func (s *Store) ImportPushJobs(ctx context.Context, js []store.PushJob) error {
	docs := make([]any, len(js))
	for i, j := range js {
		docs[i] = pushJobDoc{ID: j.MsgID, Created: j.Created, Until: released}
	}
	return s.importInsert(ctx, "import push jobs", s.c.pushJobs, docs)
}

// ImportPushItems inserts push items, pending or done as they were.
func (s *Store) ImportPushItems(ctx context.Context, rs []PushItemRow) error {
	docs := make([]any, len(rs))
	for i, r := range rs {
		if err := checkDevice(r.Device); err != nil {
			return fmt.Errorf("import push items: %w", err)
		}
		docs[i] = pushItemDoc{ID: pushItemID(r.User, r.Device, r.MsgID), User: r.User, Device: r.Device, MsgID: r.MsgID,
			Created: r.Created, Due: r.Due, Attempts: int64(r.Attempts), Mention: r.Mention, Done: r.Done, DoneAt: r.DoneAt}
	}
	return s.importInsert(ctx, "import push items", s.c.pushItems, docs)
}

// ImportReactions inserts reaction rows (MsgID, User, Emoji, TS of each;
// Add is not read: a row is a reaction that is there, as store/pebble's
// Reactions kind exports them), unique by (msg, user, emoji), then
// rebuilds the summary of each (msg, emoji) they touch from all its rows
// (the count, and the earliest store.ReactionUsers users): rows of one
// summary split across several calls, or a call repeated, end with the
// same summary.
func (s *Store) ImportReactions(ctx context.Context, rs []store.Reaction) error {
	if len(rs) == 0 {
		return nil
	}
	type key struct {
		msg   int64
		emoji string
	}
	docs := make([]any, len(rs))
	var sums []key
	seen := map[key]bool{}
	for i, r := range rs {
		if r.MsgID < 0 || r.User == "" || r.Emoji == "" {
			return fmt.Errorf("import reaction of %q on %d: %w", r.User, r.MsgID, ErrInvalid)
		}
		docs[i] = reactionDoc{ID: reactionID(r.MsgID, r.User, r.Emoji), Msg: r.MsgID, User: r.User, Emoji: r.Emoji, TS: r.TS}
		if k := (key{r.MsgID, r.Emoji}); !seen[k] {
			seen[k] = true
			sums = append(sums, k)
		}
	}
	if err := s.importInsert(ctx, "import reactions", s.c.reactions, docs); err != nil {
		return err
	}
	if err := s.begin(ctx, "import reactions"); err != nil {
		return err
	}
	defer s.end()
	models := make([]mongo.WriteModel, 0, len(sums))
	for _, k := range sums {
		filter := bson.D{{Key: "msg", Value: k.msg}, {Key: "emoji", Value: k.emoji}}
		n, err := s.c.reactions.CountDocuments(ctx, filter)
		if err != nil {
			return fmt.Errorf("import reactions: count %d: %w", k.msg, err)
		}
		var first []reactionDoc
		opts := options.Find().SetSort(bson.D{{Key: "msg", Value: 1}, {Key: "emoji", Value: 1}, {Key: "ts", Value: 1}}).
			SetLimit(store.ReactionUsers)
		if err := findAll(ctx, s.c.reactions, filter, opts, &first); err != nil {
			return fmt.Errorf("import reactions: users of %d: %w", k.msg, err)
		}
		users := make([]string, len(first))
		for i, d := range first {
			users[i] = d.User
		}
		sid := reactionSumID(k.msg, k.emoji)
		models = append(models, mongo.NewReplaceOneModel().SetFilter(byID(sid)).SetUpsert(true).SetReplacement(
			reactionSumDoc{ID: sid, Msg: k.msg, Emoji: k.emoji, Count: n, Users: users, NUsers: int64(len(users))}))
	}
	defer s.lockRMW(ctx)()
	if err := s.bulkUpsert(ctx, s.c.reactionSums, models); err != nil {
		return fmt.Errorf("import reactions: summaries: %w", err)
	}
	return nil
}

// ImportHidden inserts hidden rows of group messages (User, MsgID,
// Group), unique by (user, msg). A Hide with no Group is not a row (a 1:1
// message a user hid is simply not in their inbox): it is refused.
func (s *Store) ImportHidden(ctx context.Context, hs []store.Hide) error {
	docs := make([]any, len(hs))
	for i, h := range hs {
		if h.User == "" || h.Group == "" || h.MsgID < 0 {
			return fmt.Errorf("import hidden row of %q on %d: %w", h.User, h.MsgID, ErrInvalid)
		}
		docs[i] = hiddenDoc{ID: hiddenID(h.User, h.MsgID), User: h.User, Msg: h.MsgID, Group: h.Group}
	}
	return s.importInsert(ctx, "import hidden rows", s.c.hidden, docs)
}

// ImportUserSettings writes users' settings whole, by user.
func (s *Store) ImportUserSettings(ctx context.Context, us []store.UserSettings) error {
	models := make([]mongo.WriteModel, len(us))
	for i, u := range us {
		if u.User == "" {
			return fmt.Errorf("import user settings: no user: %w", ErrInvalid)
		}
		models[i] = mongo.NewReplaceOneModel().SetFilter(byID(u.User)).SetReplacement(userSettingsDoc(u)).SetUpsert(true)
	}
	return s.importUpsert(ctx, "import user settings", s.c.userSettings, models)
}

// ImportEpoch makes epoch the database's epoch (the source store's, so
// that devices keep their cursors). Stores opened before, this one
// included, keep the epoch they read at Open: run it before starting nodes.
func (s *Store) ImportEpoch(ctx context.Context, epoch string) error {
	if err := s.begin(ctx, "import epoch"); err != nil {
		return err
	}
	defer s.end()
	if epoch == "" {
		return fmt.Errorf("import epoch: empty: %w", ErrInvalid)
	}
	_, err := s.c.meta.UpdateOne(ctx, byID("epoch"), bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: epoch}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("import epoch: %w", err)
	}
	return nil
}

// CountRows counts the documents of a collection named in Collections.
func (s *Store) CountRows(ctx context.Context, coll string) (int64, error) {
	if err := s.begin(ctx, "count rows"); err != nil {
		return 0, err
	}
	defer s.end()
	n, err := s.db.Collection(coll).CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", coll, err)
	}
	return n, nil
}
