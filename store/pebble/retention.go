package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// Retention and burn after reading (store/retention.go). Rows:
//
//	rt/cursor                       the sweep's cursor: every message below it is gone (8)
//	rf/{user}                       the user's inbox floor: highest ver swept (8)
//	bu/{user}\x00{peer}\x00{msgid}  an unread burn: ttl (8)
//	bd/{due}{msgid}                 a due burn, by due: Burn JSON
//	bm/{msgid}                      the same burn's due (8), to find its bd/ row
//
// A group's floor is in its head (groups.go). The rows came after format 2
// without a new format, as s/ did. None of the five prefixes is a prefix
// of another or of an older one (rt/ and rf/ are not r/: a scan of r/
// stops at "r0").
//
// A chunk of the sweep is one batch: the messages (one range deletion of
// m/, since IDs are time-ordered), their reactions (one range each of
// rc/, rx/, ru/, keyed by message first), and the rows found through the
// messages — history entries and dedupe rows by their keys, inbox entries
// from the front of each party's inbox, group log rows, grants, burns —
// with the conversation rows recounted and the cursor moved. It holds
// s.conv like Commit, so a commit's read-modify-write of a message (a
// recall, an edit) or a conversation row never writes back what a chunk
// deleted, and it is written without waiting for the disk: the next
// commit's sync makes it durable, and a chunk lost to a crash is swept
// again.
const (
	pfxRetFloor  = "rf/"
	pfxBurnRead  = "bu/"
	pfxBurnDue   = "bd/"
	pfxBurnMsg   = "bm/"
	keySweepCurs = "rt/cursor"
)

func floorKey(pfx, id string) []byte { return append([]byte(pfx), id...) }

// burnReadPrefix is bu/{user}\x00{peer}\x00.
func burnReadPrefix(user, peer string) []byte {
	buf := append([]byte(pfxBurnRead), user...)
	buf = append(buf, sep)
	buf = append(buf, peer...)
	return append(buf, sep)
}

func burnDueKey(due, msg int64) []byte {
	buf := binary.BigEndian.AppendUint64([]byte(pfxBurnDue), uint64(due))
	return binary.BigEndian.AppendUint64(buf, uint64(msg))
}

func burnMsgKey(msg int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(pfxBurnMsg), uint64(msg))
}

// getUint64 reads an 8-byte value of r; 0 and false if absent.
func getUint64(r pebble.Reader, key []byte) (uint64, bool, error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(val) != 8 {
		return 0, false, fmt.Errorf("corrupt value of %q", key)
	}
	return binary.BigEndian.Uint64(val), true, nil
}

// SweepCursor returns the stored cursor of the sweep.
func (s *Store) SweepCursor(ctx context.Context) (int64, error) {
	if err := s.begin(ctx, "sweep cursor"); err != nil {
		return 0, err
	}
	defer s.end()
	c, _, err := getUint64(s.db, []byte(keySweepCurs))
	if err != nil {
		return 0, fmt.Errorf("sweep cursor: %w", err)
	}
	return int64(c), nil
}

// InboxFloor returns user's highest swept inbox version.
func (s *Store) InboxFloor(ctx context.Context, user string) (uint64, error) {
	return s.floor(ctx, pfxRetFloor, user)
}

// GroupFloor returns group's highest swept seq: its head's floor.
func (s *Store) GroupFloor(ctx context.Context, group string) (uint64, error) {
	h, err := s.GroupHead(ctx, group)
	return h.Floor, err
}

func (s *Store) floor(ctx context.Context, pfx, id string) (uint64, error) {
	if err := s.begin(ctx, "floor"); err != nil {
		return 0, err
	}
	defer s.end()
	f, _, err := getUint64(s.db, floorKey(pfx, id))
	if err != nil {
		return 0, fmt.Errorf("floor of %s: %w", id, err)
	}
	return f, nil
}

// SweepMessages deletes up to limit messages below before, from the
// cursor on, in one batch (see the rows above).
func (s *Store) SweepMessages(ctx context.Context, before int64, limit int) (store.Sweep, error) {
	var out store.Sweep
	if err := s.beginWrite(ctx, "sweep"); err != nil {
		return out, err
	}
	defer s.end()
	limit = clampLimit(limit)
	s.groups.Lock() // as Commit: groups (heads' floors), then conversations
	defer s.groups.Unlock()
	s.conv.Lock()
	defer s.conv.Unlock()
	cur, _, err := getUint64(s.db, []byte(keySweepCurs))
	if err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	out.Cursor = int64(cur)
	if before <= out.Cursor {
		out.Done = true
		return out, nil
	}
	msgs, err := s.oldMessages(ctx, out.Cursor, before, limit)
	if err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	next := before
	if len(msgs) == limit {
		next = msgs[len(msgs)-1].ID + 1
	} else {
		out.Done = true
	}
	wb := s.db.NewIndexedBatch()
	defer wb.Close()
	if err := sweepBatch(wb, msgs, next); err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	_ = wb.Set([]byte(keySweepCurs), binary.BigEndian.AppendUint64(nil, uint64(next)), nil)
	if err := s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) }); err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	out.Messages, out.Cursor = len(msgs), next
	return out, nil
}

// oldMessages reads up to limit messages with from <= ID < before.
func (s *Store) oldMessages(ctx context.Context, from, before int64, limit int) ([]store.Message, error) {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: msgKey(nil, from), UpperBound: msgKey(nil, before)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var msgs []store.Message
	for ok := it.First(); ok && len(msgs) < limit; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		var m store.Message
		if err := decodeMessage(val, &m); err != nil {
			return nil, fmt.Errorf("decode message %d: %w", suffixUint64(it.Key()), err)
		}
		m.ID = int64(suffixUint64(it.Key()))
		msgs = append(msgs, m)
	}
	return msgs, it.Error()
}

// sweepBatch adds to wb the deletion of msgs (every message in [from,
// next)) and of every row that points at them.
func sweepBatch(wb *pebble.Batch, msgs []store.Message, next int64) error {
	users := map[string]bool{}
	convs := map[convRef][]int64{} // the incoming messages swept from each row's history
	groups := map[string]uint64{}
	var buf []byte
	for i := range msgs {
		m := &msgs[i]
		_ = wb.Delete(msgKey(buf[:0], m.ID), nil)
		if m.Reacted { // its reactions are three ranges keyed by it
			for _, pfx := range []string{pfxReactC, pfxReactX, pfxReactU} {
				lo := binary.BigEndian.AppendUint64([]byte(pfx), uint64(m.ID))
				_ = wb.DeleteRange(lo, binary.BigEndian.AppendUint64([]byte(pfx), uint64(m.ID)+1), nil)
			}
		}
		if m.CMID != "" {
			_ = wb.Delete(ackKey(buf[:0], m.From, m.CMID), nil)
		}
		if m.Group != "" {
			_ = wb.Delete(groupMsgKey(buf[:0], m.Group, m.Seq), nil)
			groups[m.Group] = max(groups[m.Group], m.Seq)
			if m.Media != "" {
				if err := sweepGrant(wb, append(grantPrefix(buf[:0], m.Media), "g:"+m.Group...), m.ID); err != nil {
					return err
				}
			}
			continue
		}
		if m.Media != "" {
			if err := sweepGrant(wb, append(grantPrefix(buf[:0], m.Media), "u:"+m.To...), m.ID); err != nil {
				return err
			}
		}
		if m.TTL != 0 {
			_ = wb.Delete(binary.BigEndian.AppendUint64(burnReadPrefix(m.To, m.From), uint64(m.ID)), nil)
			if err := deleteBurn(wb, wb, m.ID); err != nil {
				return err
			}
		}
		for _, p := range [][2]string{{m.From, m.To}, {m.To, m.From}} {
			if p[0] == "" || p[1] == "" {
				continue
			}
			users[p[0]] = true
			if m.Change != nil {
				continue
			}
			ref := convRef{p[0], p[1]}
			buf = histKey(buf[:0], p[0], p[1], m.ID)
			_, out, err := histEntry(wb, buf)
			switch {
			case err != nil:
				return err
			case out != nil:
				_ = wb.Delete(buf, nil)
				if !*out {
					convs[ref] = append(convs[ref], m.ID)
					continue
				}
			}
			if _, ok := convs[ref]; !ok {
				convs[ref] = nil
			}
		}
		if c := m.Change; c != nil && c.Kind == store.ChangeDelete {
			users[m.From] = true // a delete's record is in the deleter's inbox only
		}
	}
	for u := range users {
		if err := sweepInbox(wb, u, next); err != nil {
			return fmt.Errorf("inbox of %s: %w", u, err)
		}
	}
	for c, in := range convs {
		if err := sweptConv(wb, c.user, c.peer, next, in); err != nil {
			return fmt.Errorf("conversation %s/%s: %w", c.user, c.peer, err)
		}
	}
	for g, seq := range groups {
		if err := raiseGroupFloor(wb, g, seq); err != nil {
			return fmt.Errorf("floor of %s: %w", g, err)
		}
	}
	return nil
}

// sweepGrant deletes the grant row at key with message id, unless a
// younger message granted the same media to the same principal (a
// forward): the row holds the newest granting message's ID (empty in rows
// from before it, which go with any).
func sweepGrant(wb *pebble.Batch, key []byte, id int64) error {
	val, closer, err := wb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	n := len(val)
	newest := int64(0)
	if n == 8 {
		newest = int64(binary.BigEndian.Uint64(val))
	}
	_ = closer.Close()
	switch {
	case n != 0 && n != 8:
		return fmt.Errorf("corrupt grant %q", key)
	case newest > id:
		return nil
	}
	return wb.Delete(key, nil)
}

// sweepInbox deletes user's inbox entries from the oldest while they
// point at messages below next, and raises the user's floor to the last.
// An entry that points at a younger message stops it: those after it are
// swept once it is (their messages are gone already, which Range skips).
// It starts above the floor: below it every entry is gone already, and
// their tombstones are not read again.
func sweepInbox(wb *pebble.Batch, user string, next int64) error {
	prefix := inboxPrefix(nil, user)
	fkey := floorKey(pfxRetFloor, user)
	from, _, err := getUint64(wb, fkey)
	if err != nil {
		return err
	}
	it, err := wb.NewIter(&pebble.IterOptions{LowerBound: inboxKey(nil, user, from+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	floor := from
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) >= next {
			break
		}
		keys = append(keys, bytes.Clone(it.Key()))
		floor = suffixUint64(it.Key())
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range keys {
		_ = wb.Delete(k, nil)
	}
	if floor > from {
		_ = wb.Set(fkey, binary.BigEndian.AppendUint64(nil, floor), nil)
	}
	return nil
}

// raiseGroupFloor moves group's head's floor up to seq, with the change
// records up to it (the gc/ index, which the sweep keeps).
func raiseGroupFloor(wb *pebble.Batch, group string, seq uint64) error {
	h, err := readHead(wb, group)
	if err != nil || seq <= h.Floor {
		return err
	}
	if h.FloorChanges, err = changesUpTo(wb, group, seq); err != nil {
		return err
	}
	h.Floor = seq
	return wb.Set(headKey(group), encodeHead(h), nil)
}

// histEntry reads the history entry at key: out (nil if there is none).
func histEntry(r pebble.Reader, key []byte) (uint64, *bool, error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	defer closer.Close()
	ver, out, err := decodeHist(val)
	return ver, &out, err
}

// sweptConv brings user's conversation row with peer up to date after a
// chunk below next that took the incoming messages in from its history:
// its unread no longer counts those above its read position, and if its
// last message went, Last becomes the newest one left, or the row goes
// with the last. (A recount of the whole unread would read the whole
// conversation each chunk.)
func sweptConv(wb *pebble.Batch, user, peer string, next int64, in []int64) error {
	key := convKey(nil, user, peer)
	val, closer, err := wb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	row, err := decodeConv(key, val)
	_ = closer.Close()
	if err != nil {
		return err
	}
	changed := false
	for _, id := range in {
		if id > row.ReadUpto && row.Unread > 0 {
			row.Unread--
			changed = true
		}
	}
	if row.Last < next {
		prefix := histPrefix(nil, user, peer)
		it, err := wb.NewIter(&pebble.IterOptions{LowerBound: histKey(nil, user, peer, next), UpperBound: prefixEnd(prefix)})
		if err != nil {
			return err
		}
		if !it.Last() {
			err := it.Close()
			if err == nil {
				err = wb.Delete(key, nil)
			}
			return err
		}
		last := int64(suffixUint64(it.Key()))
		if err := it.Close(); err != nil {
			return err
		}
		var m store.Message
		mval, mcloser, err := wb.Get(msgKey(nil, last))
		if err != nil && !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		if err == nil {
			err = decodeMessage(mval, &m)
			_ = mcloser.Close()
			if err != nil {
				return fmt.Errorf("decode message %d: %w", last, err)
			}
		}
		row.Last, row.LastTS, changed = last, m.TS, true
	}
	if !changed {
		return nil
	}
	return wb.Set(key, appendConv(nil, &row), nil)
}

// Commit's part: the batch's burns, unread.
func addBurns(wb *pebble.Batch, burns []store.Burn) error {
	for _, b := range burns {
		if err := checkID("user", b.User); err != nil {
			return err
		}
		if err := checkID("peer", b.Peer); err != nil {
			return err
		}
		if b.TTL <= 0 || b.MsgID < 0 {
			return fmt.Errorf("burn of %d: ttl %d: %w", b.MsgID, b.TTL, ErrInvalid)
		}
		key := binary.BigEndian.AppendUint64(burnReadPrefix(b.User, b.Peer), uint64(b.MsgID))
		_ = wb.Set(key, binary.BigEndian.AppendUint64(nil, uint64(b.TTL)), nil)
	}
	return nil
}

// ReadBurns makes user's unread burns with peer up to upto due.
func (s *Store) ReadBurns(ctx context.Context, user, peer string, upto, now int64) ([]store.Burn, error) {
	if err := s.beginWrite(ctx, "read burns"); err != nil {
		return nil, err
	}
	defer s.end()
	if upto < 0 {
		return nil, nil
	}
	s.burns.Lock()
	defer s.burns.Unlock()
	prefix := burnReadPrefix(user, peer)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix,
		UpperBound: binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(upto)+1)})
	if err != nil {
		return nil, fmt.Errorf("read burns %s/%s: %w", user, peer, err)
	}
	var keys [][]byte
	var burns []store.Burn
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Value()) != 8 || len(it.Key()) != len(prefix)+8 {
			_ = it.Close()
			return nil, fmt.Errorf("read burns %s/%s: corrupt row", user, peer)
		}
		keys = append(keys, bytes.Clone(it.Key()))
		burns = append(burns, store.Burn{MsgID: int64(suffixUint64(it.Key())), User: user, Peer: peer,
			TTL: int(binary.BigEndian.Uint64(it.Value()))})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("read burns %s/%s: %w", user, peer, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	out := burns[:0]
	for i, b := range burns {
		_ = wb.Delete(keys[i], nil)
		if _, due, err := getUint64(s.db, burnMsgKey(b.MsgID)); err != nil {
			return nil, fmt.Errorf("read burns %s/%s: %w", user, peer, err)
		} else if due {
			continue // due already (a replayed commit wrote its row again)
		}
		b.Due = now + int64(b.TTL)*1000
		val, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		_ = wb.Set(burnDueKey(b.Due, b.MsgID), val, nil)
		_ = wb.Set(burnMsgKey(b.MsgID), binary.BigEndian.AppendUint64(nil, uint64(b.Due)), nil)
		out = append(out, b)
	}
	if err := s.commit(wb); err != nil {
		return nil, fmt.Errorf("read burns %s/%s: %w", user, peer, err)
	}
	return out, nil
}

// DueBurns returns the burns due at or before now, soonest first.
func (s *Store) DueBurns(ctx context.Context, now int64, limit int) ([]store.Burn, error) {
	if err := s.begin(ctx, "due burns"); err != nil {
		return nil, err
	}
	defer s.end()
	if now < 0 {
		return nil, nil
	}
	limit = clampLimit(limit)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte(pfxBurnDue),
		UpperBound: burnDueKey(now+1, 0)})
	if err != nil {
		return nil, fmt.Errorf("due burns: %w", err)
	}
	defer it.Close()
	var out []store.Burn
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		var b store.Burn
		if err := json.Unmarshal(it.Value(), &b); err != nil {
			return nil, fmt.Errorf("due burns: decode %q: %w", it.Key(), err)
		}
		out = append(out, b)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("due burns: %w", err)
	}
	return out, nil
}

// DeleteBurns deletes the due burns of ids.
func (s *Store) DeleteBurns(ctx context.Context, ids []int64) error {
	if err := s.beginWrite(ctx, "delete burns"); err != nil {
		return err
	}
	defer s.end()
	s.burns.Lock()
	defer s.burns.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	for _, id := range ids {
		if err := deleteBurn(s.db, wb, id); err != nil {
			return fmt.Errorf("delete burns: %w", err)
		}
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("delete burns: %w", err)
	}
	return nil
}

// deleteBurn adds the deletion of id's due burn, as r has it, to wb.
func deleteBurn(r pebble.Reader, wb *pebble.Batch, id int64) error {
	due, ok, err := getUint64(r, burnMsgKey(id))
	if err != nil || !ok {
		return err
	}
	_ = wb.Delete(burnDueKey(int64(due), id), nil)
	_ = wb.Delete(burnMsgKey(id), nil)
	return nil
}
