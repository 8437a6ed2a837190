package pebble

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// pair is prefix + a + NUL + b.
func pair(prefix, a, b string) []byte {
	buf := make([]byte, 0, len(prefix)+len(a)+1+len(b))
	buf = append(buf, prefix...)
	buf = append(buf, a...)
	buf = append(buf, sep)
	return append(buf, b...)
}

func groupKey(id string) []byte { return append([]byte(pfxGroup), id...) }
func headKey(id string) []byte  { return append([]byte(pfxHead), id...) }

func groupMsgKey(buf []byte, group string, seq uint64) []byte {
	buf = append(buf, pfxGroupQ...)
	buf = append(buf, group...)
	buf = append(buf, sep)
	return binary.BigEndian.AppendUint64(buf, seq)
}

func groupChangeKey(buf []byte, group string, seq uint64) []byte {
	buf = append(buf, pfxGroupC...)
	buf = append(buf, group...)
	buf = append(buf, sep)
	return binary.BigEndian.AppendUint64(buf, seq)
}

// headRow is a group head as stored: the GroupHead and the seq of its
// message (MsgID), which a message head must pass to move MsgID and TS —
// a change's head moves Seq past it, and a message committed a moment
// later on another node may have a seq below Seq but above msgSeq.
type headRow struct {
	store.GroupHead
	msgSeq uint64
}

// encodeHead is seq(8) msgid(8) ts(8), then uvarint changes, mention_all
// and msg_seq unless they are 0, 0 and seq (and nothing follows): a head
// of before change records is the 24 bytes it was, and those decode with
// msg_seq = seq (every head was then its message's).
//
// A retention sweep's floor and floor changes (retention.go) follow as two
// more uvarints when the floor is not 0 or the group is disbanded, and
// then, for a disbanded group, uvarint disbanded: a head never swept nor
// disbanded is the bytes it was.
func encodeHead(h headRow) []byte {
	buf := binary.BigEndian.AppendUint64(nil, h.Seq)
	buf = binary.BigEndian.AppendUint64(buf, uint64(h.MsgID))
	buf = binary.BigEndian.AppendUint64(buf, uint64(h.TS))
	if h.Changes != 0 || h.MentionAll != 0 || h.msgSeq != h.Seq || h.Floor != 0 || h.Disbanded != 0 {
		buf = binary.AppendUvarint(buf, h.Changes)
		buf = binary.AppendUvarint(buf, h.MentionAll)
		buf = binary.AppendUvarint(buf, h.msgSeq)
	}
	if h.Floor != 0 || h.Disbanded != 0 {
		buf = binary.AppendUvarint(buf, h.Floor)
		buf = binary.AppendUvarint(buf, h.FloorChanges)
	}
	if h.Disbanded != 0 {
		buf = binary.AppendUvarint(buf, uint64(h.Disbanded))
	}
	return buf
}

func decodeHead(group string, val []byte) (headRow, error) {
	if len(val) < 24 {
		return headRow{}, fmt.Errorf("corrupt head of %s", group)
	}
	h := headRow{GroupHead: store.GroupHead{Group: group, Seq: binary.BigEndian.Uint64(val),
		MsgID: int64(binary.BigEndian.Uint64(val[8:])), TS: int64(binary.BigEndian.Uint64(val[16:]))}}
	h.msgSeq = h.Seq
	if len(val) > 24 {
		r := rowReader{val: val[24:]}
		h.Changes, h.MentionAll, h.msgSeq = r.uvarint(), r.uvarint(), r.uvarint()
		if len(r.val) > 0 && !r.bad {
			h.Floor, h.FloorChanges = r.uvarint(), r.uvarint()
		}
		if len(r.val) > 0 && !r.bad {
			h.Disbanded = int64(r.uvarint())
		}
		if r.bad || len(r.val) != 0 {
			return headRow{}, fmt.Errorf("corrupt head of %s", group)
		}
	}
	return h, nil
}

// head reads a group's head from r (the DB or a batch); zero if none.
func head(r pebble.Reader, group string) (store.GroupHead, error) {
	h, err := readHead(r, group)
	return h.GroupHead, err
}

func readHead(r pebble.Reader, group string) (headRow, error) {
	val, closer, err := r.Get(headKey(group))
	if errors.Is(err, pebble.ErrNotFound) {
		return headRow{GroupHead: store.GroupHead{Group: group}}, nil
	}
	if err != nil {
		return headRow{GroupHead: store.GroupHead{Group: group}}, err
	}
	defer closer.Close()
	return decodeHead(group, val)
}

// changesUpTo is the Count of the newest change record of group with seq
// <= seq (0 if none): one seek of the gc/ index.
func changesUpTo(r pebble.Reader, group string, seq uint64) (uint64, error) {
	prefix := groupChangeKey(nil, group, 0)[:len(pfxGroupC)+len(group)+1]
	upper := prefixEnd(prefix)
	if seq < math.MaxUint64 {
		upper = groupChangeKey(nil, group, seq+1)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	var n uint64
	if it.Last() {
		if len(it.Value()) != 8 {
			_ = it.Close()
			return 0, fmt.Errorf("corrupt change index of %s", group)
		}
		n = binary.BigEndian.Uint64(it.Value())
	}
	return n, it.Close()
}

// CreateGroup writes the group and its first members atomically.
func (s *Store) CreateGroup(ctx context.Context, g store.Group, members []store.Member) error {
	if err := s.beginWrite(ctx, "create group"); err != nil {
		return err
	}
	defer s.end()
	if err := checkID("group", g.ID); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	s.groups.Lock()
	defer s.groups.Unlock()
	switch err := s.getJSON(groupKey(g.ID), nil); {
	case err == nil:
		return fmt.Errorf("create group %s: %w", g.ID, store.ErrExists)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	g.Members = len(members)
	if err := setJSON(wb, groupKey(g.ID), g); err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	for _, m := range members {
		m.Group, m.JoinSeq, m.JoinChanges, m.ReadChanges = g.ID, 0, 0, 0
		if err := s.putMember(wb, m); err != nil {
			return fmt.Errorf("create group %s: %w", g.ID, err)
		}
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("create group %s: %w", g.ID, err)
	}
	return nil
}

func (s *Store) putMember(wb *pebble.Batch, m store.Member) error {
	if err := checkID("user", m.User); err != nil {
		return err
	}
	if err := setJSON(wb, pair(pfxMember, m.Group, m.User), m); err != nil {
		return err
	}
	return wb.Set(pair(pfxUserGrp, m.User, m.Group), nil, nil)
}

func setJSON(wb *pebble.Batch, key []byte, v any) error {
	val, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return wb.Set(key, val, nil)
}

// GetGroup returns a group.
func (s *Store) GetGroup(ctx context.Context, id string) (store.Group, error) {
	var g store.Group
	if err := s.begin(ctx, "get group"); err != nil {
		return g, err
	}
	defer s.end()
	if err := s.getJSON(groupKey(id), &g); err != nil {
		return g, fmt.Errorf("get group %s: %w", id, err)
	}
	return g, nil
}

// AddMembers adds members at the group's head seq, within limit.
func (s *Store) AddMembers(ctx context.Context, group string, ms []store.Member, limit int) ([]store.Member, error) {
	if err := s.beginWrite(ctx, "add members"); err != nil {
		return nil, err
	}
	defer s.end()
	s.groups.Lock()
	defer s.groups.Unlock()
	var g store.Group
	if err := s.getJSON(groupKey(group), &g); err != nil {
		return nil, fmt.Errorf("add members to %s: %w", group, err)
	}
	if g.Disbanded != 0 {
		return nil, fmt.Errorf("add members to %s: %w", group, store.ErrGone)
	}
	h, err := head(s.db, group)
	if err != nil {
		return nil, fmt.Errorf("add members to %s: %w", group, err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	var added []store.Member
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.User] {
			continue
		}
		seen[m.User] = true
		var cur store.Member
		err := s.getJSON(pair(pfxMember, group, m.User), &cur)
		switch {
		case err == nil:
			if m.Role != "" && m.Role != cur.Role {
				cur.Role = m.Role
				if err := s.putMember(wb, cur); err != nil {
					return nil, fmt.Errorf("add members to %s: %w", group, err)
				}
			}
			continue
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("add members to %s: %w", group, err)
		}
		m.Group, m.JoinSeq, m.ReadSeq = group, h.Seq, h.Seq
		m.JoinChanges, m.ReadChanges = h.Changes, h.Changes
		if m.Role == "" {
			m.Role = store.RoleMember
		}
		if err := s.putMember(wb, m); err != nil {
			return nil, fmt.Errorf("add members to %s: %w", group, err)
		}
		added = append(added, m)
	}
	if limit > 0 && g.Members+len(added) > limit {
		return nil, fmt.Errorf("add %d members to %s (%d of %d): %w", len(added), group, g.Members, limit, store.ErrLimit)
	}
	g.Members += len(added)
	if err := setJSON(wb, groupKey(group), g); err != nil {
		return nil, fmt.Errorf("add members to %s: %w", group, err)
	}
	if err := s.commit(wb); err != nil {
		return nil, fmt.Errorf("add members to %s: %w", group, err)
	}
	return added, nil
}

// RemoveMember ends a membership.
func (s *Store) RemoveMember(ctx context.Context, group, user string) error {
	if err := s.beginWrite(ctx, "remove member"); err != nil {
		return err
	}
	defer s.end()
	s.groups.Lock()
	defer s.groups.Unlock()
	var g store.Group
	if err := s.getJSON(groupKey(group), &g); err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, group, err)
	}

	if err := s.getJSON(pair(pfxMember, group, user), nil); err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, group, err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	_ = wb.Delete(pair(pfxMember, group, user), nil)
	_ = wb.Delete(pair(pfxUserGrp, user, group), nil)
	g.Members--
	if err := setJSON(wb, groupKey(group), g); err != nil {
		return err
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, group, err)
	}
	return nil
}

// GetMember returns a membership.
func (s *Store) GetMember(ctx context.Context, group, user string) (store.Member, error) {
	var m store.Member
	if err := s.begin(ctx, "get member"); err != nil {
		return m, err
	}
	defer s.end()
	if err := s.getJSON(pair(pfxMember, group, user), &m); err != nil {
		return m, fmt.Errorf("member %s of %s: %w", user, group, err)
	}
	return m, nil
}

// Members pages through a group's members by user ID.
func (s *Store) Members(ctx context.Context, group, after string, limit int) ([]store.Member, error) {
	if err := s.begin(ctx, "members"); err != nil {
		return nil, err
	}
	defer s.end()
	limit = clampLimit(limit)
	prefix := pair(pfxMember, group, "")
	lower := prefix
	if after != "" {
		lower = append(pair(pfxMember, group, after), 0) // the first key after "after"
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", group, err)
	}
	defer it.Close()
	var out []store.Member
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		var m store.Member
		if err := json.Unmarshal(it.Value(), &m); err != nil {
			return nil, fmt.Errorf("members of %s: decode: %w", group, err)
		}
		out = append(out, m)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("members of %s: %w", group, err)
	}
	return out, nil
}

// UserGroups lists user's memberships by group ID.
func (s *Store) UserGroups(ctx context.Context, user string) ([]store.Member, error) {
	if err := s.begin(ctx, "user groups"); err != nil {
		return nil, err
	}
	defer s.end()
	prefix := pair(pfxUserGrp, user, "")
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", user, err)
	}
	defer it.Close()
	var out []store.Member
	for ok := it.First(); ok; ok = it.Next() {
		group := string(it.Key()[len(prefix):])
		var m store.Member
		if err := s.getJSON(pair(pfxMember, group, user), &m); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("groups of %s: %w", user, err)
		}
		out = append(out, m)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("groups of %s: %w", user, err)
	}
	return out, nil
}

// CountUserGroups counts user's membership index keys, at most most.
func (s *Store) CountUserGroups(ctx context.Context, user string, most int) (int, error) {
	if err := s.begin(ctx, "count user groups"); err != nil {
		return 0, err
	}
	defer s.end()
	prefix := pair(pfxUserGrp, user, "")
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("count groups of %s: %w", user, err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok && (most <= 0 || n < most); ok = it.Next() {
		n++
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("count groups of %s: %w", user, err)
	}
	return n, nil
}

// GroupHead returns the group's newest message.
func (s *Store) GroupHead(ctx context.Context, group string) (store.GroupHead, error) {
	if err := s.begin(ctx, "group head"); err != nil {
		return store.GroupHead{}, err
	}
	defer s.end()
	h, err := head(s.db, group)
	if err != nil {
		return h, fmt.Errorf("head of %s: %w", group, err)
	}
	return h, nil
}

// GroupHeads reads each group's head from one consistent snapshot.
func (s *Store) GroupHeads(ctx context.Context, groups []string) ([]store.GroupHead, error) {
	if err := s.begin(ctx, "group heads"); err != nil {
		return nil, err
	}
	defer s.end()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	out := make([]store.GroupHead, len(groups))
	for i, g := range groups {
		h, err := head(snap, g)
		if err != nil {
			return nil, fmt.Errorf("head of %s: %w", g, err)
		}
		out[i] = h
	}
	return out, nil
}

// GroupRange returns messages with seq > since, ascending.
func (s *Store) GroupRange(ctx context.Context, group string, since uint64, limit int) ([]store.Message, error) {
	if err := s.begin(ctx, "group range"); err != nil {
		return nil, err
	}
	defer s.end()
	limit = clampLimit(limit)
	prefix := groupMsgKey(nil, group, 0)[:len(pfxGroupQ)+len(group)+1]
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: groupMsgKey(nil, group, since+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("range of %s: %w", group, err)
	}
	defer it.Close()
	var ids []int64
	for ok := it.First(); ok && len(ids) < limit; ok = it.Next() {
		if len(it.Value()) != 8 {
			return nil, fmt.Errorf("range of %s: corrupt entry", group)
		}
		ids = append(ids, int64(binary.BigEndian.Uint64(it.Value())))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("range of %s: %w", group, err)
	}
	msgs, err := s.getMessages(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("range of %s: %w", group, err)
	}
	return msgs, nil
}

// SetGroupReads moves read positions forward.
func (s *Store) SetGroupReads(ctx context.Context, reads []store.GroupRead) error {
	if err := s.beginWrite(ctx, "set group reads"); err != nil {
		return err
	}
	defer s.end()
	s.groups.Lock()
	defer s.groups.Unlock()
	wb := s.db.NewIndexedBatch()
	defer wb.Close()
	if err := s.applyReads(wb, reads); err != nil {
		return fmt.Errorf("set group reads: %w", err)
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("set group reads: %w", err)
	}
	return nil
}

// applyReads adds read-position moves to wb, reading rows through wb so
// several moves of one row accumulate. The caller holds s.groups.
func (s *Store) applyReads(wb *pebble.Batch, reads []store.GroupRead) error {
	for _, r := range reads {
		key := pair(pfxMember, r.Group, r.User)
		val, closer, err := wb.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue // not a member (any more)
		}
		if err != nil {
			return err
		}
		var m store.Member
		err = json.Unmarshal(val, &m)
		closer.Close()
		if err != nil {
			return fmt.Errorf("decode member %s of %s: %w", r.User, r.Group, err)
		}
		h, err := head(wb, r.Group)
		if err != nil {
			return err
		}
		seq := min(r.Seq, h.Seq)
		if seq <= m.ReadSeq {
			continue
		}
		if m.ReadChanges, err = changesUpTo(wb, r.Group, seq); err != nil {
			return err
		}
		m.ReadSeq = seq
		if err := setJSON(wb, key, m); err != nil {
			return err
		}
	}
	return nil
}

// applyHeads writes group message index rows (and the change index of
// change records) and moves heads forward in wb; reads go through wb so a
// batch with several messages of one group keeps the highest. Each of a
// head's Seq, Changes and MentionAll only grows; MsgID and TS move when a
// message head's seq is above that of the message they name. The caller
// holds s.groups.
func applyHeads(wb *pebble.Batch, msgs []store.Message, heads []store.GroupHead) error {
	var buf []byte
	for i := range msgs {
		m := &msgs[i]
		if m.Group == "" {
			continue
		}
		buf = groupMsgKey(buf[:0], m.Group, m.Seq)
		_ = wb.Set(buf, binary.BigEndian.AppendUint64(nil, uint64(m.ID)), nil)
		if m.Change != nil {
			buf = groupChangeKey(buf[:0], m.Group, m.Seq)
			_ = wb.Set(buf, binary.BigEndian.AppendUint64(nil, m.Change.Count), nil)
		}
	}
	for _, h := range heads {
		cur, err := readHead(wb, h.Group)
		if err != nil {
			return err
		}
		next := cur
		next.Seq = max(cur.Seq, h.Seq)
		next.Changes = max(cur.Changes, h.Changes)
		next.MentionAll = max(cur.MentionAll, h.MentionAll)
		next.Disbanded = max(cur.Disbanded, h.Disbanded)
		if h.MsgID != 0 && h.Seq > cur.msgSeq {
			next.MsgID, next.TS, next.msgSeq = h.MsgID, h.TS, h.Seq
		}
		if next != cur {
			_ = wb.Set(headKey(h.Group), encodeHead(next), nil)
		}
	}
	return nil
}
