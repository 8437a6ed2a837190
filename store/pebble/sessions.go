package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// Sessions (s/{user}\x00{device}) are binary:
//
//	sessBinary(1) str epoch, uvarint inbox, uvarint expiry, str holder,
//	varint disconnected, uvarint #subs, (str filter, byte qos)*,
//	uvarint #groups, (str group, uvarint seq)* in group order
//
// str is uvarint length + bytes, as in messages (codec.go). A session of
// 10,000 groups named like "friends-2024" is about 150 KB.
const sessBinary = 0x01

// sessionPrefix is s/{user}\x00: every session of user, and no other
// user's (no user ID holds a NUL, so "bob\x00" is never a prefix of
// "bobby\x00...").
func sessionPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxSession...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func sessionKey(buf []byte, user, device string) []byte {
	return append(sessionPrefix(buf, user), device...)
}

// appendSession appends s's value (User and Device are in its key).
func appendSession(buf []byte, s *store.Session) []byte {
	buf = append(buf, sessBinary)
	buf = appendStr(buf, s.Epoch)
	buf = binary.AppendUvarint(buf, s.Inbox)
	buf = binary.AppendUvarint(buf, uint64(s.Expiry))
	buf = appendStr(buf, s.Holder)
	buf = binary.AppendVarint(buf, s.Disconnected)
	buf = binary.AppendUvarint(buf, uint64(len(s.Subs)))
	for _, sub := range s.Subs {
		buf = appendStr(buf, sub.Filter)
		buf = append(buf, sub.QoS)
	}
	groups := make([]string, 0, len(s.Groups))
	for g := range s.Groups {
		groups = append(groups, g)
	}
	slices.Sort(groups) // the same session, the same bytes
	buf = binary.AppendUvarint(buf, uint64(len(groups)))
	for _, g := range groups {
		buf = appendStr(buf, g)
		buf = binary.AppendUvarint(buf, s.Groups[g])
	}
	return buf
}

// decodeSession reads the session row of key (s/{user}\x00{device}). A
// corrupt value is an error, never a panic nor a huge allocation: counts
// are checked against the bytes left before anything is made for them.
func decodeSession(key, val []byte) (store.Session, error) {
	user, device, err := splitPair(key, pfxSession)
	if err != nil || len(val) == 0 || val[0] != sessBinary {
		return store.Session{}, errCorruptRow
	}
	s := store.Session{User: string(user), Device: string(device)}
	d := msgDecoder{s: string(val), off: 1}
	s.Epoch = d.str()
	s.Inbox = d.uvarint()
	expiry := d.uvarint()
	if expiry > uint64(^uint32(0)) {
		return store.Session{}, errCorruptRow
	}
	s.Expiry = uint32(expiry)
	s.Holder = d.str()
	s.Disconnected = d.varint()
	// Each sub takes at least 2 bytes, each group at least 2.
	if n := d.uvarint(); n > 0 && !d.bad {
		if n > uint64(len(d.s)-d.off)/2 {
			return store.Session{}, errCorruptRow
		}
		s.Subs = make([]store.SessionSub, n)
		for i := range s.Subs {
			s.Subs[i] = store.SessionSub{Filter: d.str(), QoS: d.byte()}
		}
	}
	if n := d.uvarint(); n > 0 && !d.bad {
		if n > uint64(len(d.s)-d.off)/2 {
			return store.Session{}, errCorruptRow
		}
		s.Groups = make(map[string]uint64, n)
		for range n {
			g := d.str()
			s.Groups[g] = d.uvarint()
		}
	}
	if d.bad || d.off != len(d.s) {
		return store.Session{}, errCorruptRow
	}
	return s, nil
}

// getSession reads the session of key from r (the database or a batch),
// translating Pebble's not-found into store.ErrNotFound.
func getSession(r pebble.Reader, key []byte) (store.Session, error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return store.Session{}, store.ErrNotFound
	}
	if err != nil {
		return store.Session{}, err
	}
	defer closer.Close()
	s, err := decodeSession(key, val)
	if err != nil {
		return store.Session{}, fmt.Errorf("decode session value: %w", err)
	}
	return s, nil
}

// LoadSession reads the session of user's device.
func (s *Store) LoadSession(ctx context.Context, user, device string) (store.Session, error) {
	if err := s.begin(ctx, "load session"); err != nil {
		return store.Session{}, err
	}
	defer s.end()
	if err := checkSessionID(user, device); err != nil {
		return store.Session{}, fmt.Errorf("load session: %w", err)
	}
	ss, err := getSession(s.db, sessionKey(nil, user, device))
	if err != nil {
		return store.Session{}, fmt.Errorf("load session %s/%s: %w", user, device, err)
	}
	return ss, nil
}

// SaveSessions writes ss in one batch, with fsync. It holds s.sessions
// from its reads of the stored sessions to the durable write, so two
// saves of one session at once cannot lose the other's higher position;
// the reads go through the batch, so a session given twice in ss
// accumulates.
func (s *Store) SaveSessions(ctx context.Context, ss []store.Session) error {
	if len(ss) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "save sessions"); err != nil {
		return err
	}
	defer s.end()
	for i := range ss {
		if err := checkSessionID(ss[i].User, ss[i].Device); err != nil {
			return fmt.Errorf("save sessions: %w", err)
		}
	}
	s.sessions.Lock()
	defer s.sessions.Unlock()
	wb := s.db.NewIndexedBatch()
	defer wb.Close()
	var key, val []byte
	for i := range ss {
		if i%64 == 0 && ctx.Err() != nil {
			return fmt.Errorf("save sessions: %w", ctx.Err())
		}
		given := &ss[i]
		key = sessionKey(key[:0], given.User, given.Device)
		stored, err := getSession(wb, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			val = appendSession(val[:0], given)
		case err != nil:
			return fmt.Errorf("save session %s/%s: %w", given.User, given.Device, err)
		default:
			merged := mergeSession(stored, given)
			val = appendSession(val[:0], &merged)
		}
		_ = wb.Set(key, val, nil)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	return nil
}

// mergeSession is stored after a save of given (store.Sessions): the
// higher of each position, Epoch, Subs and Expiry as given, Holder and
// Disconnected as given unless given is a release by a connection other
// than stored's holder.
func mergeSession(stored store.Session, given *store.Session) store.Session {
	out := *given
	out.Inbox = max(stored.Inbox, given.Inbox)
	out.Groups = stored.Groups
	if out.Groups == nil && len(given.Groups) > 0 {
		out.Groups = make(map[string]uint64, len(given.Groups))
	}
	for g, seq := range given.Groups {
		out.Groups[g] = max(out.Groups[g], seq)
	}
	if given.Disconnected > 0 && stored.Holder != "" && stored.Holder != given.Holder {
		out.Holder, out.Disconnected = stored.Holder, stored.Disconnected
	}
	return out
}

// DeleteSession removes the session of user's device.
func (s *Store) DeleteSession(ctx context.Context, user, device string) error {
	if err := s.beginWrite(ctx, "delete session"); err != nil {
		return err
	}
	defer s.end()
	if err := checkSessionID(user, device); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	s.sessions.Lock() // not between a save's read and its write
	defer s.sessions.Unlock()
	if err := s.del(sessionKey(nil, user, device), pebble.Sync); err != nil {
		return fmt.Errorf("delete session %s/%s: %w", user, device, err)
	}
	return nil
}

// DeleteSessions removes the sessions of ids in one synced batch.
func (s *Store) DeleteSessions(ctx context.Context, ids []store.SessionID) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "delete sessions"); err != nil {
		return err
	}
	defer s.end()
	for _, id := range ids {
		if err := checkSessionID(id.User, id.Device); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
	}
	s.sessions.Lock()
	defer s.sessions.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	var key []byte
	for _, id := range ids {
		key = sessionKey(key[:0], id.User, id.Device)
		// Only a stored one: most devices named never had a session (every
		// clean connection names its device), and a tombstone for each
		// would be written and compacted for nothing.
		switch _, closer, err := s.db.Get(key); {
		case errors.Is(err, pebble.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("delete sessions: %w", err)
		default:
			_ = closer.Close()
		}
		_ = wb.Delete(key, nil)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	if wb.Empty() {
		return nil
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	return nil
}

// DeleteUserSessions removes every session of user: one range deletion
// of s/{user}\x00 up to s/{user}\x01, which holds no other user's.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) error {
	if err := s.beginWrite(ctx, "delete user sessions"); err != nil {
		return err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return fmt.Errorf("delete user sessions: %w", err)
	}
	prefix := sessionPrefix(nil, user)
	s.sessions.Lock()
	defer s.sessions.Unlock()
	err := s.write(len(prefix), func() error { return s.db.DeleteRange(prefix, prefixEnd(prefix), pebble.Sync) })
	if err != nil {
		return fmt.Errorf("delete sessions of %s: %w", user, err)
	}
	return nil
}

// CountUserSessions counts the rows under s/{user}\x00, up to limit.
func (s *Store) CountUserSessions(ctx context.Context, user string, limit int) (int, error) {
	if err := s.begin(ctx, "count user sessions"); err != nil {
		return 0, err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return 0, fmt.Errorf("count user sessions: %w", err)
	}
	prefix := sessionPrefix(nil, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("count sessions of %s: %w", user, err)
	}
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("count sessions of %s: %w", user, err)
	}
	return n, nil
}

func checkSessionID(user, device string) error {
	if err := checkID("user", user); err != nil {
		return err
	}
	return checkID("device", device)
}
