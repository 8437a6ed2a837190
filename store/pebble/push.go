package pebble

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// The push outbox (store.Push) in rows (keys.go):
//
//	pd/{user}\x00{device}                    the registration, JSON
//	pt/{provider}\x00{token}                 user\x00device: who holds a token
//	pj/{msgid}                               a job: created(8)
//	pi/{user}\x00{device}\x00{msgid}          an item: pushItemBinary(1)
//	                                         created(8) due(8) attempts(4)
//	                                         flags(1: 1 mention, 2 done) done(8)
//	pq/{due}{user}\x00{device}\x00{msgid}     a pending item, by Due
//	px/{done}{user}\x00{device}\x00{msgid}    a done item, by when
//
// Registrations are JSON like users and tokens: few, rarely written, and
// of optional string fields. Items are fixed-size binary, as acks and
// conversation rows are: one per recipient device of every message, so a
// message to a large group writes thousands, and each is read back by
// every write that moves it. pq/ is what DuePushDevices and PushDepth
// scan (pending items only, earliest Due first); px/ is what SweepPush
// scans (done items only, oldest first), so neither walks the other's.
//
// This store is one node, so claims of jobs and devices live in memory
// (pushState): a restart releases them all, which is what their leases
// would do anyway, a little later.
//
// pj/ and pq/ are queues: rows come in at one end and are deleted at the
// other, and a deleted row stays a tombstone until compaction. A scan from
// the prefix's start walks every tombstone of the rows done since: at
// 12,000 messages/s that was 14 % of the node's CPU (ClaimPushJobs' and
// DuePushDevices' Iterator.First, bench/push.sh's profile). So the store
// remembers a floor for each (pushState.jobFloor, dueFloor) below which no
// row lives, and seeks there.

const pushItemBinary = 0x01

// pushItemLen is the length of an item's value.
const pushItemLen = 1 + 8 + 8 + 4 + 1 + 8

// pushState is the Store's push state: a lock for the rows' read-modify-
// writes, and the claims.
type pushState struct {
	// rows serializes the read-modify-writes of push rows, from their
	// reads to their durable write.
	rows sync.Mutex
	// mu guards the claims; ClaimPushJobs and DeletePushJobs hold it
	// across their reads and writes of jobs, so a job deleted is never
	// claimed after.
	mu      sync.Mutex
	jobs    map[int64]pushClaim
	devices map[store.SessionID]pushClaim
	// jobFloor and dueFloor (under mu) are at most the lowest job ID in
	// pj/ and the earliest Due in pq/. A scan raises one to the first row
	// it finds (math.MaxInt64 if none); a write of a row lowers it, after
	// its commit: a scan's iterator made before that commit, which does
	// not see the row, cannot raise the floor past it afterwards. Zero
	// values: unknown, scan from the start (a store just opened).
	jobFloor, dueFloor floor
}

// floor is a lower bound of a queue's keys; its zero value is none.
type floor struct {
	known bool
	at    int64
}

// lower makes f at most at.
func (f *floor) lower(at int64) {
	if f.known && at < f.at {
		f.at = at
	}
}

// raise sets f to the first row a scan from f found (found false: none).
func (f *floor) raise(at int64, found bool) {
	if !found {
		at = math.MaxInt64
	}
	f.known, f.at = true, at
}

// lowerFloors lowers the floors to rows just committed; pending are the
// pq/ Dues written (a Retry's included).
func (s *Store) lowerFloors(jobs []store.PushJob, dues []int64) {
	if len(jobs) == 0 && len(dues) == 0 {
		return
	}
	s.push.mu.Lock()
	defer s.push.mu.Unlock()
	for _, j := range jobs {
		s.push.jobFloor.lower(j.MsgID)
	}
	for _, d := range dues {
		s.push.dueFloor.lower(d)
	}
}

// pushClaim is one holder's lease.
type pushClaim struct {
	holder string
	until  int64 // unix ms
}

// heldBy reports whether the claim holds at now.
func (c pushClaim) heldBy(now int64) bool { return c.holder != "" && c.until > now }

// flipTime is t as 8 bytes whose byte order is numeric order.
func flipTime(t int64) uint64 { return uint64(t) ^ 1<<63 }

func pushDevPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxPushDev...)
	buf = append(buf, user...)
	return append(buf, sep)
}

func pushDevKey(buf []byte, user, device string) []byte {
	return append(pushDevPrefix(buf, user), device...)
}

func pushTokKey(buf []byte, provider, token string) []byte {
	buf = append(buf, pfxPushTok...)
	buf = append(buf, provider...)
	buf = append(buf, sep)
	return append(buf, token...)
}

func pushJobKey(buf []byte, id int64) []byte {
	buf = append(buf, pfxPushJob...)
	return binary.BigEndian.AppendUint64(buf, uint64(id))
}

// pushItemUserPrefix is pi/{user}\x00: every item of user's devices.
func pushItemUserPrefix(buf []byte, user string) []byte {
	buf = append(buf, pfxPushItm...)
	buf = append(buf, user...)
	return append(buf, sep)
}

// pushItemPrefix is pi/{user}\x00{device}\x00: every item of one device.
func pushItemPrefix(buf []byte, user, device string) []byte {
	buf = append(pushItemUserPrefix(buf, user), device...)
	return append(buf, sep)
}

func pushItemKey(buf []byte, user, device string, id int64) []byte {
	return binary.BigEndian.AppendUint64(pushItemPrefix(buf, user, device), uint64(id))
}

// pushTimeKey is a pq/ or px/ key: {pfx}{t}{user}\x00{device}\x00{msgid}.
func pushTimeKey(buf []byte, pfx string, t int64, user, device string, id int64) []byte {
	buf = append(buf, pfx...)
	buf = binary.BigEndian.AppendUint64(buf, flipTime(t))
	buf = append(buf, user...)
	buf = append(buf, sep)
	buf = append(buf, device...)
	buf = append(buf, sep)
	return binary.BigEndian.AppendUint64(buf, uint64(id))
}

// parseTimeKey reads a pq/ or px/ key.
func parseTimeKey(key []byte, pfx string) (t int64, user, device string, id int64, err error) {
	if len(key) < len(pfx)+8+2+8 {
		return 0, "", "", 0, errCorruptRow
	}
	t = int64(binary.BigEndian.Uint64(key[len(pfx):]) ^ 1<<63)
	mid := key[len(pfx)+8 : len(key)-8] // user\x00device\x00
	u, d, ok := cutSep(mid)
	if !ok || len(d) == 0 || d[len(d)-1] != sep {
		return 0, "", "", 0, errCorruptRow
	}
	return t, string(u), string(d[:len(d)-1]), int64(suffixUint64(key)), nil
}

func cutSep(b []byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

// pushItemRow is an item as stored: the item, and whether and when it
// was done.
type pushItemRow struct {
	store.PushItem
	isDone bool
	done   int64 // unix ms
}

const (
	pushMention = 1 << iota
	pushDone
)

func appendPushItem(buf []byte, r *pushItemRow) []byte {
	buf = append(buf, pushItemBinary)
	buf = binary.BigEndian.AppendUint64(buf, uint64(r.Created))
	buf = binary.BigEndian.AppendUint64(buf, uint64(r.Due))
	buf = binary.BigEndian.AppendUint32(buf, uint32(r.Attempts))
	var flags byte
	if r.Mention {
		flags |= pushMention
	}
	if r.isDone {
		flags |= pushDone
	}
	buf = append(buf, flags)
	return binary.BigEndian.AppendUint64(buf, uint64(r.done))
}

// decodePushItem reads the item row of key (pi/{user}\x00{device}\x00{msgid}).
func decodePushItem(key, val []byte) (pushItemRow, error) {
	if len(val) != pushItemLen || val[0] != pushItemBinary || len(key) < len(pfxPushItm)+8+2 {
		return pushItemRow{}, errCorruptRow
	}
	u, d, ok := cutSep(key[len(pfxPushItm) : len(key)-8])
	if !ok || len(d) == 0 || d[len(d)-1] != sep {
		return pushItemRow{}, errCorruptRow
	}
	r := pushItemRow{PushItem: store.PushItem{
		User: string(u), Device: string(d[:len(d)-1]), MsgID: int64(suffixUint64(key)),
		Created:  int64(binary.BigEndian.Uint64(val[1:])),
		Due:      int64(binary.BigEndian.Uint64(val[9:])),
		Attempts: int(int32(binary.BigEndian.Uint32(val[17:]))),
		Mention:  val[21]&pushMention != 0,
	}, isDone: val[21]&pushDone != 0, done: int64(binary.BigEndian.Uint64(val[22:]))}
	return r, nil
}

// getPushItem reads one item; found is false if there is none.
func (s *Store) getPushItem(key []byte) (r pushItemRow, found bool, err error) {
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	defer closer.Close()
	r, err = decodePushItem(key, val)
	return r, err == nil, err
}

// getPushDevice reads a registration.
func (s *Store) getPushDevice(user, device string) (store.PushDevice, error) {
	var d store.PushDevice
	if err := s.getJSON(pushDevKey(nil, user, device), &d); err != nil {
		return store.PushDevice{}, err
	}
	return d, nil
}

// checkPushDevice rejects what the key layout cannot hold, and a
// registration with an empty field that names it.
func checkPushDevice(d *store.PushDevice) error {
	if err := checkSessionID(d.User, d.Device); err != nil {
		return err
	}
	if d.User == "" || d.Device == "" || d.Provider == "" || d.Token == "" {
		return fmt.Errorf("push registration without user, device, provider or token: %w", ErrInvalid)
	}
	return checkID("provider", d.Provider)
}

// PutPushDevice registers d (store.Push), in one synced batch: the
// registration, its token's index row, and the removal of what it
// replaces (its old token's index row; a same-user device that held the
// token, with its items).
func (s *Store) PutPushDevice(ctx context.Context, d store.PushDevice) error {
	if err := s.beginWrite(ctx, "put push device"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPushDevice(&d); err != nil {
		return fmt.Errorf("put push device: %w", err)
	}
	val, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	tok := pushTokKey(nil, d.Provider, d.Token)
	switch owner, closer, err := s.db.Get(tok); {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("put push device %s/%s: read token index: %w", d.User, d.Device, err)
	default:
		u, dv, ok := cutSep(owner)
		user, device := string(u), string(dv) // copied: owner is Get's, valid until Close
		_ = closer.Close()
		switch {
		case !ok:
			return fmt.Errorf("put push device %s/%s: token index: %w", d.User, d.Device, errCorruptRow)
		case user != d.User:
			return fmt.Errorf("put push device %s/%s: the token is another user's: %w", d.User, d.Device, store.ErrExists)
		case device != d.Device:
			// The same user's other device: it loses the token (the
			// app's device ID changed), and with it its registration.
			if err := s.deletePushDevice(ctx, wb, user, device); err != nil {
				return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
			}
		}
	}
	switch old, err := s.getPushDevice(d.User, d.Device); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
	default:
		if old.LastPush > d.LastPush { // kept, as MongoDB's $max keeps it
			d.LastPush = old.LastPush
			if val, err = json.Marshal(d); err != nil {
				return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
			}
		}
		if old.Provider != d.Provider || old.Token != d.Token {
			if err := s.deleteTokenIndex(wb, &old); err != nil {
				return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
			}
		}
	}
	_ = wb.Set(pushDevKey(nil, d.User, d.Device), val, nil)
	_ = wb.Set(tok, pushOwner(d.User, d.Device), nil)
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("put push device %s/%s: %w", d.User, d.Device, err)
	}
	s.recountPushUser(ctx, d.User)
	return nil
}

func pushOwner(user, device string) []byte {
	v := append([]byte(user), sep)
	return append(v, device...)
}

// deleteTokenIndex adds to wb the removal of d's token index row, if it
// still names d's device.
func (s *Store) deleteTokenIndex(wb *pebble.Batch, d *store.PushDevice) error {
	key := pushTokKey(nil, d.Provider, d.Token)
	owner, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read token index: %w", err)
	}
	mine := string(owner) == string(pushOwner(d.User, d.Device))
	_ = closer.Close()
	if mine {
		_ = wb.Delete(key, nil)
	}
	return nil
}

// deletePushDevice adds to wb the removal of a registration (if any), its
// token's index row and the device's items. The caller holds push.rows.
func (s *Store) deletePushDevice(ctx context.Context, wb *pebble.Batch, user, device string) error {
	switch d, err := s.getPushDevice(user, device); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := s.deleteTokenIndex(wb, &d); err != nil {
			return err
		}
		_ = wb.Delete(pushDevKey(nil, user, device), nil)
	}
	return s.deletePushItems(ctx, wb, pushItemPrefix(nil, user, device))
}

// deletePushItems adds to wb the removal of the items under prefix and of
// their index rows.
func (s *Store) deletePushItems(ctx context.Context, wb *pebble.Batch, prefix []byte) error {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	var key []byte
	for ok := it.First(); ok; ok = it.Next() {
		r, err := decodePushItem(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("push item %q: %w", it.Key(), err)
		}
		key = r.indexKey(key[:0])
		_ = wb.Delete(key, nil)
		_ = wb.Delete(it.Key(), nil)
	}
	return errors.Join(it.Error(), it.Close())
}

// indexKey is the item's pq/ key if it is pending, its px/ key if done.
func (r *pushItemRow) indexKey(buf []byte) []byte {
	if r.isDone {
		return pushTimeKey(buf, pfxPushDon, r.done, r.User, r.Device, r.MsgID)
	}
	return pushTimeKey(buf, pfxPushDue, r.Due, r.User, r.Device, r.MsgID)
}

// GetPushDevice reads a registration.
func (s *Store) GetPushDevice(ctx context.Context, user, device string) (store.PushDevice, error) {
	if err := s.begin(ctx, "get push device"); err != nil {
		return store.PushDevice{}, err
	}
	defer s.end()
	if err := checkSessionID(user, device); err != nil {
		return store.PushDevice{}, fmt.Errorf("get push device: %w", err)
	}
	d, err := s.getPushDevice(user, device)
	if err != nil {
		return store.PushDevice{}, fmt.Errorf("get push device %s/%s: %w", user, device, err)
	}
	return d, nil
}

// PushDevices reads the registrations of users: one prefix scan each.
func (s *Store) PushDevices(ctx context.Context, users []string) ([]store.PushDevice, error) {
	if err := s.begin(ctx, "push devices"); err != nil {
		return nil, err
	}
	defer s.end()
	users = slices.Compact(slices.Sorted(slices.Values(users)))
	var out []store.PushDevice
	for _, user := range users {
		if err := checkID("user", user); err != nil {
			return nil, fmt.Errorf("push devices: %w", err)
		}
		prefix := pushDevPrefix(nil, user)
		it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, fmt.Errorf("push devices of %s: %w", user, err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			var d store.PushDevice
			if err := json.Unmarshal(it.Value(), &d); err != nil {
				_ = it.Close()
				return nil, fmt.Errorf("push devices of %s: decode: %w", user, err)
			}
			out = append(out, d)
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, fmt.Errorf("push devices of %s: %w", user, err)
		}
	}
	return out, nil
}

// DeletePushDevice removes a registration and its items in one synced
// batch (store.Push).
func (s *Store) DeletePushDevice(ctx context.Context, user, device, token string) error {
	if err := s.begin(ctx, "delete push device"); err != nil {
		return err
	}
	defer s.end()
	// Like DeleteToken, let a removal through while space is low.
	if err := s.health.failure(); err != nil {
		return fmt.Errorf("delete push device: %w", err)
	}
	if err := checkSessionID(user, device); err != nil {
		return fmt.Errorf("delete push device: %w", err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	d, err := s.getPushDevice(user, device)
	if err != nil {
		return fmt.Errorf("delete push device %s/%s: %w", user, device, err)
	}
	if token != "" && d.Token != token {
		return fmt.Errorf("delete push device %s/%s: registered with another token since: %w", user, device, store.ErrNotFound)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	if err := s.deletePushDevice(ctx, wb, user, device); err != nil {
		return fmt.Errorf("delete push device %s/%s: %w", user, device, err)
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("delete push device %s/%s: %w", user, device, err)
	}
	s.recountPushUser(ctx, user)
	return nil
}

// DeleteUserPushDevices removes every registration of user and every item
// of their devices, in one synced batch.
func (s *Store) DeleteUserPushDevices(ctx context.Context, user string) error {
	if err := s.begin(ctx, "delete user push devices"); err != nil {
		return err
	}
	defer s.end()
	if err := s.health.failure(); err != nil {
		return fmt.Errorf("delete user push devices: %w", err)
	}
	if err := checkID("user", user); err != nil {
		return fmt.Errorf("delete user push devices: %w", err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	prefix := pushDevPrefix(nil, user)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("delete push devices of %s: %w", user, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		var d store.PushDevice
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			_ = it.Close()
			return fmt.Errorf("delete push devices of %s: decode: %w", user, err)
		}
		if err := s.deleteTokenIndex(wb, &d); err != nil {
			_ = it.Close()
			return fmt.Errorf("delete push devices of %s: %w", user, err)
		}
		_ = wb.Delete(it.Key(), nil)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("delete push devices of %s: %w", user, err)
	}
	if err := s.deletePushItems(ctx, wb, pushItemUserPrefix(nil, user)); err != nil {
		return fmt.Errorf("delete push items of %s: %w", user, err)
	}
	if wb.Empty() {
		return nil
	}
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("delete push devices of %s: %w", user, err)
	}
	s.recountPushUser(ctx, user)
	return nil
}

// SetLastPush records the device's last notification. It is written
// without sync: the worker's DonePushItems of the same notification,
// synced, makes it durable (the log is one sequence), and a LastPush lost
// in a crash costs at most one notification inside the collapse window.
func (s *Store) SetLastPush(ctx context.Context, user, device string, at int64) error {
	if err := s.beginWrite(ctx, "set last push"); err != nil {
		return err
	}
	defer s.end()
	if err := checkSessionID(user, device); err != nil {
		return fmt.Errorf("set last push: %w", err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	d, err := s.getPushDevice(user, device)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set last push %s/%s: %w", user, device, err)
	}
	d.LastPush = at
	val, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("set last push %s/%s: %w", user, device, err)
	}
	if err := s.set(pushDevKey(nil, user, device), val, pebble.NoSync); err != nil {
		return fmt.Errorf("set last push %s/%s: %w", user, device, err)
	}
	return nil
}

// addPushJobs adds to wb the jobs not stored yet (Commit's part). It
// reads the stored jobs with IDs between the batch's lowest and highest
// in one iteration, one seek per batch rather than a Get per message
// (BenchmarkCommit/push=on measures it): a batch's messages are new,
// their IDs above every job stored but those of batches committed at the
// same time, so the range is nearly always empty.
func (s *Store) addPushJobs(wb *pebble.Batch, jobs []store.PushJob, buf []byte) error {
	if len(jobs) == 0 {
		return nil
	}
	lo, hi := jobs[0].MsgID, jobs[0].MsgID
	for _, j := range jobs[1:] {
		lo, hi = min(lo, j.MsgID), max(hi, j.MsgID)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pushJobKey(nil, lo), UpperBound: pushJobKey(nil, hi+1)})
	if err != nil {
		return fmt.Errorf("read push jobs: %w", err)
	}
	var stored map[int64]bool
	for ok := it.First(); ok; ok = it.Next() {
		if stored == nil {
			stored = make(map[int64]bool)
		}
		stored[int64(suffixUint64(it.Key()))] = true
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("read push jobs: %w", err)
	}
	for _, j := range jobs {
		if stored[j.MsgID] {
			continue // there already: left as it is
		}
		buf = pushJobKey(buf[:0], j.MsgID)
		n := len(buf)
		buf = binary.BigEndian.AppendUint64(buf, uint64(j.Created))
		_ = wb.Set(buf[:n], buf[n:], nil)
	}
	return nil
}

// ClaimPushJobs holds up to n unheld jobs, oldest message first: one scan
// of pj/ in key order (message ID order), under push.mu.
func (s *Store) ClaimPushJobs(ctx context.Context, holder string, now, until int64, n int) ([]store.PushJob, error) {
	if err := s.begin(ctx, "claim push jobs"); err != nil {
		return nil, err
	}
	defer s.end()
	if n <= 0 {
		return nil, nil
	}
	s.push.mu.Lock()
	defer s.push.mu.Unlock()
	prefix := []byte(pfxPushJob)
	lower := prefix
	if f := s.push.jobFloor; f.known {
		if f.at == math.MaxInt64 {
			return nil, nil // none
		}
		lower = pushJobKey(nil, max(f.at, 0))
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("claim push jobs: %w", err)
	}
	var out []store.PushJob
	first := true
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		key, val := it.Key(), it.Value()
		if len(key) != len(pfxPushJob)+8 || len(val) != 8 {
			_ = it.Close()
			return nil, fmt.Errorf("claim push jobs: job %q: %w", key, errCorruptRow)
		}
		id := int64(suffixUint64(key))
		if first {
			s.push.jobFloor.raise(id, true)
			first = false
		}
		if s.push.jobs[id].heldBy(now) {
			continue
		}
		out = append(out, store.PushJob{MsgID: id, Created: int64(binary.BigEndian.Uint64(val))})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		s.push.jobFloor = floor{} // not known after all
		return nil, fmt.Errorf("claim push jobs: %w", err)
	}
	if first {
		s.push.jobFloor.raise(0, false)
	}
	if s.push.jobs == nil {
		s.push.jobs = make(map[int64]pushClaim)
	}
	for _, j := range out {
		s.push.jobs[j.MsgID] = pushClaim{holder, until}
	}
	return out, nil
}

// DeletePushJobs removes jobs and their claims, in one batch not synced on
// its own (the next synced write, any commit of messages, makes it
// durable). The log is one sequence: a delete that a crash loses takes the
// items written before it along, and the job, durable with its message,
// is expanded again; a delete that survives has its items with it.
func (s *Store) DeletePushJobs(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "delete push jobs"); err != nil {
		return err
	}
	defer s.end()
	s.push.mu.Lock() // not between a claimer's scan and its claims
	defer s.push.mu.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	var key []byte
	for _, id := range ids {
		key = pushJobKey(key[:0], id)
		_ = wb.Delete(key, nil)
	}
	if err := s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) }); err != nil {
		return fmt.Errorf("delete push jobs: %w", err)
	}
	for _, id := range ids {
		delete(s.push.jobs, id)
	}
	return nil
}

// checkPushItems rejects an item the key layout cannot hold.
func checkPushItems(items []store.PushItem) error {
	for i := range items {
		if err := checkSessionID(items[i].User, items[i].Device); err != nil {
			return err
		}
	}
	return nil
}

// batchPushItems adds to wb each item that keep takes (nil: all), once,
// with its pq/ row, and returns their Dues (for the floor). With read, an
// item already stored, pending or done, is left as it is (a read each);
// without, the caller knows none is. The caller holds push.rows.
func (s *Store) batchPushItems(ctx context.Context, wb *pebble.Batch, items []store.PushItem, keep func(*store.PushItem) bool, read bool) ([]int64, error) {
	added := make(map[string]bool, len(items)) // an item twice in items
	var key, val []byte
	var dues []int64
	for i := range items {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r := pushItemRow{PushItem: items[i]}
		if keep != nil && !keep(&r.PushItem) {
			continue
		}
		key = pushItemKey(key[:0], r.User, r.Device, r.MsgID)
		if added[string(key)] {
			continue
		}
		if read {
			_, found, err := s.getPushItem(key)
			if err != nil {
				return nil, fmt.Errorf("read %s/%s %d: %w", r.User, r.Device, r.MsgID, err)
			}
			if found {
				continue
			}
		}
		added[string(key)] = true
		val = appendPushItem(val[:0], &r)
		_ = wb.Set(key, val, nil)
		key = r.indexKey(key[:0])
		_ = wb.Set(key, nil, nil)
		dues = append(dues, r.Due)
	}
	return dues, nil
}

// ExpandPushJobs writes the items of the jobs holder holds and deletes
// those jobs in one batch (store.Push), not synced on its own (the next
// synced write, any commit of messages, makes it durable; a crash before
// loses both, and the job is expanded again). A held job is there and
// its items are not (they go in the same batch as its delete), so they
// are written without the read AddPushItems makes of each: with a push
// item per message that read was a third of the outbox's cost.
func (s *Store) ExpandPushJobs(ctx context.Context, holder string, now int64, ids []int64, items []store.PushItem) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "expand push jobs"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPushItems(items); err != nil {
		return fmt.Errorf("expand push jobs: %w", err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	s.push.mu.Lock()
	held := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if c := s.push.jobs[id]; c.holder == holder && c.heldBy(now) {
			held[id] = true
		}
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	dues, err := s.batchPushItems(ctx, wb, items, func(it *store.PushItem) bool { return held[it.MsgID] }, false)
	if err != nil {
		s.push.mu.Unlock()
		return fmt.Errorf("expand push jobs: %w", err)
	}
	var key []byte
	for id := range held {
		key = pushJobKey(key[:0], id)
		_ = wb.Delete(key, nil)
	}
	err = s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) })
	if err == nil {
		for id := range held {
			delete(s.push.jobs, id)
		}
	}
	s.push.mu.Unlock()
	if err != nil {
		return fmt.Errorf("expand push jobs: %w", err)
	}
	s.lowerFloors(nil, dues)
	return nil
}

// AddPushItems writes the items not stored yet, each with its pq/ row, in
// one batch, not synced on its own: the log is one sequence, so whatever
// makes the job's delete (DeletePushJobs, after it) durable makes these
// durable first. (A job is never gone while its items are not.)
func (s *Store) AddPushItems(ctx context.Context, items []store.PushItem) error {
	if len(items) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "add push items"); err != nil {
		return err
	}
	defer s.end()
	if err := checkPushItems(items); err != nil {
		return fmt.Errorf("add push items: %w", err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	dues, err := s.batchPushItems(ctx, wb, items, nil, true)
	if err != nil {
		return fmt.Errorf("add push items: %w", err)
	}
	if wb.Empty() {
		return nil
	}
	if err := s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) }); err != nil {
		return fmt.Errorf("add push items: %w", err)
	}
	s.lowerFloors(nil, dues)
	return nil
}

// DuePushDevices scans pq/ from the earliest Due up to now, skipping held
// devices and devices already taken. A held device's items are walked
// past on every call, so a device held with a large backlog costs a
// longer scan; a claim lasts one send.
func (s *Store) DuePushDevices(ctx context.Context, now int64, n int) ([]store.SessionID, error) {
	if err := s.begin(ctx, "due push devices"); err != nil {
		return nil, err
	}
	defer s.end()
	if n <= 0 {
		return nil, nil
	}
	s.push.mu.Lock() // before the iterator: see pushState.dueFloor
	defer s.push.mu.Unlock()
	prefix := []byte(pfxPushDue)
	lower := prefix
	if f := s.push.dueFloor; f.known {
		if f.at > now {
			return nil, nil // nothing due yet
		}
		lower = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), flipTime(f.at))
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("due push devices: %w", err)
	}
	var out []store.SessionID
	seen := make(map[store.SessionID]bool)
	first := true
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		due, user, device, _, err := parseTimeKey(it.Key(), pfxPushDue)
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("due push devices: key %q: %w", it.Key(), err)
		}
		if first {
			s.push.dueFloor.raise(due, true)
			first = false
		}
		if due > now {
			break
		}
		id := store.SessionID{User: user, Device: device}
		if seen[id] {
			continue
		}
		seen[id] = true
		if !s.push.devices[id].heldBy(now) {
			out = append(out, id)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		s.push.dueFloor = floor{}
		return nil, fmt.Errorf("due push devices: %w", err)
	}
	if first {
		s.push.dueFloor.raise(0, false)
	}
	return out, nil
}

// ClaimPushDevice holds the device for holder (store.Push), in memory.
func (s *Store) ClaimPushDevice(ctx context.Context, user, device, holder string, now, until int64) (bool, error) {
	if err := s.begin(ctx, "claim push device"); err != nil {
		return false, err
	}
	defer s.end()
	id := store.SessionID{User: user, Device: device}
	s.push.mu.Lock()
	defer s.push.mu.Unlock()
	if c := s.push.devices[id]; c.holder != holder && c.heldBy(now) {
		return false, nil
	}
	if s.push.devices == nil {
		s.push.devices = make(map[store.SessionID]pushClaim)
	}
	s.push.devices[id] = pushClaim{holder, until}
	return true, nil
}

// ReleasePushDevice ends holder's claim of the device.
func (s *Store) ReleasePushDevice(ctx context.Context, user, device, holder string) error {
	if err := s.begin(ctx, "release push device"); err != nil {
		return err
	}
	defer s.end()
	id := store.SessionID{User: user, Device: device}
	s.push.mu.Lock()
	defer s.push.mu.Unlock()
	if s.push.devices[id].holder == holder {
		delete(s.push.devices, id)
	}
	return nil
}

// PendingPushItems scans the device's items, by message ID, keeping the
// pending ones.
func (s *Store) PendingPushItems(ctx context.Context, user, device string) ([]store.PushItem, error) {
	if err := s.begin(ctx, "pending push items"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := checkSessionID(user, device); err != nil {
		return nil, fmt.Errorf("pending push items: %w", err)
	}
	prefix := pushItemPrefix(nil, user, device)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("pending push items of %s/%s: %w", user, device, err)
	}
	var out []store.PushItem
	for ok := it.First(); ok; ok = it.Next() {
		r, err := decodePushItem(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("pending push items of %s/%s: %w", user, device, err)
		}
		if !r.isDone {
			out = append(out, r.PushItem)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("pending push items of %s/%s: %w", user, device, err)
	}
	return out, nil
}

// updatePushItems rewrites the device's pending items among ids by fn, in
// one batch, moving their index rows. The batch is not synced on its own:
// the next synced write (any commit of messages) makes it durable. A
// push worker marks a device's items done or retried for every
// notification, 256 at once: a sync each, under rows' lock, would bound
// a node's pushes by the disk's fsync rate and put them in the commits'
// way. What a machine crash may lose is a mark of the last moment: the
// item is pushed again after the restart, as after a lease (docs/http.md).
func (s *Store) updatePushItems(ctx context.Context, op, user, device string, ids []int64, fn func(r *pushItemRow)) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, op); err != nil {
		return err
	}
	defer s.end()
	if err := checkSessionID(user, device); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	wb := s.db.NewBatch()
	defer wb.Close()
	var key, ix, val []byte
	var dues []int64
	moved := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if moved[id] {
			continue
		}
		key = pushItemKey(key[:0], user, device, id)
		r, found, err := s.getPushItem(key)
		if err != nil {
			return fmt.Errorf("%s %s/%s %d: %w", op, user, device, id, err)
		}
		if !found || r.isDone {
			continue
		}
		moved[id] = true
		ix = r.indexKey(ix[:0])
		_ = wb.Delete(ix, nil)
		fn(&r)
		ix = r.indexKey(ix[:0])
		_ = wb.Set(ix, nil, nil)
		if !r.isDone {
			dues = append(dues, r.Due)
		}
		val = appendPushItem(val[:0], &r)
		_ = wb.Set(key, val, nil)
	}
	if wb.Empty() {
		return nil
	}
	if err := s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) }); err != nil {
		return fmt.Errorf("%s %s/%s: %w", op, user, device, err)
	}
	s.lowerFloors(nil, dues)
	return nil
}

// DonePushItems marks the device's pending items among ids done at at:
// each leaves pq/ for px/.
func (s *Store) DonePushItems(ctx context.Context, user, device string, ids []int64, at int64) error {
	return s.updatePushItems(ctx, "done push items", user, device, ids, func(r *pushItemRow) { r.isDone, r.done = true, at })
}

// RetryPushItems sets the Due and Attempts of the device's pending items
// among ids, moving their pq/ rows.
func (s *Store) RetryPushItems(ctx context.Context, user, device string, ids []int64, due int64, attempts int) error {
	return s.updatePushItems(ctx, "retry push items", user, device, ids, func(r *pushItemRow) {
		r.Due, r.Attempts = due, attempts
	})
}

// sweepChunk is how many items one batch of SweepPush deletes.
const sweepChunk = 1024

// SweepPush deletes the items done before doneBefore, scanning px/ from
// the oldest, in synced batches of sweepChunk; and the claims whose lease
// ended before it.
func (s *Store) SweepPush(ctx context.Context, doneBefore int64) (int, error) {
	if err := s.begin(ctx, "sweep push"); err != nil {
		return 0, err
	}
	defer s.end()
	if err := s.health.failure(); err != nil { // deleting frees space
		return 0, fmt.Errorf("sweep push: %w", err)
	}
	s.push.mu.Lock()
	for id, c := range s.push.jobs {
		if c.until < doneBefore {
			delete(s.push.jobs, id)
		}
	}
	for id, c := range s.push.devices {
		if c.until < doneBefore {
			delete(s.push.devices, id)
		}
	}
	s.push.mu.Unlock()

	s.push.rows.Lock()
	defer s.push.rows.Unlock()
	swept := 0
	for {
		n, err := s.sweepPushChunk(ctx, doneBefore)
		swept += n
		if err != nil {
			return swept, fmt.Errorf("sweep push: %w", err)
		}
		if n < sweepChunk {
			return swept, nil
		}
	}
}

// sweepPushChunk deletes up to sweepChunk items done before doneBefore.
func (s *Store) sweepPushChunk(ctx context.Context, doneBefore int64) (int, error) {
	prefix := []byte(pfxPushDon)
	upper := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), flipTime(doneBefore))
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	n := 0
	var key []byte
	for ok := it.First(); ok && n < sweepChunk; ok = it.Next() {
		_, user, device, id, err := parseTimeKey(it.Key(), pfxPushDon)
		if err != nil {
			_ = it.Close()
			return 0, fmt.Errorf("key %q: %w", it.Key(), err)
		}
		key = pushItemKey(key[:0], user, device, id)
		_ = wb.Delete(key, nil)
		_ = wb.Delete(it.Key(), nil)
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.commit(wb); err != nil {
		return 0, err
	}
	return n, nil
}

// PushDepth counts the rows of pj/ and of pq/: a scan of each (pending
// work only; done items are in px/).
func (s *Store) PushDepth(ctx context.Context) (jobs, items int64, err error) {
	if err := s.begin(ctx, "push depth"); err != nil {
		return 0, 0, err
	}
	defer s.end()
	if jobs, err = s.countPrefix(ctx, pfxPushJob); err != nil {
		return 0, 0, fmt.Errorf("push depth: %w", err)
	}
	if items, err = s.countPrefix(ctx, pfxPushDue); err != nil {
		return 0, 0, fmt.Errorf("push depth: %w", err)
	}
	return jobs, items, nil
}

func (s *Store) countPrefix(ctx context.Context, prefix string) (int64, error) {
	p := []byte(prefix)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			_ = it.Close()
			return 0, ctx.Err()
		}
	}
	return n, errors.Join(it.Error(), it.Close())
}
