package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/imqtt/imqtt/store"
	imsync "github.com/imqtt/imqtt/sync"
	"github.com/imqtt/imqtt/wire"
)

// errStore is what a caller sees when the store fails a read.
func errStore(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}

// Read sets user's read position (SPEC §6), tells all of user's devices the
// new counts on the inbox, and returns them.
func (s *Service) Read(ctx context.Context, user string, req wire.Read) (wire.Unread, error) {
	if req.Group != "" {
		return wire.Unread{}, wire.NewError(wire.CodeNotMember, "not a member of group "+req.Group)
	}
	if !wire.ValidUser(req.Peer) {
		return wire.Unread{}, wire.NewError(wire.CodeBadRequest, "peer is required")
	}
	var upto int64
	if req.Upto != "" {
		var err error
		if upto, err = strconv.ParseInt(req.Upto, 10, 64); err != nil || upto <= 0 {
			return wire.Unread{}, wire.NewError(wire.CodeBadRequest, "upto must be a message id")
		}
	}
	conv, err := s.st.SetRead(ctx, user, req.Peer, upto)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Unread{}, wire.NewError(wire.CodeNotFound, "no conversation with "+req.Peer)
	}
	if err != nil {
		return wire.Unread{}, errStore("set read", err)
	}
	total, err := s.totalUnread(ctx, user)
	if err != nil {
		return wire.Unread{}, err
	}
	ev := wire.Unread{Kind: wire.KindUnread, Total: total, Peer: req.Peer, Count: conv.Unread}
	if payload, err := json.Marshal(ev); err == nil {
		s.publish(wire.InboxTopic(user), payload)
	}
	return ev, nil
}

func (s *Service) totalUnread(ctx context.Context, user string) (int64, error) {
	convs, err := s.st.Conversations(ctx, user)
	if err != nil {
		return 0, errStore("conversations", err)
	}
	var total int64
	for _, c := range convs {
		total += c.Unread
	}
	return total, nil
}

// Conversations is user's recent-contact list, newest first, with each
// conversation's last message and unread count.
func (s *Service) Conversations(ctx context.Context, user string) (wire.Conversations, error) {
	convs, err := s.st.Conversations(ctx, user)
	if err != nil {
		return wire.Conversations{}, errStore("conversations", err)
	}
	ids := make([]int64, len(convs))
	for i, c := range convs {
		ids[i] = c.Last
	}
	msgs, err := s.st.GetMessages(ctx, ids)
	if err != nil {
		return wire.Conversations{}, errStore("last messages", err)
	}
	byID := make(map[int64]store.Message, len(msgs))
	for _, m := range msgs {
		byID[m.ID] = m
	}
	out := wire.Conversations{Conversations: make([]wire.Conversation, 0, len(convs))}
	for _, c := range convs {
		row := wire.Conversation{Peer: c.Peer, Unread: c.Unread}
		if m, ok := byID[c.Last]; ok {
			last := imsync.ToMsg(store.Event{Entry: store.Entry{User: user, Ver: c.Ver}, Msg: m})
			row.Last = &last
		}
		out.TotalUnread += c.Unread
		out.Conversations = append(out.Conversations, row)
	}
	return out, nil
}

// History is user's conversation with peer before a message ID, newest first.
func (s *Service) History(ctx context.Context, user, peer string, before int64, limit int) (wire.History, error) {
	if limit <= 0 || limit > 200 {
		limit = min(max(limit, 50), 200)
	}
	evs, err := s.st.History(ctx, user, peer, before, limit)
	if err != nil {
		return wire.History{}, errStore("history", err)
	}
	out := wire.History{Messages: make([]wire.Msg, len(evs))}
	for i, ev := range evs {
		out.Messages[i] = imsync.ToMsg(ev)
	}
	return out, nil
}

// Sync answers a sync request with one or more batches (SPEC §5).
func (s *Service) Sync(ctx context.Context, user string, req wire.SyncRequest, emit func(wire.Sync) error) error {
	if req.Group != "" {
		return wire.NewError(wire.CodeNotMember, "not a member of group "+req.Group)
	}
	return s.syncer.Serve(ctx, user, req, func(b wire.Sync) error {
		s.m.SyncItems.Add(float64(len(b.Items)))
		return emit(b)
	})
}

// UserExists reports whether an account exists.
func (s *Service) UserExists(ctx context.Context, user string) (bool, error) {
	return s.userExists(ctx, user)
}
