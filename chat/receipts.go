package chat

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Read receipts (docs/protocol.md#read-receipts): reading a 1:1
// conversation tells the peer's devices (a receipt event) and moves the
// peer's PeerRead, unless the reader turned receipts off; a user with
// receipts off gets none and sees no peer_read. In groups nothing is
// written per message per member: GroupReads counts the members' read
// positions when asked.

// receipt tells peer that user has read their conversation up to upto.
// It runs after the read is stored and fails nothing: a receipt that
// cannot be told is logged and lost (the peer_read of the list stays).
func (s *Service) receipt(ctx context.Context, user, peer string, upto int64) {
	if upto == 0 || peer == user || peer == SystemUser {
		return
	}
	on, err := s.receiptsOn(ctx, user)
	if err != nil || !on {
		return
	}
	if err := s.st.SetPeerRead(ctx, peer, user, upto); err != nil {
		if !errors.Is(err, store.ErrNotFound) && !storeLogged(err) {
			s.log.Warn("peer read", "err", err)
		}
		return
	}
	if on, err := s.receiptsOn(ctx, peer); err != nil || !on {
		return
	}
	s.toUser(peer, wire.Receipt{Kind: wire.KindReceipt, Peer: user, Upto: strconv.FormatInt(upto, 10), TS: time.Now().UnixMilli()})
}

// receiptsOn reports whether user has read receipts on.
func (s *Service) receiptsOn(ctx context.Context, user string) (bool, error) {
	us, err := s.st.GetUserSettings(ctx, user)
	if err != nil {
		return false, errStore("user settings", err)
	}
	return !us.NoReadReceipts, nil
}

// UserSettings returns user's own settings (GET /v1/me/settings), every
// field set.
func (s *Service) UserSettings(ctx context.Context, user string) (wire.UserSettings, error) {
	us, err := s.st.GetUserSettings(ctx, user)
	if err != nil {
		return wire.UserSettings{}, errStore("user settings", err)
	}
	return wireSettings(us), nil
}

// wireSettings is us as a client sees it: every field set.
func wireSettings(us store.UserSettings) wire.UserSettings {
	on := !us.NoReadReceipts
	w := wire.UserSettings{ReadReceipts: &on, AcceptFrom: wire.AcceptAnyone, Presence: wire.PresenceContacts}
	if us.AcceptFrom == store.AcceptContacts {
		w.AcceptFrom = wire.AcceptContacts
	}
	if us.Presence == store.PresenceNobody {
		w.Presence = wire.PresenceNobody
	}
	return w
}

// SetUserSettings changes the settings req has (PUT /v1/me/settings) and
// returns them all; a user changes them within its send rate.
func (s *Service) SetUserSettings(ctx context.Context, user string, req wire.UserSettings) (wire.UserSettings, error) {
	switch req.AcceptFrom {
	case "", wire.AcceptAnyone, wire.AcceptContacts:
	default:
		return wire.UserSettings{}, refuse(ErrBadRequest, `accept_from is "anyone" or "contacts"`)
	}
	switch req.Presence {
	case "", wire.PresenceContacts, wire.PresenceNobody:
	default:
		return wire.UserSettings{}, refuse(ErrBadRequest, `presence is "contacts" or "nobody"`)
	}
	if err := s.limit(ctx, user); err != nil { // a write each: within the sends' rate, as conversation settings are
		return wire.UserSettings{}, err
	}
	us, err := s.st.GetUserSettings(ctx, user)
	if err != nil {
		return wire.UserSettings{}, errStore("user settings", err)
	}
	if req.ReadReceipts != nil {
		us.NoReadReceipts = !*req.ReadReceipts
	}
	switch req.AcceptFrom {
	case wire.AcceptAnyone:
		us.AcceptFrom = ""
	case wire.AcceptContacts:
		us.AcceptFrom = store.AcceptContacts
	}
	wasHidden := us.Presence == store.PresenceNobody
	switch req.Presence {
	case wire.PresenceContacts:
		us.Presence = ""
	case wire.PresenceNobody:
		us.Presence = store.PresenceNobody
	}
	us.User, us.Updated = user, time.Now().UnixMilli()
	if err := s.st.PutUserSettings(ctx, us); err != nil {
		return wire.UserSettings{}, errStore("put user settings", err)
	}
	if hidden := us.Presence == store.PresenceNobody; hidden != wasHidden && s.opts.PresenceShown != nil {
		s.opts.PresenceShown(user, !hidden)
	}
	return wireSettings(us), nil
}

// MaxReadsUsers bounds the users one GroupReads answer lists; a user asks
// at most GroupReadsRate times a second (each reads the group's member rows).
const (
	MaxReadsUsers  = 1000
	GroupReadsRate = 10
)

// GroupReads answers GET /v1/groups/{gid}/messages/{seq}/reads for user:
// of the members who could see the message at seq (joined before it), how
// many have read it and how many not, not counting its sender, and who
// has (by user ID, after after, at most limit). Only the message's
// sender and the group's owner and admins may ask: who read what is
// theirs to know, not every member's. It reads the member rows (a page of
// 1,000 at a time) and writes nothing.
func (s *Service) GroupReads(ctx context.Context, user, group string, seq uint64, after string, limit int) (wire.GroupReads, error) {
	group, err := normGroup(group)
	if err != nil {
		return wire.GroupReads{}, err
	}
	me, err := s.member(ctx, group, user)
	if err != nil {
		return wire.GroupReads{}, err
	}
	if s.opts.Limiter != nil {
		d, err := s.opts.Limiter.Allow(ctx, "reads:"+user, state.Limit{Rate: GroupReadsRate, Per: time.Second, Burst: 2 * GroupReadsRate})
		if err == nil && !d.OK {
			s.m.Refused("group_reads_rate")
			return wire.GroupReads{}, refuse(ErrRateLimited, "more than "+strconv.Itoa(GroupReadsRate)+" read counts a second")
		}
	}
	if seq == 0 || seq <= me.JoinSeq {
		return wire.GroupReads{}, noMessage()
	}
	msgs, err := s.st.GroupRange(ctx, group, seq-1, 1)
	if err != nil {
		return wire.GroupReads{}, errStore("group message", err)
	}
	if len(msgs) == 0 || msgs[0].Seq != seq || msgs[0].Change != nil {
		return wire.GroupReads{}, noMessage()
	}
	sender := msgs[0].From
	if sender != user && me.Role != store.RoleOwner && me.Role != store.RoleAdmin {
		return wire.GroupReads{}, refuse(ErrNotAllowed, "only the message's sender and the group's owner and admins see who read it")
	}
	if limit <= 0 || limit > MaxReadsUsers {
		limit = min(max(limit, 100), MaxReadsUsers)
	}
	out := wire.GroupReads{Users: []string{}}
	for from := ""; ; {
		page, err := s.st.Members(ctx, group, from, 1000)
		if err != nil {
			return wire.GroupReads{}, errStore("members", err)
		}
		for _, m := range page {
			if m.User == sender || m.JoinSeq >= seq {
				continue
			}
			if m.ReadSeq < seq {
				out.Unread++
				continue
			}
			out.Read++
			if m.User > after && len(out.Users) < limit {
				out.Users = append(out.Users, m.User)
			}
		}
		if len(page) < 1000 {
			return out, nil
		}
		from = page[len(page)-1].User
	}
}
