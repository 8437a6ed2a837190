package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/store/pebble"
)

// maxMismatches bounds the mismatches a Summary lists.
const maxMismatches = 50

// verify compares the counts of every kind, then every Sample-th row of
// the kinds devices read (messages, inbox entries with their user's
// conversations, group logs, users, members) as each store's own read
// methods answer for it. A user's conversations (all of them: the read has
// no limit) are compared once, at the first sampled entry of the user.
func (r *run) verify(ctx context.Context) error {
	for _, k := range kinds {
		n, err := k.count(ctx, r.src)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		m, err := r.dst.CountRows(ctx, k.coll)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		r.sum.Kinds = append(r.sum.Kinds, KindSummary{Kind: k.name, Collection: k.coll, Source: n, Target: m})
		if n != m {
			r.mismatch("%s: %d in the source, %d in %s", k.name, n, m, k.coll)
		}
	}
	if r.opts.Sample > 0 {
		if err := r.sample(ctx); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	if len(r.sum.Mismatches) > 0 {
		return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(r.sum.Mismatches, "; "))
	}
	return nil
}

func (r *run) mismatch(format string, args ...any) {
	if len(r.sum.Mismatches) < maxMismatches {
		r.sum.Mismatches = append(r.sum.Mismatches, fmt.Sprintf(format, args...))
	}
}

// every calls check for every Sample-th row of k.
func every[T any](ctx context.Context, r *run, k pebble.Kind[T], check func(row T) error) error {
	i := 0
	return pebble.Export(ctx, r.src, k, nil, func(_ []byte, row T) error {
		i++
		if i%r.opts.Sample != 1 && r.opts.Sample != 1 {
			return nil
		}
		r.sum.Sampled++
		return check(row)
	})
}

// same runs one read on both stores and records a mismatch if the answers
// differ (what, never the content, names it).
func same[T any](ctx context.Context, r *run, what string, read func(s store.Store) (T, error), eq func(a, b T) bool) error {
	a, err := read(r.src)
	if err != nil {
		return fmt.Errorf("read %s from the source: %w", what, err)
	}
	b, err := read(r.dst)
	if err != nil {
		r.mismatch("%s: %v", what, err)
		return nil
	}
	if !eq(a, b) {
		r.mismatch("%s differs", what)
	}
	return nil
}

func (r *run) sample(ctx context.Context) error {
	err := every(ctx, r, pebble.Messages, func(m store.Message) error {
		return same(ctx, r, fmt.Sprintf("message %d", m.ID),
			func(s store.Store) ([]store.Message, error) { return s.GetMessages(ctx, []int64{m.ID}) },
			func(a, b []store.Message) bool { return slices.EqualFunc(a, b, sameMessage) })
	})
	if err != nil {
		return err
	}
	convsOf := map[string]bool{} // users whose conversations were compared: once each, not per entry
	err = every(ctx, r, pebble.Inbox, func(e store.Entry) error {
		err := same(ctx, r, fmt.Sprintf("inbox of %s at %d", e.User, e.Ver),
			func(s store.Store) ([]store.Event, error) { return s.Range(ctx, e.User, e.Ver-1, 1) },
			func(a, b []store.Event) bool {
				return slices.EqualFunc(a, b, func(x, y store.Event) bool { return x.Entry == y.Entry && sameMessage(x.Msg, y.Msg) })
			})
		if err != nil || convsOf[e.User] {
			return err
		}
		convsOf[e.User] = true
		return same(ctx, r, "conversations of "+e.User,
			func(s store.Store) ([]store.Conversation, error) {
				cs, err := s.Conversations(ctx, e.User)
				slices.SortFunc(cs, func(a, b store.Conversation) int { return strings.Compare(a.Peer, b.Peer) })
				return cs, err
			}, slices.Equal)
	})
	if err != nil {
		return err
	}
	err = every(ctx, r, pebble.GroupLog, func(g pebble.GroupLogEntry) error {
		return same(ctx, r, fmt.Sprintf("group %s at %d", g.Group, g.Seq),
			func(s store.Store) ([]store.Message, error) { return s.GroupRange(ctx, g.Group, g.Seq-1, 1) },
			func(a, b []store.Message) bool { return slices.EqualFunc(a, b, sameMessage) })
	})
	if err != nil {
		return err
	}
	err = every(ctx, r, pebble.Users, func(u store.User) error {
		if u.Deleted != 0 { // a deleted user's tombstone, which GetUser does not return
			return same(ctx, r, "tombstone "+u.ID,
				func(s store.Store) (int64, error) { return s.UserTombstone(ctx, u.ID) },
				func(a, b int64) bool { return a == b })
		}
		return same(ctx, r, "user "+u.ID,
			func(s store.Store) (store.User, error) { return s.GetUser(ctx, u.ID) },
			func(a, b store.User) bool { return a == b })
	})
	if err != nil {
		return err
	}
	return every(ctx, r, pebble.Members, func(m store.Member) error {
		return same(ctx, r, fmt.Sprintf("member %s of %s", m.User, m.Group),
			func(s store.Store) (store.Member, error) { return s.GetMember(ctx, m.Group, m.User) },
			func(a, b store.Member) bool { return a == b })
	})
}

// sameMessage compares two messages as a client sees them: meta as JSON
// (compacted), inline data of no bytes whether nil or empty.
func sameMessage(a, b store.Message) bool {
	if !sameJSON(a.Meta, b.Meta) || (a.Inline == nil) != (b.Inline == nil) {
		return false
	}
	if a.Inline != nil && (a.Inline.Type != b.Inline.Type || !bytes.Equal(a.Inline.Data, b.Inline.Data)) {
		return false
	}
	a.Meta, b.Meta, a.Inline, b.Inline = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
