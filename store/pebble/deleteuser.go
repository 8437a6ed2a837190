package pebble

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// The Erasure role (store/erase.go): deleting a user's data in bounded,
// idempotent steps.

// TombstoneUser turns user's account row into a tombstone.
func (s *Store) TombstoneUser(ctx context.Context, user string, at int64) error {
	if err := s.beginWrite(ctx, "tombstone user"); err != nil {
		return err
	}
	defer s.end()
	user = store.FoldID(user)
	key := userKey(user)
	s.users.Lock() // against a CreateUser's check-then-set
	defer s.users.Unlock()
	var u store.User
	if err := s.getJSON(key, &u); err != nil {
		return fmt.Errorf("tombstone user %s: %w", user, err)
	}
	if u.Deleted != 0 {
		return nil
	}
	val, err := json.Marshal(store.User{ID: user, Created: u.Created, Deleted: at})
	if err != nil {
		return fmt.Errorf("tombstone user %s: %w", user, err)
	}
	if err := s.set(key, val, pebble.Sync); err != nil {
		return fmt.Errorf("tombstone user %s: %w", user, err)
	}
	return nil
}

// UserTombstone returns when user was tombstoned.
func (s *Store) UserTombstone(ctx context.Context, user string) (int64, error) {
	if err := s.begin(ctx, "user tombstone"); err != nil {
		return 0, err
	}
	defer s.end()
	user = store.FoldID(user)
	var u store.User
	if err := s.getJSON(userKey(user), &u); err != nil {
		return 0, fmt.Errorf("user tombstone %s: %w", user, err)
	}
	if u.Deleted == 0 {
		return 0, fmt.Errorf("user tombstone %s: %w", user, store.ErrNotFound)
	}
	return u.Deleted, nil
}

// DeleteUserTokens scans the token rows (keyed by hash alone: there is no
// index by user) for user's, and deletes up to limit of them in one write.
// A scan reads every token row; a deletion is rare, and the rows are small.
func (s *Store) DeleteUserTokens(ctx context.Context, user string, limit int) ([]string, error) {
	if err := s.begin(ctx, "delete user tokens"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := s.health.failure(); err != nil { // revocations pass while space is low, as DeleteToken's
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	limit = clampLimit(limit)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(pfxToken), UpperBound: prefixEnd([]byte("t/"))})
	if err != nil {
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	var hashes []string
	wb := s.db.NewBatch()
	defer wb.Close()
	for ok := it.First(); ok && len(hashes) < limit; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("delete user tokens: %w", err)
		}
		var t store.Token
		if err := json.Unmarshal(it.Value(), &t); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("delete user tokens: decode: %w", err)
		}
		if t.User != user {
			continue
		}
		hashes = append(hashes, t.Hash)
		if err := wb.Delete(it.Key(), nil); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("delete user tokens: %w", err)
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	if len(hashes) == 0 {
		return nil, nil
	}
	if err := s.commit(wb); err != nil {
		return nil, fmt.Errorf("delete user tokens: %w", err)
	}
	return hashes, nil
}

// EraseSentMessages walks user's dedupe rows (d/{user}\x00...), anonymises
// each one's message and deletes the row, up to limit of them in one
// atomic write: the rows left are exactly the messages not yet erased.
func (s *Store) EraseSentMessages(ctx context.Context, user string, limit int) (int, []string, error) {
	if err := s.beginWrite(ctx, "erase sent messages"); err != nil {
		return 0, nil, err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: %w", err)
	}
	limit = clampLimit(limit)
	lower := append(append([]byte(pfxAck), user...), sep)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: %w", err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	var (
		n     int
		media []string
		buf   []byte
	)
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		a, err := decodeAck(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return 0, nil, fmt.Errorf("erase sent messages: %w", err)
		}
		key := msgKey(nil, a.ID)
		m, err := s.getMessage(key)
		switch {
		case errors.Is(err, store.ErrNotFound): // the row outlived its message: nothing to erase
		case err != nil:
			_ = it.Close()
			return 0, nil, fmt.Errorf("erase sent messages: message %d: %w", a.ID, err)
		default:
			if m.Media != "" {
				media = append(media, m.Media)
			}
			anonymise(&m)
			if buf, err = appendMessage(buf[:0], &m); err != nil {
				_ = it.Close()
				return 0, nil, fmt.Errorf("erase sent messages: encode %d: %w", a.ID, err)
			}
			if err := wb.Set(key, buf, nil); err != nil {
				_ = it.Close()
				return 0, nil, fmt.Errorf("erase sent messages: %w", err)
			}
		}
		if err := wb.Delete(it.Key(), nil); err != nil {
			_ = it.Close()
			return 0, nil, fmt.Errorf("erase sent messages: %w", err)
		}
		n++
	}
	if err := it.Close(); err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: %w", err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	if err := s.commit(wb); err != nil {
		return 0, nil, fmt.Errorf("erase sent messages: %w", err)
	}
	return n, media, nil
}

// getMessage reads the message at key.
func (s *Store) getMessage(key []byte) (store.Message, error) {
	var m store.Message
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return m, store.ErrNotFound
	}
	if err != nil {
		return m, err
	}
	defer closer.Close()
	err = decodeMessage(bytes.Clone(val), &m)
	return m, err
}

// anonymise erases what a message says and who sent it, keeping where it
// sits (ID, To, Group, Seq, Type, TS).
func anonymise(m *store.Message) {
	*m = store.Message{ID: m.ID, From: store.DeletedSender, To: m.To, Group: m.Group, Seq: m.Seq, Type: m.Type, TS: m.TS}
}

// DeleteUserInbox deletes up to limit of user's inbox entries and their
// history entries in one write; when none is left it deletes what remains
// under the user's history, conversation and hidden-row prefixes, and
// the user's settings (range deletions,
// which cost the same however many rows they cover).
func (s *Store) DeleteUserInbox(ctx context.Context, user string, limit int) (int, error) {
	if err := s.begin(ctx, "delete user inbox"); err != nil {
		return 0, err
	}
	defer s.end()
	if err := s.health.failure(); err != nil { // deletions free space: let them through
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	if err := checkID("user", user); err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	limit = clampLimit(limit)
	lower := inboxPrefix(nil, user)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		e, err := decodeEntry(user, it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return 0, fmt.Errorf("delete user inbox: %w", err)
		}
		_ = wb.Delete(it.Key(), nil)
		_ = wb.Delete(histKey(nil, user, e.Peer, e.MsgID), nil)
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	if n == 0 {
		// Conversation rows are read-modify-written under conv: take it so
		// that a commit in flight does not write one back over the range.
		s.conv.Lock()
		defer s.conv.Unlock()
		// With them go the user's hidden rows and settings (the
		// lifecycle's: life.go); their reactions stay, as counts do.
		for _, p := range [][]byte{convPrefix(nil, user), histUserPrefix(user), hiddenPrefix(nil, user)} {
			if has, err := s.hasPrefix(p); err != nil {
				return 0, fmt.Errorf("delete user inbox: %w", err)
			} else if has {
				n++
				_ = wb.DeleteRange(p, prefixEnd(p), nil)
			}
		}
		if has, err := exists(s.db, userSettingsKey(user)); err != nil {
			return 0, fmt.Errorf("delete user inbox: %w", err)
		} else if has {
			n++
			_ = wb.Delete(userSettingsKey(user), nil)
		}
		if n == 0 {
			return 0, nil
		}
	}
	if err := s.commit(wb); err != nil {
		return 0, fmt.Errorf("delete user inbox: %w", err)
	}
	return n, nil
}

// histUserPrefix is h/{user}\x00: every history entry of user's.
func histUserPrefix(user string) []byte {
	return append(append([]byte(pfxHist), user...), sep)
}

// hasPrefix reports whether any key starts with p (a prefix ending in sep).
func (s *Store) hasPrefix(p []byte) (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return false, err
	}
	has := it.First()
	return has, it.Close()
}
