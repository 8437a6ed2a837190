// Package sync answers offline-sync requests (docs/protocol.md#versions-and-offline-sync): everything in a
// user's inbox after a version, in order, in batches, with the upto/more rules
// that let a device know it is complete, and the epoch rule that tells it when
// the history its cursor refers to is gone. It knows nothing of MQTT or HTTP.
//
// Import it as imsync: it shadows the standard library's sync.
package sync

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	gosync "sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Source is the part of the store sync reads.
type Source interface {
	Lookup
	Range(ctx context.Context, user string, since uint64, limit int) ([]store.Event, error)
	Head(ctx context.Context, user string) (uint64, error)
	GroupRange(ctx context.Context, group string, since uint64, limit int) ([]store.Message, error)
	GroupHead(ctx context.Context, group string) (store.GroupHead, error)
	Epoch() string
}

// Floors is what a Source whose old history a retention sweep deletes
// also answers (store.Retention): the highest inbox version deleted. A
// cursor below its floor points into deleted history and gets Reset, like
// one of another epoch (docs/protocol.md#retention). A group's floor is
// its head's (store.GroupHead.Floor).
type Floors interface {
	InboxFloor(ctx context.Context, user string) (uint64, error)
}

// The defaults of Options, taken by its zero values (explained at its
// fields).
const (
	DefaultRequestLimit = 500
	DefaultMaxLimit     = 5000
	DefaultBatchItems   = 500
	DefaultSettleWait   = 2 * time.Second
)

// Options bound a request; zero values take defaults.
type Options struct {
	DefaultLimit int // items per request when the request gives none; default 500
	MaxLimit     int // cap on a request's limit; default 5000
	BatchItems   int // items per reply batch; default 500

	// Settle matters when several nodes commit to one inbox (scale-out): a
	// version allocated on one node may be committed after a higher one
	// committed on another, so a hole followed by an item younger than
	// Settle may still fill. Sync then waits for it, up to SettleWait per
	// request, and otherwise answers only up to the hole, so a device's
	// cursor never passes a version that is still on its way. Older holes
	// are final (a failed commit, a block lost with Redis). Zero, as on one
	// node whose single writer commits in version order: every hole is final.
	Settle     time.Duration
	SettleWait time.Duration // default 2s
}

// Syncer serves sync requests from a Source.
type Syncer struct {
	src  Source
	opts Options
}

// New returns a Syncer.
func New(src Source, opts Options) *Syncer {
	if opts.DefaultLimit <= 0 {
		opts.DefaultLimit = DefaultRequestLimit
	}
	if opts.MaxLimit <= 0 {
		opts.MaxLimit = DefaultMaxLimit
	}
	if opts.BatchItems <= 0 {
		opts.BatchItems = DefaultBatchItems
	}
	if opts.SettleWait <= 0 {
		opts.SettleWait = DefaultSettleWait
	}
	return &Syncer{src: src, opts: opts}
}

// Limit returns the effective item limit of a request.
func (s *Syncer) Limit(req wire.SyncRequest) int {
	switch {
	case req.Limit <= 0:
		return s.opts.DefaultLimit
	case req.Limit > s.opts.MaxLimit:
		return s.opts.MaxLimit
	}
	return req.Limit
}

// Serve answers req for user with one or more batches, calling emit for each in
// order. Each batch covers (Since, Upto]; the last has More set if the request's
// limit stopped it before the end. If req's cursor belongs to another epoch, or
// is past the user's newest version (the history it saw was lost), or below
// the floor of a retention sweep (Floors: the history it had not seen yet is
// deleted), the reply starts from 0 with Reset set.
func (s *Syncer) Serve(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
	epoch := s.src.Epoch()
	since := req.Since
	reset := req.Epoch != "" && req.Epoch != epoch
	if !reset && since > 0 {
		head, err := s.src.Head(ctx, user)
		if err != nil {
			return fmt.Errorf("sync %s: head: %w", user, err)
		}
		reset = since > head
	}
	if f, ok := s.src.(Floors); ok && !reset && since > 0 {
		floor, err := f.InboxFloor(ctx, user)
		if err != nil {
			return fmt.Errorf("sync %s: floor: %w", user, err)
		}
		reset = since < floor
	}
	if reset {
		since = 0
	}
	fetch := func(since uint64, n int) ([]wire.Msg, bool, error) {
		evs, cut, err := settled(ctx, s.opts, since, func() ([]store.Event, error) { return s.src.Range(ctx, user, since, n) },
			func(ev store.Event) (uint64, int64) { return ev.Ver, ev.Msg.TS })
		if err != nil {
			return nil, false, fmt.Errorf("sync %s since %d: %w", user, since, err)
		}
		items, err := Render(ctx, s.src, user, evs)
		if err != nil {
			return nil, false, fmt.Errorf("sync %s since %d: %w", user, since, err)
		}
		return items, cut, nil
	}
	base := wire.Sync{Kind: wire.KindSync, Epoch: epoch, Reset: reset}
	return s.pages(since, s.Limit(req), 0, base, fetch, func(m wire.Msg) uint64 { return m.Ver }, emit)
}

// pages is the batch loop of every sync: batches of at most BatchItems from
// since until limit items or the end, each covering (Since, Upto]. fetch
// returns up to n items after a position, pos is an item's position, and
// head (if known) is where a final batch's Upto reaches even past the last
// item, covering holes at the end. Only the first batch carries base.Reset.
// fetch reports cut when it stopped before a hole that may still fill: the
// reply then ends there, More unset and Upto not moved past it.
func (s *Syncer) pages(since uint64, remaining int, head uint64, base wire.Sync,
	fetch func(since uint64, n int) ([]wire.Msg, bool, error), pos func(wire.Msg) uint64, emit func(wire.Sync) error) error {
	for {
		n := min(remaining, s.opts.BatchItems)
		items, cut, err := fetch(since, n+1)
		if err != nil {
			return err
		}
		more := len(items) > n && !cut
		if more {
			items = items[:n]
		}
		b := base
		b.Since, b.Upto, b.More, b.Items = since, since, more, items
		if len(items) > 0 {
			b.Upto = pos(items[len(items)-1])
		}
		if !more && !cut {
			b.Upto = max(b.Upto, head)
		}
		remaining -= len(items)
		b.Items = slices.DeleteFunc(items, func(m wire.Msg) bool { return !Visible(&m) }) // hidden: skipped, position kept
		if err := emit(b); err != nil {
			return err
		}
		if !more || remaining <= 0 {
			return nil
		}
		since, base.Reset = b.Upto, false
	}
}

// ServeGroup answers a group sync (docs/protocol.md#groups): messages with seq > since,
// never at or below floor (the member's join), in batches like Serve. A
// cursor past the group's head, or of another epoch, starts again from the
// floor with Reset set.
func (s *Syncer) ServeGroup(ctx context.Context, user, group string, floor uint64, req wire.SyncRequest, emit func(wire.Sync) error) error {
	epoch := s.src.Epoch()
	h, err := s.src.GroupHead(ctx, group)
	if err != nil {
		return fmt.Errorf("sync group %s: head: %w", group, err)
	}
	since := req.Since
	reset := (req.Epoch != "" && req.Epoch != epoch) || since > h.Seq
	if !reset && since > floor && since < h.Floor { // into what a retention sweep deleted
		reset = true
	}
	if reset {
		since = 0
	}
	since = max(since, floor)
	fetch := func(since uint64, n int) ([]wire.Msg, bool, error) {
		msgs, cut, err := settled(ctx, s.opts, since, func() ([]store.Message, error) { return s.src.GroupRange(ctx, group, since, n) },
			func(m store.Message) (uint64, int64) { return m.Seq, m.TS })
		if err != nil {
			return nil, false, fmt.Errorf("sync group %s since %d: %w", group, since, err)
		}
		evs := make([]store.Event, len(msgs))
		for i, m := range msgs {
			evs[i] = store.Event{Msg: m}
		}
		items, err := Render(ctx, s.src, user, evs)
		if err != nil {
			return nil, false, fmt.Errorf("sync group %s since %d: %w", group, since, err)
		}
		return items, cut, nil
	}
	base := wire.Sync{Kind: wire.KindSync, Group: group, Epoch: epoch, Reset: reset, Gone: h.Disbanded != 0}
	// seqs lost to a crash are holes at the end, covered by the head
	return s.pages(since, s.Limit(req), h.Seq, base, fetch, func(m wire.Msg) uint64 { return m.Seq }, emit)
}

// settled reads items after since and returns them up to the first hole that
// may still fill (see Options.Settle), and whether it cut there. It reads
// again while such a hole is young, for at most SettleWait.
func settled[T any](ctx context.Context, o Options, since uint64, read func() ([]T, error), at func(T) (pos uint64, ts int64)) ([]T, bool, error) {
	var deadline time.Time
	for {
		items, err := read()
		if err != nil || o.Settle <= 0 {
			return items, false, err
		}
		cut := len(items)
		next := since + 1
		for i, it := range items {
			pos, ts := at(it)
			if pos != next && time.Since(time.UnixMilli(ts)) < o.Settle {
				cut = i
				break
			}
			next = pos + 1
		}
		if cut == len(items) {
			return items, false, nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(o.SettleWait)
		}
		if time.Now().After(deadline) {
			return items[:cut], true, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ToMsg renders a stored event as the item its user sees, from the row
// alone: a message as it is stored (a recalled one a tombstone), a change
// record as its change. Render adds what rows refer to.
func ToMsg(ev store.Event) wire.Msg {
	m := ev.Msg
	if m.Change != nil {
		return toChange(ev)
	}
	out := wire.Msg{Kind: wire.KindMsg, ID: strconv.FormatInt(m.ID, 10), Ver: ev.Ver, From: m.From, To: m.To,
		Group: m.Group, Seq: m.Seq, Type: m.Type, TS: m.TS, CMID: m.CMID, Edited: m.Edited}
	if m.ReplyTo != 0 {
		out.ReplyTo = strconv.FormatInt(m.ReplyTo, 10)
	}
	out.TTL = m.TTL
	if m.Recalled != 0 {
		out.Recalled = true // a tombstone: nothing of what it said
		out.Expired = m.RecalledBy == store.BurnedBy
		return out
	}
	// Meta stored before sends were bounded (chat.CheckSend) is delivered
	// without it, which would break the decoders of the clients that sync it.
	out.Body, out.Media, out.Meta, out.Mentions = m.Body, m.Media, metaOf(m.Meta), m.Mentions
	if m.Inline != nil {
		out.Inline = &wire.Inline{Type: m.Inline.Type, Data: m.Inline.Data}
	}
	return out
}

// gzipWriters keeps gzip writers for the next batch: each holds ~1 MB of
// compressor state, which a new writer per batch allocated and cleared.
var gzipWriters = gosync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// Encoding is how Encode writes a batch: for an MQTT payload, Compress as
// the request asked; for an HTTP body, also Line, and Compress "gzip" when
// the client accepts it.
type Encoding struct {
	// Compress "gzip" compresses the JSON (a client tells the two apart by
	// gzip's magic bytes 0x1f 0x8b); anything else leaves it plain.
	Compress string
	// Line ends the JSON with a newline, as encoding/json's Encoder does.
	Line bool
}

// Encode marshals a batch for the wire, the one encoder of both the MQTT
// uplink and GET /v1/sync. The JSON is wire.Marshal's, byte for byte what
// encoding/json makes of a wire.Sync in a third of the time, and its gzip
// is what a gzip.BestSpeed writer makes of it (TestEncodeMatchesEncodingJSON).
func Encode(b wire.Sync, e Encoding) ([]byte, error) {
	raw, err := wire.Marshal(b)
	if err != nil {
		return nil, err
	}
	if e.Line {
		raw = append(raw, '\n')
	}
	if e.Compress != "gzip" {
		return raw, nil
	}
	// A batch of messages compresses to about a tenth of its JSON.
	buf := bytes.NewBuffer(make([]byte, 0, len(raw)/8+64))
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
