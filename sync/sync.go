// Package sync answers offline-sync requests (SPEC §5): everything in a
// user's inbox after a version, in order, in batches, with the upto/more rules
// that let a device know it is complete, and the epoch rule that tells it when
// the history its cursor refers to is gone. It knows nothing of MQTT or HTTP.
//
// Import it as imsync: it shadows the standard library's sync.
package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/klauspost/compress/gzip"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Source is the part of the store sync reads.
type Source interface {
	Range(ctx context.Context, user string, since uint64, limit int) ([]store.Event, error)
	Head(ctx context.Context, user string) (uint64, error)
	GroupRange(ctx context.Context, group string, since uint64, limit int) ([]store.Message, error)
	GroupHead(ctx context.Context, group string) (store.GroupHead, error)
	Epoch() string
}

// Options bound a request; zero values take defaults.
type Options struct {
	DefaultLimit int // items per request when the request gives none; default 500
	MaxLimit     int // cap on a request's limit; default 5000
	BatchItems   int // items per reply batch; default 500
}

// Syncer serves sync requests from a Source.
type Syncer struct {
	src  Source
	opts Options
}

// New returns a Syncer.
func New(src Source, opts Options) *Syncer {
	if opts.DefaultLimit <= 0 {
		opts.DefaultLimit = 500
	}
	if opts.MaxLimit <= 0 {
		opts.MaxLimit = 5000
	}
	if opts.BatchItems <= 0 {
		opts.BatchItems = 500
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
// is past the user's newest version (the history it saw was lost), the reply
// starts from 0 with Reset set.
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
	if reset {
		since = 0
	}
	remaining := s.Limit(req)
	for {
		n := min(remaining, s.opts.BatchItems)
		evs, err := s.src.Range(ctx, user, since, n+1)
		if err != nil {
			return fmt.Errorf("sync %s since %d: %w", user, since, err)
		}
		more := len(evs) > n
		if more {
			evs = evs[:n]
		}
		b := wire.Sync{Kind: wire.KindSync, Since: since, Upto: since, More: more, Epoch: epoch, Reset: reset,
			Items: make([]wire.Msg, len(evs))}
		for i, ev := range evs {
			b.Items[i] = ToMsg(ev)
		}
		if len(evs) > 0 {
			b.Upto = evs[len(evs)-1].Ver
		}
		remaining -= len(evs)
		if err := emit(b); err != nil {
			return err
		}
		if !more || remaining <= 0 {
			return nil
		}
		since, reset = b.Upto, false
	}
}

// ServeGroup answers a group sync (SPEC §7): messages with seq > since,
// never at or below floor (the member's join), in batches like Serve. A
// cursor past the group's head, or of another epoch, starts again from the
// floor with Reset set.
func (s *Syncer) ServeGroup(ctx context.Context, group string, floor uint64, req wire.SyncRequest, emit func(wire.Sync) error) error {
	epoch := s.src.Epoch()
	h, err := s.src.GroupHead(ctx, group)
	if err != nil {
		return fmt.Errorf("sync group %s: head: %w", group, err)
	}
	since := req.Since
	reset := (req.Epoch != "" && req.Epoch != epoch) || since > h.Seq
	if reset {
		since = 0
	}
	since = max(since, floor)
	remaining := s.Limit(req)
	for {
		n := min(remaining, s.opts.BatchItems)
		msgs, err := s.src.GroupRange(ctx, group, since, n+1)
		if err != nil {
			return fmt.Errorf("sync group %s since %d: %w", group, since, err)
		}
		more := len(msgs) > n
		if more {
			msgs = msgs[:n]
		}
		b := wire.Sync{Kind: wire.KindSync, Group: group, Since: since, Upto: since, More: more, Epoch: epoch, Reset: reset,
			Items: make([]wire.Msg, len(msgs))}
		for i, m := range msgs {
			b.Items[i] = ToMsg(store.Event{Msg: m})
		}
		if len(msgs) > 0 {
			b.Upto = msgs[len(msgs)-1].Seq
		}
		if !more {
			b.Upto = max(b.Upto, h.Seq) // seqs lost to a crash are holes, covered here
		}
		remaining -= len(msgs)
		if err := emit(b); err != nil {
			return err
		}
		if !more || remaining <= 0 {
			return nil
		}
		since, reset = b.Upto, false
	}
}

// ToMsg renders a stored event as the message event its user sees.
func ToMsg(ev store.Event) wire.Msg {
	m := ev.Msg
	out := wire.Msg{Kind: wire.KindMsg, ID: strconv.FormatInt(m.ID, 10), Ver: ev.Ver, From: m.From, To: m.To,
		Group: m.Group, Seq: m.Seq, Type: m.Type, Body: m.Body, Media: m.Media, Meta: m.Meta, TS: m.TS, CMID: m.CMID}
	if m.Inline != nil {
		out.Inline = &wire.Inline{Type: m.Inline.Type, Data: m.Inline.Data}
	}
	return out
}

// Encode marshals a batch for the wire, gzip-compressed when compress is
// "gzip" (a client tells the two apart by gzip's magic bytes 0x1f 0x8b).
func Encode(b wire.Sync, compress string) ([]byte, error) {
	raw, err := json.Marshal(b)
	if err != nil || compress != "gzip" {
		return raw, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
