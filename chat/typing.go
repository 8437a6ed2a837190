package chat

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/imqtt/imqtt/wire"
)

// Typing (docs/protocol.md#typing) is relayed, never stored: at QoS 0 to
// the peer's devices, or to a group's members online, at most one per
// sender per conversation per second (typingGate), and within the
// sender's send rate over all; the rest are dropped and counted. Only users who may message each other see it: the peer
// must exist and take the sender's messages (not blocked, not
// not_contact: refused as a send is), the sender must be a member of the
// group; in a group, members who blocked the sender are left out.

// DefaultMaxTypingGroup: typing is not relayed in groups of more members.
const DefaultMaxTypingGroup = 500

// Typing relays req from user: AdmitTyping, then RelayTyping. A refusal
// (a bad field, not a member) is returned; a relay dropped by the rate is
// not an error: it reports false.
func (s *Service) Typing(ctx context.Context, user string, req wire.Typing) (bool, error) {
	if ok, err := s.AdmitTyping(user, &req); !ok || err != nil {
		return false, err
	}
	return s.RelayTyping(ctx, user, req)
}

// AdmitTyping checks req's fields (folding its IDs) and the sender's
// per-conversation gate, with no I/O: the uplink calls it on the client's
// read goroutine, so a flood is dropped there, and runs RelayTyping, which
// reads, on a worker. false: dropped by the gate (counted).
func (s *Service) AdmitTyping(user string, req *wire.Typing) (bool, error) {
	if err := CheckTyping(req); err != nil {
		return false, err
	}
	conv := "u:" + req.Peer
	if req.Group != "" {
		conv = "g:" + req.Group
	}
	if !s.typing.allow(user, conv, time.Now()) {
		s.m.Refused("typing_rate")
		return false, nil
	}
	return true, nil
}

// RelayTyping relays an admitted req: within the sender's send rate over
// all conversations (a flood to many peers, each a lookup and a delivery,
// is dropped like one to a single peer), to a peer who exists and takes
// the sender's messages, or to a group's members online who did not block
// the sender.
func (s *Service) RelayTyping(ctx context.Context, user string, req wire.Typing) (bool, error) {
	if s.limit(ctx, user) != nil {
		return false, nil
	}
	ev := wire.TypingEvent{Kind: wire.KindTyping, From: user, Peer: req.Peer, Group: req.Group, State: req.State}
	if req.Group == "" {
		if req.Peer == user {
			return false, nil
		}
		ok, err := s.userExists(ctx, req.Peer)
		if err != nil {
			return false, errStore("look up peer", err)
		}
		if !ok {
			return false, refuse(ErrNoSuchUser, "no such user: "+req.Peer)
		}
		if err := s.mayReach(ctx, user, req.Peer); err != nil {
			return false, err
		}
		s.toUser(req.Peer, ev)
		return true, nil
	}
	if _, err := s.member(ctx, req.Group, user); err != nil {
		return false, err
	}
	g, err := s.st.GetGroup(ctx, req.Group)
	if err != nil {
		return false, errStore("group", err)
	}
	if g.Disbanded != 0 {
		return false, groupGone(req.Group)
	}
	if g.Members > s.opts.MaxTypingGroup {
		s.m.Refused("typing_group_size")
		return false, nil
	}
	s.TypingLocal(req.Group, ev)
	if s.opts.Remote != nil {
		s.opts.Remote.Typing(req.Group, ev)
	}
	return true, nil
}

// TypingLocal relays a group's typing event to the members online here
// (not its sender): this node's own, and another node's.
func (s *Service) TypingLocal(group string, ev wire.TypingEvent) {
	users := slices.DeleteFunc(s.fan.recipients(group), func(u string) bool { return u == ev.From })
	if len(users) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	by, err := s.st.Blockers(ctx, ev.From, users)
	if err != nil {
		return // not told: typing is a hint, and a blocker must not get it
	}
	if len(by) > 0 {
		users = slices.DeleteFunc(users, func(u string) bool { return by[u] })
	}
	_, _ = s.out.SendMany(users, ev)
}

// CheckTyping checks a typing request's fields and folds its IDs.
func CheckTyping(req *wire.Typing) error {
	if p, ok := wire.NormUser(req.Peer); ok {
		req.Peer = p
	}
	if g, ok := wire.NormUser(req.Group); ok {
		req.Group = g
	}
	switch {
	case (req.Peer == "") == (req.Group == ""):
		return refuse(ErrBadRequest, "one of peer and group is required")
	case req.Peer != "" && !wire.ValidUser(req.Peer):
		return refuse(ErrBadRequest, "peer must be a user ID")
	case req.Group != "" && !wire.ValidUser(req.Group):
		return badGroup()
	case req.State != wire.TypingStart && req.State != wire.TypingStop:
		return refuse(ErrBadRequest, `state must be "start" or "stop"`)
	}
	return nil
}

// typingGate lets one typing event per (sender, conversation) through in
// each second of the clock. Its keys are the current second's, so its
// memory is what was typed in one second, however many users there are.
type typingGate struct {
	mu     sync.Mutex
	sec    int64
	cur    map[string]struct{}
	groups map[string]int // relays per group this second
}

// TypingPerGroup bounds the typing events relayed in one group in one
// second (members typing at once): each costs a publish per member online.
const TypingPerGroup = 5

func newTypingGate() *typingGate {
	return &typingGate{cur: map[string]struct{}{}, groups: map[string]int{}}
}

// allow reports whether user may relay to conv ("u:peer" or "g:group")
// at now: not if it did in this second, nor in a group that had
// TypingPerGroup this second.
func (g *typingGate) allow(user, conv string, now time.Time) bool {
	key := user + "\x00" + conv
	g.mu.Lock()
	defer g.mu.Unlock()
	if sec := now.Unix(); sec != g.sec {
		clear(g.cur)
		clear(g.groups)
		g.sec = sec
	}
	if _, ok := g.cur[key]; ok {
		return false
	}
	if conv[0] == 'g' {
		if g.groups[conv] >= TypingPerGroup {
			return false
		}
		g.groups[conv]++
	}
	g.cur[key] = struct{}{}
	return true
}
