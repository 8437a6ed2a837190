package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// The message lifecycle (store/change.go): what a batch's Recalls, Edits,
// Reactions, Hides, Clears and Mentioned do, and the Lives role.
//
// Reactions are three rows, so that neither a write nor a read of one
// message's reactions reads all of them:
//
//	rc/{msgid}{emoji}              rcBinary(1) uvarint count, uvarint #users, str user*
//	rx/{msgid}{emoji}\x00{user}    varint ts: the reactors of one emoji, by user ID
//	ru/{msgid}{user}\x00{emoji}    empty: one user's emojis (UserReactions, the dedupe)
//
// An add reads ru/ (is it there?) and rc/; a remove reads the same, and
// when the user was one of rc/'s listed users, the first rx/ rows up to
// one not listed (at most store.ReactionUsers+1 of them) to list another.
// ReactionsOf reads rc/ alone.
const (
	rcBinary         = 0x01
	usBinary         = 0x01
	usNoRR           = 1 // UserSettings.NoReadReceipts
	usAcceptContacts = 2 // UserSettings.AcceptFrom: store.AcceptContacts
	usPresenceNobody = 4 // UserSettings.Presence: store.PresenceNobody
	usFlags          = usNoRR | usAcceptContacts | usPresenceNobody
)

func reactionCountKey(buf []byte, msg int64, emoji string) []byte {
	buf = append(buf, pfxReactC...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(msg))
	return append(buf, emoji...)
}

// reactorsPrefix is rx/{msgid}{emoji}\x00.
func reactorsPrefix(buf []byte, msg int64, emoji string) []byte {
	buf = append(buf, pfxReactX...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(msg))
	buf = append(buf, emoji...)
	return append(buf, sep)
}

// userReactionsPrefix is ru/{msgid}{user}\x00.
func userReactionsPrefix(buf []byte, msg int64, user string) []byte {
	buf = append(buf, pfxReactU...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(msg))
	buf = append(buf, user...)
	return append(buf, sep)
}

// hiddenPrefix is hd/{user}\x00.
func hiddenPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxHidden...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func hiddenKey(buf []byte, user string, msg int64) []byte {
	return binary.BigEndian.AppendUint64(hiddenPrefix(buf, user), uint64(msg))
}

func userSettingsKey(user string) []byte { return append([]byte(pfxUserSet), user...) }

// reactionSum is an rc/ value.
type reactionSum struct {
	count int64
	users []string
}

func appendReactionSum(buf []byte, r *reactionSum) []byte {
	buf = append(buf, rcBinary)
	buf = binary.AppendUvarint(buf, uint64(r.count))
	buf = binary.AppendUvarint(buf, uint64(len(r.users)))
	for _, u := range r.users {
		buf = appendStr(buf, u)
	}
	return buf
}

func decodeReactionSum(val []byte) (reactionSum, error) {
	if len(val) == 0 || val[0] != rcBinary {
		return reactionSum{}, errCorruptRow
	}
	d := msgDecoder{s: string(val), off: 1}
	r := reactionSum{count: int64(d.uvarint())}
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) || n > store.ReactionUsers {
		return reactionSum{}, errCorruptRow
	}
	r.users = make([]string, n)
	for i := range r.users {
		r.users[i] = d.str()
	}
	if d.bad || d.off != len(d.s) {
		return reactionSum{}, errCorruptRow
	}
	return r, nil
}

// validateLife rejects what the key layout cannot hold in a batch's
// lifecycle fields.
func validateLife(b *store.Batch) error {
	for _, r := range b.Recalls {
		if r.MsgID < 0 {
			return fmt.Errorf("recall of %d: %w", r.MsgID, ErrInvalid)
		}
	}
	for _, e := range b.Edits {
		if e.MsgID < 0 {
			return fmt.Errorf("edit of %d: %w", e.MsgID, ErrInvalid)
		}
	}
	for _, r := range b.Reactions {
		if r.MsgID < 0 || r.Emoji == "" {
			return fmt.Errorf("reaction to %d: %w", r.MsgID, ErrInvalid)
		}
		if err := checkID("user", r.User); err != nil {
			return err
		}
		if err := checkID("emoji", r.Emoji); err != nil {
			return err
		}
	}
	for _, h := range b.Hides {
		if h.MsgID < 0 {
			return fmt.Errorf("hide of %d: %w", h.MsgID, ErrInvalid)
		}
		for _, id := range []struct{ what, id string }{{"user", h.User}, {"peer", h.Peer}, {"group", h.Group}} {
			if err := checkID(id.what, id.id); err != nil {
				return err
			}
		}
	}
	for _, c := range b.Clears {
		if err := checkID("user", c.User); err != nil {
			return err
		}
		if err := checkID("peer", c.Peer); err != nil {
			return err
		}
	}
	for _, m := range b.Mentioned {
		if err := checkID("user", m.User); err != nil {
			return err
		}
		if err := checkID("group", m.Group); err != nil {
			return err
		}
	}
	return nil
}

// hasLife reports whether b changes stored rows beyond its own (so wb
// must read back what it writes).
func hasLife(b *store.Batch) bool {
	return len(b.Recalls)+len(b.Edits)+len(b.Reactions)+len(b.Hides)+len(b.Clears) > 0
}

// applyMentioned moves the members' MentionSeq up, through wb; non-members
// are skipped. The caller holds s.groups.
func applyMentioned(wb *pebble.Batch, ms []store.GroupRead) error {
	for _, r := range ms {
		key := pair(pfxMember, r.Group, r.User)
		var m store.Member
		switch err := getJSONFrom(wb, key, &m); {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("member %s of %s: %w", r.User, r.Group, err)
		}
		if r.Seq <= m.MentionSeq {
			continue
		}
		m.MentionSeq = r.Seq
		if err := setJSON(wb, key, m); err != nil {
			return err
		}
	}
	return nil
}

// applyLife applies b's Recalls, Edits, Reactions, Hides and Clears to
// the rows they change, reading them through wb (an indexed batch), so
// that targets in the same batch and several changes of one row add up.
// The caller holds s.conv, which serializes every read-modify-write of a
// message row and of reaction counts: a recall and an edit committed at
// once cannot lose one another (a recall wins either way).
func applyLife(wb *pebble.Batch, b *store.Batch) error {
	for _, r := range b.Recalls {
		if err := updateMessage(wb, r.MsgID, func(m *store.Message) bool {
			if m.Recalled != 0 {
				return false // the first recall stays
			}
			m.Body, m.Media, m.Meta, m.Inline, m.Mentions = "", "", nil, nil, nil
			m.Recalled, m.RecalledBy = r.TS, r.By
			if m.Recalled == 0 {
				m.Recalled = 1 // a recall with no time still recalls
			}
			return true
		}); err != nil {
			return fmt.Errorf("recall %d: %w", r.MsgID, err)
		}
	}
	for _, e := range b.Edits {
		if err := updateMessage(wb, e.MsgID, func(m *store.Message) bool {
			if m.Recalled != 0 || e.TS < m.Edited {
				return false // a recall wins; a replayed older edit is no news
			}
			m.Body, m.Meta, m.Edited = e.Body, e.Meta, e.TS
			return true
		}); err != nil {
			return fmt.Errorf("edit %d: %w", e.MsgID, err)
		}
	}
	for _, r := range b.Reactions {
		if err := applyReaction(wb, r); err != nil {
			return fmt.Errorf("reaction to %d: %w", r.MsgID, err)
		}
	}
	touched := map[convRef]bool{}
	var order []convRef
	touch := func(user, peer string) {
		if ref := (convRef{user, peer}); !touched[ref] {
			touched[ref] = true
			order = append(order, ref)
		}
	}
	var buf []byte
	for _, h := range b.Hides {
		if h.Group != "" {
			_ = wb.Set(hiddenKey(buf[:0], h.User, h.MsgID), []byte(h.Group), nil)
			continue
		}
		key := histKey(nil, h.User, h.Peer, h.MsgID)
		ver, found, err := histVer(wb, key)
		if err != nil {
			return fmt.Errorf("hide %d: %w", h.MsgID, err)
		}
		if !found {
			continue
		}
		_ = wb.Delete(key, nil)
		_ = wb.Delete(inboxKey(buf[:0], h.User, ver), nil)
		touch(h.User, h.Peer)
	}
	for _, c := range b.Clears {
		if err := clearConv(wb, c); err != nil {
			return fmt.Errorf("clear %s/%s: %w", c.User, c.Peer, err)
		}
		touch(c.User, c.Peer)
	}
	for _, ref := range order {
		if err := recountConv(wb, ref.user, ref.peer); err != nil {
			return fmt.Errorf("conversation %s/%s: %w", ref.user, ref.peer, err)
		}
	}
	return nil
}

// updateMessage applies fn to message id as wb sees it and writes it back
// if fn says it changed; a message that does not exist is skipped.
func updateMessage(wb *pebble.Batch, id int64, fn func(m *store.Message) bool) error {
	key := msgKey(nil, id)
	val, closer, err := wb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var m store.Message
	err = decodeMessage(val, &m)
	_ = closer.Close()
	if err != nil {
		return fmt.Errorf("decode message %d: %w", id, err)
	}
	if !fn(&m) {
		return nil
	}
	val, err = appendMessage(nil, &m)
	if err != nil {
		return err
	}
	return wb.Set(key, val, nil)
}

// applyReaction adds or removes one reaction: O(1) reads and writes
// (O(store.ReactionUsers) on removing a listed user).
func applyReaction(wb *pebble.Batch, r store.Reaction) error {
	ruKey := append(userReactionsPrefix(nil, r.MsgID, r.User), r.Emoji...)
	has, err := exists(wb, ruKey)
	if err != nil || has == r.Add {
		return err // adding what is there, removing what is not: nothing
	}
	if r.Add {
		// A reaction needs its message, which it marks Reacted.
		found := false
		if err := updateMessage(wb, r.MsgID, func(m *store.Message) bool {
			found = true
			if m.Reacted {
				return false
			}
			m.Reacted = true
			return true
		}); err != nil || !found {
			return err
		}
	}
	rcKey := reactionCountKey(nil, r.MsgID, r.Emoji)
	var sum reactionSum
	switch val, closer, err := wb.Get(rcKey); {
	case err == nil:
		sum, err = decodeReactionSum(val)
		_ = closer.Close()
		if err != nil {
			return err
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return err
	}
	rxPrefix := reactorsPrefix(nil, r.MsgID, r.Emoji)
	rxKey := append(slices.Clip(rxPrefix), r.User...)
	if r.Add {
		_ = wb.Set(ruKey, nil, nil)
		_ = wb.Set(rxKey, binary.AppendVarint(nil, r.TS), nil)
		sum.count++
		if len(sum.users) < store.ReactionUsers {
			sum.users = append(sum.users, r.User)
		}
		return wb.Set(rcKey, appendReactionSum(nil, &sum), nil)
	}
	_ = wb.Delete(ruKey, nil)
	_ = wb.Delete(rxKey, nil)
	if sum.count--; sum.count <= 0 {
		return wb.Delete(rcKey, nil)
	}
	if i := slices.Index(sum.users, r.User); i >= 0 {
		sum.users = slices.Delete(sum.users, i, i+1)
		// List the first reactor not listed yet, if any.
		it, err := wb.NewIter(&pebble.IterOptions{LowerBound: rxPrefix, UpperBound: prefixEnd(rxPrefix)})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if u := string(it.Key()[len(rxPrefix):]); !slices.Contains(sum.users, u) {
				sum.users = append(sum.users, u)
				break
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return wb.Set(rcKey, appendReactionSum(nil, &sum), nil)
}

// exists reports whether r holds key.
func exists(r pebble.Reader, key []byte) (bool, error) {
	_, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// histVer reads the version of the history entry at key.
func histVer(r pebble.Reader, key []byte) (uint64, bool, error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	ver, _, err := decodeHist(val)
	return ver, err == nil, err
}

// clearConv deletes c.User's history entries with c.Peer up to c.Upto,
// and their inbox entries.
func clearConv(wb *pebble.Batch, c store.Clear) error {
	if c.Upto < 0 {
		return nil
	}
	prefix := histPrefix(nil, c.User, c.Peer)
	upper := prefixEnd(prefix)
	if c.Upto < math.MaxInt64 {
		upper = histKey(nil, c.User, c.Peer, c.Upto+1)
	}
	it, err := wb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return err
	}
	var keys [][]byte
	var vers []uint64
	for ok := it.First(); ok; ok = it.Next() {
		ver, _, err := decodeHist(it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		keys = append(keys, bytes.Clone(it.Key()))
		vers = append(vers, ver)
	}
	if err := it.Close(); err != nil {
		return err
	}
	var buf []byte
	for i, k := range keys {
		_ = wb.Delete(k, nil)
		_ = wb.Delete(inboxKey(buf[:0], c.User, vers[i]), nil)
	}
	return nil
}

// recountConv sets user's conversation row with peer from the history
// entries left in wb: Last and LastTS the newest, Unread the incoming ones
// above ReadUpto; with none left, the row goes. No row: nothing.
func recountConv(wb *pebble.Batch, user, peer string) error {
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
	prefix := histPrefix(nil, user, peer)
	it, err := wb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return err
		}
		return wb.Delete(key, nil)
	}
	last := int64(suffixUint64(it.Key()))
	var unread int64
	for ok := true; ok && int64(suffixUint64(it.Key())) > row.ReadUpto; ok = it.Prev() {
		_, out, err := decodeHist(it.Value())
		if err != nil {
			return err
		}
		if !out {
			unread++
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if last != row.Last {
		mval, mcloser, err := wb.Get(msgKey(nil, last))
		if err != nil && !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		var m store.Message
		if err == nil {
			err = decodeMessage(mval, &m)
			_ = mcloser.Close()
			if err != nil {
				return fmt.Errorf("decode message %d: %w", last, err)
			}
		}
		row.Last, row.LastTS = last, m.TS
	}
	row.Unread = unread
	return wb.Set(key, appendConv(nil, &row), nil)
}

// getJSONFrom decodes the JSON value of key in r into v.
func getJSONFrom(r pebble.Reader, key []byte, v any) error {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return json.Unmarshal(val, v)
}

// ReactionsOf returns the reactions of the messages ids that have any,
// each message's by emoji ascending: rc/ rows only.
func (s *Store) ReactionsOf(ctx context.Context, ids []int64) (map[int64][]store.ReactionSum, error) {
	out := map[int64][]store.ReactionSum{}
	if len(ids) == 0 {
		return out, nil
	}
	if err := s.begin(ctx, "reactions"); err != nil {
		return nil, err
	}
	defer s.end()
	lower := []byte(pfxReactC)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("reactions: %w", err)
	}
	defer it.Close()
	var prefix []byte
	for i, id := range ids {
		if i%ctxEvery == ctxEvery-1 && ctx.Err() != nil {
			return nil, fmt.Errorf("reactions: %w", ctx.Err())
		}
		if id < 0 {
			continue
		}
		if _, done := out[id]; done {
			continue
		}
		prefix = reactionCountKey(prefix[:0], id, "")
		var sums []store.ReactionSum
		for ok := it.SeekGE(prefix); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			val, err := it.ValueAndErr()
			if err != nil {
				return nil, fmt.Errorf("reactions of %d: %w", id, err)
			}
			r, err := decodeReactionSum(val)
			if err != nil {
				return nil, fmt.Errorf("reactions of %d: %w", id, err)
			}
			sums = append(sums, store.ReactionSum{Emoji: string(it.Key()[len(prefix):]), Count: r.count, Users: r.users})
		}
		if err := it.Error(); err != nil {
			return nil, fmt.Errorf("reactions of %d: %w", id, err)
		}
		if len(sums) > 0 {
			out[id] = sums
		}
	}
	return out, nil
}

// UserReactions returns the emojis user has on msg, ascending.
func (s *Store) UserReactions(ctx context.Context, msg int64, user string) ([]string, error) {
	if err := s.begin(ctx, "user reactions"); err != nil {
		return nil, err
	}
	defer s.end()
	if msg < 0 {
		return nil, nil
	}
	prefix := userReactionsPrefix(nil, msg, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("reactions of %s on %d: %w", user, msg, err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reactions of %s on %d: %w", user, msg, err)
	}
	return out, nil
}

// Hidden returns which of ids user has hidden (group messages).
func (s *Store) Hidden(ctx context.Context, user string, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	if err := s.begin(ctx, "hidden"); err != nil {
		return nil, err
	}
	defer s.end()
	prefix := hiddenPrefix(nil, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("hidden of %s: %w", user, err)
	}
	defer it.Close()
	var key []byte
	for i, id := range ids {
		if i%ctxEvery == ctxEvery-1 && ctx.Err() != nil {
			return nil, fmt.Errorf("hidden of %s: %w", user, ctx.Err())
		}
		if id < 0 {
			continue
		}
		key = hiddenKey(key[:0], user, id)
		if it.SeekGE(key) && bytes.Equal(it.Key(), key) {
			out[id] = true
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("hidden of %s: %w", user, err)
	}
	return out, nil
}

// SetPeerRead moves PeerRead of user's row with peer forward, under the
// lock of every conversation row's read-modify-write.
func (s *Store) SetPeerRead(ctx context.Context, user, peer string, upto int64) error {
	if err := s.beginWrite(ctx, "set peer read"); err != nil {
		return err
	}
	defer s.end()
	key := convKey(nil, user, peer)
	s.conv.Lock()
	defer s.conv.Unlock()
	row, err := s.getConv(key)
	if err != nil {
		return fmt.Errorf("set peer read %s/%s: %w", user, peer, err)
	}
	if upto <= row.PeerRead {
		return nil
	}
	row.PeerRead = upto
	if err := s.set(key, appendConv(nil, &row), pebble.Sync); err != nil {
		return fmt.Errorf("set peer read %s/%s: %w", user, peer, err)
	}
	return nil
}

// PutUserSettings replaces user's settings:
//
//	us/{user}  usBinary(1) flags(1: 1 no read receipts, 2 accept from
//	           contacts, 4 presence to nobody) varint updated
func (s *Store) PutUserSettings(ctx context.Context, us store.UserSettings) error {
	if err := s.beginWrite(ctx, "put user settings"); err != nil {
		return err
	}
	defer s.end()
	if err := checkID("user", us.User); err != nil || us.User == "" {
		return fmt.Errorf("put user settings %q: %w", us.User, ErrInvalid)
	}
	var flags byte
	if us.NoReadReceipts {
		flags |= usNoRR
	}
	switch us.AcceptFrom {
	case store.AcceptContacts:
		flags |= usAcceptContacts
	case "":
	default:
		return fmt.Errorf("put user settings: accept from %q: %w", us.AcceptFrom, ErrInvalid)
	}
	switch us.Presence {
	case store.PresenceNobody:
		flags |= usPresenceNobody
	case "":
	default:
		return fmt.Errorf("put user settings: presence %q: %w", us.Presence, ErrInvalid)
	}
	val := binary.AppendVarint([]byte{usBinary, flags}, us.Updated)
	if err := s.set(userSettingsKey(us.User), val, pebble.Sync); err != nil {
		return fmt.Errorf("put user settings %s: %w", us.User, err)
	}
	return nil
}

// GetUserSettings returns user's settings, the zero ones if none.
func (s *Store) GetUserSettings(ctx context.Context, user string) (store.UserSettings, error) {
	us := store.UserSettings{User: user}
	if err := s.begin(ctx, "get user settings"); err != nil {
		return us, err
	}
	defer s.end()
	return s.getUserSettings(user)
}

// getUserSettings reads us/{user}: the zero settings if none.
func (s *Store) getUserSettings(user string) (store.UserSettings, error) {
	us := store.UserSettings{User: user}
	key := userSettingsKey(user)
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return us, nil
	}
	if err != nil {
		return us, fmt.Errorf("get user settings %s: %w", user, err)
	}
	defer closer.Close()
	if us, err = decodeUserSettings(key, val); err != nil {
		return store.UserSettings{User: user}, fmt.Errorf("get user settings %s: %w", user, err)
	}
	return us, nil
}

func decodeUserSettings(key, val []byte) (store.UserSettings, error) {
	if len(val) < 2 || val[0] != usBinary || val[1]&^usFlags != 0 {
		return store.UserSettings{}, errCorruptRow
	}
	us := store.UserSettings{User: string(key[len(pfxUserSet):]), NoReadReceipts: val[1]&usNoRR != 0}
	if val[1]&usAcceptContacts != 0 {
		us.AcceptFrom = store.AcceptContacts
	}
	if val[1]&usPresenceNobody != 0 {
		us.Presence = store.PresenceNobody
	}
	r := rowReader{val: val[2:]}
	us.Updated = r.varint()
	if r.bad || len(r.val) != 0 {
		return store.UserSettings{}, errCorruptRow
	}
	return us, nil
}
