package pebble

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/imqtt/imqtt/store"
)

// The webhook outbox (store.Webhooks) in rows (keys.go):
//
//	wh/{lane}\x00{id}    an event: ts(8) len(type)(1) type data
//
// One row per event, in its lane's ID order: a lane's head is the first
// row under wh/{lane}\x00. The lanes themselves (which have events, the
// retry state of their head, the claims) live in memory (webhookState):
// this store is one node. They are found by one scan of wh/ on first use
// after an open (a lane's Due and Attempts start over: its head is
// attempted at once), and kept by every write after its commit.
//
// A lane is a queue, and a deleted head stays a tombstone until
// compaction (store/pebble/push.go's lesson): each lane keeps a floor
// (no row of it lives below) that reads seek to.

// webhookState is the in-memory half of the outbox.
type webhookState struct {
	mu     sync.Mutex
	loaded bool // wh/ was scanned since the open
	lanes  map[string]*webhookLane
}

// webhookLane is one lane with (perhaps) events.
type webhookLane struct {
	floor    int64  // at most the lowest ID of the lane's rows
	gen      uint64 // grows each time floor is lowered: a scan begun before does not raise it
	due      int64
	attempts int
	holder   string
	until    int64
}

func (l *webhookLane) heldBy(now int64) bool { return l.holder != "" && l.until > now }

func webhookLanePrefix(buf []byte, lane string) []byte {
	buf = append(buf, pfxWebhook...)
	buf = append(buf, lane...)
	return append(buf, sep)
}

func webhookKey(buf []byte, lane string, id int64) []byte {
	return binary.BigEndian.AppendUint64(webhookLanePrefix(buf, lane), uint64(id))
}

// appendWebhookEvent encodes e's value.
func appendWebhookEvent(buf []byte, e *store.WebhookEvent) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.TS))
	buf = append(buf, byte(len(e.Type)))
	buf = append(buf, e.Type...)
	return append(buf, e.Data...)
}

// decodeWebhookRow reads a wh/ row.
func decodeWebhookRow(key, val []byte) (store.WebhookEvent, error) {
	if len(key) < len(pfxWebhook)+2+8 || key[len(key)-9] != sep || len(val) < 9 || len(val) < 9+int(val[8]) {
		return store.WebhookEvent{}, errCorruptRow
	}
	n := int(val[8])
	return store.WebhookEvent{
		ID:   int64(suffixUint64(key)),
		Lane: string(key[len(pfxWebhook) : len(key)-9]),
		TS:   int64(binary.BigEndian.Uint64(val)),
		Type: string(val[9 : 9+n]),
		Data: bytes.Clone(val[9+n:]),
	}, nil
}

func checkWebhookEvents(evs []store.WebhookEvent) error {
	for i := range evs {
		e := &evs[i]
		if err := checkLane(e.Lane); err != nil {
			return err
		}
		if e.ID < 0 || len(e.Type) == 0 || len(e.Type) > 255 {
			return fmt.Errorf("webhook event %d of %s: %w", e.ID, e.Lane, ErrInvalid)
		}
	}
	return nil
}

func checkLane(lane string) error {
	if lane == "" || len(lane) > 256 || bytes.IndexByte([]byte(lane), sep) >= 0 {
		return fmt.Errorf("webhook lane %q: %w", lane, ErrInvalid)
	}
	return nil
}

// addWebhookRows adds evs' rows to wb.
func addWebhookRows(wb *pebble.Batch, evs []store.WebhookEvent, buf []byte) {
	for i := range evs {
		buf = webhookKey(buf[:0], evs[i].Lane, evs[i].ID)
		n := len(buf)
		buf = appendWebhookEvent(buf, &evs[i])
		_ = wb.Set(buf[:n], buf[n:], nil)
	}
}

// webhookAdded registers evs, just committed, with their lanes.
func (s *Store) webhookAdded(evs []store.WebhookEvent) {
	if len(evs) == 0 {
		return
	}
	w := &s.webhook
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lanes == nil {
		w.lanes = make(map[string]*webhookLane)
	}
	for i := range evs {
		w.lower(evs[i].Lane, evs[i].ID)
	}
}

// lower makes lane's floor at most id, adding the lane if it is new.
// The caller holds mu.
func (w *webhookState) lower(lane string, id int64) {
	l := w.lanes[lane]
	if l == nil {
		w.lanes[lane] = &webhookLane{floor: id}
		return
	}
	if id < l.floor {
		l.floor = id
		l.gen++
	}
}

// loadWebhooks finds the lanes once after an open: one scan of wh/ (the
// only one that walks every tombstone). The caller holds mu.
func (s *Store) loadWebhooks(ctx context.Context) error {
	w := &s.webhook
	if w.loaded {
		return nil
	}
	if w.lanes == nil {
		w.lanes = make(map[string]*webhookLane)
	}
	prefix := []byte(pfxWebhook)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < len(prefix)+2+8 || k[len(k)-9] != sep {
			_ = it.Close()
			return errCorruptRow
		}
		lane := string(k[len(prefix) : len(k)-9])
		w.lower(lane, int64(suffixUint64(k)))
		// The lane's first row is its floor: skip the rest of it.
		ok = it.SeekGE(prefixEnd(webhookLanePrefix(nil, lane)))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	w.loaded = true
	return nil
}

// AddWebhookEvents writes evs in one synced batch.
func (s *Store) AddWebhookEvents(ctx context.Context, evs []store.WebhookEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "add webhook events"); err != nil {
		return err
	}
	defer s.end()
	if err := checkWebhookEvents(evs); err != nil {
		return fmt.Errorf("add webhook events: %w", err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	addWebhookRows(wb, evs, nil)
	if err := s.commit(wb); err != nil {
		return fmt.Errorf("add webhook events: %w", err)
	}
	s.webhookAdded(evs)
	return nil
}

// DueWebhookLanes looks through the lanes in memory.
func (s *Store) DueWebhookLanes(ctx context.Context, now int64, n int) ([]store.WebhookLane, error) {
	if err := s.begin(ctx, "due webhook lanes"); err != nil {
		return nil, err
	}
	defer s.end()
	if n <= 0 {
		n = store.DefaultLimit
	}
	w := &s.webhook
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := s.loadWebhooks(ctx); err != nil {
		return nil, fmt.Errorf("due webhook lanes: %w", err)
	}
	var out []store.WebhookLane
	for name, l := range w.lanes {
		if l.due <= now && !l.heldBy(now) {
			out = append(out, store.WebhookLane{Lane: name, Due: l.due, Attempts: l.attempts})
		}
	}
	slices.SortFunc(out, func(a, b store.WebhookLane) int {
		return cmp.Or(cmp.Compare(a.Due, b.Due), cmp.Compare(a.Lane, b.Lane))
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// ClaimWebhookLane claims a lane in memory.
func (s *Store) ClaimWebhookLane(ctx context.Context, lane, holder string, now, until int64) (bool, error) {
	if err := s.begin(ctx, "claim webhook lane"); err != nil {
		return false, err
	}
	defer s.end()
	w := &s.webhook
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := s.loadWebhooks(ctx); err != nil {
		return false, fmt.Errorf("claim webhook lane: %w", err)
	}
	l := w.lanes[lane]
	if l == nil || holder == "" || (l.heldBy(now) && l.holder != holder) {
		return false, nil
	}
	l.holder, l.until = holder, until
	return true, nil
}

// WebhookEvents reads the lane from its floor, and raises the floor to
// the first row found.
func (s *Store) WebhookEvents(ctx context.Context, lane string, n int) ([]store.WebhookEvent, error) {
	if err := s.begin(ctx, "webhook events"); err != nil {
		return nil, err
	}
	defer s.end()
	if err := checkLane(lane); err != nil {
		return nil, fmt.Errorf("webhook events: %w", err)
	}
	if n <= 0 {
		n = store.DefaultLimit
	}
	w := &s.webhook
	w.mu.Lock()
	if err := s.loadWebhooks(ctx); err != nil {
		w.mu.Unlock()
		return nil, fmt.Errorf("webhook events of %s: %w", lane, err)
	}
	l := w.lanes[lane]
	if l == nil {
		w.mu.Unlock()
		return nil, nil
	}
	floor, gen := l.floor, l.gen
	w.mu.Unlock()

	out, err := s.scanLane(ctx, lane, floor, n)
	if err != nil {
		return nil, fmt.Errorf("webhook events of %s: %w", lane, err)
	}
	w.mu.Lock()
	if w.lanes[lane] == l && l.gen == gen {
		if len(out) > 0 {
			l.floor = max(l.floor, out[0].ID)
		} else {
			l.floor = math.MaxInt64
		}
	}
	w.mu.Unlock()
	return out, nil
}

// scanLane reads up to n events of lane from floor on.
func (s *Store) scanLane(ctx context.Context, lane string, floor int64, n int) ([]store.WebhookEvent, error) {
	prefix := webhookLanePrefix(nil, lane)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: webhookKey(nil, lane, max(floor, 0)), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var out []store.WebhookEvent
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		e, err := decodeWebhookRow(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		out = append(out, e)
	}
	return out, errors.Join(it.Error(), it.Close())
}

// DeleteWebhookEvents deletes in a batch that is not synced on its own:
// the next synced write (any commit of messages) makes it durable. A
// machine crash before then brings the events back, and they are
// delivered again: at least once (docs/integration.md#events).
func (s *Store) DeleteWebhookEvents(ctx context.Context, lane string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.beginWrite(ctx, "delete webhook events"); err != nil {
		return err
	}
	defer s.end()
	if err := checkLane(lane); err != nil {
		return fmt.Errorf("delete webhook events: %w", err)
	}
	wb := s.db.NewBatch()
	defer wb.Close()
	var key []byte
	for _, id := range ids {
		key = webhookKey(key[:0], lane, id)
		_ = wb.Delete(key, nil)
	}
	if err := s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) }); err != nil {
		return fmt.Errorf("delete webhook events of %s: %w", lane, err)
	}
	w := &s.webhook
	w.mu.Lock()
	if l := w.lanes[lane]; l != nil {
		l.due, l.attempts = 0, 0
	}
	w.mu.Unlock()
	return nil
}

// RetryWebhookLane sets the lane's retry state in memory.
func (s *Store) RetryWebhookLane(ctx context.Context, lane, holder string, due int64, attempts int) error {
	if err := s.begin(ctx, "retry webhook lane"); err != nil {
		return err
	}
	defer s.end()
	w := &s.webhook
	w.mu.Lock()
	defer w.mu.Unlock()
	if l := w.lanes[lane]; l != nil {
		l.due, l.attempts = due, attempts
		if l.holder == holder {
			l.holder, l.until = "", 0
		}
	}
	return nil
}

// ReleaseWebhookLane ends the claim, and forgets the lane if no row of it
// is left. It looks under mu: an event committed after the look
// registers its lane again (webhookAdded waits for mu).
func (s *Store) ReleaseWebhookLane(ctx context.Context, lane, holder string) error {
	if err := s.begin(ctx, "release webhook lane"); err != nil {
		return err
	}
	defer s.end()
	w := &s.webhook
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lanes[lane]
	if l == nil || l.holder != holder {
		return nil
	}
	l.holder, l.until = "", 0
	rest, err := s.scanLane(ctx, lane, l.floor, 1)
	if err != nil {
		return fmt.Errorf("release webhook lane %s: %w", lane, err)
	}
	if len(rest) == 0 {
		delete(w.lanes, lane)
	}
	return nil
}

// SweepWebhooks deletes, from each lane's head, the events older than
// before (a lane's events are in ID order, which is time order: the
// sweep stops at a lane's first event young enough), not synced on its
// own like DeleteWebhookEvents.
func (s *Store) SweepWebhooks(ctx context.Context, before int64) (int, error) {
	if err := s.beginWrite(ctx, "sweep webhooks"); err != nil {
		return 0, err
	}
	defer s.end()
	w := &s.webhook
	w.mu.Lock()
	if err := s.loadWebhooks(ctx); err != nil {
		w.mu.Unlock()
		return 0, fmt.Errorf("sweep webhooks: %w", err)
	}
	type lf struct {
		lane  string
		floor int64
	}
	lanes := make([]lf, 0, len(w.lanes))
	for name, l := range w.lanes {
		lanes = append(lanes, lf{name, l.floor})
	}
	w.mu.Unlock()
	total := 0
	for _, l := range lanes {
		var old []int64
		for {
			evs, err := s.scanLane(ctx, l.lane, l.floor, 256)
			if err != nil {
				return total, fmt.Errorf("sweep webhooks of %s: %w", l.lane, err)
			}
			young := false
			for _, e := range evs {
				if e.TS >= before {
					young = true
					break
				}
				old = append(old, e.ID)
			}
			if young || len(evs) < 256 {
				break
			}
			l.floor = evs[len(evs)-1].ID + 1
		}
		if len(old) == 0 {
			continue
		}
		wb := s.db.NewBatch()
		var key []byte
		for _, id := range old {
			key = webhookKey(key[:0], l.lane, id)
			_ = wb.Delete(key, nil)
		}
		err := s.write(len(wb.Repr()), func() error { return wb.Commit(pebble.NoSync) })
		_ = wb.Close()
		if err != nil {
			return total, fmt.Errorf("sweep webhooks of %s: %w", l.lane, err)
		}
		total += len(old)
		w.mu.Lock()
		if lane := w.lanes[l.lane]; lane != nil {
			lane.due, lane.attempts = 0, 0 // its head is new
		}
		w.mu.Unlock()
	}
	return total, nil
}

// WebhookDepth counts each lane's rows from its floor.
func (s *Store) WebhookDepth(ctx context.Context) (int64, error) {
	if err := s.begin(ctx, "webhook depth"); err != nil {
		return 0, err
	}
	defer s.end()
	w := &s.webhook
	w.mu.Lock()
	if err := s.loadWebhooks(ctx); err != nil {
		w.mu.Unlock()
		return 0, fmt.Errorf("webhook depth: %w", err)
	}
	floors := make(map[string]int64, len(w.lanes))
	for name, l := range w.lanes {
		floors[name] = l.floor
	}
	w.mu.Unlock()
	var n int64
	for lane, floor := range floors {
		prefix := webhookLanePrefix(nil, lane)
		it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
			LowerBound: webhookKey(nil, lane, max(floor, 0)), UpperBound: prefixEnd(prefix)})
		if err != nil {
			return 0, fmt.Errorf("webhook depth: %w", err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return 0, fmt.Errorf("webhook depth: %w", err)
		}
	}
	return n, nil
}
