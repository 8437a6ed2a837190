package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// The social graph (store.Social):
//
//	ct/{user}\x00{peer}  ctBinary(1) state(1) varint since: user's side of a contact
//	bk/{user}\x00{peer}  varint since: user's block of peer
//	bb/{peer}\x00{user}  empty: the same block, by the one blocked
//	ls/{user}            varint ts: when user was last seen (0: online)
//
// A contact's two rows are written in one batch under s.social, so they
// always mirror each other. A block's two rows are written in one batch
// too. Blockers reads bb/{peer}\x00 (who blocked peer: mostly nobody) when
// that is shorter than the users asked, else seeks bk/{user}\x00{peer} of
// each user asked with one iterator; either way it costs at most about
// as many rows as users asked, and a group message's fan-out to many
// members costs one short range read.
// The three prefixes came without a new format, as cs/ did: none is a
// prefix of another or of an older one (a scan of c/ stops at "c0").
const (
	ctBinary = 0x01
	ctOut    = 1 // store.ContactPendingOut
	ctIn     = 2 // store.ContactPendingIn
	ctBoth   = 3 // store.ContactAccepted
)

var ctStates = [...]string{ctOut: store.ContactPendingOut, ctIn: store.ContactPendingIn, ctBoth: store.ContactAccepted}

func ctState(state string) byte {
	switch state {
	case store.ContactPendingOut:
		return ctOut
	case store.ContactPendingIn:
		return ctIn
	case store.ContactAccepted:
		return ctBoth
	}
	return 0
}

// pairPrefix is {pfx}{user}\x00.
func pairPrefix(buf []byte, pfx, user string) []byte {
	buf = append(buf, pfx...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func contactKey(user, peer string) []byte { return append(pairPrefix(nil, pfxContact, user), peer...) }
func blockKey(user, peer string) []byte   { return append(pairPrefix(nil, pfxBlock, user), peer...) }
func blockedByKey(peer, user string) []byte {
	return append(pairPrefix(nil, pfxBlockedBy, peer), user...)
}
func lastSeenKey(user string) []byte { return append([]byte(pfxLastSeen), user...) }

// checkPair rejects an empty ID, one the key layout cannot hold, and a
// user paired with itself (the two rows of a contact would be one key).
func checkPair(user, peer string) error {
	if user == "" || peer == "" || user == peer {
		return fmt.Errorf("pair %q, %q: %w", user, peer, ErrInvalid)
	}
	if err := checkID("user", user); err != nil {
		return err
	}
	return checkID("peer", peer)
}

func appendContact(state byte, since int64) []byte {
	return binary.AppendVarint([]byte{ctBinary, state}, since)
}

func decodeContactValue(val []byte) (store.Contact, error) {
	if len(val) < 2 || val[0] != ctBinary || val[1] < ctOut || val[1] > ctBoth {
		return store.Contact{}, errCorruptRow
	}
	r := rowReader{val: val[2:]}
	since := r.varint()
	if r.bad || len(r.val) != 0 {
		return store.Contact{}, errCorruptRow
	}
	return store.Contact{State: ctStates[val[1]], Since: since}, nil
}

// decodeContact reads the row of a ct/ key (export.go).
func decodeContact(key, val []byte) (store.Contact, error) {
	user, peer, err := splitPair(key, pfxContact)
	if err != nil {
		return store.Contact{}, errCorruptRow
	}
	c, err := decodeContactValue(val)
	c.User, c.Peer = string(user), string(peer)
	return c, err
}

// decodeBlock reads the row of a bk/ key (export.go).
func decodeBlock(key, val []byte) (store.Block, error) {
	user, peer, err := splitPair(key, pfxBlock)
	if err != nil {
		return store.Block{}, errCorruptRow
	}
	r := rowReader{val: val}
	since := r.varint()
	if r.bad || len(r.val) != 0 {
		return store.Block{}, errCorruptRow
	}
	return store.Block{User: string(user), Peer: string(peer), Since: since}, nil
}

// LastSeenRow is a user's last seen time as export.go reads it.
type LastSeenRow struct {
	User string
	TS   int64
}

func decodeLastSeen(key, val []byte) (LastSeenRow, error) {
	r := rowReader{val: val}
	ts := r.varint()
	if r.bad || len(r.val) != 0 {
		return LastSeenRow{}, errCorruptRow
	}
	return LastSeenRow{User: string(key[len(pfxLastSeen):]), TS: ts}, nil
}

// getContact reads user's row with peer.
func (s *Store) getContact(user, peer string) (store.Contact, error) {
	val, closer, err := s.db.Get(contactKey(user, peer))
	if errors.Is(err, pebble.ErrNotFound) {
		return store.Contact{}, store.ErrNotFound
	}
	if err != nil {
		return store.Contact{}, err
	}
	defer closer.Close()
	c, err := decodeContactValue(val)
	c.User, c.Peer = user, peer
	return c, err
}

// setContact writes both rows of a contact between user and peer, user's
// in state, in one synced batch.
func (s *Store) setContact(user, peer string, state byte, since int64) error {
	mirror := map[byte]byte{ctOut: ctIn, ctIn: ctOut, ctBoth: ctBoth}[state]
	wb := s.db.NewBatch()
	defer wb.Close()
	_ = wb.Set(contactKey(user, peer), appendContact(state, since), nil)
	_ = wb.Set(contactKey(peer, user), appendContact(mirror, since), nil)
	return s.commit(wb)
}

// RequestContact writes a new request, or accepts a crossing one.
func (s *Store) RequestContact(ctx context.Context, from, to string, ts int64) (store.Contact, error) {
	if err := s.beginWrite(ctx, "request contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(from, to); err != nil {
		return store.Contact{}, fmt.Errorf("request contact: %w", err)
	}
	s.social.Lock()
	defer s.social.Unlock()
	c, err := s.getContact(from, to)
	state := byte(ctOut)
	switch {
	case err == nil && c.State != store.ContactPendingIn:
		return c, nil // pending or accepted already
	case err == nil:
		state = ctBoth // to asked from: both agree
	case !errors.Is(err, store.ErrNotFound):
		return store.Contact{}, fmt.Errorf("request contact %s→%s: %w", from, to, err)
	}
	if err := s.setContact(from, to, state, ts); err != nil {
		return store.Contact{}, fmt.Errorf("request contact %s→%s: %w", from, to, err)
	}
	return store.Contact{User: from, Peer: to, State: ctStates[state], Since: ts}, nil
}

// AcceptContact turns peer's pending request into an accepted contact.
func (s *Store) AcceptContact(ctx context.Context, user, peer string, ts int64) (store.Contact, error) {
	if err := s.beginWrite(ctx, "accept contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return store.Contact{}, fmt.Errorf("accept contact: %w", err)
	}
	s.social.Lock()
	defer s.social.Unlock()
	c, err := s.getContact(user, peer)
	switch {
	case err == nil && c.State == store.ContactAccepted:
		return c, nil
	case err == nil && c.State == store.ContactPendingOut:
		return store.Contact{}, fmt.Errorf("accept contact %s←%s: no request: %w", user, peer, store.ErrNotFound)
	case err != nil:
		return store.Contact{}, fmt.Errorf("accept contact %s←%s: %w", user, peer, err)
	}
	if err := s.setContact(user, peer, ctBoth, ts); err != nil {
		return store.Contact{}, fmt.Errorf("accept contact %s←%s: %w", user, peer, err)
	}
	return store.Contact{User: user, Peer: peer, State: store.ContactAccepted, Since: ts}, nil
}

// RemoveContact deletes both rows in one synced batch.
func (s *Store) RemoveContact(ctx context.Context, user, peer string) (store.Contact, error) {
	if err := s.beginWrite(ctx, "remove contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return store.Contact{}, fmt.Errorf("remove contact: %w", err)
	}
	s.social.Lock()
	defer s.social.Unlock()
	c, err := s.getContact(user, peer)
	if err != nil {
		return store.Contact{}, fmt.Errorf("remove contact %s–%s: %w", user, peer, err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	_ = wb.Delete(contactKey(user, peer), nil)
	_ = wb.Delete(contactKey(peer, user), nil)
	if err := s.commit(wb); err != nil {
		return store.Contact{}, fmt.Errorf("remove contact %s–%s: %w", user, peer, err)
	}
	return c, nil
}

// GetContact reads user's row with peer.
func (s *Store) GetContact(ctx context.Context, user, peer string) (store.Contact, error) {
	if err := s.begin(ctx, "get contact"); err != nil {
		return store.Contact{}, err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return store.Contact{}, fmt.Errorf("get contact: %w", err)
	}
	c, err := s.getContact(user, peer)
	if err != nil {
		return store.Contact{}, fmt.Errorf("get contact %s–%s: %w", user, peer, err)
	}
	return c, nil
}

// scanPairs calls fn for the rows under {pfx}{user}\x00 after the peer
// after, in peer order, until fn returns false.
func (s *Store) scanPairs(ctx context.Context, pfx, user, after string, fn func(peer string, val []byte) (bool, error)) error {
	prefix := pairPrefix(nil, pfx, user)
	lower := prefix
	if after != "" {
		lower = append(append(slices.Clip(prefix), after...), 0) // the first key above after
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%256 == 0 && ctx.Err() != nil {
			break
		}
		more, err := fn(string(it.Key()[len(prefix):]), it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("key %q: %w", it.Key(), err)
		}
		if !more {
			break
		}
	}
	return errors.Join(it.Error(), it.Close(), ctx.Err())
}

// Contacts reads user's rows in peer order, those of state if given.
func (s *Store) Contacts(ctx context.Context, user, state, after string, limit int) ([]store.Contact, error) {
	if err := s.begin(ctx, "contacts"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	if state != "" && ctState(state) == 0 {
		return nil, fmt.Errorf("contacts of state %q: %w", state, ErrInvalid)
	}
	limit = store.ClampLimit(limit, store.MaxSocialLimit)
	var out []store.Contact
	err := s.scanPairs(ctx, pfxContact, user, after, func(peer string, val []byte) (bool, error) {
		c, err := decodeContactValue(val)
		if err != nil {
			return false, err
		}
		if state == "" || c.State == state {
			c.User, c.Peer = user, peer
			out = append(out, c)
		}
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("contacts of %s: %w", user, err)
	}
	return out, nil
}

// countPairs counts the rows under {pfx}{user}\x00, stopping at most.
func (s *Store) countPairs(ctx context.Context, op, pfx, user string, most int) (int, error) {
	if err := s.begin(ctx, op); err != nil {
		return 0, err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	n := 0
	err := s.scanPairs(ctx, pfx, user, "", func(string, []byte) (bool, error) {
		n++
		return most <= 0 || n < most, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s of %s: %w", op, user, err)
	}
	return n, nil
}

// CountContacts counts user's contact rows.
func (s *Store) CountContacts(ctx context.Context, user string, most int) (int, error) {
	return s.countPairs(ctx, "count contacts", pfxContact, user, most)
}

// CountBlocks counts user's blocks.
func (s *Store) CountBlocks(ctx context.Context, user string, most int) (int, error) {
	return s.countPairs(ctx, "count blocks", pfxBlock, user, most)
}

// PutBlock writes b's row unless it is there (Since stays).
func (s *Store) PutBlock(ctx context.Context, b store.Block) error {
	if err := s.beginWrite(ctx, "put block"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPair(b.User, b.Peer); err != nil {
		return fmt.Errorf("put block: %w", err)
	}
	s.social.Lock()
	defer s.social.Unlock()
	key := blockKey(b.User, b.Peer)
	_, closer, err := s.db.Get(key)
	switch {
	case err == nil:
		_ = closer.Close()
		return nil
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("put block %s→%s: %w", b.User, b.Peer, err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	_ = wb.Set(key, binary.AppendVarint(nil, b.Since), nil)
	_ = wb.Set(blockedByKey(b.Peer, b.User), nil, nil)
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("put block %s→%s: %w", b.User, b.Peer, err)
	}
	return nil
}

// DeleteBlock deletes user's block of peer.
func (s *Store) DeleteBlock(ctx context.Context, user, peer string) error {
	if err := s.beginWrite(ctx, "delete block"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPair(user, peer); err != nil {
		return fmt.Errorf("delete block: %w", err)
	}
	s.social.Lock()
	defer s.social.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	_ = wb.Delete(blockKey(user, peer), nil)
	_ = wb.Delete(blockedByKey(peer, user), nil)
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("delete block %s→%s: %w", user, peer, err)
	}
	return nil
}

// Blocks reads user's blocks in peer order.
func (s *Store) Blocks(ctx context.Context, user, after string, limit int) ([]store.Block, error) {
	if err := s.begin(ctx, "blocks"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := checkID("user", user); err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	limit = store.ClampLimit(limit, store.MaxSocialLimit)
	var out []store.Block
	err := s.scanPairs(ctx, pfxBlock, user, after, func(peer string, val []byte) (bool, error) {
		r := rowReader{val: val}
		since := r.varint()
		if r.bad || len(r.val) != 0 {
			return false, errCorruptRow
		}
		out = append(out, store.Block{User: user, Peer: peer, Since: since})
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", user, err)
	}
	return out, nil
}

// Blockers seeks each user's bk/ row of peer with one iterator, in key
// order.
func (s *Store) Blockers(ctx context.Context, peer string, users []string) (map[string]bool, error) {
	if err := s.begin(ctx, "blockers"); err != nil {
		return nil, err
	}
	defer s.end()
	out := map[string]bool{}
	if len(users) == 0 || checkID("peer", peer) != nil {
		return out, nil
	}
	if len(users) > blockersScan {
		by, ok, err := s.blockedBy(ctx, peer, len(users))
		if err != nil {
			return nil, fmt.Errorf("blockers of %s: %w", peer, err)
		}
		if ok {
			for _, u := range users {
				if by[u] {
					out[u] = true
				}
			}
			return out, nil
		}
	}
	keys := make([][]byte, 0, len(users))
	for _, u := range users {
		if u != "" && u != peer && checkID("user", u) == nil {
			keys = append(keys, blockKey(u, peer))
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte(pfxBlock), UpperBound: []byte("bk0")})
	if err != nil {
		return nil, fmt.Errorf("blockers of %s: %w", peer, err)
	}
	defer it.Close()
	for _, key := range keys {
		if it.SeekGE(key) && bytes.Equal(it.Key(), key) {
			user, _, _ := splitPair(key, pfxBlock)
			out[string(user)] = true
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("blockers of %s: %w", peer, err)
	}
	return out, nil
}

// blockersScan: Blockers of more users than this reads who blocked peer
// first.
const blockersScan = 16

// blockedBy reads who blocked peer, if at most most did (ok); else ok is
// false and the caller seeks instead.
func (s *Store) blockedBy(ctx context.Context, peer string, most int) (map[string]bool, bool, error) {
	by := map[string]bool{}
	ok := true
	err := s.scanPairs(ctx, pfxBlockedBy, peer, "", func(user string, _ []byte) (bool, error) {
		if len(by) >= most {
			ok = false
			return false, nil
		}
		by[user] = true
		return true, nil
	})
	return by, ok, err
}

// SetLastSeen writes ls/{user}.
func (s *Store) SetLastSeen(ctx context.Context, user string, ts int64) error {
	if err := s.beginWrite(ctx, "set last seen"); err != nil {
		return err
	}
	defer s.end()
	if user == "" || checkID("user", user) != nil {
		return fmt.Errorf("set last seen of %q: %w", user, ErrInvalid)
	}
	if err := s.set(lastSeenKey(user), binary.AppendVarint(nil, ts), pebble.Sync); err != nil {
		return fmt.Errorf("set last seen of %s: %w", user, err)
	}
	return nil
}

// LastSeen reads ls/ of each user.
func (s *Store) LastSeen(ctx context.Context, users []string) (map[string]int64, error) {
	if err := s.begin(ctx, "last seen"); err != nil {
		return nil, err
	}
	defer s.end()
	out := make(map[string]int64, len(users))
	for _, u := range users {
		key := lastSeenKey(u)
		val, closer, err := s.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("last seen of %s: %w", u, err)
		}
		row, err := decodeLastSeen(key, val)
		_ = closer.Close()
		if err != nil {
			return nil, fmt.Errorf("last seen of %s: %w", u, err)
		}
		out[u] = row.TS
	}
	return out, nil
}

// DeleteUserSocial deletes up to limit of user's contacts (both rows),
// then blocks, then its last seen, in one synced batch.
func (s *Store) DeleteUserSocial(ctx context.Context, user string, limit int) (int, error) {
	if err := s.beginWrite(ctx, "delete user social"); err != nil {
		return 0, err
	}
	defer s.end()
	if user == "" || checkID("user", user) != nil {
		return 0, fmt.Errorf("delete social rows of %q: %w", user, ErrInvalid)
	}
	limit = store.ClampLimit(limit, store.MaxSocialLimit)
	s.social.Lock()
	defer s.social.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	n := 0
	for _, pfx := range []string{pfxContact, pfxBlock} {
		err := s.scanPairs(ctx, pfx, user, "", func(peer string, _ []byte) (bool, error) {
			if n >= limit {
				return false, nil
			}
			if pfx == pfxContact {
				_ = wb.Delete(contactKey(user, peer), nil)
				_ = wb.Delete(contactKey(peer, user), nil)
			} else {
				_ = wb.Delete(blockKey(user, peer), nil)
				_ = wb.Delete(blockedByKey(peer, user), nil)
			}
			n++
			return true, nil
		})
		if err != nil {
			return 0, fmt.Errorf("delete social rows of %s: %w", user, err)
		}
	}
	if n < limit {
		switch _, closer, err := s.db.Get(lastSeenKey(user)); {
		case err == nil:
			_ = closer.Close()
			_ = wb.Delete(lastSeenKey(user), nil)
			n++
		case !errors.Is(err, pebble.ErrNotFound):
			return 0, fmt.Errorf("delete last seen of %s: %w", user, err)
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.commit(wb); err != nil {
		return 0, fmt.Errorf("delete social rows of %s: %w", user, err)
	}
	return n, nil
}

// has reports whether key is there.
func (s *Store) has(key []byte) (bool, error) {
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = closer.Close()
	return true, nil
}

// Gates reads each pair's block, its user's settings (once a user) and,
// for a user who takes contacts only, the contact: point reads, which
// Pebble's bloom filters answer mostly from memory.
func (s *Store) Gates(ctx context.Context, pairs []store.Pair) (map[store.Pair]store.Gate, error) {
	if err := s.begin(ctx, "gates"); err != nil {
		return nil, err
	}
	defer s.end()
	out := make(map[store.Pair]store.Gate, len(pairs))
	only := map[string]bool{}
	for _, p := range pairs {
		if _, ok := out[p]; ok || checkPair(p.User, p.Peer) != nil {
			continue
		}
		var g store.Gate
		var err error
		if g.Blocked, err = s.has(blockKey(p.User, p.Peer)); err != nil {
			return nil, fmt.Errorf("gates: block of %s by %s: %w", p.Peer, p.User, err)
		}
		contactsOnly, ok := only[p.User]
		if !ok {
			us, err := s.getUserSettings(p.User)
			if err != nil {
				return nil, fmt.Errorf("gates: %w", err)
			}
			contactsOnly = us.AcceptFrom == store.AcceptContacts
			only[p.User] = contactsOnly
		}
		if g.ContactsOnly = contactsOnly; contactsOnly {
			c, err := s.getContact(p.User, p.Peer)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("gates: contact %s–%s: %w", p.User, p.Peer, err)
			}
			g.Contact = err == nil && c.State == store.ContactAccepted
		}
		out[p] = g
	}
	return out, nil
}
