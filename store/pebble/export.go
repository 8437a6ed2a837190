package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// OpenReadOnly opens the store in dir for reading only: nothing in dir is
// changed (no format stamp, no epoch, no compaction), so a store can be
// read whole for a migration and left as it was. It takes the directory's
// LOCK as Open does: a store in use by a running imqttd is refused with an
// error wrapping ErrInUse. A store of a newer format, or of one older than
// readsFrom (which only a read-write Open upgrades), is refused with
// store.ErrFormat. Writes through the returned Store fail.
func OpenReadOnly(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	dir, err := opts.absDirs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("open pebble %s read-only: %w", dir, err)
	}
	if opts.WALDir != "" {
		if err := checkWALDir(opts.fs, dir, opts.WALDir, true); err != nil {
			return nil, err
		}
	}
	s := &Store{dir: dir, opts: opts, ro: true, stop: make(chan struct{}), done: make(chan struct{})}
	s.health = newHealth(opts.Logger, opts.fs, dir, 0, opts.OnRefused)
	close(s.done) // no monitor: nothing to reopen, no disk to watch
	db, err := s.openPebble(true)
	// flock(2) of the LOCK file says EAGAIN; Pebble's own table of locks,
	// for a LOCK this process holds, says so only in words.
	if errors.Is(err, syscall.EAGAIN) || err != nil && strings.Contains(err.Error(), "lock held by current process") {
		return nil, fmt.Errorf("open pebble %s: %w (its LOCK is held): %w", dir, ErrInUse, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open pebble %s read-only: %w", dir, walOpenError(err))
	}
	s.db = db
	fail := func(err error) (*Store, error) {
		_ = db.Close()
		return nil, err
	}
	n := 1 // no stamp: written before stamps, format 1
	switch val, closer, err := db.Get([]byte(keyFormat)); {
	case err == nil:
		var perr error
		if n, perr = strconv.Atoi(string(val)); perr != nil {
			n = 0
		}
		_ = closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return fail(fmt.Errorf("read store format: %w", err))
	}
	switch {
	case n < 1:
		return fail(fmt.Errorf("%w: %s holds a store format no imqttd writes", store.ErrFormat, dir))
	case n > format:
		return fail(fmt.Errorf("%w: %s holds store format %d, newer than this imqttd's %d: use the release that wrote it "+
			"(or a later one)", store.ErrFormat, dir, n, format))
	case n < readsFrom: // read-only: it cannot be upgraded here
		return fail(fmt.Errorf("%w: %s holds store format %d, older than this imqttd's %d: start this imqttd on it "+
			"once (it upgrades the store in place), stop it, then read it", store.ErrFormat, dir, n, format))
	}
	val, closer, err := db.Get([]byte(keyEpoch))
	if err != nil {
		return fail(fmt.Errorf("read epoch of %s (is it an imqttd store?): %w", dir, err))
	}
	s.epoch = string(val)
	_ = closer.Close()
	return s, nil
}

// ErrInUse is returned by OpenReadOnly for a store another process has
// open (its LOCK is held): a running imqttd.
var ErrInUse = errors.New("store in use")

// Kind is one kind of row of the store, as Export reads it: its key
// prefix and how a key and value decode into a T. The kinds are the
// variables below; together they are everything the store holds but what
// is derived from them (history entries, the user-group index, the group
// change index, the by-user reaction index) and meta.
type Kind[T any] struct {
	Name   string
	prefix string
	decode func(key, val []byte) (T, error)
	// secret: the keys are not to be shown (a token's hash is the token's
	// lookup key)
	secret bool
}

// Reservation is a version counter (ReserveVersions): Next is the first
// version not yet reserved of Key.
type Reservation struct {
	Key  string
	Next uint64
}

// GroupLogEntry is one message of a group's log: seq to message ID.
type GroupLogEntry struct {
	Group string
	Seq   uint64
	MsgID int64
}

// The kinds of rows.
var (
	Users         = Kind[store.User]{"users", pfxUser, jsonRow[store.User], false}
	Tokens        = Kind[store.Token]{"tokens", pfxToken, jsonRow[store.Token], true}
	Messages      = Kind[store.Message]{"messages", pfxMsg, decodeMessageRow, false}
	Inbox         = Kind[store.Entry]{"inbox", pfxInbox, decodeInboxRow, false}
	Conversations = Kind[store.Conversation]{"conversations", pfxConv, decodeConv, false}
	Acks          = Kind[store.Ack]{"acks", pfxAck, decodeAck, false}
	Reservations  = Kind[Reservation]{"reservations", pfxReserve, decodeReservation, false}
	Grants        = Kind[store.Grant]{"grants", pfxGrant, decodeGrant, false}
	Groups        = Kind[store.Group]{"groups", pfxGroup, jsonRow[store.Group], false}
	Members       = Kind[store.Member]{"members", pfxMember, jsonRow[store.Member], false}
	Heads         = Kind[store.GroupHead]{"heads", pfxHead, decodeHeadRow, false}
	GroupLog      = Kind[GroupLogEntry]{"group_log", pfxGroupQ, decodeGroupLogRow, false}
	// Sessions are carried too (store/migrate copies them): a device
	// whose session a migration dropped would get no replay and, unlike
	// an SDK device, has no cursor of its own to sync from, so it would
	// silently miss what arrived while it was away. A Checkpoint copies
	// them with everything else; a restored copy's Restamp gives it a new
	// epoch, so its sessions' positions (of the old epoch) are not
	// trusted for a replay.
	Sessions = Kind[store.Session]{"sessions", pfxSession, decodeSession, false}
	// ConvSettings are users' mutes and pins (their cr/ index is derived).
	ConvSettings = Kind[store.ConvSettings]{"conv_settings", pfxConvSet, decodeConvSettings, false}
	// Push registrations and the outbox's jobs and items (pending and
	// done: a done item keeps a job expanded again from pushing it twice)
	// are carried so that a migration loses no push; claims are in memory
	// and are not. The token index (pt/), pq/ and px/ are derived.
	PushDevices = Kind[store.PushDevice]{"push_devices", pfxPushDev, jsonRow[store.PushDevice], false}
	PushJobs    = Kind[store.PushJob]{"push_jobs", pfxPushJob, decodePushJobRow, false}
	PushItems   = Kind[PushItemRow]{"push_items", pfxPushItm, decodePushItemRow, false}
	// WebhookEvents are the webhook outbox's events, carried so that a
	// migration loses none; their lanes' retry state and claims are in
	// memory and are not (the target attempts each lane's head anew).
	WebhookEvents = Kind[store.WebhookEvent]{"webhook_events", pfxWebhook, decodeWebhookRow, false}

	// The message lifecycle's rows (life.go). Change records are
	// Messages (Change set) and their entries Inbox rows (Change set);
	// the group change index (gc/) is derived from the change records of
	// the GroupLog (Group, Seq, Change.Count), and a head's message seq
	// is its MsgID's Seq. Reactions are each user's (Add true), and
	// ReactionSums each (message, emoji)'s count with the users it lists;
	// the by-user index (ru/) is derived from Reactions.
	Reactions    = Kind[store.Reaction]{"reactions", pfxReactX, decodeReactionRow, false}
	ReactionSums = Kind[ReactionSumRow]{"reaction_sums", pfxReactC, decodeReactionSumRow, false}
	// Hides are the group messages users hid (Group set); a 1:1 hide is
	// the absence of its entries.
	Hides        = Kind[store.Hide]{"hidden", pfxHidden, decodeHiddenRow, false}
	UserSettings = Kind[store.UserSettings]{"user_settings", pfxUserSet, decodeUserSettings, false}

	// The social graph (social.go): each side of a contact is a row of
	// its own (both are exported, so a half-copied pair is found by the
	// verify), blocks, and when users were last seen.
	Contacts  = Kind[store.Contact]{"contacts", pfxContact, decodeContact, false}
	Blocks    = Kind[store.Block]{"blocks", pfxBlock, decodeBlock, false}
	LastSeens = Kind[LastSeenRow]{"last_seen", pfxLastSeen, decodeLastSeen, false}
)

// ReactionSumRow is one message's reactions of one emoji.
type ReactionSumRow struct {
	MsgID int64
	store.ReactionSum
}

func decodeReactionRow(key, val []byte) (store.Reaction, error) {
	rest := key[len(pfxReactX):]
	if len(rest) < 8 { // the ID's 8 bytes may hold NULs: the emoji's end is after them
		return store.Reaction{}, errCorruptRow
	}
	i := bytes.IndexByte(rest[8:], sep) + 8
	if i < 9 {
		return store.Reaction{}, errCorruptRow
	}
	r := rowReader{val: val}
	ts := r.varint()
	if r.bad || len(r.val) != 0 {
		return store.Reaction{}, errCorruptRow
	}
	return store.Reaction{MsgID: int64(binary.BigEndian.Uint64(rest)), Emoji: string(rest[8:i]), User: string(rest[i+1:]),
		Add: true, TS: ts}, nil
}

func decodeReactionSumRow(key, val []byte) (ReactionSumRow, error) {
	rest := key[len(pfxReactC):]
	if len(rest) < 9 {
		return ReactionSumRow{}, errCorruptRow
	}
	r, err := decodeReactionSum(val)
	if err != nil {
		return ReactionSumRow{}, err
	}
	return ReactionSumRow{MsgID: int64(binary.BigEndian.Uint64(rest)),
		ReactionSum: store.ReactionSum{Emoji: string(rest[8:]), Count: r.count, Users: r.users}}, nil
}

func decodeHiddenRow(key, val []byte) (store.Hide, error) {
	user, id, err := splitPair(key, pfxHidden)
	if err != nil || len(id) != 8 {
		return store.Hide{}, errCorruptRow
	}
	return store.Hide{User: string(user), MsgID: int64(binary.BigEndian.Uint64(id)), Group: string(val)}, nil
}

// PushItemRow is a push item as stored: pending, or done at DoneAt.
type PushItemRow struct {
	store.PushItem
	Done   bool
	DoneAt int64
}

func decodePushJobRow(key, val []byte) (store.PushJob, error) {
	if len(key) != len(pfxPushJob)+8 || len(val) != 8 {
		return store.PushJob{}, errCorruptRow
	}
	return store.PushJob{MsgID: int64(suffixUint64(key)), Created: int64(binary.BigEndian.Uint64(val))}, nil
}

func decodePushItemRow(key, val []byte) (PushItemRow, error) {
	r, err := decodePushItem(key, val)
	return PushItemRow{PushItem: r.PushItem, Done: r.isDone, DoneAt: r.done}, err
}

// Export calls fn for each row of kind k in key order, starting after the
// key after (nil: from the first), with the row's key: the position to
// pass as after to resume behind it. It stops at fn's first error and
// returns it. A row that does not decode is an error naming its key. The
// rows are read from one snapshot.
func Export[T any](ctx context.Context, s *Store, k Kind[T], after []byte, fn func(key []byte, row T) error) error {
	if err := s.begin(ctx, "export "+k.Name); err != nil {
		return err
	}
	defer s.end()
	lower := []byte(k.prefix)
	if after != nil {
		if !bytes.HasPrefix(after, lower) {
			return fmt.Errorf("export %s: a position of another kind: %w", k.Name, ErrInvalid)
		}
		lower = append(append([]byte(nil), after...), 0) // the first key above after
	}
	upper := prefixEnd([]byte(k.prefix))
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("export %s: %w", k.Name, err)
	}
	defer it.Close()
	for n, ok := 1, it.First(); ok; n, ok = n+1, it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		row, err := k.decode(it.Key(), it.Value())
		if err != nil && k.secret {
			return fmt.Errorf("export %s: row %d: %w", k.Name, n, err)
		}
		if err != nil {
			return fmt.Errorf("export %s: key %q: %w", k.Name, it.Key(), err)
		}
		if err := fn(bytes.Clone(it.Key()), row); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("export %s: %w", k.Name, err)
	}
	return nil
}

// Count returns how many rows of kind k the store holds.
func Count[T any](ctx context.Context, s *Store, k Kind[T]) (int64, error) {
	if err := s.begin(ctx, "count "+k.Name); err != nil {
		return 0, err
	}
	defer s.end()
	upper := prefixEnd([]byte(k.prefix))
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte(k.prefix), UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", k.Name, err)
	}
	defer it.Close()
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("count %s: %w", k.Name, err)
	}
	return n, nil
}

func jsonRow[T any](_, val []byte) (T, error) {
	var v T
	err := json.Unmarshal(val, &v)
	return v, err
}

func decodeMessageRow(_, val []byte) (store.Message, error) {
	var m store.Message
	err := decodeMessage(val, &m)
	return m, err
}

// splitPair splits {prefix}{a}\x00{b} into a and b.
func splitPair(key []byte, prefix string) (a, b []byte, err error) {
	rest := key[len(prefix):]
	i := bytes.IndexByte(rest, sep)
	if i < 0 {
		return nil, nil, errors.New("no separator")
	}
	return rest[:i], rest[i+1:], nil
}

func decodeInboxRow(key, val []byte) (store.Entry, error) {
	user, ver, err := splitPair(key, pfxInbox)
	if err != nil || len(ver) != 8 {
		return store.Entry{}, fmt.Errorf("corrupt inbox key")
	}
	return decodeEntry(string(user), key, val)
}

func decodeReservation(key, val []byte) (Reservation, error) {
	if len(val) != 8 {
		return Reservation{}, fmt.Errorf("corrupt mark of %d bytes", len(val))
	}
	return Reservation{Key: string(key[len(pfxReserve):]), Next: binary.BigEndian.Uint64(val)}, nil
}

func decodeGrant(key, val []byte) (store.Grant, error) {
	media, principal, err := splitPair(key, pfxGrant)
	if err != nil {
		return store.Grant{}, err
	}
	g := store.Grant{Media: string(media), Principal: string(principal)}
	switch len(val) {
	case 0: // from before the grant kept its message
	case 8:
		g.MsgID = int64(binary.BigEndian.Uint64(val))
	default:
		return g, fmt.Errorf("corrupt grant of %d bytes", len(val))
	}
	return g, nil
}

func decodeHeadRow(key, val []byte) (store.GroupHead, error) {
	h, err := decodeHead(string(key[len(pfxHead):]), val)
	return h.GroupHead, err
}

func decodeGroupLogRow(key, val []byte) (GroupLogEntry, error) {
	group, seq, err := splitPair(key, pfxGroupQ)
	if err != nil || len(seq) != 8 || len(val) != 8 {
		return GroupLogEntry{}, errors.New("corrupt group log entry")
	}
	return GroupLogEntry{Group: string(group), Seq: binary.BigEndian.Uint64(seq), MsgID: int64(binary.BigEndian.Uint64(val))}, nil
}
