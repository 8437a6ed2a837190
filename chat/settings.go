package chat

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// MaxMuteAhead bounds mute_until: about ten years from now. Past it is a
// client's mistake (seconds for milliseconds, a year 50000), not a mute.
const MaxMuteAhead = 10 * 366 * 24 * time.Hour

// SetConvSettings replaces user's settings of one conversation, named by
// s.Peer (a user who exists) or s.Group (a group user is a member of), and
// tells every device of user (a settings event). It returns the settings
// as stored. mute_until is unix ms, 0 or up to MaxMuteAhead from now.
func (s *Service) SetConvSettings(ctx context.Context, user string, cs wire.ConvSettings) (wire.ConvSettings, error) {
	conv, err := s.settingsConv(ctx, user, &cs)
	if err != nil {
		return wire.ConvSettings{}, err
	}
	// A change is a synced write and an event to every device: it counts
	// against the user's send rate, so a loop of them cannot flood the store.
	if err := s.limit(ctx, user); err != nil {
		return wire.ConvSettings{}, err
	}
	t := time.Now().UnixMilli()
	if cs.MuteUntil < 0 || cs.MuteUntil > t+MaxMuteAhead.Milliseconds() {
		return wire.ConvSettings{}, refuse(ErrBadRequest, "mute_until must be unix milliseconds, 0 or at most ten years ahead")
	}
	row := store.ConvSettings{User: user, Conv: conv, Mute: cs.Mute, MuteUntil: cs.MuteUntil, Pin: cs.Pin, Updated: t}
	if !row.Zero() {
		if err := s.roomForSettings(ctx, user, conv); err != nil {
			return wire.ConvSettings{}, err
		}
	}
	if err := s.st.PutConvSettings(ctx, row); err != nil {
		return wire.ConvSettings{}, errStore("put conversation settings", err)
	}
	cs.Kind = ""
	ev := cs
	ev.Kind = wire.KindSettings
	s.toUser(user, ev)
	return cs, nil
}

// roomForSettings refuses a row for a conversation user has not set yet
// once user has MaxConvSettings rows (a change of one already set is
// always taken).
func (s *Service) roomForSettings(ctx context.Context, user, conv string) error {
	switch _, err := s.st.GetConvSettings(ctx, user, conv); {
	case err == nil:
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return errStore("get conversation settings", err)
	}
	rows, err := s.st.UserConvSettings(ctx, user)
	if err != nil {
		return errStore("conversation settings", err)
	}
	if len(rows) >= s.opts.MaxConvSettings {
		return refuse(ErrTooManySettings, "at most "+strconv.Itoa(s.opts.MaxConvSettings)+" conversations may have settings; clear one first")
	}
	return nil
}

// GetConvSettings returns user's settings of the conversation with peer or
// of group (one of them set), all false and 0 where user set none.
func (s *Service) GetConvSettings(ctx context.Context, user, peer, group string) (wire.ConvSettings, error) {
	cs := wire.ConvSettings{Peer: peer, Group: group}
	conv, err := s.settingsConv(ctx, user, &cs)
	if err != nil {
		return wire.ConvSettings{}, err
	}
	row, err := s.st.GetConvSettings(ctx, user, conv)
	if errors.Is(err, store.ErrNotFound) {
		return cs, nil
	}
	if err != nil {
		return wire.ConvSettings{}, errStore("get conversation settings", err)
	}
	cs.Mute, cs.MuteUntil, cs.Pin = row.Mute, row.MuteUntil, row.Pin
	return cs, nil
}

// settingsConv checks the conversation cs names, folds its ID to the
// canonical one, and returns its store name ("u:{peer}" or "g:{group}").
func (s *Service) settingsConv(ctx context.Context, user string, cs *wire.ConvSettings) (string, error) {
	switch {
	case cs.Peer != "" && cs.Group != "":
		return "", refuse(ErrBadRequest, "peer and group are exclusive")
	case cs.Group != "":
		group, err := normGroup(cs.Group)
		if err != nil {
			return "", err
		}
		if _, err := s.member(ctx, group, user); err != nil {
			return "", err
		}
		cs.Group = group
		return store.ConvGroup(group), nil
	}
	peer, ok := wire.NormUser(cs.Peer)
	if !ok {
		return "", refuse(ErrBadRequest, "peer must be a user ID")
	}
	if ok, err := s.userExists(ctx, peer); err != nil {
		return "", errStore("look up peer", err)
	} else if !ok {
		return "", refuse(ErrNoSuchUser, "no such user: "+peer)
	}
	cs.Peer = peer
	return store.ConvUser(peer), nil
}

// convSettings reads user's settings, by conversation: one store read.
func (s *Service) convSettings(ctx context.Context, user string) (map[string]store.ConvSettings, error) {
	rows, err := s.st.UserConvSettings(ctx, user)
	if err != nil {
		return nil, errStore("conversation settings", err)
	}
	out := make(map[string]store.ConvSettings, len(rows))
	for _, r := range rows {
		out[r.Conv] = r
	}
	return out, nil
}

// Badge is user's total unread over the conversations that are not muted
// now: the number a push shows on the app's icon.
func (s *Service) Badge(ctx context.Context, user string) (int64, error) {
	return s.totalUnread(ctx, user)
}

// checkMentions checks a send's mentions (CheckSend): to a group only, at
// most wire.MaxMentions, each a user ID (folded to canonical, duplicates
// dropped) or wire.MentionAll. Whether the sender may mention all is the
// batcher's to check, with the membership.
func checkMentions(req *wire.Send) (err error, limit string) {
	if len(req.Mentions) == 0 {
		req.Mentions = nil
		return nil, ""
	}
	switch {
	case req.Group == "":
		return refuse(ErrBadRequest, "mentions are for a group message"), ""
	case len(req.Mentions) > wire.MaxMentions:
		return refuse(ErrBadRequest, "at most "+strconv.Itoa(wire.MaxMentions)+" mentions"), "field_size"
	}
	out := make([]string, 0, len(req.Mentions))
	for _, m := range req.Mentions {
		if m != wire.MentionAll {
			var ok bool
			if m, ok = wire.NormUser(m); !ok {
				return refuse(ErrBadRequest, "a mention must be a user ID or "+wire.MentionAll), ""
			}
		}
		dup := false
		for _, o := range out {
			dup = dup || o == m
		}
		if !dup {
			out = append(out, m)
		}
	}
	req.Mentions = out
	return nil, ""
}

// mentionsAll reports whether mentions holds wire.MentionAll.
func mentionsAll(mentions []string) bool {
	for _, m := range mentions {
		if m == wire.MentionAll {
			return true
		}
	}
	return false
}
