package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/imqtt/imqtt/store"
)

func memberFilter(group, user string) bson.D {
	return bson.D{{Key: "group", Value: group}, {Key: "user", Value: user}}
}

func toMemberDoc(m store.Member) memberDoc {
	return memberDoc{Group: m.Group, User: m.User, Role: m.Role, JoinSeq: int64(m.JoinSeq),
		ReadSeq: int64(m.ReadSeq), Joined: m.Joined, JoinChanges: int64(m.JoinChanges),
		ReadChanges: int64(m.ReadChanges), MentionSeq: int64(m.MentionSeq), MuteUntil: m.MuteUntil, Changed: int64(m.Changed)}
}

// CreateGroup writes the members first and the group document last: the
// group exists only once it is whole, and a CreateGroup that failed
// half-way can be repeated. store.ErrExists if the ID is taken (two
// creates of one new ID at once: the loser's members may stay in the
// winner's group).
func (s *Store) CreateGroup(ctx context.Context, g store.Group, members []store.Member) error {
	if err := s.begin(ctx, "create group"); err != nil {
		return err
	}
	defer s.end()
	switch err := s.c.groups.FindOne(ctx, byID(g.ID)).Err(); {
	case err == nil:
		return fmt.Errorf("create group %s: %w", g.ID, store.ErrExists)
	case !errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	docs := make([]any, len(members))
	for i, m := range members {
		m.Group, m.JoinSeq, m.JoinChanges = g.ID, 0, 0
		docs[i] = toMemberDoc(m)
	}
	if _, err := insertMany(ctx, s.c.members, docs); err != nil {
		return fmt.Errorf("create group %s: members: %w", g.ID, err)
	}
	_, err := s.c.groups.InsertOne(ctx, groupDoc{ID: g.ID, Name: g.Name, Owner: g.Owner, Created: g.Created,
		Members: int64(len(members))})
	if isDup(err) {
		return fmt.Errorf("create group %s: %w", g.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	return nil
}

// GetGroup returns store.ErrNotFound for an unknown group.
func (s *Store) GetGroup(ctx context.Context, id string) (store.Group, error) {
	if err := s.begin(ctx, "get group"); err != nil {
		return store.Group{}, err
	}
	defer s.end()
	var d groupDoc
	if err := s.c.groups.FindOne(ctx, byID(id)).Decode(&d); err != nil {
		return store.Group{}, fmt.Errorf("get group %s: %w", id, notFound(err))
	}
	return d.group(), nil
}

// AddMembers adds members at the group's head seq. The member count is
// moved first, by a conditional $inc that keeps it within limit, so two
// nodes adding at once cannot pass the limit together; a member another
// call added meanwhile (a duplicate key) gives its slot back.
func (s *Store) AddMembers(ctx context.Context, group string, ms []store.Member, limit int) ([]store.Member, error) {
	if err := s.begin(ctx, "add members"); err != nil {
		return nil, err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	added, err := s.addMembers(ctx, group, ms, limit)
	if err != nil {
		return nil, fmt.Errorf("add members to %s: %w", group, err)
	}
	return added, nil
}

func (s *Store) addMembers(ctx context.Context, group string, ms []store.Member, limit int) ([]store.Member, error) {
	var g groupDoc
	if err := s.c.groups.FindOne(ctx, byID(group)).Decode(&g); err != nil {
		return nil, notFound(err)
	}
	if g.Disbanded != 0 {
		return nil, store.ErrGone
	}
	h, err := s.head(ctx, group)
	if err != nil {
		return nil, err
	}
	users := bson.A{}
	seen := make(map[string]bool, len(ms))
	var uniq []store.Member
	for _, m := range ms {
		if !seen[m.User] {
			seen[m.User] = true
			users = append(users, m.User)
			uniq = append(uniq, m)
		}
	}
	var existing []memberDoc
	filter := bson.D{{Key: "group", Value: group}, {Key: "user", Value: bson.D{{Key: "$in", Value: users}}}}
	if err := findAll(ctx, s.c.members, filter, nil, &existing); err != nil {
		return nil, err
	}
	cur := make(map[string]memberDoc, len(existing))
	for _, d := range existing {
		cur[d.User] = d
	}
	var fresh []store.Member
	var roles []mongo.WriteModel
	for _, m := range uniq {
		if d, ok := cur[m.User]; ok {
			if m.Role != "" && m.Role != d.Role {
				roles = append(roles, mongo.NewUpdateOneModel().SetFilter(memberFilter(group, m.User)).
					SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "role", Value: m.Role}}}}))
			}
			continue
		}
		m.Group, m.JoinSeq, m.ReadSeq = group, h.Seq, h.Seq
		m.JoinChanges, m.ReadChanges = h.Changes, h.Changes // the changes up to JoinSeq = ReadSeq
		if m.Role == "" {
			m.Role = store.RoleMember
		}
		fresh = append(fresh, m)
	}
	if len(fresh) > 0 {
		n := int64(len(fresh))
		filter := byID(group)
		if limit > 0 {
			filter = append(filter, bson.E{Key: "members", Value: bson.D{{Key: "$lte", Value: int64(limit) - n}}})
		}
		res, err := s.c.groups.UpdateOne(ctx, filter, bson.D{{Key: "$inc", Value: bson.D{{Key: "members", Value: n}}}})
		if err != nil {
			return nil, err
		}
		if res.MatchedCount == 0 {
			return nil, fmt.Errorf("%d new members: %w", n, store.ErrLimit)
		}
	}
	if len(roles) > 0 {
		if err := s.bulkWrite(ctx, s.c.members, roles); err != nil {
			return nil, err
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	docs := make([]any, len(fresh))
	for i, m := range fresh {
		docs[i] = toMemberDoc(m)
	}
	dups, err := insertMany(ctx, s.c.members, docs)
	if err != nil {
		return nil, err
	}
	added := fresh[:0]
	for i, m := range fresh {
		if !dups[i] {
			added = append(added, m)
		}
	}
	if len(dups) > 0 {
		_, err := s.c.groups.UpdateOne(ctx, byID(group), bson.D{{Key: "$inc", Value: bson.D{{Key: "members", Value: -int64(len(dups))}}}})
		if err != nil {
			return nil, err
		}
	}
	return added, nil
}

// RemoveMember ends a membership.
func (s *Store) RemoveMember(ctx context.Context, group, user string) error {
	if err := s.begin(ctx, "remove member"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	res, err := s.c.members.DeleteOne(ctx, memberFilter(group, user))
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, group, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("remove %s from %s: %w", user, group, store.ErrNotFound)
	}
	_, err = s.c.groups.UpdateOne(ctx, byID(group), bson.D{{Key: "$inc", Value: bson.D{{Key: "members", Value: int64(-1)}}}})
	if err != nil {
		return fmt.Errorf("remove %s from %s: count: %w", user, group, err)
	}
	return nil
}

// GetMember returns store.ErrNotFound unless user is a member of group.
func (s *Store) GetMember(ctx context.Context, group, user string) (store.Member, error) {
	if err := s.begin(ctx, "get member"); err != nil {
		return store.Member{}, err
	}
	defer s.end()
	var d memberDoc
	if err := s.c.members.FindOne(ctx, memberFilter(group, user)).Decode(&d); err != nil {
		return store.Member{}, fmt.Errorf("member %s of %s: %w", user, group, notFound(err))
	}
	return d.member(), nil
}

// Members pages through a group's members by user ID.
func (s *Store) Members(ctx context.Context, group, after string, limit int) ([]store.Member, error) {
	if err := s.begin(ctx, "members"); err != nil {
		return nil, err
	}
	defer s.end()
	filter := bson.D{{Key: "group", Value: group}}
	if after != "" {
		filter = append(filter, bson.E{Key: "user", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "group", Value: 1}, {Key: "user", Value: 1}}).SetLimit(int64(clampLimit(limit)))
	ms, err := s.findMembers(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", group, err)
	}
	return ms, nil
}

// UserGroups lists user's memberships by group ID.
func (s *Store) UserGroups(ctx context.Context, user string) ([]store.Member, error) {
	if err := s.begin(ctx, "user groups"); err != nil {
		return nil, err
	}
	defer s.end()
	opts := options.Find().SetSort(bson.D{{Key: "user", Value: 1}, {Key: "group", Value: 1}})
	ms, err := s.findMembers(ctx, bson.D{{Key: "user", Value: user}}, opts)
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", user, err)
	}
	return ms, nil
}

// CountUserGroups counts user's member rows (the {user, group} index), at
// most most.
func (s *Store) CountUserGroups(ctx context.Context, user string, most int) (int, error) {
	if err := s.begin(ctx, "count user groups"); err != nil {
		return 0, err
	}
	defer s.end()
	opts := options.Count()
	if most > 0 {
		opts.SetLimit(int64(most))
	}
	n, err := s.c.members.CountDocuments(ctx, bson.D{{Key: "user", Value: user}}, opts)
	if err != nil {
		return 0, fmt.Errorf("count groups of %s: %w", user, err)
	}
	return int(n), nil
}

func (s *Store) findMembers(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]store.Member, error) {
	var docs []memberDoc
	if err := findAll(ctx, s.c.members, filter, opts, &docs); err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, nil
	}
	out := make([]store.Member, len(docs))
	for i := range docs {
		out[i] = docs[i].member()
	}
	return out, nil
}

// GroupHead returns the group's newest message (zero if none).
func (s *Store) GroupHead(ctx context.Context, group string) (store.GroupHead, error) {
	if err := s.begin(ctx, "group head"); err != nil {
		return store.GroupHead{}, err
	}
	defer s.end()
	h, err := s.head(ctx, group)
	if err != nil {
		return h, fmt.Errorf("head of %s: %w", group, err)
	}
	return h, nil
}

func (s *Store) head(ctx context.Context, group string) (store.GroupHead, error) {
	var d headDoc
	err := s.c.heads.FindOne(ctx, byID(group)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.GroupHead{Group: group}, nil
	}
	if err != nil {
		return store.GroupHead{}, err
	}
	return d.head(group), nil
}

// GroupHeads reads the heads of groups in one query ($in on _id, the
// heads' shard key), in batches of headsBatch IDs.
func (s *Store) GroupHeads(ctx context.Context, groups []string) ([]store.GroupHead, error) {
	if err := s.begin(ctx, "group heads"); err != nil {
		return nil, err
	}
	defer s.end()
	found := make(map[string]headDoc, len(groups))
	for chunk := range slices.Chunk(groups, headsBatch) {
		cur, err := s.c.heads.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: chunk}}}})
		if err != nil {
			return nil, fmt.Errorf("group heads: %w", err)
		}
		var docs []headDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("group heads: %w", err)
		}
		for _, d := range docs {
			found[d.Group] = d
		}
	}
	out := make([]store.GroupHead, len(groups))
	for i, g := range groups {
		d := found[g]
		out[i] = d.head(g)
	}
	return out, nil
}

// headsBatch bounds the IDs of one GroupHeads query.
const headsBatch = 1000

// GroupRange returns the group's messages with seq > since, ascending.
func (s *Store) GroupRange(ctx context.Context, group string, since uint64, limit int) ([]store.Message, error) {
	if err := s.begin(ctx, "group range"); err != nil {
		return nil, err
	}
	defer s.end()
	if since >= 1<<63-1 {
		return nil, nil
	}
	var docs []groupMsgDoc
	filter := bson.D{{Key: "group", Value: group}, {Key: "seq", Value: bson.D{{Key: "$gt", Value: int64(since)}}}}
	opts := options.Find().SetSort(bson.D{{Key: "group", Value: 1}, {Key: "seq", Value: 1}}).SetLimit(int64(clampLimit(limit)))
	if err := findAll(ctx, s.c.groupMsgs, filter, opts, &docs); err != nil {
		return nil, fmt.Errorf("range of %s: %w", group, err)
	}
	ids := make([]int64, len(docs))
	for i, d := range docs {
		ids[i] = d.MsgID
	}
	msgs, err := s.getMessages(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("range of %s: %w", group, err)
	}
	return msgs, nil
}

// SetGroupReads moves read positions forward, capped at the head.
func (s *Store) SetGroupReads(ctx context.Context, reads []store.GroupRead) error {
	if err := s.begin(ctx, "set group reads"); err != nil {
		return err
	}
	defer s.end()
	defer s.lockRMW(ctx)()
	if err := s.applyReads(ctx, reads); err != nil {
		return fmt.Errorf("set group reads: %w", err)
	}
	return nil
}

// applyReads moves members' read positions forward ($max), each capped at
// its group's head, and with each its ReadChanges, the change count up to
// the position (a seek of group_changes, none in a group without change
// records); both only grow, with the position, so $max keeps them a pair.
// A read of a non-member matches nothing.
func (s *Store) applyReads(ctx context.Context, reads []store.GroupRead) error {
	if len(reads) == 0 {
		return nil
	}
	heads := map[string]store.GroupHead{}
	type pos struct {
		group string
		seq   int64
	}
	changes := map[pos]int64{}
	var ops []mongo.WriteModel
	for _, r := range reads {
		h, ok := heads[r.Group]
		if !ok {
			var err error
			if h, err = s.head(ctx, r.Group); err != nil {
				return fmt.Errorf("head of %s: %w", r.Group, err)
			}
			heads[r.Group] = h
		}
		seq := int64(min(r.Seq, h.Seq))
		if seq == 0 {
			continue
		}
		n, ok := changes[pos{r.Group, seq}]
		if !ok && h.Changes > 0 {
			var err error
			if n, err = s.changesUpto(ctx, r.Group, seq); err != nil {
				return err
			}
			changes[pos{r.Group, seq}] = n
		}
		ops = append(ops, mongo.NewUpdateOneModel().SetFilter(memberFilter(r.Group, r.User)).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "read_seq", Value: seq}, {Key: "read_changes", Value: n}}}}))
	}
	if len(ops) == 0 {
		return nil
	}
	if err := s.bulkWrite(ctx, s.c.members, ops); err != nil {
		return fmt.Errorf("move read positions: %w", err)
	}
	return nil
}

// insertGroupMsgs writes the (group, seq) -> message index of the batch's
// group messages.
func (s *Store) insertGroupMsgs(ctx context.Context, msgs []store.Message) error {
	var docs []any
	for i := range msgs {
		if m := &msgs[i]; m.Group != "" {
			docs = append(docs, groupMsgDoc{Group: m.Group, Seq: int64(m.Seq), MsgID: m.ID})
		}
	}
	if _, err := insertMany(ctx, s.c.groupMsgs, docs); err != nil {
		return fmt.Errorf("insert group index: %w", err)
	}
	return nil
}

// moveHeads moves group heads forward, each field by itself so that the
// heads of several nodes may land in any order: Seq, Changes and
// MentionAll by $max; MsgID and TS (with MsgSeq, their message's seq) only
// by a message head whose seq is above MsgSeq. A change record's head
// (MsgID 0) leaves them as they are. A head written before the lifecycle
// has no MsgSeq, and its Seq is its message's: it is given its MsgSeq
// before a change record's head moves its Seq (ensureMsgSeq).
func (s *Store) moveHeads(ctx context.Context, heads []store.GroupHead) error {
	for _, h := range heads {
		if err := s.moveHead(ctx, h); err != nil {
			return fmt.Errorf("move head of %s: %w", h.Group, err)
		}
	}
	return nil
}

func (s *Store) moveHead(ctx context.Context, h store.GroupHead) error {
	d := headDoc{Group: h.Group, Seq: int64(h.Seq), Changes: int64(h.Changes), MentionAll: int64(h.MentionAll)}
	if h.MsgID != 0 {
		d.MsgID, d.TS, d.MsgSeq = h.MsgID, h.TS, int64(h.Seq)
	}
	mx := bson.D{{Key: "seq", Value: d.Seq}, {Key: "changes", Value: d.Changes},
		{Key: "mention_all", Value: d.MentionAll}}
	if h.Disbanded != 0 {
		d.Disbanded = h.Disbanded
		mx = append(mx, bson.E{Key: "disbanded", Value: d.Disbanded})
	}
	maxes := bson.E{Key: "$max", Value: mx}
	for range dupRetries + 1 {
		if h.MsgID != 0 {
			filter := append(byID(h.Group), bson.E{Key: "$or", Value: bson.A{
				bson.D{{Key: "msg_seq", Value: bson.D{{Key: "$lt", Value: d.MsgSeq}}}},
				bson.D{{Key: "msg_seq", Value: bson.D{{Key: "$exists", Value: false}}}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: d.Seq}}}},
			}})
			res, err := s.c.heads.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "msg", Value: d.MsgID},
				{Key: "ts", Value: d.TS}, {Key: "msg_seq", Value: d.MsgSeq}}}, maxes})
			if err != nil {
				return err
			}
			if res.MatchedCount > 0 {
				return nil
			}
			// No head, or one whose message is at or above ours: only the
			// counters may move. An old head without msg_seq then has
			// seq >= ours already, so $max keeps its seq its message's.
			res, err = s.c.heads.UpdateOne(ctx, byID(h.Group), bson.D{maxes})
			if err != nil {
				return err
			}
			if res.MatchedCount > 0 {
				return nil
			}
		} else {
			res, err := s.c.heads.UpdateOne(ctx, append(byID(h.Group), bson.E{Key: "msg_seq", Value: bson.D{{Key: "$exists", Value: true}}}),
				bson.D{maxes})
			if err != nil {
				return err
			}
			if res.MatchedCount > 0 {
				return nil
			}
			switch found, err := s.ensureMsgSeq(ctx, h.Group); {
			case err != nil:
				return err
			case found:
				continue // now with msg_seq
			}
		}
		_, err := s.c.heads.InsertOne(ctx, d)
		if err == nil {
			return nil
		}
		if !isDup(err) {
			return err
		}
		// Inserted by another node just now: move it.
	}
	return errors.New("the head kept changing")
}

// ensureMsgSeq gives a head written before the lifecycle its msg_seq (its
// seq, which was its message's) and reports whether the group has a head.
func (s *Store) ensureMsgSeq(ctx context.Context, group string) (bool, error) {
	var raw bson.M
	err := s.c.heads.FindOne(ctx, byID(group)).Decode(&raw)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, ok := raw["msg_seq"]; ok {
		return true, nil
	}
	_, err = s.c.heads.UpdateOne(ctx, bson.D{{Key: "_id", Value: group}, {Key: "msg_seq", Value: bson.D{{Key: "$exists", Value: false}}},
		{Key: "seq", Value: raw["seq"]}}, bson.D{{Key: "$set", Value: bson.D{{Key: "msg_seq", Value: raw["seq"]}}}})
	return true, err
}
