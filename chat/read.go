package chat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// errStore is what a caller sees when the store fails a read.
func errStore(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}

// Read sets user's read position (docs/protocol.md#unread-counts-and-conversations), tells all of user's devices the
// new counts on the inbox, and returns them.
func (s *Service) Read(ctx context.Context, user string, req wire.Read) (wire.Unread, error) {
	if err := CheckRead(req); err != nil {
		return wire.Unread{}, err
	}
	if req.Group != "" {
		group, err := normGroup(req.Group)
		if err != nil {
			return wire.Unread{}, err
		}
		return s.readGroup(ctx, user, group, req.Seq)
	}
	req.Peer, _ = wire.NormUser(req.Peer)         // CheckRead: a valid user ID
	upto, _ := strconv.ParseInt(req.Upto, 10, 64) // CheckRead: empty (0) or a message ID
	conv, err := s.st.SetRead(ctx, user, req.Peer, upto)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Unread{}, refuse(ErrNotFound, "no conversation with "+req.Peer)
	}
	if err != nil {
		return wire.Unread{}, errStore("set read", err)
	}
	total, err := s.totalUnread(ctx, user)
	if err != nil {
		return wire.Unread{}, err
	}
	ev := wire.Unread{Kind: wire.KindUnread, Total: total, Peer: req.Peer, Count: conv.Unread}
	s.toUser(user, ev)
	s.receipt(ctx, user, req.Peer, conv.ReadUpto)
	s.startBurns(ctx, user, req.Peer, conv.ReadUpto)
	return ev, nil
}

// readGroup moves user's read position in group (0: everything so far),
// merged with other reads of the same tick, and tells user's devices.
func (s *Service) readGroup(ctx context.Context, user, group string, seq uint64) (wire.Unread, error) {
	if _, err := s.member(ctx, group, user); err != nil {
		return wire.Unread{}, err
	}
	if seq == 0 {
		seq = 1<<63 - 1 // the store caps a position at the head
	}
	if err := s.reads.add(ctx, store.GroupRead{Group: group, User: user, Seq: seq}); err != nil {
		return wire.Unread{}, errStore("set group read", err)
	}
	m, err := s.member(ctx, group, user)
	if err != nil {
		return wire.Unread{}, err
	}
	h, err := s.st.GroupHead(ctx, group)
	if err != nil {
		return wire.Unread{}, errStore("group head", err)
	}
	total, err := s.totalUnread(ctx, user)
	if err != nil {
		return wire.Unread{}, err
	}
	ev := wire.Unread{Kind: wire.KindUnread, Total: total, Group: group, Count: groupUnread(m, h)}
	s.toUser(user, ev)
	return ev, nil
}

// groupUnread is what a member has not read: the messages (not the
// changes) after its read position or join floor (store.Member.Unread). A
// member's own sends move its position, so its own messages are never
// counted.
func groupUnread(m store.Member, h store.GroupHead) int64 { return m.Unread(h) }

// totalUnread sums user's unread over conversations and groups without
// loading any message, leaving out the conversations muted now.
func (s *Service) totalUnread(ctx context.Context, user string) (int64, error) {
	settings, err := s.convSettings(ctx, user)
	if err != nil {
		return 0, err
	}
	t := time.Now().UnixMilli()
	convs, err := s.st.Conversations(ctx, user)
	if err != nil {
		return 0, errStore("conversations", err)
	}
	var total int64
	for _, c := range convs {
		if !settings[store.ConvUser(c.Peer)].Muted(t) {
			total += c.Unread
		}
	}
	ms, err := s.st.UserGroups(ctx, user)
	if err != nil {
		return 0, errStore("user groups", err)
	}
	for _, m := range ms {
		if settings[store.ConvGroup(m.Group)].Muted(t) {
			continue // no head to read
		}
		h, err := s.st.GroupHead(ctx, m.Group)
		if err != nil {
			return 0, errStore("group head", err)
		}
		total += groupUnread(m, h)
	}
	return total, nil
}

// Conversations is user's recent-contact list, pinned first, then newest
// first, with each conversation's last message and unread count, muted and
// pinned marked; the total leaves out the muted ones.
func (s *Service) Conversations(ctx context.Context, user string) (wire.Conversations, error) {
	settings, err := s.convSettings(ctx, user)
	if err != nil {
		return wire.Conversations{}, err
	}
	receipts, err := s.receiptsOn(ctx, user)
	if err != nil {
		return wire.Conversations{}, err
	}
	convs, err := s.st.Conversations(ctx, user)
	if err != nil {
		return wire.Conversations{}, errStore("conversations", err)
	}
	ids := make([]int64, len(convs))
	vers := make(map[int64]uint64, len(convs))
	for i, c := range convs {
		ids[i], vers[c.Last] = c.Last, c.Ver
	}
	byID, err := s.lasts(ctx, user, ids, func(m *store.Message) uint64 { return vers[m.ID] })
	if err != nil {
		return wire.Conversations{}, err
	}
	out := wire.Conversations{Conversations: make([]wire.Conversation, 0, len(convs))}
	for _, c := range convs {
		row := wire.Conversation{Peer: c.Peer, Unread: c.Unread}
		if receipts && c.PeerRead > 0 {
			// Shown only while the peer has receipts on too: a peer
			// that turned them off since leaves no position on show
			// (wire.Conversation.PeerRead). One read per such row.
			on, err := s.receiptsOn(ctx, c.Peer)
			if err != nil {
				return wire.Conversations{}, err
			}
			if on {
				row.PeerRead = strconv.FormatInt(c.PeerRead, 10)
			}
		}
		if last, ok := byID[c.Last]; ok {
			row.Last = &last
		}
		out.Conversations = append(out.Conversations, row)
	}
	groups, err := s.groupConversations(ctx, user)
	if err != nil {
		return wire.Conversations{}, err
	}
	out.Conversations = mergeByTime(out.Conversations, groups)
	t := time.Now().UnixMilli()
	for i := range out.Conversations {
		row := &out.Conversations[i]
		conv := store.ConvUser(row.Peer)
		if row.Group != "" {
			conv = store.ConvGroup(row.Group)
		}
		cs := settings[conv]
		row.Muted, row.Pinned = cs.Muted(t), cs.Pin
		if !row.Muted {
			out.TotalUnread += row.Unread
		}
	}
	// Pinned first; each part stays newest first.
	slices.SortStableFunc(out.Conversations, func(a, b wire.Conversation) int {
		switch {
		case a.Pinned == b.Pinned:
			return 0
		case a.Pinned:
			return -1
		}
		return 1
	})
	return out, nil
}

// groupConversations are user's groups as conversation rows, newest first.
func (s *Service) groupConversations(ctx context.Context, user string) ([]wire.Conversation, error) {
	ms, err := s.st.UserGroups(ctx, user)
	if err != nil {
		return nil, errStore("user groups", err)
	}
	rows := make([]wire.Conversation, 0, len(ms))
	var ids []int64
	last := make([]int64, len(ms))
	joined := map[string]uint64{}
	for i, m := range ms {
		h, err := s.st.GroupHead(ctx, m.Group)
		if err != nil {
			return nil, errStore("group head", err)
		}
		rows = append(rows, wire.Conversation{Group: m.Group, Unread: groupUnread(m, h), Mentioned: m.Mentioned(h)})
		if h.MsgID != 0 {
			last[i], joined[m.Group] = h.MsgID, m.JoinSeq
			ids = append(ids, h.MsgID)
		}
	}
	byID, err := s.lasts(ctx, user, ids, func(*store.Message) uint64 { return 0 })
	if err != nil {
		return nil, err
	}
	for i := range rows {
		// Not one from before the user joined (the head may have moved
		// since only by changes), nor one it deleted for itself.
		if l, ok := byID[last[i]]; ok && l.Seq > joined[rows[i].Group] {
			rows[i].Last = &l
		}
	}
	sortByTime(rows)
	return rows, nil
}

// lasts renders the messages ids as user sees them now (a tombstone, the
// edited body, reactions; none it hid), by ID, ver(m) the user's version
// of each.
func (s *Service) lasts(ctx context.Context, user string, ids []int64, ver func(*store.Message) uint64) (map[int64]wire.Msg, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	msgs, err := s.st.GetMessages(ctx, ids)
	if err != nil {
		return nil, errStore("last messages", err)
	}
	evs := make([]store.Event, len(msgs))
	for i := range msgs {
		evs[i] = store.Event{Entry: store.Entry{User: user, Ver: ver(&msgs[i])}, Msg: msgs[i]}
	}
	items, err := imsync.Render(ctx, s.st, user, evs)
	if err != nil {
		return nil, errStore("last messages", err)
	}
	out := make(map[int64]wire.Msg, len(items))
	for i := range items {
		if imsync.Visible(&items[i]) {
			out[msgs[i].ID] = items[i]
		}
	}
	return out, nil
}

func lastTS(c wire.Conversation) int64 {
	if c.Last == nil {
		return 0
	}
	return c.Last.TS
}

func sortByTime(rows []wire.Conversation) {
	slices.SortStableFunc(rows, func(a, b wire.Conversation) int { return cmp.Compare(lastTS(b), lastTS(a)) })
}

// mergeByTime merges two lists that are each newest first.
func mergeByTime(a, b []wire.Conversation) []wire.Conversation {
	out := make([]wire.Conversation, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if lastTS(b[0]) > lastTS(a[0]) {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// History is user's conversation with peer (in any case) before a message
// ID, newest first.
func (s *Service) History(ctx context.Context, user, peer string, before int64, limit int) (wire.History, error) {
	peer, ok := wire.NormUser(peer)
	if !ok {
		return wire.History{}, refuse(ErrBadRequest, "peer must be a user ID")
	}
	if limit <= 0 || limit > 200 {
		limit = min(max(limit, 50), 200)
	}
	evs, err := s.st.History(ctx, user, peer, before, limit)
	if err != nil {
		return wire.History{}, errStore("history", err)
	}
	items, err := imsync.Render(ctx, s.st, user, evs)
	if err != nil {
		return wire.History{}, errStore("history", err)
	}
	return wire.History{Messages: items}, nil
}

// Sync answers a sync request with one or more batches (docs/protocol.md#versions-and-offline-sync).
func (s *Service) Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
	if req.Group != "" {
		group, err := normGroup(req.Group)
		if err != nil {
			return err
		}
		req.Group = group
		return s.syncGroup(ctx, user, req, emit)
	}
	return s.syncer.Serve(ctx, user, req, func(b wire.Sync) error {
		s.m.SyncItems.Add(float64(len(b.Items)))
		return emit(b)
	})
}

// syncGroup answers a group sync for a member, from its join onward.
func (s *Service) syncGroup(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
	m, err := s.member(ctx, req.Group, user)
	if err != nil {
		return err
	}
	return s.syncer.ServeGroup(ctx, user, req.Group, m.JoinSeq, req, func(b wire.Sync) error {
		s.m.SyncItems.Add(float64(len(b.Items)))
		return emit(b)
	})
}
