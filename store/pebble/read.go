package pebble

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// ctxEvery is how many rows a scan reads between checks of its context.
const ctxEvery = 256

// LookupAcks returns the dedupe rows of the keys that have one. Nearly every
// send is new, so nearly every key misses: the ack filter (ackfilter.go)
// rules most of them out without a read; the rest are sought in order on
// one iterator, which costs less per key than a Get each (Get builds an
// iterator over every memtable and level per call), with SeekPrefixGE, which
// skips the sstables of L0-L5 whose bloom filter rules the key out (a plain
// SeekGE reads a data block of each; the default comparer's prefix is the
// whole key).
func (s *Store) LookupAcks(ctx context.Context, keys []store.AckKey) (map[store.AckKey]store.Ack, error) {
	found := map[store.AckKey]store.Ack{}
	if len(keys) == 0 {
		return found, nil
	}
	if err := s.begin(ctx, "lookup acks"); err != nil {
		return nil, err
	}
	defer s.end()
	// After a failed commit, the batch that failed is visible until the
	// database is reopened: its acks must not answer a resend.
	if err := s.health.failure(); err != nil {
		return nil, fmt.Errorf("lookup acks: %w", err)
	}
	// The ack filter rules out nearly every new send; only the rest are
	// sought in Pebble.
	raw := make([][]byte, len(keys))
	var order []int
	var buf []byte
	for i, k := range keys {
		buf = ackKey(buf[:0], k.From, k.CMID)
		if s.acks.mayHave(buf) {
			raw[i] = append([]byte(nil), buf...)
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return found, nil
	}
	s.ackReads.Add(int64(len(order)))
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(raw[a], raw[b]) })
	lower := []byte(pfxAck)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("lookup acks: %w", err)
	}
	defer it.Close()
	for _, i := range order {
		if !it.SeekPrefixGE(raw[i]) || !bytes.Equal(it.Key(), raw[i]) {
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("lookup ack %s/%s: %w", keys[i].From, keys[i].CMID, err)
		}
		a, err := decodeAck(it.Key(), val)
		if err != nil {
			return nil, fmt.Errorf("decode ack %s/%s: %w", keys[i].From, keys[i].CMID, err)
		}
		found[keys[i]] = a
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lookup acks: %w", err)
	}
	return found, nil
}

// Range returns user's events with ver > since, ascending, at most limit
// (0 or less: store.DefaultLimit; capped at MaxLimit).
func (s *Store) Range(ctx context.Context, user string, since uint64, limit int) ([]store.Event, error) {
	if err := s.begin(ctx, "range"); err != nil {
		return nil, err
	}
	defer s.end()
	if since == math.MaxUint64 {
		return nil, nil
	}
	limit = clampLimit(limit)
	prefix := inboxPrefix(nil, user)
	// The inbox iterator is opened before the message reader, so every
	// entry it sees has its message (committed in the same batch) visible.
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: inboxKey(nil, user, since+1),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", user, err)
	}
	defer it.Close()
	mr, err := s.newMsgReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", user, err)
	}
	defer mr.close()

	var events []store.Event
	for ok := it.First(); ok && len(events) < limit; ok = it.Next() {
		if len(events)%ctxEvery == ctxEvery-1 && ctx.Err() != nil {
			return nil, fmt.Errorf("range %s: %w", user, ctx.Err())
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("range %s: %w", user, err)
		}
		e, err := decodeEntry(user, it.Key(), val)
		if err != nil {
			return nil, fmt.Errorf("range %s: %w", user, err)
		}
		m, found, err := mr.get(e.MsgID)
		if err != nil {
			return nil, fmt.Errorf("range %s: %w", user, err)
		}
		if !found {
			continue
		}
		if events == nil {
			events = make([]store.Event, 0, min(limit, 64))
		}
		events = append(events, store.Event{Entry: e, Msg: m})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("range %s: %w", user, err)
	}
	return events, nil
}

// Head returns user's highest committed version, 0 if none.
func (s *Store) Head(ctx context.Context, user string) (uint64, error) {
	if err := s.begin(ctx, "head"); err != nil {
		return 0, err
	}
	defer s.end()
	prefix := inboxPrefix(nil, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return 0, fmt.Errorf("head %s: %w", user, err)
	}
	defer it.Close()
	var head uint64
	if it.Last() {
		head = suffixUint64(it.Key())
	} else if head, _, err = getUint64(s.db, floorKey(pfxRetFloor, user)); err != nil {
		// A swept inbox keeps its head: versions never go back (retention.go).
		return 0, fmt.Errorf("head %s: %w", user, err)
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("head %s: %w", user, err)
	}
	return head, nil
}

// History returns the events of user's conversation with peer whose message
// ID is below before (0: no bound), newest first, at most limit.
func (s *Store) History(ctx context.Context, user, peer string, before int64, limit int) ([]store.Event, error) {
	if err := s.begin(ctx, "history"); err != nil {
		return nil, err
	}
	defer s.end()
	if before < 0 {
		return nil, nil
	}
	limit = clampLimit(limit)
	prefix := histPrefix(nil, user, peer)
	upper := prefixEnd(prefix)
	if before > 0 {
		upper = histKey(nil, user, peer, before)
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
	}
	defer it.Close()
	mr, err := s.newMsgReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
	}
	defer mr.close()

	var events []store.Event
	for ok := it.Last(); ok && len(events) < limit; ok = it.Prev() {
		if len(events)%ctxEvery == ctxEvery-1 && ctx.Err() != nil {
			return nil, fmt.Errorf("history %s/%s: %w", user, peer, ctx.Err())
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
		}
		ver, out, err := decodeHist(val)
		if err != nil {
			return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
		}
		id := int64(suffixUint64(it.Key()))
		m, found, err := mr.get(id)
		if err != nil {
			return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
		}
		if !found {
			continue
		}
		if events == nil {
			events = make([]store.Event, 0, min(limit, 64))
		}
		events = append(events, store.Event{
			Entry: store.Entry{User: user, Ver: ver, Peer: peer, Out: out, MsgID: id},
			Msg:   m,
		})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("history %s/%s: %w", user, peer, err)
	}
	return events, nil
}

// Conversations returns user's rows, newest LastTS first, ties by Last
// descending.
func (s *Store) Conversations(ctx context.Context, user string) ([]store.Conversation, error) {
	if err := s.begin(ctx, "conversations"); err != nil {
		return nil, err
	}
	defer s.end()
	prefix := convPrefix(nil, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, fmt.Errorf("conversations %s: %w", user, err)
	}
	defer it.Close()
	var rows []store.Conversation
	for ok := it.First(); ok; ok = it.Next() {
		if len(rows)%ctxEvery == ctxEvery-1 && ctx.Err() != nil {
			return nil, fmt.Errorf("conversations %s: %w", user, ctx.Err())
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("conversations %s: %w", user, err)
		}
		c, err := decodeConv(it.Key(), val)
		if err != nil {
			return nil, fmt.Errorf("conversations %s: decode: %w", user, err)
		}
		rows = append(rows, c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("conversations %s: %w", user, err)
	}
	store.SortConversations(rows)
	return rows, nil
}

// GetMessages returns the messages with these IDs in the same order,
// skipping missing ones.
func (s *Store) GetMessages(ctx context.Context, ids []int64) ([]store.Message, error) {
	if err := s.begin(ctx, "get messages"); err != nil {
		return nil, err
	}
	defer s.end()
	return s.getMessages(ctx, ids)
}

// getMessages is GetMessages for a caller that holds the life lock.
func (s *Store) getMessages(ctx context.Context, ids []int64) ([]store.Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	mr, err := s.newMsgReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("get messages: %w", err)
	}
	defer mr.close()
	msgs := make([]store.Message, 0, len(ids))
	for i, id := range ids {
		if i%ctxEvery == ctxEvery-1 && ctx.Err() != nil {
			return nil, fmt.Errorf("get messages: %w", ctx.Err())
		}
		m, found, err := mr.get(id)
		if err != nil {
			return nil, fmt.Errorf("get messages: %w", err)
		}
		if found {
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// msgReader looks messages up through one iterator, which is cheaper than
// a Get (an iterator each) per message.
type msgReader struct {
	it  *pebble.Iterator
	key []byte
}

func (s *Store) newMsgReader(ctx context.Context) (*msgReader, error) {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: []byte(pfxMsg),
		UpperBound: prefixEnd([]byte(pfxMsg)),
	})
	if err != nil {
		return nil, err
	}
	return &msgReader{it: it}, nil
}

func (r *msgReader) get(id int64) (store.Message, bool, error) {
	var m store.Message
	if id < 0 {
		return m, false, nil
	}
	r.key = msgKey(r.key[:0], id)
	if !r.it.SeekGE(r.key) || !bytes.Equal(r.it.Key(), r.key) {
		return m, false, r.it.Error()
	}
	val, err := r.it.ValueAndErr()
	if err != nil {
		return m, false, err
	}
	if err := decodeMessage(val, &m); err != nil {
		return m, false, fmt.Errorf("decode message %d: %w", id, err)
	}
	return m, true, nil
}

func (r *msgReader) close() { _ = r.it.Close() }

// MediaGrants returns the principals granted media.
func (s *Store) MediaGrants(ctx context.Context, media string) ([]string, error) {
	if err := s.begin(ctx, "media grants"); err != nil {
		return nil, err
	}
	defer s.end()
	prefix := grantPrefix(nil, media)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("media grants %s: %w", media, err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("media grants %s: %w", media, err)
	}
	return out, nil
}
