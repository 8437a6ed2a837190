package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// ReserveVersions reserves [first, first+n) of key. Versions start at 1.
//
// The high mark r/{key} is written with pebble.NoSync. That is safe: the
// WAL is one sequential log, so the fsync of the next Commit (pebble.Sync)
// also makes this earlier record durable, and no version of the block can
// be acknowledged before a Commit that carries it has returned. If the
// process dies first, the lost reservation was never used by anything
// durable, so handing it out again cannot duplicate a committed version.
// Close syncs the log as well.
func (s *Store) ReserveVersions(ctx context.Context, key string, n uint64) (uint64, error) {
	if err := s.beginWrite(ctx, "reserve versions"); err != nil {
		return 0, err
	}
	defer s.end()
	if n == 0 {
		return 0, fmt.Errorf("reserve versions of %s: n is 0: %w", key, ErrInvalid)
	}
	k := reserveKey(key)
	s.reserve.Lock()
	defer s.reserve.Unlock()
	first := uint64(1)
	val, closer, err := s.db.Get(k)
	switch {
	case err == nil:
		if len(val) != 8 {
			_ = closer.Close()
			return 0, fmt.Errorf("reserve versions of %s: corrupt mark of %d bytes", key, len(val))
		}
		first = binary.BigEndian.Uint64(val)
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return 0, fmt.Errorf("reserve versions of %s: %w", key, err)
	}
	if first > math.MaxUint64-n {
		return 0, fmt.Errorf("reserve versions of %s: exhausted", key)
	}
	mark := binary.BigEndian.AppendUint64(nil, first+n)
	if err := s.set(k, mark, pebble.NoSync); err != nil {
		return 0, fmt.Errorf("reserve versions of %s: %w", key, err)
	}
	return first, nil
}

// convRef names one conversation row.
type convRef struct{ user, peer string }

// Commit writes the batch as one Pebble batch with fsync. Messages, entries
// and acks are keyed by ID and version, so a replay rewrites the same
// values; a conversation update applies only above the row's version.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	if err := s.beginWrite(ctx, "commit batch"); err != nil {
		return err
	}
	defer s.end()
	if err := validate(b); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}

	grouped := len(b.Heads)+len(b.Reads)+len(b.Mentioned)+len(b.GroupUpdates)+len(b.MemberUpdates) > 0
	life := hasLife(b)
	wb := s.db.NewBatch()
	if grouped || life {
		wb = s.db.NewIndexedBatch() // group rows and changed rows are read back through the batch
	}
	defer wb.Close()
	// Pebble copies key and value into the batch, so one buffer serves all.
	var buf []byte
	for i := range b.Messages {
		m := &b.Messages[i]
		buf = msgKey(buf[:0], m.ID)
		n := len(buf)
		var err error
		if buf, err = appendMessage(buf, m); err != nil {
			return fmt.Errorf("commit batch: encode message %d: %w", m.ID, err)
		}
		_ = wb.Set(buf[:n], buf[n:], nil)
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		buf = inboxKey(buf[:0], e.User, e.Ver)
		n := len(buf)
		buf = encodeEntry(buf, e)
		_ = wb.Set(buf[:n], buf[n:], nil)
		if e.Change {
			continue // a change record is in the inbox only
		}

		buf = histKey(buf[:0], e.User, e.Peer, e.MsgID)
		n = len(buf)
		buf = encodeHist(buf, e.Ver, e.Out)
		_ = wb.Set(buf[:n], buf[n:], nil)
	}
	for i := range b.Acks {
		a := &b.Acks[i]
		buf = ackKey(buf[:0], a.From, a.CMID)
		n := len(buf)
		buf = appendAck(buf, a)
		_ = wb.Set(buf[:n], buf[n:], nil)
	}
	// A grant's value is the ID of the message that granted it, set as is:
	// it is the highest so far because the one writer (chat's batcher)
	// gives IDs in queue order and commits its batches in that order, and
	// a batch's grants are in the order of its messages. (A replay of an
	// older batch after a younger one, which that writer never does, would
	// lower it, and the sweep would take the grant with the older message.)
	for _, g := range b.Grants {
		buf = append(grantPrefix(buf[:0], g.Media), g.Principal...)
		n := len(buf)
		if g.MsgID > 0 {
			buf = binary.BigEndian.AppendUint64(buf, uint64(g.MsgID))
		}
		_ = wb.Set(buf[:n], buf[n:], nil)
	}
	if err := s.addPushJobs(wb, b.PushJobs, buf); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	addWebhookRows(wb, b.Webhooks, buf)
	if err := addBurns(wb, b.Burns); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}

	if grouped {
		s.groups.Lock()
		defer s.groups.Unlock()
		if err := applyHeads(wb, b.Messages, b.Heads); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
		if err := s.applyReads(wb, b.Reads); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
		if err := applyMentioned(wb, b.Mentioned); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
		if err := applyAdmin(wb, b.GroupUpdates, b.MemberUpdates); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
	}
	s.conv.Lock()
	defer s.conv.Unlock()
	if err := s.applyConvs(wb, b.Convs); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	if life {
		if err := applyLife(wb, b); err != nil {
			return fmt.Errorf("commit batch: %w", err)
		}
	}
	// Before the write: an ack is never durable while the filter would
	// answer that it is certainly not stored.
	s.acks.addAcks(b.Acks, buf)
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	s.lowerFloors(b.PushJobs, nil)
	s.webhookAdded(b.Webhooks)
	return nil
}

// applyConvs adds the conversation rows moved by us to wb. Rows are read
// once into a map, so several updates of one row in one batch accumulate.
// The caller holds s.conv.
func (s *Store) applyConvs(wb *pebble.Batch, us []store.ConvUpdate) error {
	type slot struct {
		row   store.Conversation
		dirty bool
	}
	rows := make(map[convRef]*slot, len(us))
	order := make([]*slot, 0, len(us))
	var key, val []byte
	for i := range us {
		u := &us[i]
		ref := convRef{u.User, u.Peer}
		sl, ok := rows[ref]
		if !ok {
			sl = &slot{row: store.Conversation{User: u.User, Peer: u.Peer}}
			key = convKey(key[:0], u.User, u.Peer)
			switch row, err := s.getConv(key); {
			case err == nil:
				sl.row = row
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("read conversation %s/%s: %w", u.User, u.Peer, err)
			}
			rows[ref] = sl
			order = append(order, sl)
		}
		if applyConv(&sl.row, u) {
			sl.dirty = true
		}
	}
	for _, sl := range order {
		if !sl.dirty {
			continue
		}
		val = appendConv(val[:0], &sl.row)
		key = convKey(key[:0], sl.row.User, sl.row.Peer)
		_ = wb.Set(key, val, nil)
	}
	return nil
}

// applyConv moves row forward by u and reports whether it changed. An
// update at or below the row's version is a replay and changes nothing.
func applyConv(row *store.Conversation, u *store.ConvUpdate) bool {
	if u.Ver <= row.Ver {
		return false
	}
	row.Ver = u.Ver
	if u.MsgID > row.Last {
		row.Last, row.LastTS = u.MsgID, u.TS
	}
	// Unread counts incoming messages above the read position only.
	if u.Incoming && u.MsgID > row.ReadUpto {
		row.Unread++
	}
	return true
}

// SetRead moves user's read position with peer forward to upto (0: the
// last message) and recounts unread from the history index, under the
// same lock as Commit.
func (s *Store) SetRead(ctx context.Context, user, peer string, upto int64) (store.Conversation, error) {
	var row store.Conversation
	if err := s.beginWrite(ctx, "set read"); err != nil {
		return row, err
	}
	defer s.end()
	key := convKey(nil, user, peer)

	s.conv.Lock()
	defer s.conv.Unlock()
	row, err := s.getConv(key)
	if err != nil {
		return store.Conversation{}, fmt.Errorf("set read %s/%s: %w", user, peer, err)
	}
	pos := upto
	if pos == 0 || pos > row.Last {
		pos = row.Last // a position past the last message would hide later ones
	}
	pos = max(pos, row.ReadUpto)
	unread, err := s.countUnread(ctx, user, peer, pos)
	if err != nil {
		return store.Conversation{}, fmt.Errorf("set read %s/%s: %w", user, peer, err)
	}
	row.ReadUpto, row.Unread = pos, unread
	if err := s.set(key, appendConv(nil, &row), pebble.Sync); err != nil {
		return store.Conversation{}, fmt.Errorf("set read %s/%s: %w", user, peer, err)
	}
	return row, nil
}

// countUnread counts the incoming history entries of user with peer whose
// message ID is above pos.
func (s *Store) countUnread(ctx context.Context, user, peer string, pos int64) (int64, error) {
	if pos == math.MaxInt64 {
		return 0, nil
	}
	prefix := histPrefix(nil, user, peer)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: histKey(nil, user, peer, pos+1),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var n, seen int64
	for ok := it.First(); ok; ok = it.Next() {
		if seen++; seen%1024 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		_, out, err := decodeHist(val)
		if err != nil {
			return 0, err
		}
		if !out {
			n++
		}
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	return n, nil
}

// validate rejects what the key layout cannot hold.
func validate(b *store.Batch) error {
	for i := range b.Messages {
		if b.Messages[i].ID < 0 {
			return fmt.Errorf("message ID %d: %w", b.Messages[i].ID, ErrInvalid)
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
		if e.Ver == 0 || e.MsgID < 0 {
			return fmt.Errorf("entry of %s ver %d msg %d: %w", e.User, e.Ver, e.MsgID, ErrInvalid)
		}
		if err := checkID("user", e.User); err != nil {
			return err
		}
		if err := checkID("peer", e.Peer); err != nil {
			return err
		}
	}
	for i := range b.Acks {
		if err := checkID("user", b.Acks[i].From); err != nil {
			return err
		}
	}
	for _, g := range b.Grants {
		if err := checkID("media", g.Media); err != nil {
			return err
		}
		if g.MsgID < 0 {
			return fmt.Errorf("grant of %s by msg %d: %w", g.Media, g.MsgID, ErrInvalid)
		}
	}
	if err := validateLife(b); err != nil {
		return err
	}
	for i := range b.Convs {
		if err := checkID("user", b.Convs[i].User); err != nil {
			return err
		}
		if err := checkID("peer", b.Convs[i].Peer); err != nil {
			return err
		}
	}
	return nil
}
