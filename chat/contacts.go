package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/imqtt/imqtt/state"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// Contacts and blocks (SPEC §12, docs/http.md#contacts-and-privacy). A
// contact is two store rows that mirror each other; every change is told
// to both sides' devices (a contact event, user-addressed, so it reaches
// every node). A block is one row, told to the blocker's own devices.
//
// A request to someone who blocked the requester is the rule, not
// SPEC's "fail with blocked" (which holds for sends and typing): it is
// answered as a request to anyone who does not answer is (pending_out),
// with the same store write, and nothing reaches the blocker: no event,
// and the blocker's list leaves it out while the block stands. So neither
// the reply nor its timing tells the requester it was blocked.
//
// Blocking keeps a contact as it is (as WhatsApp does): the block alone
// stops the blocked user's sends, typing and mentions.

// The defaults of the social graph's bounds.
const (
	// DefaultContactRate is how many contact requests and blocks a user
	// makes a minute (after a burst of as many): each writes rows and
	// sends events to another user, so a spammer's requests are bounded.
	DefaultContactRate = 20
	// DefaultMaxContacts bounds a user's contacts, any state, and
	// DefaultMaxBlocks its blocks: a peer is any user, so without them
	// one account could write a row per account.
	DefaultMaxContacts = 10_000
	DefaultMaxBlocks   = 10_000
)

// contactLimit is the limiter's bound of one user's requests and blocks.
func (s *Service) contactLimit(ctx context.Context, user string) error {
	if s.opts.Limiter == nil {
		return nil
	}
	rate := s.opts.ContactRate
	if rate <= 0 {
		rate = DefaultContactRate
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d, err := s.opts.Limiter.Allow(ctx, "contact:"+user, state.Limit{Rate: rate, Per: time.Minute, Burst: rate})
	if err != nil {
		s.log.Warn("contact rate limit", "user", user, "err", err)
		return nil
	}
	if !d.OK {
		s.m.Refused("contact_rate")
		return refuse(ErrRateLimited, fmt.Sprintf("more than %d contact requests and blocks a minute; try again in %v",
			rate, d.RetryAfter.Round(time.Second)))
	}
	return nil
}

// peerOf checks the other user of a contact or block: a user ID, not
// user, an account.
func (s *Service) peerOf(ctx context.Context, user, peer string, mustExist bool) (string, error) {
	p, ok := wire.NormUser(peer)
	if !ok || !wire.ValidUser(p) {
		return "", refuse(ErrBadRequest, "user must be a user ID")
	}
	if p == user {
		return "", refuse(ErrSelf, "a contact or block of oneself")
	}
	if !mustExist {
		return p, nil
	}
	if ok, err := s.userExists(ctx, p); err != nil {
		return "", errStore("look up user", err)
	} else if !ok {
		return "", refuse(ErrNoSuchUser, "no such user: "+p)
	}
	return p, nil
}

func wireContact(c store.Contact) wire.Contact {
	return wire.Contact{User: c.Peer, State: c.State, Since: c.Since}
}

// contactEvent tells user's devices that action happened to its contact
// with peer.
func (s *Service) contactEvent(user, peer, action string, since int64) {
	s.toUser(user, wire.ContactEvent{Kind: wire.KindContact, Action: action, User: peer, Since: since})
}

// blocked reports whether user blocked peer (one store read).
func (s *Service) blocked(ctx context.Context, user, peer string) (bool, error) {
	g, err := s.st.Gates(ctx, []store.Pair{{User: user, Peer: peer}})
	if err != nil {
		return false, errStore("blocks", err)
	}
	return g[store.Pair{User: user, Peer: peer}].Blocked, nil
}

// RequestContact asks peer to be user's contact (POST /v1/contacts) and
// returns user's row: pending_out, or accepted if peer had asked user. A
// request pending or accepted already is answered as it is, told to no
// one again.
func (s *Service) RequestContact(ctx context.Context, user, peer string) (wire.Contact, error) {
	peer, err := s.peerOf(ctx, user, peer, true)
	if err != nil {
		return wire.Contact{}, err
	}
	if err := s.contactLimit(ctx, user); err != nil {
		return wire.Contact{}, err
	}
	if before, err := s.st.GetContact(ctx, user, peer); errors.Is(err, store.ErrNotFound) {
		if err := s.underCap(ctx, user, peer); err != nil {
			return wire.Contact{}, err
		}
	} else if err != nil {
		return wire.Contact{}, errStore("contact", err)
	} else {
		c, err := s.st.RequestContact(ctx, user, peer, time.Now().UnixMilli()) // as it is, or an accept of peer's request
		if err != nil {
			return wire.Contact{}, errStore("request contact", err)
		}
		if before.State == store.ContactPendingIn && c.State == store.ContactAccepted {
			s.contactEvent(user, peer, wire.ContactAccepted, c.Since)
			s.contactEvent(peer, user, wire.ContactAccepted, c.Since)
		}
		return wireContact(c), nil
	}
	// Whether peer blocked user is read whatever the answer, and the
	// write is the same: only who is told differs.
	hidden, err := s.blocked(ctx, peer, user)
	if err != nil {
		return wire.Contact{}, err
	}
	c, err := s.st.RequestContact(ctx, user, peer, time.Now().UnixMilli())
	if err != nil {
		return wire.Contact{}, errStore("request contact", err)
	}
	action := wire.ContactRequested
	if c.State == store.ContactAccepted {
		action = wire.ContactAccepted
	}
	s.contactEvent(user, peer, action, c.Since)
	if !hidden {
		s.contactEvent(peer, user, action, c.Since)
	}
	return wireContact(c), nil
}

// underCap refuses a new contact when either side has MaxContacts rows
// (requests made to the peer count: a peer is any user).
func (s *Service) underCap(ctx context.Context, user, peer string) error {
	most := s.opts.MaxContacts
	if most <= 0 {
		most = DefaultMaxContacts
	}
	for _, u := range []string{user, peer} {
		n, err := s.st.CountContacts(ctx, u, most)
		if err != nil {
			return errStore("count contacts", err)
		}
		if n >= most && u == user {
			return refuse(ErrTooManyContacts, fmt.Sprintf("at most %d contacts and requests", most))
		}
		if n >= most {
			return refuse(ErrTooManyContacts, peer+" takes no more contact requests")
		}
	}
	return nil
}

// AcceptContact accepts peer's request to user (POST
// /v1/contacts/{user}/accept) and returns user's row; no_request if peer
// asked nothing.
func (s *Service) AcceptContact(ctx context.Context, user, peer string) (wire.Contact, error) {
	peer, err := s.peerOf(ctx, user, peer, false)
	if err != nil {
		return wire.Contact{}, err
	}
	if err := s.limit(ctx, user); err != nil {
		return wire.Contact{}, err
	}
	before, err := s.st.GetContact(ctx, user, peer)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && before.State == store.ContactPendingOut:
		return wire.Contact{}, refuse(ErrNoRequest, "no contact request from "+peer)
	case err != nil:
		return wire.Contact{}, errStore("contact", err)
	case before.State == store.ContactAccepted:
		return wireContact(before), nil
	}
	c, err := s.st.AcceptContact(ctx, user, peer, time.Now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) { // withdrawn meanwhile
		return wire.Contact{}, refuse(ErrNoRequest, "no contact request from "+peer)
	}
	if err != nil {
		return wire.Contact{}, errStore("accept contact", err)
	}
	s.contactEvent(user, peer, wire.ContactAccepted, c.Since)
	s.contactEvent(peer, user, wire.ContactAccepted, c.Since)
	return wireContact(c), nil
}

// RemoveContact declines peer's request, withdraws user's, or removes an
// accepted contact (DELETE /v1/contacts/{user}); not_found if there is
// none.
func (s *Service) RemoveContact(ctx context.Context, user, peer string) error {
	peer, err := s.peerOf(ctx, user, peer, false)
	if err != nil {
		return err
	}
	if err := s.limit(ctx, user); err != nil {
		return err
	}
	c, err := s.st.RemoveContact(ctx, user, peer)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(ErrNotFound, "no contact with "+peer)
	}
	if err != nil {
		return errStore("remove contact", err)
	}
	s.contactEvent(user, peer, wire.ContactRemoved, 0)
	// A request peer never saw (peer blocked user) is taken back unseen.
	if c.State == store.ContactPendingOut {
		if hidden, err := s.blocked(ctx, peer, user); err != nil || hidden {
			return nil
		}
	}
	s.contactEvent(peer, user, wire.ContactRemoved, 0)
	return nil
}

// Contacts lists user's contacts by user ID after after, at most limit
// (0: store.DefaultLimit), leaving out requests from users it blocked.
func (s *Service) Contacts(ctx context.Context, user, after string, limit int) (wire.Contacts, error) {
	cs, err := s.st.Contacts(ctx, user, "", after, limit)
	if err != nil {
		return wire.Contacts{}, errStore("contacts", err)
	}
	var pairs []store.Pair
	for _, c := range cs {
		if c.State == store.ContactPendingIn {
			pairs = append(pairs, store.Pair{User: user, Peer: c.Peer})
		}
	}
	var gates map[store.Pair]store.Gate
	if len(pairs) > 0 {
		if gates, err = s.st.Gates(ctx, pairs); err != nil {
			return wire.Contacts{}, errStore("blocks", err)
		}
	}
	out := wire.Contacts{Contacts: make([]wire.Contact, 0, len(cs))}
	for _, c := range cs {
		if c.State == store.ContactPendingIn && gates[store.Pair{User: user, Peer: c.Peer}].Blocked {
			continue
		}
		out.Contacts = append(out.Contacts, wireContact(c))
	}
	return out, nil
}

// Block blocks peer for user (PUT /v1/blocks/{user}): peer's 1:1 sends
// and typing to user are refused blocked, its requests reach user no
// more, and its group messages are marked for user. Blocking again is
// no change.
func (s *Service) Block(ctx context.Context, user, peer string) (wire.Block, error) {
	peer, err := s.peerOf(ctx, user, peer, true)
	if err != nil {
		return wire.Block{}, err
	}
	if err := s.contactLimit(ctx, user); err != nil {
		return wire.Block{}, err
	}
	if b, err := s.blocked(ctx, user, peer); err != nil {
		return wire.Block{}, err
	} else if !b {
		most := s.opts.MaxBlocks
		if most <= 0 {
			most = DefaultMaxBlocks
		}
		n, err := s.st.CountBlocks(ctx, user, most)
		if err != nil {
			return wire.Block{}, errStore("count blocks", err)
		}
		if n >= most {
			return wire.Block{}, refuse(ErrTooManyBlocks, fmt.Sprintf("at most %d blocks", most))
		}
	}
	b := store.Block{User: user, Peer: peer, Since: time.Now().UnixMilli()}
	if err := s.st.PutBlock(ctx, b); err != nil {
		return wire.Block{}, errStore("block", err)
	}
	s.toUser(user, wire.BlockEvent{Kind: wire.KindBlock, User: peer, Blocked: true})
	return wire.Block{User: peer, Since: b.Since}, nil
}

// Unblock lifts user's block of peer (DELETE /v1/blocks/{user});
// lifting none is no change.
func (s *Service) Unblock(ctx context.Context, user, peer string) error {
	peer, err := s.peerOf(ctx, user, peer, false)
	if err != nil {
		return err
	}
	if err := s.limit(ctx, user); err != nil {
		return err
	}
	if err := s.st.DeleteBlock(ctx, user, peer); err != nil {
		return errStore("unblock", err)
	}
	s.toUser(user, wire.BlockEvent{Kind: wire.KindBlock, User: peer, Blocked: false})
	return nil
}

// Blocks lists user's blocks by user ID after after, at most limit.
func (s *Service) Blocks(ctx context.Context, user, after string, limit int) (wire.Blocks, error) {
	bs, err := s.st.Blocks(ctx, user, after, limit)
	if err != nil {
		return wire.Blocks{}, errStore("blocks", err)
	}
	out := wire.Blocks{Blocks: make([]wire.Block, len(bs))}
	for i, b := range bs {
		out.Blocks[i] = wire.Block{User: b.Peer, Since: b.Since}
	}
	return out, nil
}

// gate refuses the batch's new 1:1 sends whose recipient blocked the
// sender (blocked) or takes sends from its contacts only (not_contact),
// and returns the others, in order. It runs after dedupe, so a resend of
// a message stored before a block still gets its ack, and reads the
// social graph once for the batch (store.Social.Gates). The system
// sender of the server API is never refused.
func (s *Service) gate(ctx context.Context, ops []*sendOp) []*sendOp {
	var pairs []store.Pair
	for _, op := range ops {
		if gated(op) {
			pairs = append(pairs, store.Pair{User: op.req.To, Peer: op.from.User})
		}
	}
	if len(pairs) == 0 {
		return ops
	}
	gates, err := s.st.Gates(ctx, pairs)
	out := ops[:0]
	for _, op := range ops {
		if !gated(op) {
			out = append(out, op)
			continue
		}
		switch {
		case err != nil:
			op.res.Err = unavailable()
		default:
			if op.res.Err = gateRefusal(gates[store.Pair{User: op.req.To, Peer: op.from.User}], op.req.To); op.res.Err == nil {
				out = append(out, op)
			}
		}
	}
	if err != nil && !storeLogged(err) {
		s.log.Error("read blocks of a batch", "sends", len(pairs), "err", err)
	}
	return out
}

// gated reports whether op is a 1:1 send to another user that the
// recipient's blocks and accept_from apply to.
func gated(op *sendOp) bool {
	return op.chg == nil && op.req.Group == "" && op.req.To != op.from.User && !op.from.system()
}

// mayReach refuses what from sends to to alone (typing) as a send would
// be: blocked, or not_contact.
func (s *Service) mayReach(ctx context.Context, from, to string) error {
	p := store.Pair{User: to, Peer: from}
	gates, err := s.st.Gates(ctx, []store.Pair{p})
	if err != nil {
		return errStore("blocks", err)
	}
	return gateRefusal(gates[p], to)
}

// gateRefusal is what g refuses of a send to to, or nil.
func gateRefusal(g store.Gate, to string) error {
	switch {
	case g.Blocked:
		return refuse(ErrBlocked, to+" does not take your messages")
	case g.ContactsOnly && !g.Contact:
		return refuse(ErrNotContact, to+" takes messages from contacts only")
	}
	return nil
}
